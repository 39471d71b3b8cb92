"""``symbolic plot``: memory per device across parallel settings, or a quantity against one size."""

from __future__ import annotations

import argparse
from typing import Any

from ..request import QUANTITIES
from ._common import add_model_argument, positive_int

KINDS = ("memory", "scaling")
SETTING_KEYS = ("dp", "tp", "pp", "zero")
# options only one kind uses (the other refuses them rather than ignore them)
ONLY = {"scaling": ("quantity", "grow", "range"), "memory": ("setting",)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="figures: memory per device (stacked bars) or scaling with dominant regions",
        description="--kind memory (the default without --quantity/--grow/--range): stacked bars of the bytes "
        "per device, one bar per --setting. --kind scaling (the default with any of them): a quantity and its "
        "parts against one size, log-log, the leading part shaded up to its exact crossover. An option the "
        "kind does not use is refused.",
    )
    add_model_argument(p)
    p.add_argument("--kind", choices=KINDS, help="memory (bars) or scaling (log-log); inferred when left out")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png or FILE.svg")
    p.add_argument(
        "--setting",
        action="append",
        metavar="dp=8,tp=1,pp=1,zero=3",
        help="a parallel setting for --kind memory (repeat; default dp=1)",
    )
    p.add_argument("--budget", metavar="BYTES", help="draw a per-device budget line, e.g. 80GiB (memory only)")
    p.add_argument("--quantity", choices=QUANTITIES, help="what --kind scaling draws (default flops)")
    p.add_argument("--grow", help="the size on the x axis for --kind scaling (a symbol name; default seq)")
    p.add_argument(
        "--range",
        metavar="LO:HI",
        help="--kind scaling: x from LO to HI (default 256:65536, within a learned position table)",
    )
    p.add_argument("--batch", type=positive_int("--batch"), default=1, help="micro-batch size (default 1)")
    p.add_argument(
        "--seq", type=positive_int("--seq"), help="sequence length (default 2048, or the position table's length)"
    )
    p.add_argument("--convention", default="exact", help="counting convention (see the quantity's command)")
    p.add_argument("--precision", help="precision recipe for memory (default mixed)")
    p.add_argument("--optimizer", help="optimizer for memory (default adamw)")
    p.set_defaults(run=run)


def parse_setting(text: str) -> dict[str, int]:
    """``dp=8,tp=2,zero=3`` -> ``{"dp": 8, "tp": 2, "zero": 3}``; a clear error for anything else."""
    from ..errors import SymbolicError
    from ..inputs import parse_integer, shown

    out: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or key not in SETTING_KEYS:
            raise SymbolicError("--setting", f"{shown(item)} must be KEY=N with KEY one of {', '.join(SETTING_KEYS)}")
        try:
            out[key] = parse_integer("--setting", value, "zero" if key == "zero" else "degree")
        except SymbolicError as err:
            raise SymbolicError("--setting", f"{key} {err.message}") from None
    return out


def parse_range(text: str, kind: str = "width") -> tuple[int, int]:
    """``LO:HI`` -> ``(LO, HI)``, integers of ``kind`` (see :data:`symbolic.inputs.LIMITS`) with LO < HI."""
    from ..errors import SymbolicError
    from ..inputs import parse_integer, shown

    lo, sep, hi = text.partition(":")
    if not sep:
        raise SymbolicError("--range", f"{shown(text)} must be LO:HI with positive integers LO < HI")
    low, high = parse_integer("--range", lo, kind), parse_integer("--range", hi, kind)
    if not low < high:
        raise SymbolicError("--range", f"{shown(text)} must be LO:HI with positive integers LO < HI")
    return low, high


def kind_of(args: argparse.Namespace) -> str:
    """The plot kind: ``--kind``, else scaling when a scaling option is given, else memory.

    Raises :class:`SymbolicError` (exit 2) for an option the kind does not use.
    """
    from ..errors import SymbolicError

    kind = args.kind or ("scaling" if any(getattr(args, o) is not None for o in ONLY["scaling"]) else "memory")
    other = "memory" if kind == "scaling" else "scaling"
    for option in ONLY[other]:
        if getattr(args, option) is not None:
            raise SymbolicError(f"--{option}", f"is for --kind {other}; --kind {kind} does not use it")
    quantity = args.quantity or "flops"
    if kind == "scaling" and quantity != "memory":
        for option in ("budget", "precision", "optimizer"):
            if getattr(args, option) is not None:
                raise SymbolicError(f"--{option}", f"is for memory figures; --quantity {quantity} does not use it")
    return kind


