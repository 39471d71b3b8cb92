"""``symbolic timeline``: the bytes alive through one training step, point by point, and where the peak falls."""

from __future__ import annotations

import argparse

from ..units import GIB
from ._common import console, make_table, print_json


def register(sub: argparse._SubParsersAction) -> None:
    from .memory import add_memory_options

    p = sub.add_parser(
        "timeline",
        help="bytes per device through a training step (forward, loss, backward, optimizer): the peak's phase",
    )
    add_memory_options(p)
    p.add_argument("--plot", metavar="PATH", help="also draw the timeline (GiB against step phase) to .png or .svg")
    p.add_argument("--layers", action="store_true", help="list every layer's point (default: the worst layer)")
    p.set_defaults(run=run)


def answer(args: argparse.Namespace) -> dict:
    """The timeline as a plain dict (bytes): points at their worst layer, every point, the peak."""
    from ..errors import SymbolicError
    from ..registry import load_model
    from ..request import request
    from .memory import memory_options

    model = load_model(args.model)
    got = request(
        model, "memory", convention=args.convention, batch=args.batch, seq=args.seq, options=memory_options(args)
    )
    device = got.memory
    if device is None or device.timeline is None:
        raise SymbolicError("--optimizer", "a timeline needs a training step with activations (not optimizer none)")
    series = device.timeline_series() or []
    return {
        "model": model.name,
        "unit": "bytes",
        "peak": device.bytes("peak"),
        "peak_point": device.peak_point(),
        "points": device.timeline_points(),
        "series": [{"phase": p, "label": lab, "bytes": n} for p, lab, n in series],
        "formulas": {p.label: str(p.peak()) for p in device.timeline.points},
        "settings": dict(device.settings),
    }


def run(args: argparse.Namespace) -> int:
    out = answer(args)
    if args.plot:
        from .. import plots

        series = [(p["phase"], p["label"], p["bytes"]) for p in out["series"]]
        peak_index = max(range(len(series)), key=lambda i: series[i][2])
        s = out["settings"]
        title = (
            f"{out['model']}: one training step, b={s['batch']} s={s['seq']} ({s['precision']}, {s['optimizer']} "
            f"{s['optimizer_impl']}, zero_grad {s['zero_grad']})"
        )
        plots.save(plots.timeline(series, title, peak_index), args.plot)
    if args.json:
        print_json(out)
        return 0
    rows = out["series"] if args.layers else out["points"]
    peak = out["peak"]
    table = make_table(
        f"{out['model']}: bytes per device through one training step (GiB = 2^30 bytes)",
        [("phase", "text"), ("point", "text"), ("layer", "number"), ("bytes", "number"), ("GiB", "number"),
         ("of peak", "number")],
    )  # fmt: skip
    for r in rows:
        layer = r.get("layer")
        table.add_row(
            r["phase"], r["label"], "-" if layer is None else str(layer), f"{r['bytes']:,}",
            f"{r['bytes'] / GIB:,.2f}", f"{100 * r['bytes'] / peak:.1f}%",
        )  # fmt: skip
    term = console()
    term.print(table)
    point = out["peak_point"]
    where = f", layer {point['layer']}" if point["layer"] is not None else ""
    term.print(f"peak {peak:,} bytes ({peak / GIB:,.2f} GiB): {point['phase']}, {point['label']}{where}")
    return 0
