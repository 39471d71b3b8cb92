"""``symbolic sweep``: one quantity over the full product of a grid, compiled once, streamed out."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import IO, Any

from ..errors import SymbolicError
from ._common import add_model_argument, convention_names, zero_stage

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
    p.add_argument("--zero", type=zero_stage, choices=(0, 1, 2, 3), help="memory: ZeRO stage (default 0)")
    p.add_argument("--precision", help="memory: precision recipe (default mixed)")
    p.add_argument("--optimizer", help="memory: optimizer (default adamw)")
    p.add_argument("--convention", help="memory: activation convention (" + ", ".join(convention_names("memory")) + ")")
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
    from ..sweep import parse_grid

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


def _cell(value: Any) -> Any:
    """A JSON/CSV value: whole exact values stay exact ints (whatever their size), a non-whole exact
    value becomes a float; a float (``--float``) stays one, and an overflow is refused, never ``inf``."""
    import math
    import numbers

    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Rational) and value.denominator == 1:
        return int(value.numerator)
    as_float = float(value)
    if not math.isfinite(as_float):
        raise SymbolicError("--float", "a value is beyond float64's range; leave out --float for exact integers")
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float


def _rows(chunk: dict[str, Any]) -> zip:
    return zip(*(col.tolist() for col in chunk.values()), strict=True)


def _write_csv(out: IO[str], plan: Any, chunks: Any) -> int:
    names = [*plan.axes, plan.quantity.name]
    out.write(",".join(names) + "\n")
    kept = 0
    for chunk in chunks:
        lines = [",".join(str(_cell(v)) for v in row) for row in _rows(chunk)]
        kept += len(lines)
        if lines:
            out.write("\n".join(lines) + "\n")
    return kept


def _write_json(out: IO[str], plan: Any, chunks: Any) -> int:
    header = {
        "model": plan.model.name,
        "quantity": plan.quantity.name,
        "unit": plan.quantity.unit.unit,
        "mode": plan.mode,
        "fixed": plan.fixed,
        "points": plan.points,
        "fits": plan.fits,
        "columns": [*plan.axes, plan.quantity.name],
    }
    out.write(json.dumps(header)[:-1] + ', "rows": [')
    kept = 0
    for chunk in chunks:
        for row in _rows(chunk):
            out.write(("," if kept else "") + "\n" + json.dumps([_cell(v) for v in row]))
            kept += 1
    out.write(f'\n], "kept": {kept}}}\n')
    return kept


def _write_parquet(out: IO[bytes], plan: Any, chunks: Any) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    kept = 0
    try:
        for chunk in chunks:
            table = pa.table({k: [_cell(v) for v in col.tolist()] for k, col in chunk.items()})
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            kept += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return kept


def run(args: argparse.Namespace) -> int:
    from ..inputs import output_file, output_stream
    from ..registry import load_model
    from ..sweep import plan_sweep, quantities, run_sweep

    if args.list:
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
    model = load_model(args.model)
    positions = model.sizes.get("n_ctx")
    if positions is not None and "seq" in grid and max(grid["seq"]) > positions:
        raise SymbolicError(
            "--seq", f"{max(grid['seq'])} exceeds {model.name}'s learned position table ({positions} positions)"
        )
    # default: memory.peak (states + activations + transient: a row never leaves a category out)
    table = quantities()
    default = "memory.peak" if "memory.peak" in table else "params.total"
    options = {
        k: getattr(args, k) for k in ("zero", "precision", "optimizer", "convention") if getattr(args, k) is not None
    }
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
    plan = plan_sweep(model, quantity, grid, options=options, mode=mode, fits=fits, yes=args.yes)

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
        chunks = run_sweep(plan, progress=advance)
        writers: dict[str, Callable[..., int]] = {"csv": _write_csv, "json": _write_json, "parquet": _write_parquet}
        writer = writers[args.format]
        if args.output:
            with output_stream("--output", args.output, binary=args.format == "parquet") as out:
                kept = writer(out, plan, chunks)
            sys.stderr.write(f"wrote {args.output} ({args.format}, {kept:,} rows)\n")
        else:
            (_write_csv if args.format == "csv" else _write_json)(sys.stdout, plan, chunks)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    return 0