def _device_memory(model: Any, args: argparse.Namespace, seq: int, setting: dict[str, int]) -> Any:
    from ..request import request

    options = {"precision": args.precision or "mixed", "optimizer": args.optimizer or "adamw", **setting}
    return request(model, "memory", batch=args.batch, seq=seq, convention=args.convention, options=options).memory


def _memory_words(args: argparse.Namespace) -> str:
    return f"{args.precision or 'mixed'} precision, {args.optimizer or 'adamw'}"


def _flops_parts(terms: Any) -> dict[str, Any]:
    from ..plots import scaling_terms

    return scaling_terms(terms, skip=1, depth=2)  # forward and backward of an operation together


def _save(plots: Any, fig: Any, output: str) -> int:
    """Write the figure atomically and say what was written."""
    path = plots.save(fig, output)
    print(f"wrote {path} ({path.suffix.lstrip('.')}, {path.stat().st_size:,} bytes)")
    return 0


def run(args: argparse.Namespace) -> int:
    from .. import plots
    from ..errors import SymbolicError
    from ..inputs import SYMBOL_KINDS, output_file, symbol_name
    from ..registry import load_model
    from ..request import default_workload, request
    from ..symbols import REGISTRY

    output_file("--output", args.output, plots.FORMATS)
    kind = kind_of(args)
    model = load_model(args.model)
    seq = args.seq if args.seq is not None else default_workload(model)["seq"]
    budget = None
    if args.budget:
        from ..units import parse_bytes

        budget = parse_bytes(args.budget, "--budget")
    if kind == "memory":
        settings = [parse_setting(s) for s in args.setting or ["dp=1"]]
        per_setting = {
            " ".join(f"{k}={v}" for k, v in s.items()): _device_memory(model, args, seq, s).per_device()
            for s in settings
        }
        title = (
            f"{model.name}: peak memory per device, GiB (batch {args.batch}, sequence {seq:,}, {_memory_words(args)})"
        )
        fig = plots.memory_bars(per_setting, title, budget)
        return _save(plots, fig, args.output)
    grow = symbol_name("--grow", args.grow) if args.grow is not None else "seq"
    quantity = args.quantity or "flops"
    limit = model.sizes.get("n_ctx") if grow == "seq" else None
    if args.range is None and limit is not None:  # default range: up to the learned position table
        lo, hi = min(256, limit // 4), min(65536, limit)
    else:
        lo, hi = parse_range(args.range or "256:65536", SYMBOL_KINDS.get(grow, "width"))
    if limit is not None and hi > limit:
        raise SymbolicError("--range", f"{hi} exceeds {model.name}'s learned position table ({limit} positions)")
    xs = plots.sample_points(lo, hi)
    colours = None
    if quantity in ("params", "flops"):
        answer = request(model, quantity, batch=args.batch, seq=seq, convention=args.convention)
        terms, values = answer.terms, dict(answer.values)
    if quantity == "params":
        parts, unit, what = plots.scaling_terms(terms, skip=0, depth=2), "parameters", "parameters"
    elif quantity == "flops":
        parts, unit, what = _flops_parts(terms), "FLOPs", "training FLOPs per step (all s × s attention pairs)"
    else:
        device = _device_memory(model, args, seq, {})
        terms = device.all_terms()
        values = dict(device.values)
        names = ("weights", "gradients", "master", "optimizer", "activations")
        parts = {c: device.expr(c) for c in names if c != "activations" or device.activations is not None}
        parts["transient"] = device.transient_expr
        unit, what, colours = (
            "bytes",
            f"peak memory per device by category ({_memory_words(args)})",
            plots.CATEGORY_COLOURS,
        )
    if grow not in {str(s) for s in terms.total.free_symbols}:
        uses = ", ".join(sorted(str(s) for s in terms.total.free_symbols))
        raise SymbolicError("--grow", f"{quantity} does not depend on {grow}; it uses: {uses}")
    used = {str(s) for s in terms.total.free_symbols}
    fixed = ", ".join(
        f"{word} {values[k]:,}" for k, word in (("batch", "batch"), ("seq", "sequence")) if k != grow and k in used
    )
    title = f"{model.name}: {what}\nagainst the {REGISTRY[grow].meaning}" + (f", {fixed}" if fixed else "")
    fig = plots.scaling(parts, grow, xs, values, title, unit=unit, budget=budget, colours=colours)
    return _save(plots, fig, args.output)
