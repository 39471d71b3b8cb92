"""Golden run of the command line: run the README commands and a set of ``--json`` queries in-process,
write each answer (exit status, stdout, stderr, and any file written with ``-o``) to a folder, and
optionally compare with a folder saved earlier.

A refactoring must leave every answer byte-identical::

    python tools/golden_cli.py /tmp/golden-before            # before the change
    python tools/golden_cli.py /tmp/golden-after --compare /tmp/golden-before

Figures (SVG/PNG) are recorded by size class only: matplotlib embeds ids and dates.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import io
import re
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODELS = ["llama2-7b", "gpt3-175b", "mixtral-8x7b", "gemma2-9b", "deepseek-v3", "falcon-7b", "gpt2", "phi3-mini"]


def readme_commands() -> list[str]:
    """The ``symbolic ...`` lines of the README's bash blocks, without comments."""
    out = []
    for line in (ROOT / "README.md").read_text().splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith("symbolic "):
            out.append(line[len("symbolic ") :])
    return out


def queries() -> list[str]:
    """The ``--json`` (and error) queries beyond the README."""
    q: list[str] = ["models --json"]
    for m in MODELS:
        for conv in ("exact", "basic", "basic-gated"):
            q.append(f"params {m} --convention {conv} --json")
        q.append(f"params {m} --lora-rank 16 --json")
        q.append(f"params {m} --freeze embedding.tokens --json")
        for conv in ("exact", "megatron", "basic"):
            q.append(f"memory {m} --batch 2 --seq 1024 --convention {conv} --json")
        q.append(f"memory {m} --batch 1 --seq 4096 --dp 8 --zero 3 --json")
        q.append(f"memory {m} --batch 1 --seq 2048 --tp 2 --sequence-parallel --convention megatron --json")
        q.append(f"memory {m} --batch 1 --seq 2048 --attention sdpa --dtype fp32 --json")
        q.append(f"inference {m} --batch 4 --seq 2048 --json")
        q.append(f"inference {m} --batch 1 --seq 8192 --dtype int4 --kv-dtype fp8 --tp 2 --json")
        for conv in ("exact", "kaplan", "chinchilla", "megatron", "palm"):
            q.append(f"flops {m} --convention {conv} --json")
        q.append(f"flops {m} --batch 2 --seq 4096 --causal --json")
        q.append(f"flops {m} --tokens 300e9 --devices 1024 --peak 312T --mfu 0.4 --json")
    q += [
        "params llama2-7b --lora-rank 8 --lora-targets q_proj,k_proj,v_proj,o_proj --json",
        "memory llama2-7b --batch 4 --seq 2048 --qlora nf4 --lora-rank 16 --json",
        "memory llama2-7b --batch 4 --seq 2048 --qlora nf4-dq --lora-rank 16 --optimizer adam-8bit --json",
        "memory llama2-7b --batch 1 --seq 4096 --precision fp32 --optimizer sgd --json",
        "memory llama2-7b --batch 1 --seq 4096 --precision mixed-fp32-grads --optimizer lion --json",
        "memory llama2-7b --batch 1 --seq 4096 --convention megatron --recompute full --tp 4 --pp 2 --json",
        "memory llama3-70b --batch 1 --seq 8192 --dp 8 --tp 8 --pp 4 --cp 2 --zero 1 --json",
        "memory llama3-70b --batch 1 --seq 8192 --dp 16 --zero 3 --hybrid-shard 8 --json",
        "memory mixtral-8x7b --batch 2 --seq 4096 --ep 4 --dp 8 --zero 2 --json",
        "memory llama2-7b --batch 1 --seq 4096 --pp 4 --stage 0 --json",
        "memory llama2-7b --batch 1 --seq 4096 --tp 4 --vocab-multiple 128 --step-counters --json",
        "memory llama2-7b --batch 1 --seq 2048 --device cuda --attention flash --dtype bf16 --json",
        "memory llama2-7b --batch 1 --seq 2048 --freeze embedding.tokens --json",
        "memory gemma2-9b --batch 1 --seq 2048 --attention eager --json",
        "memory gemma2-9b --batch 1 --seq 2048 --attention eager --convention megatron --json",
        "memory gpt2 --batch 2 --seq 1024 --attention sdpa --json",
        "sweep mixtral-8x7b --batch 1 --seq 2048 --tp 1,2 --ep 1,2 --dp 2 --format json",
        "sweep gemma2-9b --batch 1,4 --seq 1024 --format json",
        "plot llama2-7b --quantity memory --grow seq --range 512:4096 -o m.svg",
        "derive mixtral-8x7b --format markdown",
        "derive gemma2-9b --format markdown --batch 2 --seq 1024",
        "flops llama2-7b --convention megatron --recompute full --json",
        "flops llama2-7b --set n_layers=4 --json",
        "dominates llama2-7b --quantity memory --batch 1 --seq 4096 --json",
        "dominates llama2-7b --quantity flops --grow seq --json",
        "dominates gpt3-175b --quantity params --json",
        "sensitivity llama2-7b --quantity params --json",
        "sensitivity llama2-7b --quantity flops --seq 4096 --json",
        "sensitivity llama2-7b --quantity memory --json",
        "crossover llama2-7b --quantity flops --a attention.scores --b mlp --over seq --json",
        "crossover llama2-7b --quantity memory --a attention --b rest --over seq --json",
        "fit llama2-7b --budget 80GiB --solve batch --seq 4096 --zero 3 --dp 8 --json",
        "fit llama2-7b --budget 80GiB --solve seq --batch 1 --json",
        "fit llama3-70b --budget 80GiB --solve tp --batch 1 --seq 4096 --json",
        "fit llama2-7b --budget 24GiB --solve batch --seq 2048 --qlora nf4 --lora-rank 16 --json",
        "sweep llama2-7b --batch 1,2 --seq 1024,4096 --dp 8 --zero 3 --format json",
        "sweep llama2-7b --batch 1,2 --seq 1024,4096 --quantity flops.total --format json",
        "sweep llama2-7b --batch 1 --seq 2048 --quantity params.trainable --lora-rank 4,8 --format json",
        "sweep mixtral-8x7b --batch 1 --seq 2048 --tp 1,2 --ep 1,2 --format json",
        "sweep llama2-7b --batch 1 --seq 1024 --convention megatron --quantity memory.activations --format json",
        "derive llama2-7b --format markdown",
        "derive gpt3-175b --format markdown --convention megatron --recompute selective",
        "derive llama2-7b --format latex",
        # errors: one line naming the field, status 2
        "params llama2-7b --convention nope",
        "params nope-7b",
        "memory llama2-7b --batch 0 --seq 1",
        "memory llama2-7b --batch 1 --seq 10 --lora-rank 0",
        "memory llama2-7b --batch 1 --seq 10 --qlora nf4",
        "memory llama2-7b --batch 1 --seq 10 --precision custom:bogus",
        "flops llama2-7b --convention nope",
        "flops llama2-7b --set n_layers=abc",
        "fit llama2-7b --budget 80XB --solve batch --seq 4096",
        "sweep llama2-7b --batch 1 --seq 2048 --quantity nope",
        "crossover llama2-7b --a nope --b mlp --over seq",
    ]
    return q


