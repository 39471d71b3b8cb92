"""Hold the hand-written ``exact`` activations to the traced truth over random training steps.

Draws cases with hypothesis (``tests/exact_cases.py``: a config of a hand-written family with
every head layout including kv = 1, every ``hidden_act`` transformers accepts, sliding windows
shorter and longer than the sequence, partial rotary, MoE layers; eager or SDPA, fp32, bf16 or
fp16, dropout on or off, with or without gradient checkpointing; with ``--amp``, fp32 weights
under ``torch.autocast`` to bf16 or fp16 instead), traces each step once on fake tensors and
compares ``exact`` with the traced bytes at b = 1 and b > 1 and at every sequence drawn. The traced bytes equal autograd's (``tests/test_trace.py``), so a disagreement is a miss
of the hand-written rules. Prints one JSON line per disagreeing case and a summary: cases and
(b, s) points that agree to the byte. ``tests/test_exact_vs_traced.py`` runs a bounded sample of
the same draws.

    python tools/exact_vs_traced.py [--examples 300] [--seed 0] [--family llama ...] [--amp]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="cases to draw (default 300)")
    parser.add_argument("--seed", type=int, default=None, help="a random seed (default: the CI test's draws)")
    parser.add_argument("--family", action="append", help="only these families (repeatable)")
    parser.add_argument("--amp", action="store_true", help="fp32 weights under torch.autocast to bf16 or fp16")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import logging

    import transformers

    from tests.exact_cases import compare, draw

    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    started = time.perf_counter()
    cases = draw(args.examples, args.seed, tuple(args.family) if args.family else None, args.amp)
    agree_cases = points = agree_points = errors = 0
    for case in cases:
        out = compare(case)
        points += out.points
        agree_points += out.agree
        if out.error:
            errors += 1
        elif not out.misses:
            agree_cases += 1
        if out.error or out.misses:
            row = {
                "case": case.describe(),
                "error": out.error,
                "misses": {f"b={b} s={s}": {"exact": e, "traced": t} for (b, s), (e, t) in out.misses.items()},
                "config": case.config,
            }
            print(json.dumps(row, default=str), flush=True)
    summary = {
        "cases": len(cases),
        "cases_agree": agree_cases,
        "cases_error": errors,
        "points": points,
        "points_agree": agree_points,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return 0 if agree_cases == len(cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
