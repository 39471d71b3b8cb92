"""Wall time of `symbolic params MODEL --json` in a fresh interpreter, labelled by what was cached.

Run: python benchmarks/params_cli.py [--runs N] [--model NAME] [--json]

Each run is a fresh interpreter started the way the console script is. Three situations, interleaved
so they see the same machine load, with ``python -c pass`` as the yardstick:

- ``cold``: an empty cache folder (no answer cache, no compiled code);
- ``no_answer_cache``: ``SYMBOLIC_NO_RESULT_CACHE=1`` (the command computes its answer);
- ``cache_hit``: the answer comes from the answer cache (``symbolic.resultcache``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = "import sys; from symbolic.cli import main; sys.exit(main())"  # what the console script runs


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--model", default="llama2-7b")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    argv = [sys.executable, "-c", ENTRY, "params", args.model, "--json"]
    # bytecode written and read as an installed package's is (else every run compiles from source)
    base = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(ROOT)}
    times: dict[str, list[float]] = {"python_pass": [], "cold": [], "no_answer_cache": [], "cache_hit": []}
    with tempfile.TemporaryDirectory() as tmp:
        warm = {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / "warm")}
        subprocess.run(argv, env=warm, check=True, capture_output=True)  # fills the caches, bytecode, OS cache
        for i in range(args.runs):
            times["python_pass"].append(_timed([sys.executable, "-c", "pass"], base))
            times["cold"].append(_timed(argv, {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / f"cold{i}")}))
            times["no_answer_cache"].append(_timed(argv, {**warm, "SYMBOLIC_NO_RESULT_CACHE": "1"}))
            times["cache_hit"].append(_timed(argv, warm))
    medians = {name: statistics.median(values) for name, values in times.items()}
    result: dict[str, object] = {"command": f"symbolic params {args.model} --json", "runs": args.runs}
    for name, value in medians.items():
        result[f"{name}_median_s"] = round(value, 3)
        if name != "python_pass":
            result[f"{name}_vs_python_pass"] = round(value / medians["python_pass"], 2)
    result["load_1min"] = round(os.getloadavg()[0], 2)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
