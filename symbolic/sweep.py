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
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import sympy as sp

from . import symbols as S
from .arch import Model
from .errors import SymbolicError
from .sweepgrid import (
    INT64_SAFE,
    MAX_AXIS,
    MAX_POINTS,
    FormEvaluator,
    IntForm,
    IntPoly,
    evaluate_grid,
    form_data,
    parse_grid,
    sweep_parts,
)
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

__all__ += ["MAX_AXIS", "prepare", "sweep_parts"]
DEFAULTS: dict[str, int] = {"tp": 1, "pp": 1, "dp": 1, "cp": 1, "ep": 1, "n_microbatches": 1, "interleave": 1}


Fix = Callable[[sp.Expr], sp.Expr]  # replaces the symbols a sweep holds fixed by their values
Builder = Callable[[Model, Mapping[str, int], Mapping[str, Any], Fix], sp.Expr]


@dataclass(frozen=True)
class QuantitySpec:
    """A named quantity a sweep can compute, in ``unit``.

    ``build(model, point, options, fix)`` gives its SymPy expression; ``fix(expr)`` puts the
    sweep's fixed values into a part of it (a builder may apply it to parts before combining
    them, which is cheaper than combining symbolic parts: a maximum compares fewer symbols). ``structural`` names the symbols
    whose values can change the expression's form (the pipeline stage layout, say); ``classify(name,
    value)`` says which values give the same form (with the symbol left free in it): the sweep builds
    one expression per combination of classes, not per value (default: every value its own class).
    ``check(model, fixed, axes, options)`` validates every combination of the swept structural
    values (``axes``; the others at ``fixed``) without building anything (divisibility rules),
    raising :class:`SymbolicError`. ``options`` are the quantity's non-numeric
    settings (e.g. ``zero``, ``precision``).
    """

    name: str
    unit: Quantity
    description: str
    build: Builder = field(repr=False)
    structural: tuple[str, ...] = ()
    classify: Callable[[str, int], int] | None = field(default=None, repr=False)
    check: Callable[[Model, Mapping[str, int], Mapping[str, Sequence[int]], Mapping[str, Any]], None] | None = field(
        default=None, repr=False
    )
    settings: tuple[str, ...] = ()  # structural names that are settings, not symbols (memory: "zero")


def _params(select: Callable[[Breakdown], Breakdown]) -> Builder:
    def build(model: Model, point: Mapping[str, int], options: Mapping[str, Any], fix: Fix) -> sp.Expr:
        from .request import request

        return fix(select(request(model, "params", convention=options.get("convention", "exact")).terms).total)

    return build


def _flops(select: Callable[[Breakdown], Breakdown]) -> Builder:
    def build(model: Model, point: Mapping[str, int], options: Mapping[str, Any], fix: Fix) -> sp.Expr:
        from .request import request

        return fix(select(request(model, "flops", convention=options.get("convention", "exact")).terms).total)

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
    def build(model: Model, point: Mapping[str, int], options: Mapping[str, Any], fix: Fix) -> sp.Expr:
        from .formulas.step import max_over_layers
        from .request import request

        settings = {"zero": 0, **options, **point}
        convention = settings.pop("convention", "exact")
        report = request(model, "memory", convention=convention, options=settings).memory
        assert report is not None
        if name == "peak" and report.activations is not None and report.timeline is not None:
            # the timeline's peak (Timeline.peak_expr: the maximum over its points, each point's the
            # larger of its layer ends), with the fixed values put in before the maxima compare
            # their arguments: the same value, compared in the swept symbols only
            return sp.Max(
                *(
                    fix(p.expr) if p.layers is None else max_over_layers(fix(p.expr), fix(p.layers))
                    for p in report.timeline.points
                )
            )
        # each tensor rounded up to whole bytes, as symbolic memory prints it (memory.whole_bytes)
        expr = report.whole_expr(name)
        assert expr is not None
        return fix(expr)

    return build


