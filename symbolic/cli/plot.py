"""``symbolic plot``: memory per device across parallel settings, or a quantity against one size."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_model_argument, positive_int

KINDS = ("memory", "scaling")
QUANTITIES = ("params", "memory", "flops")
SETTING_KEYS = ("dp", "tp", "pp", "zero")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="figures: memory per device (stacked bars) or scaling with dominant regions")
    add_model_argument(p)
    p.add_argument("--kind", choices=KINDS, default="memory", help="memory (bars) or scaling (log-log)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png or FILE.svg")
    p.add_argument(
        "--setting",
        action="append",
        metavar="dp=8,tp=1,pp=1,zero=3",
        help="a parallel setting for --kind memory (repeat; default dp=1)",
    )
    p.add_argument("--budget", metavar="BYTES", help="draw a per-device budget line, e.g. 80GiB")
    p.add_argument("--quantity", choices=QUANTITIES, default="flops", help="what --kind scaling draws")
    p.add_argument("--grow", default="seq", help="the size on the x axis for --kind scaling (a symbol name)")
    p.add_argument("--range", default="256:65536", metavar="LO:HI", help="x from LO to HI in powers of two")
    p.add_argument("--batch", type=positive_int("--batch"), default=1, help="micro-batch size (default 1)")
    p.add_argument(
        "--seq", type=positive_int("--seq"), help="sequence length (default 2048, or the position table's length)"
    )
    p.add_argument("--precision", default="mixed", help="precision recipe for memory (default mixed)")
    p.add_argument("--optimizer", default="adamw", help="optimizer for memory (default adamw)")
    p.set_defaults(run=run)


def parse_setting(text: str) -> dict[str, int]:
    """``dp=8,tp=2,zero=3`` -> ``{"dp": 8, "tp": 2, "zero": 3}``; a clear error for anything else."""
    from ..errors import SymbolicError

    out: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or key not in SETTING_KEYS or not value.isdigit():
            raise SymbolicError("--setting", f"{item!r} must be KEY=N with KEY one of {', '.join(SETTING_KEYS)}")
        out[key] = int(value)
    return out


def parse_range(text: str) -> list[int]:
    """``LO:HI`` -> the powers of two from LO to HI (both positive integers, LO < HI)."""
    from ..errors import SymbolicError

    lo, sep, hi = text.partition(":")
    if not sep or not lo.isdigit() or not hi.isdigit() or not 0 < int(lo) < int(hi):
        raise SymbolicError("--range", f"{text!r} must be LO:HI with positive integers LO < HI")
    xs, x = [], int(lo)
    while x <= int(hi):
        xs.append(x)
        x *= 2
    return xs


def _memory_report(model: Any, args: argparse.Namespace, setting: dict[str, int]) -> Any:
    from ..memory import Workload, memory
    from ..parallel import Parallelism

    return memory(
        model,
        Workload(args.batch, args.seq),
        Parallelism(**setting),
        precision=args.precision,
        optimizer=args.optimizer,
    )


def run(args: argparse.Namespace) -> int:
    from .. import plots
    from ..errors import SymbolicError
    from ..registry import load_model
    from ..symbols import REGISTRY

    if not args.output.lower().endswith(plots.FORMATS):
        raise SymbolicError("--output", f"{args.output!r} must end in .png or .svg")
    model = load_model(args.model)
    if args.seq is None:
        from ..report import DocumentOptions, workload_of

        args.seq = workload_of(model, DocumentOptions())["seq"]
    budget = None
    if args.budget:
        from ..units import parse_bytes

        budget = parse_bytes(args.budget, "--budget")
    if args.kind == "memory":
        settings = [parse_setting(s) for s in args.setting or ["dp=1"]]
        per_setting = {
            " ".join(f"{k}={v}" for k, v in s.items()): _memory_report(model, args, s).per_device() for s in settings
        }
        fig = plots.memory_bars(per_setting, f"{model.name}: memory per device", budget)
    else:
        if args.grow not in REGISTRY:
            raise SymbolicError("--grow", f"unknown symbol {args.grow!r}; known: {', '.join(REGISTRY)}")
        xs = parse_range(args.range)
        values: dict[str, int] = {**model.sizes, "batch": args.batch, "seq": args.seq}
        if args.quantity == "params":
            from ..model import parameters

            terms = parameters(model)
        elif args.quantity == "flops":
            from ..formulas.flops import flops_terms

            terms = flops_terms(model)
        else:
            report = _memory_report(model, args, {})
            terms = report.all_terms().where(lambda t: "transient" not in t.tags)
            values = dict(report.values)
        if args.grow not in {str(s) for s in terms.total.free_symbols}:
            used = ", ".join(sorted(str(s) for s in terms.total.free_symbols))
            raise SymbolicError("--grow", f"{args.quantity} does not depend on {args.grow}; it uses: {used}")
        skip = 0 if args.quantity == "params" else 1
        title = f"{model.name}: {args.quantity} against {args.grow}"
        fig = plots.scaling(terms, args.grow, xs, values, title, skip=skip)
    plots.save(fig, args.output)
    return 0
