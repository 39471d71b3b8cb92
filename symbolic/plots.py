"""Figures (matplotlib): memory per device across parallel settings, and scaling with dominant regions.

# [named SymPy expressions] -> [values along one size] -> [figure] -> PNG | SVG (atomic write)

Nothing here holds a formula: every curve is an expression of the engine (a term, or a sum of
terms) with every size but one fixed; region boundaries are the exact crossovers of the curves
(:func:`symbolic.analysis.crossover`). One style for every figure: the same colours for the same
memory categories, a light grid, the legend outside the data.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sympy as sp

from . import symbols as S
from .errors import SymbolicError
from .inputs import write_output
from .terms import Breakdown
from .units import GIB

__all__ = [
    "FORMATS",
    "GIB",
    "CATEGORY_COLOURS",
    "memory_bars",
    "scaling",
    "scaling_terms",
    "sample_points",
    "dominant_regions",
    "save",
    "timeline",
]

FORMATS = ("png", "svg")
CATEGORIES = ("weights", "gradients", "master", "optimizer", "activations", "transient")
# one colour per memory category, in every figure
CATEGORY_COLOURS = {
    "weights": "#4c72b0",
    "gradients": "#55a868",
    "master": "#8172b3",
    "optimizer": "#c44e52",
    "activations": "#dd8452",
    "transient": "#937860",
}
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")
STYLE = {
    "svg.hashsalt": "symbolic",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
UNITS = {"bytes": ("GiB per device", GIB), "FLOPs": ("FLOPs per step", 1), "parameters": ("parameters", 1)}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (``.png`` or ``.svg``) atomically, without timestamps; returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise SymbolicError("output", f"{path.name!r} must end in .png or .svg")
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buffer, format=fmt, metadata=metadata, bbox_inches="tight", dpi=120)
    _pyplot().close(fig)
    write_output("--output", path, buffer.getvalue())
    return path


def _legend_outside(ax: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def memory_bars(per_setting: Mapping[str, Mapping[str, int | None]], title: str, budget: int | None = None) -> Any:
    """Stacked bars of bytes per device (GiB), one bar per parallel setting, one colour per category.

    ``per_setting`` maps a label (``dp=8 zero=3``) to the memory module's ``per_device()`` dict.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(per_setting) + 3.5), 4.2))
    labels = list(per_setting)
    bottoms = [0.0] * len(labels)
    for category in CATEGORIES:
        heights = [float(per_setting[label].get(category) or 0) / GIB for label in labels]
        if not any(heights):
            continue
        ax.bar(labels, heights, bottom=bottoms, label=category, color=CATEGORY_COLOURS[category], width=0.6)
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
        else:
            ax.annotate(
                f"{bottoms[x]:.1f}",
                (x, bottoms[x]),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                fontsize=7,
            )
    if budget is not None:
        ax.axhline(budget / GIB, color="black", linestyle="--", linewidth=1, label=f"budget {budget / GIB:g} GiB")
    ax.set_ylabel("GiB per device")
    ax.set_title(title)
    ax.grid(axis="x", visible=False)
    ax.tick_params(axis="x", labelrotation=20)
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: (names[i].startswith("budget"), -i))  # stack order, top first
    ax.legend(
        [handles[i] for i in order],
        [names[i] for i in order],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        frameon=False,
    )
    return fig


def sample_points(lo: int, hi: int, per_octave: int = 16) -> list[int]:
    """Integers from ``lo`` to ``hi`` spaced evenly on a log scale, ``per_octave`` per doubling.

    >>> sample_points(256, 1024, 2)
    [256, 362, 512, 724, 1024]
    """
    if not 0 < lo < hi:
        raise SymbolicError("--range", f"{lo}:{hi} must be LO:HI with positive integers LO < HI")
    n = max(2, math.ceil(per_octave * math.log2(hi / lo)) + 1)
    points = {lo, hi} | {round(lo * (hi / lo) ** (i / (n - 1))) for i in range(n)}
    return sorted(points)


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


def scaling_terms(terms: Breakdown, skip: int = 0, depth: int = 2) -> dict[str, sp.Expr]:
    """Terms summed by path segments ``skip`` to ``skip + depth``: {part name: SymPy expression}.

    ``skip=1`` merges the forward and backward passes of an operation.
    """
    out: dict[str, sp.Expr] = {}
    for t in terms:
        key = ".".join(t.path.split(".")[skip : skip + depth]) or t.path
        out[key] = out.get(key, sp.Integer(0)) + t.total
    return out


def _boundary(a: sp.Expr, b: sp.Expr, grow: str, values: Mapping[str, int], lo: float, hi: float) -> float:
    """Where curves ``a`` and ``b`` cross between ``lo`` and ``hi`` (exact), else their geometric middle."""
    from . import analysis

    try:
        roots = analysis.crossover(a, b, grow, {k: v for k, v in values.items() if k != grow}).roots
    except SymbolicError:
        roots = ()
    inside = [float(r) for r in roots if lo <= float(r) <= hi]
    return inside[0] if inside else math.sqrt(lo * hi)