def memory_class(name: str, value: int) -> int:
    """Which memory expression a parallel degree's value selects (the degree stays a symbol in it).

    Memory is written in the degree symbols (``dp``, ``tp``, ``cp``, ``ep`` divide the terms they
    shard), so one expression serves every value with the same structure: any ``dp``; ``tp``, ``cp``
    and ``ep`` of 1 (no split, and the activation rules of unsharded layers) or above 1. Pipeline
    stages lay the layers out per stage, so each ``pp`` is its own form, as is each ZeRO stage.
    """
    if name == "dp":
        return 0
    if name in ("tp", "cp", "ep"):
        return int(value > 1)
    return value


def _memory_check(
    model: Model, fixed: Mapping[str, int], axes: Mapping[str, Sequence[int]], options: Mapping[str, Any]
) -> None:
    """Validate every swept parallel degree and ZeRO stage against ``model`` without building anything."""
    from .parallel import Parallelism

    def parallelism(point: Mapping[str, int]) -> Parallelism:
        degrees = {k: v for k, v in point.items() if k in MEMORY_DEGREES}
        return Parallelism(**degrees, zero=point.get("zero", options.get("zero", 0)))  # type: ignore[arg-type]

    # each value on its own (ep with as many data-parallel ranks, so only its own rules apply) ...
    for name, values in axes.items():
        for value in values:
            point = {**fixed, name: int(value)}
            if name == "ep":
                point["dp"] = int(value)
            parallelism(point).check(model)
    # ... then the one rule across axes: ep divides the data-parallel degree, for every pair
    if "ep" in axes or "dp" in axes:
        dp = np.asarray(axes.get("dp", (fixed.get("dp", 1),)), dtype=np.int64)
        ep = np.asarray(axes.get("ep", (fixed.get("ep", 1),)), dtype=np.int64)
        bad = np.argwhere(dp[:, None] % ep[None, :] != 0)
        if len(bad):
            i, j = bad[0]
            Parallelism(dp=int(dp[i]), ep=int(ep[j]))  # raises, naming the option


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
                QuantitySpec(
                    f"memory.{name}",
                    Quantity.BYTES,
                    description,
                    _memory(name),
                    (*MEMORY_DEGREES, "zero"),
                    classify=memory_class,
                    check=_memory_check,
                    settings=("zero",),
                )
                for name, description in MEMORY_FIGURES.items()
            ),
        )
    }
)


def quantities() -> dict[str, QuantitySpec]:
    """Every sweepable quantity by name: parameters, FLOPs and memory figures."""
    return dict(QUANTITIES)


