"""Figures (matplotlib): memory per device across parallel settings, and scaling with dominant regions.

# [Breakdown] -> [exact values at each x] -> [figure] -> PNG | SVG (atomic write)

Nothing here holds a formula: every curve is a term of a :class:`~symbolic.terms.Breakdown`
evaluated exactly (:func:`symbolic.numeric.evaluate`) at each point, then drawn.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import SymbolicError
from .numeric import evaluate
from .render import write_atomic
from .terms import Breakdown

__all__ = ["FORMATS", "GIB", "memory_bars", "scaling", "dominant_regions", "save"]

FORMATS = ("png", "svg")
GIB = 1024**3  # bytes in a GiB
CATEGORIES = ("weights", "gradients", "master", "optimizer", "activations", "transient")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "symbolic", "svg.fonttype": "none"})
    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (``.png`` or ``.svg``) atomically, without timestamps; returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise SymbolicError("--output", f"{path.name!r} must end in .png or .svg")
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buffer, format=fmt, metadata=metadata, bbox_inches="tight", dpi=120)
    _pyplot().close(fig)
    write_atomic(path, buffer.getvalue())
    return path


def memory_bars(per_setting: Mapping[str, Mapping[str, int | None]], title: str, budget: int | None = None) -> Any:
    """Stacked bars of bytes per device (GiB), one bar per parallel setting, one colour per category.

    ``per_setting`` maps a label (``dp=8 zero=3``) to the memory module's ``per_device()`` dict.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(per_setting) + 2), 4.5))
    labels = list(per_setting)
    bottoms = [0.0] * len(labels)
    for category in CATEGORIES:
        heights = [float(per_setting[label].get(category) or 0) / GIB for label in labels]
        if not any(heights):
            continue
        ax.bar(labels, heights, bottom=bottoms, label=category)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for x, label in enumerate(labels):
        if per_setting[label].get("activations") is None:
            # no activation figure for this setting (e.g. exact convention with tp > 1): say so on the bar
            ax.annotate(
                "activations\nnot counted",
                (x, bottoms[x]),
                textcoords="offset points",
                xytext=(0, 4),
                ha="center",
                fontsize=7,
                color="dimgray",
            )
    if budget is not None:
        ax.axhline(budget / GIB, color="black", linestyle="--", linewidth=1, label=f"budget {budget / GIB:.0f} GiB")
    ax.set_ylabel("GiB per device")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend(fontsize=8)
    return fig


def _group_values(terms: Breakdown, skip: int, depth: int, values: Mapping[str, int]) -> dict[str, float]:
    """Term values summed by path segments ``skip`` to ``skip + depth`` (``block.attention``)."""
    out: dict[str, float] = {}
    for t in terms:
        key = ".".join(t.path.split(".")[skip : skip + depth]) or t.path
        out[key] = out.get(key, 0.0) + float(evaluate(t.total, values))
    return out


def dominant_regions(xs: Sequence[int], curves: Mapping[str, Sequence[float]]) -> list[tuple[int, int, str]]:
    """Runs of consecutive x where the same curve is largest: ``(first x, last x, name)``."""
    regions: list[tuple[int, int, str]] = []
    for i, x in enumerate(xs):
        name = max(curves, key=lambda k: curves[k][i])
        if regions and regions[-1][2] == name:
            regions[-1] = (regions[-1][0], x, name)
        else:
            regions.append((x, x, name))
    return regions


def scaling(
    terms: Breakdown,
    grow: str,
    xs: Sequence[int],
    values: Mapping[str, int],
    title: str,
    skip: int = 0,
    depth: int = 2,
) -> Any:
    """Log-log plot of a quantity's total and its parts as ``grow`` varies (values in its unit).

    Parts sum the terms whose paths share segments ``skip`` to ``skip + depth`` (``skip=1`` merges
    the forward and backward passes of an operation, or a memory category's tensors).

    The background marks where each part dominates.
    """
    if len(xs) < 2 or any(x <= 0 for x in xs):
        raise SymbolicError("--range", "needs at least two positive points")
    plt = _pyplot()
    curves: dict[str, list[float]] = {}
    totals = []
    for x in xs:
        point = {**values, grow: int(x)}
        parts = _group_values(terms, skip, depth, point)
        for name, v in parts.items():
            curves.setdefault(name, []).append(v)
        totals.append(sum(parts.values()))
    curves = {k: v for k, v in curves.items() if max(v) > 0}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {name: colours[i % len(colours)] for i, name in enumerate(curves)}
    regions = dominant_regions(xs, curves)
    for i, (start, end, name) in enumerate(regions):
        # a region reaches halfway (geometrically) to its neighbours
        start = (start * regions[i - 1][1]) ** 0.5 if i else start
        end = (end * regions[i + 1][0]) ** 0.5 if i + 1 < len(regions) else end
        ax.axvspan(start, end, color=colour[name], alpha=0.12)
        ax.text((start * end) ** 0.5, 1.02, name, transform=ax.get_xaxis_transform(), ha="center", fontsize=7)
    for name, ys in curves.items():
        ax.plot(xs, ys, label=name, color=colour[name], linewidth=1.2)
    ax.plot(xs, totals, label="total", color="black", linewidth=2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(grow)
    ax.set_ylabel(terms.quantity.unit)
    ax.set_title(title, pad=18)
    ax.legend(fontsize=7, loc="upper left")
    return fig
