"""Recorded fake training steps -> Breakdowns of named terms (parameters, bytes, FLOPs).

Paths come from module names; a decoder layer's index becomes its group's label (``each`` when
every layer has the same structure, else ``group1``, ``group2``, ...), and a group's term is
counted ``count`` times (the symbol ``n_layers`` for a single group). Activation terms end in the
grad_fn that saved the storage (``model.layers.each.mlp.act_fn.SiluBackward0``); a storage saved
by several layers (rotary tables, masks) is one term outside the layers.

Where the traced code specialised on a size, each region's expressions are combined into a SymPy
``Piecewise``: the first region whose condition holds gives the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sympy as sp

from .. import symbols as S
from ..terms import Breakdown, Quantity, Split, Term
from .flops import as_expr
from .run import Layers, Saved, StepResult
from .sizes import SizeSymbols, to_sympy

__all__ = ["Region", "group_label", "parameter_terms", "region_terms", "merge_regions", "fixed_by"]

TRACED = "traced (fake-tensor run of the transformers model)"
VIEW_TAG = "tp_view:"  # + n: a divided copy that is a view, no storage of its own, at tp = n


@dataclass(frozen=True)
class Region:
    """One traced specialisation: where it holds and the per-path expressions it gave."""

    condition: sp.Basic  # a SymPy boolean in b and s (True for the general trace)
    activations: dict[str, tuple[sp.Expr, sp.Expr, str]]  # path -> (count, bytes of one, description)
    flops: dict[str, tuple[sp.Expr, sp.Expr, str]]
    divided: frozenset[str] = frozenset()  # activation paths tensor parallelism divides (Saved.divided)
    # the 1/tp slices that modules splitting a whole input save, which only a tensor-parallel run makes
    split_copies: dict[str, tuple[sp.Expr, sp.Expr, str]] = field(default_factory=dict)
    views_at: dict[str, int] = field(default_factory=dict)  # divided copies that are views at this tp


def group_label(layers: Layers, group: int) -> str:
    """The path segment naming a group of decoder layers."""
    return "each" if len(layers.groups) == 1 else f"group{group + 1}"


def group_count(layers: Layers, group: int, n_layers: int) -> sp.Expr:
    """How many layers a group has: the symbol ``n_layers`` when one group holds all of them."""
    size = len(layers.groups[group])
    if len(layers.groups) == 1 and size == n_layers:
        return S.n_layers
    return sp.Integer(size)


def _layer_path(path: str, layers: Layers | None) -> tuple[str, int | None]:
    """(path with the layer index replaced by its group label, the layer index or None)."""
    if layers is None or not path.startswith(layers.path + "."):
        return path, None
    head, _, rest = path[len(layers.path) + 1 :].partition(".")
    if not head.isdigit():
        return path, None
    index = int(head)
    label = group_label(layers, layers.group_of(index))
    return ".".join(p for p in (layers.path, label, rest) if p), index


def _to_bs(step: StepResult) -> dict[sp.Symbol, sp.Expr]:
    subs: dict[sp.Symbol, sp.Expr] = {}
    if isinstance(step.batch, sp.Symbol):
        subs[step.batch] = S.batch
    if isinstance(step.seq, sp.Symbol):
        subs[step.seq] = S.seq
    return subs


def to_bs(expr: sp.Basic, step: StepResult) -> sp.Basic:
    """An expression in the shape env's symbols rewritten in the project's ``batch`` and ``seq``
    (and, where the trace kept model sizes symbolic, the config fields' symbols)."""
    expr = sp.sympify(expr, strict=True).xreplace(_to_bs(step))
    if step.sizes is None:
        return expr
    return to_sympy(expr.xreplace(step.sizes.rename()))


def _condition_in_bs(guard: sp.Basic, step: StepResult) -> sp.Basic:
    """A guard as a condition on ``batch`` and ``seq`` at the config's sizes (guards on the model
    sizes alone are the trace's size conditions, kept apart)."""
    expr = sp.sympify(guard, strict=True)
    if step.sizes is not None:
        expr = expr.xreplace(step.sizes.hints())
    return expr.xreplace(_to_bs(step))


def _shape_text(shape: Sequence[sp.Expr], step: StepResult) -> str:
    return "[" + ", ".join(str(to_bs(d, step)) for d in shape) + "]"


def region_terms(
    step: StepResult, layers: Layers | None, kept_first: set[int], n_layers: int, condition: sp.Basic
) -> Region:
    """One region's activation and FLOP terms from a recorded step.

    ``kept_first``: the first run layer of each group; the group's terms are read from it.
    """
    acts: dict[str, tuple[sp.Expr, sp.Expr, str]] = {}
    copies: dict[str, tuple[sp.Expr, sp.Expr, str]] = {}
    divided: set[str] = set()
    views_at: dict[str, int] = {}
    for saved in step.saved:
        name = _add_saved(copies if saved.split_copy else acts, saved, step, layers, kept_first, n_layers)
        if name is not None and saved.divided:
            divided.add(name)
            if saved.view_at is not None:
                views_at[name] = saved.view_at
    flops: dict[str, tuple[sp.Expr, sp.Expr, str]] = {}
    for key, value in step.flops.items():
        phase, _, module = key.partition(".")
        path, index = _layer_path(module or "model", layers)
        count: sp.Expr = sp.Integer(1)
        if index is not None:
            if index not in kept_first or layers is None:
                continue
            count = group_count(layers, layers.group_of(index), n_layers)
        what = "matrix-product and attention FLOPs" + (" of the backward pass" if phase == "backward" else "")
        flops[f"{phase}.{path}"] = (count, sp.expand(to_bs(value, step)), what)
    return Region(condition, acts, flops, frozenset(divided), copies, views_at)


def _add_saved(
    acts: dict[str, tuple[sp.Expr, sp.Expr, str]],
    saved: Saved,
    step: StepResult,
    layers: Layers | None,
    kept_first: set[int],
    n_layers: int,
) -> str | None:
    """Add one saved storage's term to ``acts``; return its path (None when a kept layer repeats it)."""
    path, index = _layer_path(saved.module or "model", layers)
    count: sp.Expr = sp.Integer(1)
    if len(saved.layers) == 1 and layers is not None:
        (index,) = saved.layers
        if index not in kept_first:
            return None  # the second layer of a group: it repeats the first
        count = group_count(layers, layers.group_of(index), n_layers)
        path, _ = _layer_path(saved.module, layers)
    elif len(saved.layers) > 1 and layers is not None:
        # saved by several layers (rotary tables, masks): kept once, named where it was saved first
        path, _ = _layer_path(saved.module, layers)
        head = layers.path + "."
        path = "shared." + (
            path[len(head) :].split(".", 1)[1] if path.startswith(head) and "." in path[len(head) :] else path
        )
    base = f"{path}.{saved.grad_fn}" + (".split_input" if saved.split_copy else "")
    name, n = base, 1
    while name in acts:
        n += 1
        name = f"{base}#{n}"
    description = f"{saved.dtype} {_shape_text(saved.shape, step)} saved by {saved.grad_fn}"
    if saved.split_copy:
        description += " (this rank's slice of a whole input the module splits; only under tensor parallelism)"
    acts[name] = (count, sp.expand(to_bs(saved.nbytes, step)), description)
    return name


def merge_regions(regions: Sequence[Region], which: str, quantity: Quantity) -> Breakdown:
    """One Breakdown from several regions: a ``Piecewise`` where they differ (the last is general).

    An activation term that tensor parallelism divides (in the last region holding it) carries
    ``shards = {tp}``: one rank holds ``1/tp`` of it (:meth:`symbolic.parallel.Parallelism.activation_share`);
    a divided copy that is a view at ``tp = n`` is tagged ``tp_view:n``.
    """
    paths: list[str] = []
    for region in regions:
        for path in getattr(region, which):
            if path not in paths:
                paths.append(path)
    terms = []
    for path in paths:
        entries = [getattr(r, which).get(path) for r in regions]
        present = [e for e in entries if e is not None]
        count = present[0][0]
        description = present[-1][2]
        values = [sp.Integer(0) if e is None else e[1] * (e[0] / count) for e in entries]
        general = values[-1]
        pieces = [
            (v, r.condition)
            for v, r in zip(values[:-1], regions[:-1], strict=True)
            if sp.expand(v - general.xreplace(fixed_by(r.condition))) != 0
        ]
        expr = sp.Piecewise(*pieces, (general, True)) if pieces else general
        if expr == 0:
            continue
        holder = next(r for r in reversed(regions) if path in getattr(r, which))
        shards = frozenset({S.tp}) if which != "flops" and path in holder.divided else frozenset()
        view = holder.views_at.get(path) if which != "flops" else None
        tags = frozenset({f"{VIEW_TAG}{view}"}) if view is not None else frozenset()
        terms.append(Term(path, expr, quantity, description, count=count, source=TRACED, shards=shards, tags=tags))
    return Breakdown(quantity, tuple(terms))


def fixed_by(condition: sp.Basic) -> dict[sp.Symbol, sp.Expr]:
    """The sizes a region's condition fixes (``Eq(batch, 1)`` -> ``{batch: 1}``)."""
    parts = condition.args if isinstance(condition, sp.And) else (condition,)
    return {p.lhs: p.rhs for p in parts if isinstance(p, sp.Equality) and isinstance(p.lhs, sp.Symbol)}


def parameter_terms(
    model: object,
    layers: Layers | None,
    n_layers: int,
    sizes: SizeSymbols | None = None,
    splits: Mapping[str, Split] | None = None,
) -> Breakdown:
    """Parameter terms of a built model: each tensor once (tied ones once), layers by group
    (shapes in the config fields' symbols where ``sizes`` keeps them symbolic); each carries the
    tensor-parallel split ``splits`` gives its name (:func:`symbolic.trace.split.parameter_splits`;
    unnamed: whole)."""
    splits = splits or {}
    terms: dict[str, Term] = {}
    seen: set[int] = set()
    for name, param in model.named_parameters():  # type: ignore[attr-defined]
        if id(param) in seen:
            continue
        seen.add(id(param))
        path, index = _layer_path(name, layers)
        count: sp.Expr = sp.Integer(1)
        if index is not None and layers is not None:
            group = layers.group_of(index)
            if index != layers.groups[group][0]:
                continue
            count = group_count(layers, group, n_layers)
        shape = tuple(_dimension(d, sizes) for d in param.shape)
        numel = sp.Mul(*shape) if shape else sp.Integer(1)
        terms[path] = Term(
            path,
            numel,
            Quantity.PARAMETERS,
            f"{name} [{', '.join(map(str, shape))}]",
            count=count,
            source=TRACED,
            shape=shape,
            trainable=bool(param.requires_grad),
            split=splits.get(name, Split.NONE),
        )
    return Breakdown(Quantity.PARAMETERS, tuple(terms.values()))


def _dimension(size: object, sizes: SizeSymbols | None) -> sp.Expr:
    expr = as_expr(size)
    return expr if sizes is None else to_sympy(expr.xreplace(sizes.rename()))


def condition_of(guards: Sequence[sp.Expr], step: StepResult, fixed: Mapping[sp.Symbol, int]) -> sp.Basic:
    """The conjunction of a step's guards in b and s, plus the sizes it fixed (``b = 1``)."""
    parts = [sp.Eq(sym, value) for sym, value in fixed.items()]
    for guard in guards:
        cond = _condition_in_bs(guard, step)
        if cond is sp.true or not cond.free_symbols & {S.batch, S.seq}:
            continue
        parts.append(cond)
    return sp.And(*parts) if parts else sp.true