MAX_FORMS = 4096  # distinct combinations of structural values a sweep may build expressions for


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep computes: one expression per combination of structural classes, and the grid.

    ``forms`` maps each combination of the swept structural symbols' classes (in ``structural``
    order; the empty tuple when none is swept) to the quantity's expression with every fixed
    value substituted: a function of the swept symbols only. ``classes`` gives, per structural
    axis, the class of each of its values (see :attr:`QuantitySpec.classify`).
    """

    model: Model
    quantity: QuantitySpec
    forms: dict[tuple[int, ...], sp.Expr]
    structural: tuple[str, ...]
    fixed: dict[str, int]
    axes: dict[str, Sequence[int]]
    mode: str
    fits: int | None
    classes: dict[str, tuple[int, ...]] = field(default_factory=dict)

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
        if name not in S.REGISTRY and not (name in spec.settings and name in grid):
            raise SymbolicError(name, f"not a symbol; known: {', '.join(S.ORDER)}")
    if options and any(name in options for name in grid):
        raise SymbolicError(next(n for n in grid if n in options), "is both swept and set")
    for name, axis in grid.items():
        if len(axis) == 0:
            raise SymbolicError(name, "the grid is empty")
    if fits is not None and spec.unit is not Quantity.BYTES:
        raise SymbolicError("fits", f"applies to byte quantities (memory.*); {quantity} is in {spec.unit.unit}")
    points = math.prod(len(v) for v in grid.values())
    if points > MAX_POINTS and not yes:
        raise SymbolicError("grid", f"{points:,} points is more than {MAX_POINTS:,}; pass --yes to run it anyway")
    values = {**DEFAULTS, **model.sizes, **(fixed or {})}
    options = options or {}
    structural = tuple(n for n in spec.structural if n in grid)
    for name in structural:
        if len(grid[name]) > MAX_STRUCTURAL:
            raise SymbolicError(name, f"{len(grid[name]):,} values; at most {MAX_STRUCTURAL:,} for {name}")
    base = {n: values[n] for n in spec.structural if n in values}
    _check_structural(model, spec, base, {n: grid[n] for n in structural}, options)
    classify = spec.classify or (lambda name, value: value)
    classes = {n: tuple(classify(n, int(v)) for v in grid[n]) for n in structural}
    representative: list[dict[int, int]] = []
    for name in structural:
        first: dict[int, int] = {}
        for value, cls in zip(grid[name], classes[name], strict=True):
            first.setdefault(cls, int(value))
        representative.append(first)
    combos = list(itertools.product(*(list(r) for r in representative)))
    if len(combos) > MAX_FORMS:
        raise SymbolicError("grid", f"{len(combos):,} combinations of {', '.join(structural)}; at most {MAX_FORMS:,}")
    forms: dict[tuple[int, ...], sp.Expr] = {}
    keep: dict[str, int] = {}
    for combo in combos:
        chosen = {n: representative[i][c] for i, (n, c) in enumerate(zip(structural, combo, strict=True))}
        point = {**base, **chosen}
        form, here = _form(spec, model, point, options, values, tuple(grid))
        keep.update(here)
        forms[tuple(combo)] = form
    _check_read_sizes(model, grid, forms.values(), options)
    return SweepPlan(model, spec, forms, structural, dict(sorted(keep.items())), dict(grid), mode, fits, classes)


def _check_read_sizes(
    model: Model, grid: Mapping[str, Sequence[int]], forms: Iterable[sp.Expr], options: Mapping[str, Any]
) -> None:
    """Refuse sweeping a model size the convention holds fixed (the traced terms are numbers in the
    config's sizes): the sweep would repeat one value, not vary it."""
    from .conventions import CONVENTIONS

    conv = CONVENTIONS.get(str(options.get("convention", "")))
    if conv is None:
        return
    used = {str(s) for expr in forms for s in expr.free_symbols}
    for name in grid:
        conv.check_varies(model, name, name)
        if conv.reads_model and name in model.sizes and name not in used:  # layer groups of fixed counts
            raise SymbolicError(name, f"the {conv.name} terms of {model.name} do not vary with it; edit config.json")


MAX_STRUCTURAL = 10**6  # values of one structural axis (each is validated on its own)


def _form(
    spec: QuantitySpec,
    model: Model,
    point: Mapping[str, int],
    options: Mapping[str, Any],
    values: Mapping[str, int],
    swept: tuple[str, ...],
) -> tuple[sp.Expr, dict[str, int]]:
    """The quantity's expression at ``point`` with every symbol not ``swept`` replaced by its value, and
    those values; through the disk cache of expressions (a repeated sweep skips building,
    simplifying and substituting), keyed by everything it depends on: the quantity, the model (name,
    config, structure, sizes), the point, the options, the values and the swept names (and the
    installation's files, torch and transformers included)."""
    from .numeric import cached_expression

    def build() -> tuple[sp.Expr, dict[str, int]]:
        here: dict[str, int] = {}

        def fix(part: sp.Expr) -> sp.Expr:
            names = {str(s) for s in part.free_symbols if str(s) in values and str(s) not in swept}
            here.update((n, values[n]) for n in names)
            return part.xreplace({S.symbol(n): sp.Integer(values[n]) for n in names})

        expr = fix(spec.build(model, point, options, fix))
        missing = sorted({str(s) for s in expr.free_symbols} - set(swept), key=S.ORDER.index)
        if missing:
            name = missing[0]
            raise SymbolicError(name, f"{spec.name} needs a value ({S.info(name).meaning})")
        return expr, here

    parts = [
        spec.name,
        model.name,
        json.dumps(dict(model.config), sort_keys=True, default=repr),  # a convention may read any field
        repr(model.arch),
        repr(sorted(model.sizes.items())),
        repr(model.config.get("sliding_window")),
        repr(sorted(point.items())),
        repr(sorted((k, repr(v)) for k, v in options.items())),
        repr(sorted(values.items())),
        repr(sorted(swept)),
    ]
    form, here = cached_expression(parts, build)
    return form, {str(k): int(v) for k, v in dict(here).items()}


def _check_structural(
    model: Model,
    spec: QuantitySpec,
    base: Mapping[str, int],
    axes: Mapping[str, Sequence[int]],
    options: Mapping[str, Any],
) -> None:
    """Validate every swept structural value with the quantity's own rules (raises :class:`SymbolicError`)."""
    if spec.check is not None and axes:
        spec.check(model, base, axes, options)


def _int_fraction(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> tuple[IntPoly, IntPoly] | None:
    """``expr`` as N / D, integer polynomials in ``symbols``; None if it is not a rational function of them."""
    if not expr.is_rational_function(*symbols):
        return None
    num, den = sp.fraction(sp.together(expr))
    polys = [sp.Poly(num, *symbols, domain="QQ"), sp.Poly(den, *symbols, domain="QQ")]
    scale = sp.ilcm(*(c.q for poly in polys for c in poly.coeffs()))
    names = tuple(str(x) for x in symbols)
    out = []
    for poly in polys:
        terms = tuple((int(c * scale), tuple(int(e) for e in m)) for m, c in poly.terms())
        out.append(IntPoly(names, terms))
    return out[0], out[1]


def _int64_form(expr: sp.Expr, axes: Mapping[str, Sequence[int]]) -> IntForm | None:
    """``expr`` as integer arithmetic exact in int64 over the grid, or None when that cannot be proven.

    Sums, differences and products in int64 are exact modulo 2^64, so a polynomial with integer
    coefficients whose true value lies within int64 is computed exactly however large its
    intermediate values get. The bound is the polynomial with every coefficient made positive,
    evaluated at each axis's largest value (symbols are positive integers). A ceiling or floor of
    a rational function N_k / D_k (each tensor shard rounded up to whole bytes) is computed by
    integer division, its bound taken as bound(N_k) (D_k, with positive coefficients, is at least 1).
    """
    names = tuple(n for n in S.ORDER if n in {str(x) for x in expr.free_symbols})
    if not names or any(n not in axes for n in names) or expr.has(sp.Float):
        return None  # a Float has no exact value: the exact compiler says so
    symbols = [S.symbol(n) for n in names]
    top: dict[str, int] = {n: max(int(v) for v in axes[n]) for n in names}
    try:
        atoms = []
        replace: dict[sp.Expr, sp.Symbol] = {}
        for i, atom in enumerate(sorted(expr.atoms(sp.ceiling, sp.floor), key=sp.default_sort_key)):
            parts = _int_fraction(atom.args[0], symbols)
            if parts is None:
                return None
            num, den = parts
            if any(c <= 0 for c, _ in den.terms) or num.bound(top) >= INT64_SAFE or den.bound(top) >= INT64_SAFE:
                return None
            name = f"_atom{i}"
            atoms.append((name, isinstance(atom, sp.ceiling), num, den))
            replace[atom] = sp.Dummy(name)
            top[name] = num.bound(top) + 1
        outer = expr.xreplace(replace)
        dummies = list(replace.values())
        parts = _int_fraction(outer, [*symbols, *dummies])
        if parts is None:
            return None
        num, den = parts
        names_all = (*names, *(a[0] for a in atoms))
        num = IntPoly(names_all, num.terms)
        den = IntPoly(names_all, den.terms)
        if num.bound(top) >= INT64_SAFE or den.bound(top) >= INT64_SAFE:
            return None
    except (sp.PolynomialError, ValueError, TypeError):
        return None
    return IntForm(names, tuple(atoms), num, den).with_tables(axes)


def run_sweep(
    plan: SweepPlan, chunk: int = 1 << 16, progress: Callable[[int], None] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Evaluate the plan over the product of its grid, ``chunk`` points at a time.

    Yields column dicts: each swept symbol's values (int64) and the quantity's values under the
    quantity's name, only rows that fit when ``plan.fits`` is set. Exact mode gives exact
    integers: int64 where the grid's bounds prove every value fits (numerator and denominator
    evaluated as integer polynomials), else Python ints in an object array; byte quantities are
    rounded up to whole bytes, as :func:`symbolic.memory.to_int_bytes` does, and any other value
    that is not whole stays a Fraction. ``mode="float"`` gives float64 rounded to whole units the
    same way (bytes up, counts to the nearest). ``progress`` is called with the points done so far.
    """
    forms = list(plan.forms)
    evaluators = [_evaluator(plan, combo) for combo in forms]
    return evaluate_grid(
        plan.axes, plan.structural, plan.classes, forms, evaluators, plan.quantity.name, plan.fits, chunk, progress
    )


def _evaluator(plan: SweepPlan, combo: tuple[int, ...]) -> FormEvaluator:
    """The evaluator of one form of ``plan``: its integer polynomials over the grid when the grid's
    bounds prove them exact, else its int64 program, else its compiled function (each generated
    only when a chunk needs it; see :class:`symbolic.sweepgrid.FormEvaluator`)."""
    from .numeric import compile_quantity, int64_program

    expr = plan.forms[combo]
    fast = _int64_form(expr, plan.axes) if plan.mode == "exact" else None
    return FormEvaluator(
        plan.mode,
        plan.quantity.unit is Quantity.BYTES,
        fast,
        program=(lambda: int64_program(expr)) if plan.mode == "exact" else None,
        compiled=lambda: compile_quantity(expr, plan.mode),
    )


def prepare(plan: SweepPlan) -> dict[str, Any]:
    """The plan as JSON data that runs without SymPy (:func:`symbolic.sweepgrid.cached_sweep`): per
    form, its integer polynomials over the grid, else its int64 program (and, where the grid's
    bounds do not prove the program exact everywhere, the compiled source), else the compiled source."""
    from .numeric import compile_quantity, int64_program

    forms = []
    for combo, expr in plan.forms.items():
        entry: dict[str, Any] = {"combo": list(combo), "fast": None, "program": None, "source": None}
        fast = _int64_form(expr, plan.axes) if plan.mode == "exact" else None
        if fast is not None:
            entry["fast"] = form_data(fast)
            forms.append(entry)
            continue
        program = int64_program(expr)[1] if plan.mode == "exact" else None
        if program is not None:
            entry["program"] = program.to_data()
            top = {n: max(abs(int(v)) for v in plan.axes[n]) for n in program.args}
            if program.args and program.bounds_hold(top):
                forms.append(entry)
                continue
        compiled = compile_quantity(expr, plan.mode)
        entry["source"] = [list(compiled.args), compiled.source]
        forms.append(entry)
    return {
        "model": plan.model.name,
        "quantity": plan.quantity.name,
        "unit": plan.quantity.unit.unit,
        "ceil": plan.quantity.unit is Quantity.BYTES,
        "mode": plan.mode,
        "fixed": plan.fixed,
        "structural": list(plan.structural),
        "classes": {k: list(v) for k, v in plan.classes.items()},
        "fits": plan.fits,
        "forms": forms,
    }