def run_one(command: str, workdir: Path) -> str:
    """Run one command line in-process; returns the record (status, stdout, stderr, written files)."""
    from symbolic.cli import main

    argv = shlex.split(command)
    written = []
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            argv[i + 1] = str(workdir / Path(argv[i + 1]).name)
            written.append(Path(argv[i + 1]))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv, use_cache=False)
        except SystemExit as exc:  # argparse errors
            code = exc.code
    stdout, stderr = (text.replace(str(workdir), "<out>") for text in (out.getvalue(), err.getvalue()))
    record = [f"$ symbolic {command}", f"exit {code}", "--- stdout", stdout, "--- stderr", stderr]
    for path in written:
        for produced in sorted(workdir.glob(path.stem + "*")):
            if produced.suffix in (".svg", ".png", ".pdf"):
                record += [f"--- file {produced.name}", f"{produced.stat().st_size > 0}"]
            else:
                record += [f"--- file {produced.name}", produced.read_text()]
            produced.unlink()
    return "\n".join(record)


def slug(command: str) -> str:
    """A file name for a command line."""
    return re.sub(r"[^A-Za-z0-9.=,_-]+", "_", command)[:180] + ".txt"


def main(argv: list[str] | None = None) -> int:
    """Write the golden folder; with ``--compare`` return 1 when any answer differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--compare", type=Path, help="a folder written earlier")
    parser.add_argument("-k", help="only commands containing this text")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    args.folder.mkdir(parents=True, exist_ok=True)
    commands = readme_commands() + queries()
    if args.k:
        commands = [c for c in commands if args.k in c]
    with tempfile.TemporaryDirectory() as tmp:
        for command in commands:
            (args.folder / slug(command)).write_text(run_one(command, Path(tmp)))
    if args.compare is None:
        print(f"wrote {len(commands)} answers to {args.folder}")
        return 0
    names = [slug(c) for c in commands]
    _, mismatch, missing = filecmp.cmpfiles(args.compare, args.folder, names, shallow=False)
    for name in mismatch + missing:
        print(f"DIFFERS: {name}")
    print(f"{len(names) - len(mismatch) - len(missing)}/{len(names)} identical")
    return 1 if mismatch or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
