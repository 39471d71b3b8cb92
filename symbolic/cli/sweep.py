"""``symbolic sweep``: one quantity over the full product of a grid, compiled once, streamed out."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import SymbolicError
from ._common import add_model_argument, convention_names

# the symbols a sweep takes as options of their own; any other registry symbol goes through --grid
_GROUPS = ("workload", "parallel", "finetune")
_PROGRESS_POINTS = 200_000  # show a progress bar on runs at least this long (when stderr is a terminal)


def _option_names() -> list[str]:
    from .. import symbols as S

    return [n for n in S.ORDER if S.REGISTRY[n].group in _GROUPS]


def register(sub: argparse._SubParsersAction) -> None:
    from .. import symbols as S

    p = sub.add_parser(
        "sweep",
        help="a quantity over the full product of a grid (csv, json or parquet)",
        description="Grids: 1,2,4 (a list), 1024:32768:x2 (geometric), 1:8:+1 (arithmetic); items can be mixed.",
    )
    add_model_argument(p)
    for name in _option_names():
        p.add_argument(f"--{name.replace('_', '-')}", dest=f"grid_{name}", metavar="GRID", help=S.info(name).meaning)
    p.add_argument(
        "--grid", action="append", metavar="NAME=GRID", help="sweep any other symbol (e.g. n_layers=2:126:+4)"
    )
    p.add_argument("--quantity", default=None, help="what to compute (default memory.peak, else params.total)")
    p.add_argument(
        "--zero", metavar="STAGES", help="memory: ZeRO stage 0-3 (default 0); a list such as 0,1,2,3 sweeps it"
    )
    p.add_argument("--precision", help="memory: precision recipe (default mixed)")
    p.add_argument("--optimizer", help="memory: optimizer (default adamw)")
    p.add_argument(
        "--convention",
        help="counting convention (default exact; memory: " + ", ".join(convention_names("memory")) + ")",
    )
    p.add_argument("--fits", metavar="SIZE", help="keep configurations that fit in SIZE (e.g. 80GiB, 141GB)")
    p.add_argument("--format", default="csv", help="csv (default), json or parquet")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--float", action="store_true", help="float64 arithmetic (faster; default: exact integers)")
    p.add_argument("--yes", action="store_true", help=f"run grids of more than {10**7:,} points")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    p.add_argument("--list", action="store_true", help="list the quantities and exit")
    p.set_defaults(run=run)


def _grid(args: argparse.Namespace) -> dict[str, Any]:
    from .. import symbols as S
    from ..inputs import SYMBOL_KINDS
    from ..sweepgrid import parse_grid

    grid: dict[str, Any] = {}
    for name in _option_names():
        text = getattr(args, f"grid_{name}")
        if text is not None:
            grid[name] = parse_grid(f"--{name.replace('_', '-')}", text, SYMBOL_KINDS.get(name, "width"))
    for item in args.grid or ():
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in S.REGISTRY:
            raise SymbolicError("--grid", f"{item!r}: expected NAME=GRID with NAME one of {', '.join(S.ORDER)}")
        grid[name] = parse_grid(f"--grid {name}", text, SYMBOL_KINDS.get(name, "width"))
    return grid


def _zero(text: str) -> tuple[int, ...]:
    """The ZeRO stages ``text`` names (``1``, ``0,1,2,3`` or ``0:3``), each one of 0, 1, 2, 3."""
    allowed = "ZeRO stages are 0, 1, 2 or 3 (a list such as 0,1,2,3 or 0:3 sweeps them)"
    out: dict[int, None] = {}
    for item in text.split(","):
        low, sep, high = item.strip().partition(":")
        ends = (low.strip(), high.strip()) if sep else (low.strip(), low.strip())
        if not all(e in ("0", "1", "2", "3") for e in ends) or int(ends[0]) > int(ends[1]):
            raise SymbolicError("--zero", f"{text!r}: {allowed}")
        out.update(dict.fromkeys(range(int(ends[0]), int(ends[1]) + 1)))
    return tuple(out)


def _header(plan: Any) -> dict[str, Any]:
    return {
        "model": plan.model,
        "quantity": plan.quantity,
        "unit": plan.unit,
        "mode": plan.mode,
        "fixed": plan.fixed,
        "points": plan.points,
        "fits": plan.fits,
    }


def _write(out: Any, fmt: str, plan: Any, names: list[str], chunks: Any) -> int:
    from ..writers import write_csv, write_json

    if fmt == "csv":
        return write_csv(out, names, chunks)
    return write_json(out, _header(plan), names, chunks)


def run(args: argparse.Namespace) -> int:
    from ..inputs import output_file, output_stream
    from ..registry import load_model
    from ..writers import write_parquet

    if args.list:
        from ..sweep import quantities

        for name, spec in sorted(quantities().items()):
            sys.stdout.write(f"{name:24} {spec.unit.unit:10} {spec.description}\n")
        return 0
    if args.format not in ("csv", "json", "parquet"):
        raise SymbolicError("--format", f"must be csv, json or parquet, not {args.format!r}")
    if args.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SymbolicError(
                "--format", "parquet needs pyarrow (pip install pyarrow); csv and json need nothing"
            ) from None
        if not args.output:
            raise SymbolicError("--output", "parquet is binary: give --output FILE")
    if args.output is not None:
        output_file("--output", args.output)
    fits = None
    if args.fits is not None:
        from ..units import parse_bytes

        fits = parse_bytes(args.fits, "--fits")
    grid = _grid(args)
    zero = _zero(args.zero) if args.zero is not None else None
    if zero is not None and len(zero) > 1:
        grid["zero"] = zero
    model = load_model(args.model)
    positions = model.sizes.get("n_ctx")
    if positions is not None and "seq" in grid and max(grid["seq"]) > positions:
        raise SymbolicError(
            "--seq", f"{max(grid['seq'])} exceeds {model.name}'s learned position table ({positions} positions)"
        )
    # default: memory.peak (states + activations + transient: a row never leaves a category out)
    default = "memory.peak"
    options = {k: getattr(args, k) for k in ("precision", "optimizer") if getattr(args, k) is not None}
    if zero is not None and len(zero) == 1:
        options = {"zero": zero[0], **options}
    elif zero is not None and not (args.quantity or "memory.").startswith("memory."):
        raise SymbolicError("--zero", f"applies to memory.* quantities, not {args.quantity}")
    mode = "float" if args.float else "exact"
    quantity = args.quantity or default
    if options and not quantity.startswith("memory."):
        raise SymbolicError(f"--{next(iter(options))}", f"applies to memory.* quantities, not {quantity}")
    if fits is not None and quantity.startswith("memory.") and quantity != "memory.peak":
        raise SymbolicError(
            "--fits",
            f"judges the whole peak per device (states + activations + transient), not {quantity}; "
            "drop --quantity or use memory.peak",
        )
    if args.convention is not None:  # every quantity is counted in a convention
        options["convention"] = args.convention
    plan = _prepared(model, quantity, grid, options, mode, fits, args.yes)

    show = args.progress if args.progress is not None else (plan.points >= _PROGRESS_POINTS and sys.stderr.isatty())
    progress_bar = None
    advance = None
    if show:
        from rich.console import Console
        from rich.progress import Progress

        progress_bar = Progress(console=Console(stderr=True), transient=True)
        task = progress_bar.add_task(f"{model.name} {quantity}", total=plan.points)

        def advance(done: int) -> None:
            progress_bar.update(task, completed=done)

        progress_bar.start()
    try:
        chunks = plan.run(progress=advance)
        names = [*plan.axes, plan.quantity]
        if args.output:
            with output_stream("--output", args.output, binary=True) as out:
                if args.format == "parquet":
                    kept = write_parquet(out, names, chunks)
                else:
                    kept = _write(out, args.format, plan, names, chunks)
            sys.stderr.write(f"wrote {args.output} ({args.format}, {kept:,} rows)\n")
        else:
            _write(sys.stdout, args.format, plan, names, chunks)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    return 0


def _prepared(
    model: Any, quantity: str, grid: dict[str, Any], options: dict[str, Any], mode: str, fits: int | None, yes: bool
) -> Any:
    """The sweep ready to run (:class:`symbolic.sweepgrid.Prepared`): from the disk cache when the same
    sweep was planned before (no SymPy is loaded), else planned, checked and lowered now, and kept."""
    import math

    from ..sweepgrid import MAX_POINTS, cached_sweep, load_prepared, store_sweep, sweep_key, sweep_parts

    def plan() -> Any:
        from ..sweep import plan_sweep

        return plan_sweep(model, quantity, grid, options=options, mode=mode, fits=fits, yes=yes)

    def fallback(combo: tuple[int, ...]) -> Any:  # a form the cached lowering does not cover
        from ..numeric import compile_quantity

        planned = plan()
        return compile_quantity(planned.forms[combo], planned.mode)

    key = None
    if math.prod(len(v) for v in grid.values()) <= MAX_POINTS or yes:  # else planning says why not
        key = sweep_key(sweep_parts(model, quantity, options, mode, fits), grid)
        prepared = cached_sweep(key, grid, fallback) if key is not None else None
        if prepared is not None:
            return prepared
    from ..sweep import prepare

    payload = prepare(plan())
    if key is not None:
        store_sweep(key, payload)
    return load_prepared(payload, grid, fallback)
