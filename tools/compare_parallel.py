#!/usr/bin/env python
"""Per-rank activation bytes: real multi-process parallel runs vs the ``exact`` terms.

Measures every case of ``tests.harness.parallel`` (gloo on CPU, world sizes 2 and 4: tensor
parallelism with transformers' own plan, sequence parallelism laid out with ``parallelize_module``,
pipeline stages run by ``torch.distributed.pipelining``'s 1F1B and interleaved 1F1B schedules with 4
micro-batches) and prints, per case, the bytes each rank saved for backward (for pipelines: the most
alive at once during the step) next to ``symbolic``'s per-device figure
(``symbolic.memory.device_activation_terms`` with ``--tp``, ``--sequence-parallel``, ``--pp``, ``--stage``,
``--interleave``). Slow on two cores (about a minute per world-4 case)::

    python tools/compare_parallel.py                       # every case
    python tools/compare_parallel.py --case mixtral --world 2
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from symbolic.formulas.activations import activation_bytes  # noqa: E402
from symbolic.hf import from_hf_config  # noqa: E402
from symbolic.memory import Workload  # noqa: E402
from symbolic.memory import device_activation_terms as activation_terms  # noqa: E402
from symbolic.parallel import Parallelism  # noqa: E402
from tests.harness.parallel import CASES, MODES, measure_parallel  # noqa: E402

# the layouts each case runs in (sequence parallelism and the pipeline chunks need llama-like layer names)
LLAMA_LIKE = ("llama-gqa", "qwen2", "mistral")
BATCH, SEQ, MICRO = 2, 8, 4


def config(case: str, world: int, mode: str, interleave: int = 1) -> dict:
    """The case's config; pipelines get one layer per model chunk."""
    cfg = dict(CASES[case])
    if mode == "pp":
        cfg["num_hidden_layers"] = world * interleave
    return cfg


def ours(case: str, world: int, mode: str, interleave: int = 1, batch: int = BATCH, seq: int = SEQ) -> list[int]:
    """``symbolic``'s activation bytes on each device of a measured case (bytes, one per rank)."""
    model = from_hf_config(config(case, world, mode, interleave))
    opts = {"dtype": "fp32", "attention": "sdpa", "device": "cpu", "interleave": interleave}
    if mode == "pp":
        layouts = [Parallelism(pp=world, stage=rank) for rank in range(world)]
    else:
        layouts = [Parallelism(tp=world, sequence_parallel=mode == "tp_sp")] * world
    out = []
    for parallel in layouts:
        terms = activation_terms(model, Workload(batch, seq), parallel, "exact", **opts)
        out.append(activation_bytes(terms, model, {"batch": batch, "seq": seq, **parallel.values()}).total)
    return out


def measured(case: str, world: int, mode: str, interleave: int = 1) -> list[int]:
    """Bytes saved for backward on each rank of a real run (bytes, one per rank)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = config(case, world, mode, interleave)
        # interleaved: 2p micro-batches, so that the warm-up is not cut short (our count assumes it is not)
        micro = MICRO if interleave == 1 else max(MICRO, 2 * world)
        ranks = measure_parallel(cfg, BATCH, SEQ, world, mode, micro=micro, interleave=interleave)
    return [r["total"] for r in ranks]


def cases(names=None, worlds=None, modes=None) -> list[tuple[str, int, str, int]]:
    """Every (case, world, mode, interleave) to run."""
    out = []
    for case in names or sorted(CASES):
        for world in worlds or (2, 4):
            for mode in modes or MODES:
                if mode != "tp" and case not in LLAMA_LIKE:
                    continue
                if mode != "pp" and CASES[case].get("num_attention_heads", 0) % world:
                    continue
                for interleave in (1, 2) if mode == "pp" else (1,):
                    out.append((case, world, mode, interleave))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--world", type=int, action="append")
    parser.add_argument("--mode", action="append", choices=MODES)
    args = parser.parse_args(argv)
    print("| case | world | layout | measured per rank (bytes) | ours per rank (bytes) | largest difference |")
    print("|---|---|---|---|---|---|")
    worst = 0
    for case, world, mode, interleave in cases(args.case, args.world, args.mode):
        got, mine = measured(case, world, mode, interleave), ours(case, world, mode, interleave)
        diff = max(abs(m - o) for m, o in zip(got, mine, strict=True))
        worst = max(worst, diff)
        layout = mode + (f" interleave {interleave}" if interleave > 1 else "")
        print(f"| {case} | {world} | {layout} | {got} | {mine} | {diff} |", flush=True)
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
