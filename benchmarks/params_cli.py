"""Wall time of `symbolic params llama2-7b --json` (target: under 1 s on a 2-core machine).

Run: python benchmarks/params_cli.py [--runs N] [--json]
Each run is a fresh interpreter (what a user waits for), started the way the console script is.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--model", default="llama2-7b")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "symbolic", "params", args.model, "--json"]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the OS file cache and bytecode
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    result = {
        "command": " ".join(["symbolic", "params", args.model, "--json"]),
        "runs": args.runs,
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
