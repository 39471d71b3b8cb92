"""Sweeps: one quantity of one model over the full product of a grid of sizes, compiled once.

A grid gives each swept symbol a list of positive integers (``1,2,4``; ``1024:32768:x2``, a
geometric range; ``1:8:+1``, an arithmetic one). The quantity (``params.total``,
``memory.peak``, ``flops.total``, ...; see :func:`quantities`) is built symbolically once, the
model's fixed sizes are substituted, and the result is compiled (:func:`symbolic.numeric.compile_quantity`)
and evaluated chunk by chunk over the product, so a grid of millions of points never holds more
than one chunk of rows in memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import sympy as sp

from . import symbols as S
from .arch import Model
from .errors import SymbolicError
from .terms import Breakdown, Quantity

__all__ = [
    "QuantitySpec",
    "quantities",
    "parse_grid",
    "DEFAULTS",
    "MAX_POINTS",
    "SweepPlan",
    "plan_sweep",
    "run_sweep",
]

MAX_POINTS = 10**7  # more grid points than this needs an explicit yes
MAX_AXIS = 10**8  # no single axis may hold more values than this, yes or not
DEFAULTS: dict[str, int] = {"tp": 1, "pp": 1, "dp": 1, "cp": 1, "ep": 1, "n_microbatches": 1, "interleave": 1}


Builder = Callable[[Model, Mapping[str, int], Mapping[str, Any]], sp.Expr]


@dataclass(frozen=True)
class QuantitySpec:
    """A named quantity a sweep can compute, in ``unit``.

    ``build(model, point, options)`` gives its SymPy expression. ``structural`` names the symbols
    whose values change the expression's form (the pipeline stage layout, say): the sweep builds
    one expression per distinct combination of their values (``point``) and compiles each once.
    ``options`` are the quantity's non-numeric settings (e.g. ``zero``, ``precision``).
    """

    name: str
    unit: Quantity
    description: str
    build: Builder = field(repr=False)
    structural: tuple[str, ...] = ()


def _params(select: Callable[[Breakdown], Breakdown]) -> Builder:
    def build(model: Model, point: Mapping[str, int], options: Mapping[str, Any]) -> sp.Expr:
        from .request import request

        return select(request(model, "params").terms).total

    return build


def _flops(select: Callable[[Breakdown], Breakdown]) -> Builder:
    def build(model: Model, point: Mapping[str, int], options: Mapping[str, Any]) -> sp.Expr:
        from .request import request

        return select(request(model, "flops").terms).total

    return build


MEMORY_DEGREES = ("dp", "tp", "pp", "cp", "ep")
MEMORY_FIGURES = {
    "weights": "weights per device",
    "gradients": "gradients per device",
    "master": "master weights per device",
    "optimizer": "optimizer state per device",
    "states": "weights + gradients + master + optimizer state per device",
    "activations": "activations per device",
    "transient": "largest transient buffer per device",
    "peak": "states + activations + largest transient buffer per device",
}


def _memory(name: str) -> Builder:
    def build(model: Model, point: Mapping[str, int], options: Mapping[str, Any]) -> sp.Expr:
        from .request import request

        settings = {"zero": 0, **options, **point}
        convention = settings.pop("convention", "exact")
        report = request(model, "memory", convention=convention, options=settings).memory
        assert report is not None
        # each tensor rounded up to whole bytes, as symbolic memory prints it (memory.whole_bytes)
        expr = report.whole_expr(name)
        assert expr is not None
        return expr

    return build


def _forward(terms: Breakdown) -> Breakdown:
    return terms.where(lambda t: t.path.startswith("forward."))


def _trainable(terms: Breakdown) -> Breakdown:
    return terms.trainable()


def _model_flops(terms: Breakdown) -> Breakdown:
    from .formulas.flops import model_flops

    return model_flops(terms)


# every sweepable quantity, by name (a fixed table: a new quantity is one more row)
QUANTITIES: Mapping[str, QuantitySpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            QuantitySpec("params.total", Quantity.PARAMETERS, "all parameters", _params(lambda t: t)),
            QuantitySpec("params.trainable", Quantity.PARAMETERS, "trainable parameters", _params(_trainable)),
            QuantitySpec(
                "flops.total", Quantity.FLOPS, "training FLOPs of one step (forward + backward)", _flops(_model_flops)
            ),
            QuantitySpec("flops.forward", Quantity.FLOPS, "forward FLOPs of one step", _flops(_forward)),
            *(
                QuantitySpec(f"memory.{name}", Quantity.BYTES, description, _memory(name), MEMORY_DEGREES)
                for name, description in MEMORY_FIGURES.items()
            ),
        )
    }
)


def quantities() -> dict[str, QuantitySpec]:
    """Every sweepable quantity by name: parameters, FLOPs and memory figures."""
    return dict(QUANTITIES)


def _int(option: str, text: str, kind: str = "width") -> int:
    from .inputs import parse_integer

    return parse_integer(option, text, kind)


def _range(option: str, text: str, kind: str = "width") -> Sequence[int]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SymbolicError(option, f"{text!r}: a range is START:STOP, START:STOP:+STEP or START:STOP:xFACTOR")
    start, stop = _int(option, parts[0], kind), _int(option, parts[1], kind)
    step = parts[2].strip() if len(parts) == 3 else "+1"
    if start > stop:
        raise SymbolicError(option, f"{text!r} is an empty range (START {start} is above STOP {stop})")
    if step[:1] in ("x", "*"):
        factor = _int(option, step[1:], "search")
        if factor < 2:
            raise SymbolicError(option, f"{text!r}: a geometric step must be x2 or more")
        out = [start]
        while out[-1] * factor <= stop:
            out.append(out[-1] * factor)
        return out
    if step[:1] == "+" or step[:1].isdigit():
        increment = _int(option, step.removeprefix("+"), kind)
        count = (stop - start) // increment + 1
        if count > MAX_AXIS:
            raise SymbolicError(option, f"{text!r} has {count:,} values; at most {MAX_AXIS:,} per axis")
        return range(start, stop + 1, increment)
    raise SymbolicError(option, f"{text!r}: the step must be +N (arithmetic) or xN (geometric), not {step!r}")


def parse_grid(option: str, text: str, kind: str = "width") -> tuple[int, ...] | range:
    """The values ``text`` names, in order, duplicates dropped (positive integers).

    ``1,2,4`` lists values; ``1024:32768:x2`` is 1024, 2048, ..., 32768; ``1:8:+1`` (or ``1:8``)
    is 1..8. Items may be mixed: ``1,2,8:64:x2``. Anything else raises :class:`SymbolicError`
    naming ``option``. Each value is an integer of ``kind`` (see :data:`symbolic.inputs.LIMITS`).
    """
    items = [item.strip() for item in str(text).split(",")]
    if not text.strip() or any(not item for item in items):
        raise SymbolicError(option, f"empty value in {text!r} (a grid is 1,2,4 or 1024:32768:x2 or 1:8:+1)")
    if len(items) == 1 and ":" in items[0]:
        values = _range(option, items[0], kind)
        return values if isinstance(values, range) else tuple(values)
    out: dict[int, None] = {}
    for item in items:
        if ":" in item:
            part = _range(option, item, kind)
            if len(part) + len(out) > MAX_AXIS:
                raise SymbolicError(option, f"more than {MAX_AXIS:,} values")
            out.update(dict.fromkeys(part))
        else:
            out[_int(option, item, kind)] = None
    return tuple(out)


MAX_FORMS = 4096  # distinct combinations of structural values a sweep may build expressions for


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep computes: one expression per combination of structural values, and the grid.

    ``forms`` maps each combination of the swept structural symbols' values (in ``structural``
    order; the empty tuple when none is swept) to the quantity's expression with every fixed
    value substituted: a function of the other swept symbols only.
    """

    model: Model
    quantity: QuantitySpec
    forms: dict[tuple[int, ...], sp.Expr]
    structural: tuple[str, ...]
    fixed: dict[str, int]
    axes: dict[str, Sequence[int]]
    mode: str
    fits: int | None

    @property
    def points(self) -> int:
        """The number of configurations in the full product of the grid."""
        return math.prod(len(v) for v in self.axes.values())

    @property
    def expr(self) -> sp.Expr:
        """The expression of the first combination (the only one when nothing structural is swept)."""
        return next(iter(self.forms.values()))


