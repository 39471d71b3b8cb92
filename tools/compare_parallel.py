#!/usr/bin/env python
"""Per-rank activation bytes: real multi-process parallel runs vs the ``exact`` (or ``traced``) terms.

Measures every case of ``tests.harness.parallel`` (gloo on CPU, world sizes 2 and 4: tensor
parallelism with transformers' own plan, sequence parallelism laid out with ``parallelize_module``,
pipeline stages run by ``torch.distributed.pipelining``'s 1F1B and interleaved 1F1B schedules with 4
micro-batches) and prints, per case, the bytes each rank saved for backward (for pipelines: the most
alive at once during the step) next to ``symbolic``'s per-device figure
(``symbolic.memory.device_activation_terms`` with ``--tp``, ``--sequence-parallel``, ``--pp``, ``--stage``,
``--interleave``). ``--convention traced`` compares the traced terms instead (tensor parallelism
only: each saved storage divided or not as transformers' own plan says), and also takes the small
configs of model types without hand-written rules (``tests/trace_configs.py``). Slow on two cores
(about a minute per world-4 case)::

    python tools/compare_parallel.py                       # every case
    python tools/compare_parallel.py --case mixtral --world 2
    python tools/compare_parallel.py --convention traced --mode tp --case qwen3_moe --world 2

``--parameters`` compares the parameters each rank holds instead (``tests.harness.parallel_params``:
the model split by transformers' own plan, each rank's local shards counted) with the convention's
per-device parameter terms (``symbolic.parallel.Parallelism.device_terms``; tensor parallelism only)::

    python tools/compare_parallel.py --parameters --convention traced --case olmo2 --world 2
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
from symbolic.model import parameters  # noqa: E402
from symbolic.numeric.values import evaluate  # noqa: E402
from symbolic.parallel import Parallelism  # noqa: E402
from symbolic.registry import untyped_model  # noqa: E402
from tests.harness.parallel import CASES, MODES, measure_parallel  # noqa: E402
from tests.harness.parallel_params import measure_parameters  # noqa: E402
from tests.trace_configs import NEW_TYPES  # noqa: E402

# the layouts each case runs in (sequence parallelism and the pipeline chunks need llama-like layer names)
LLAMA_LIKE = ("llama-gqa", "qwen2", "mistral")
BATCH, SEQ, MICRO = 2, 8, 4


def config(case: str, world: int, mode: str, interleave: int = 1) -> dict:
    """The case's config (a harness case, or a traced-only type's); pipelines get one layer per model chunk."""
    cfg = dict(CASES[case] if case in CASES else NEW_TYPES[case])
    if mode == "pp":
        cfg["num_hidden_layers"] = world * interleave
    return cfg


def ours(
    case: str,
    world: int,
    mode: str,
    interleave: int = 1,
    batch: int = BATCH,
    seq: int = SEQ,
    convention: str = "exact",
) -> list[int]:
    """``symbolic``'s activation bytes on each device of a measured case (bytes, one per rank)."""
    cfg = config(case, world, mode, interleave)
    model = from_hf_config(cfg) if case in CASES else untyped_model(cfg, case)
    opts = {"dtype": "fp32", "attention": "sdpa", "device": "cpu", "interleave": interleave}
    if mode == "pp":
        layouts = [Parallelism(pp=world, stage=rank) for rank in range(world)]
    else:
        layouts = [Parallelism(tp=world, sequence_parallel=mode == "tp_sp")] * world
    out = []
    for parallel in layouts:
        terms = activation_terms(model, Workload(batch, seq), parallel, convention, **opts)
        out.append(activation_bytes(terms, model, {"batch": batch, "seq": seq, **parallel.values()}).total)
    return out


def ours_parameters(case: str, world: int, convention: str = "exact") -> int:
    """The parameters one device holds under ``tp = world`` in ``convention`` (parameters; every rank alike)."""
    cfg = config(case, world, "tp")
    model = from_hf_config(cfg) if case in CASES else untyped_model(cfg, case)
    parallel = Parallelism(tp=world)
    device = parallel.device_terms(model.arch, parameters(model, convention), 0)
    return int(evaluate(device.total, {**model.sizes, **parallel.values()}))


def measured_parameters(case: str, world: int) -> list[int]:
    """The parameter elements each rank of a real split holds (parameters, one per rank)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [r["numel"] for r in measure_parameters(config(case, world, "tp"), world)]


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
                cfg = config(case, world, mode)
                heads = [
                    cfg.get(k, cfg.get("num_attention_heads", 0))
                    for k in ("num_attention_heads", "num_key_value_heads")
                ]
                if mode != "pp" and any(h % world for h in heads):
                    continue
                for interleave in (1, 2) if mode == "pp" else (1,):
                    out.append((case, world, mode, interleave))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=sorted({*CASES, *NEW_TYPES}))
    parser.add_argument("--world", type=int, action="append")
    parser.add_argument("--mode", action="append", choices=MODES)
    parser.add_argument("--convention", choices=("exact", "traced"), default="exact")
    parser.add_argument("--parameters", action="store_true", help="compare the parameters per rank (tp only)")
    args = parser.parse_args(argv)
    if args.parameters:
        return _compare_parameters(args)
    if args.convention == "traced" and set(args.mode or MODES) - {"tp"}:
        parser.error("--convention traced compares tensor parallelism only: pass --mode tp")
    if args.convention == "exact" and set(args.case or ()) - set(CASES):
        parser.error("the types of tests/trace_configs.py have no exact terms: pass --convention traced")
    print("| case | world | layout | measured per rank (bytes) | ours per rank (bytes) | largest difference |")
    print("|---|---|---|---|---|---|")
    worst = 0
    for case, world, mode, interleave in cases(args.case, args.world, args.mode):
        got = measured(case, world, mode, interleave)
        mine = ours(case, world, mode, interleave, convention=args.convention)
        diff = max(abs(m - o) for m, o in zip(got, mine, strict=True))
        worst = max(worst, diff)
        layout = mode + (f" interleave {interleave}" if interleave > 1 else "")
        print(f"| {case} | {world} | {layout} | {got} | {mine} | {diff} |", flush=True)
    return 0 if worst == 0 else 1


def _compare_parameters(args: argparse.Namespace) -> int:
    print("| case | world | measured per rank (parameters) | ours per device (parameters) | difference |")
    print("|---|---|---|---|---|")
    worst = 0
    names = args.case or sorted(CASES)
    for case, world, _, _ in cases(names, args.world, ["tp"]):
        if args.convention == "exact" and case not in CASES:
            continue
        got = measured_parameters(case, world)
        mine = ours_parameters(case, world, args.convention)
        diff = max(abs(m - mine) for m in got)
        worst = max(worst, diff)
        print(f"| {case} | {world} | {got} | {mine} | {diff} |", flush=True)
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