def scaling(
    parts: Mapping[str, sp.Expr],
    grow: str,
    xs: Sequence[int],
    values: Mapping[str, int],
    title: str,
    unit: str = "FLOPs",
    budget: int | None = None,
    colours: Mapping[str, str] | None = None,
) -> Any:
    """Log-log plot of a quantity's parts and total as ``grow`` runs over ``xs`` (``parts``: name -> expression).

    ``unit`` is the quantity's unit (``bytes`` are drawn in GiB). The background marks where each
    part is the largest, with each boundary at the exact crossover of the two parts, labelled.
    """
    if len(xs) < 2 or any(x <= 0 for x in xs):
        raise SymbolicError("range", "needs at least two positive points")
    plt = _pyplot()
    label, scale = UNITS.get(unit, (unit, 1))
    x = S.symbol(grow)
    rest = {S.symbol(k): sp.Integer(v) for k, v in values.items() if k != grow and k in S.REGISTRY}
    curves: dict[str, list[float]] = {}
    exprs: dict[str, sp.Expr] = {}
    for name, expr in parts.items():
        fixed = sp.sympify(expr, strict=True).xreplace(rest)
        f = sp.lambdify(x, fixed, "math")
        ys = [float(f(v)) / scale for v in xs]
        if max(ys) > 0:
            curves[name], exprs[name] = ys, fixed
    totals = [sum(c[i] for c in curves.values()) for i in range(len(xs))]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    palette = dict(colours or {})
    for name in curves:
        palette.setdefault(name, PALETTE[len(palette) % len(PALETTE)])
    regions = dominant_regions(xs, curves)
    edges = [float(xs[0])]
    for left, right in zip(regions, regions[1:], strict=False):
        edges.append(_boundary(exprs[left[2]], exprs[right[2]], grow, values, left[1], right[0]))
    edges.append(float(xs[-1]))
    for i, (_, _, name) in enumerate(regions):
        ax.axvspan(edges[i], edges[i + 1], color=palette[name], alpha=0.1, linewidth=0)
        ax.text(
            math.sqrt(edges[i] * edges[i + 1]),
            1.01,
            f"{name} leads",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    for edge in edges[1:-1]:
        ax.axvline(edge, color="dimgray", linestyle=":", linewidth=1)
        ax.annotate(
            f"{grow} = {edge:,.0f}",
            (edge, 0.02),
            xycoords=("data", "axes fraction"),
            rotation=90,
            ha="right",
            va="bottom",
            fontsize=7,
            color="dimgray",
            xytext=(-2, 0),
            textcoords="offset points",
        )
    drawn: list[list[float]] = []
    for name, ys in curves.items():
        # a curve on top of an earlier one (gradients = weights) is dashed so that both show
        same = any(all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(ys, d, strict=True)) for d in drawn)
        ax.plot(xs, ys, label=name, color=palette[name], linewidth=1.4, linestyle="--" if same else "-")
        drawn.append(ys)
    ax.plot(xs, totals, label="total", color="black", linewidth=2)
    if budget is not None:
        ax.axhline(budget / scale, color="black", linestyle="--", linewidth=1, label=f"budget {budget / GIB:g} GiB")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_xlabel(f"{S.REGISTRY[grow].meaning}, {grow} ({S.REGISTRY[grow].unit})" if grow in S.REGISTRY else grow)
    ax.set_ylabel(label)
    ax.set_title(title, pad=16)
    _legend_outside(ax)
    return fig


def timeline(series: Sequence[tuple[str, str, int]], title: str, peak_index: int | None = None) -> Any:
    """A step's timeline: GiB alive (y) at each point in step order (x, labelled by phase); returns the figure.

    ``series``: ``(phase, label, bytes)`` per point (:meth:`symbolic.formulas.step.Timeline.series`);
    ``peak_index``: the point to mark as the peak.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    xs = list(range(len(series)))
    ys = [b / GIB for _, _, b in series]
    ax.step(xs, ys, where="mid", color="#1f77b4")
    ax.plot(xs, ys, "o", markersize=3, color="#1f77b4")
    starts: dict[str, int] = {}
    for i, (phase, _, _) in enumerate(series):
        starts.setdefault(phase, i)
    for phase, i in starts.items():
        ax.axvline(i - 0.5, color="#bbbbbb", linewidth=0.8)
        ax.text(i - 0.4, max(ys) * 1.02, phase, fontsize=8, va="bottom", rotation=90)
    if peak_index is not None:
        ax.plot([peak_index], [ys[peak_index]], "v", color="#d62728", markersize=8)
        ax.annotate(
            f"peak {ys[peak_index]:,.2f} GiB",
            (peak_index, ys[peak_index]),
            fontsize=8,
            xytext=(5, -12),
            textcoords="offset points",
            color="#d62728",
        )
    ax.set_xticks([])
    ax.set_xlabel("step phase (forward layer by layer, loss, backward layer by layer, optimizer)")
    ax.set_ylabel("GiB alive")
    ax.set_ylim(0, max(ys) * 1.25)
    ax.set_title(title, fontsize=10)
    return fig