def plan_sweep(
    model: Model,
    quantity: str,
    grid: Mapping[str, Sequence[int]],
    *,
    fixed: Mapping[str, int] | None = None,
    options: Mapping[str, Any] | None = None,
    mode: str = "exact",
    fits: int | None = None,
    yes: bool = False,
) -> SweepPlan:
    """Check a sweep and build its expressions (in the quantity's unit); nothing is evaluated yet.

    Symbols neither swept nor ``fixed`` take the model's sizes, then :data:`DEFAULTS` (parallel
    degrees 1). ``options`` go to the quantity's builder (e.g. ``zero``, ``precision``,
    ``optimizer`` for memory). ``fits`` (bytes) keeps only the configurations whose value is at
    most that; it applies to byte quantities only. More than :data:`MAX_POINTS` points needs
    ``yes=True``.
    """
    table = quantities()
    if quantity not in table:
        raise SymbolicError("quantity", f"unknown {quantity!r}; allowed: {', '.join(sorted(table))}")
    spec = table[quantity]
    for name in (*grid, *(fixed or {})):
        if name not in S.REGISTRY:
            raise SymbolicError(name, f"not a symbol; known: {', '.join(S.ORDER)}")
    for name, axis in grid.items():
        if len(axis) == 0:
            raise SymbolicError(name, "the grid is empty")
    if fits is not None and spec.unit is not Quantity.BYTES:
        raise SymbolicError("fits", f"applies to byte quantities (memory.*); {quantity} is in {spec.unit.unit}")
    points = math.prod(len(v) for v in grid.values())
    if points > MAX_POINTS and not yes:
        raise SymbolicError("grid", f"{points:,} points is more than {MAX_POINTS:,}; pass --yes to run it anyway")
    values = {**DEFAULTS, **model.sizes, **(fixed or {})}
    structural = tuple(n for n in spec.structural if n in grid)
    combos = list(itertools.product(*(grid[n] for n in structural)))
    if len(combos) > MAX_FORMS:
        raise SymbolicError("grid", f"{len(combos):,} combinations of {', '.join(structural)}; at most {MAX_FORMS:,}")
    forms: dict[tuple[int, ...], sp.Expr] = {}
    keep: dict[str, int] = {}
    for combo in combos:
        point = {**{n: values[n] for n in spec.structural if n in values}, **dict(zip(structural, combo, strict=True))}
        expr = spec.build(model, point, options or {})
        free = {str(s) for s in expr.free_symbols}
        missing = sorted(free - set(values) - set(grid), key=S.ORDER.index)
        if missing:
            name = missing[0]
            raise SymbolicError(name, f"{quantity} needs a value ({S.info(name).meaning})")
        here = {n: point[n] if n in point else values[n] for n in free if n not in grid or n in structural}
        keep.update({n: v for n, v in here.items() if n not in structural})
        forms[tuple(combo)] = expr.xreplace({S.symbol(k): sp.Integer(v) for k, v in here.items()})
    return SweepPlan(model, spec, forms, structural, dict(sorted(keep.items())), dict(grid), mode, fits)


def run_sweep(
    plan: SweepPlan, chunk: int = 1 << 16, progress: Callable[[int], None] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Evaluate the plan over the product of its grid, ``chunk`` points at a time.

    Yields column dicts: each swept symbol's values (int64) and the quantity's values under the
    quantity's name (exact Python ints in an object array, or float64 with ``mode="float"``), only
    rows that fit when ``plan.fits`` is set. ``progress`` is called with the points done so far.
    """
    from .numeric import compile_quantity

    compiled = {combo: compile_quantity(expr, plan.mode) for combo, expr in plan.forms.items()}
    names = list(plan.axes)
    axes = [np.asarray(plan.axes[n], dtype=np.int64) for n in names]
    shape = tuple(len(a) for a in axes)
    total = plan.points
    dtype = object if plan.mode == "exact" else np.float64
    for start in range(0, total, chunk):
        flat = np.arange(start, min(start + chunk, total), dtype=np.int64)
        index = np.unravel_index(flat, shape) if shape else ()
        columns = {n: axis[i] for n, axis, i in zip(names, axes, index, strict=True)}
        value = np.empty(flat.shape, dtype=dtype)
        for combo, function in compiled.items():
            rows: Any = np.ones(flat.shape, dtype=bool)
            for name, v in zip(plan.structural, combo, strict=True):
                rows &= columns[name] == v
            if len(compiled) == 1:
                rows = slice(None)
            args = {n: columns[n][rows] for n in function.args}
            value[rows] = function(**args) if function.args else function()
        columns[plan.quantity.name] = value
        if plan.fits is not None:
            fit = np.asarray(value <= plan.fits, dtype=bool)
            columns = {k: v[fit] for k, v in columns.items()}
        if progress is not None:
            progress(min(start + chunk, total))
        yield columns
