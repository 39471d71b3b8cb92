"""The traced terms against a hand-written convention, part by part (empty = agreement).

Both sides are put in the same symbols: the hand-written expression with the model's sizes
substituted (batch and sequence stay symbols), the traced one with its layer count bound. Each
quantity is compared in total, inside the decoder layers (terms repeated per layer) and outside
them; a part agrees when the difference simplifies to 0 and is 0 at sample sizes (b = 1, 2, 3;
s on both sides of every window).

A trace with symbolic sizes (``TraceOptions(symbolic_sizes=True)``) is compared in the model's
sizes too: each hand-written size is written in the config fields it is read from (found by
changing one field of the config and seeing which size follows), the layer count stays a symbol,
and the difference must vanish as an expression, under the conditions the trace found on the
sizes (``num_attention_heads = num_key_value_heads``, an even ``head_dim``): an equality between
two fields is substituted, and ``x = c*floor(e)`` replaces ``floor(e)`` by ``x/c``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp

from .. import symbols as S
from ..terms import Breakdown
from .api import Trace
from .sizes import field_symbol
from .terms import fixed_by

__all__ = ["Difference", "difference", "hand_written"]

_SAMPLE_SEQS = (2, 3, 37, 64)


@dataclass(frozen=True)
class Difference:
    """One part that disagrees: hand-written minus traced, in the quantity's unit."""

    quantity: str
    part: str
    hand_written: sp.Expr
    traced: sp.Expr
    difference: sp.Expr


def _parts(breakdown: Breakdown, bind: Mapping[sp.Symbol, int]) -> dict[str, sp.Expr]:
    layers = sp.Integer(0)
    outside = sp.Integer(0)
    for term in breakdown:
        value = term.total.xreplace(bind)
        if term.count == 1:
            outside += value
        else:
            layers += value
    return {"total": layers + outside, "layers": layers, "outside layers": outside}


def hand_written(
    config: Mapping[str, Any], trace: Trace, convention: str = "exact"
) -> tuple[dict[str, Breakdown], Mapping[str, int]]:
    """The hand-written Breakdowns (parameters, activations, FLOPs) for the trace's options, and the
    model's sizes they are written in."""
    from ..formulas.activations import ActivationOptions
    from ..hf import from_hf_config
    from ..model import activation_terms, flops_terms, parameters

    model = from_hf_config(dict(config))
    opts = trace.options
    act = ActivationOptions(
        dtype=opts.autocast or opts.dtype,
        autocast=opts.autocast is not None,
        attention=opts.attention,
        recompute=opts.recompute,
        device="cpu",
        experts=opts.experts or "grouped_mm",
    )
    breakdowns = {
        "parameters": parameters(model, convention),
        "activations": activation_terms(model, convention, act),
        "flops": flops_terms(model, convention, recompute=opts.recompute),
    }
    return breakdowns, model.sizes


def _windows(config: Mapping[str, Any]) -> list[int]:
    out: list[int] = []
    for key in ("sliding_window", "attention_window", "window_size"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            out.extend((value - 1, value, value + 1, value + 2))
    return out


def _zero(expr: sp.Expr, seqs: list[int]) -> bool:
    expr = sp.piecewise_fold(expr)
    if sp.simplify(expr) == 0:
        return True
    free = expr.free_symbols
    if not free <= {S.batch, S.seq}:
        return False
    for b in (1, 2, 3):
        for s in seqs:
            if sp.simplify(expr.subs({S.batch: b, S.seq: s})) != 0:
                return False
    return True


def size_expressions(config: Mapping[str, Any], fields: Mapping[str, int]) -> dict[str, sp.Expr]:
    """Each hand-written size of ``config``'s model written in the config ``fields`` it is read from,
    as ``c * f1**e1 * f2**e2 ...`` (``head_dim``; ``4*n_embd``; ``hidden_size/num_attention_heads``):
    each field of the config as transformers resolved it (``fields`` written into ``config``) is
    doubled (or halved, where doubling is not a valid config) on its own, and a size
    that changes with it by the same factor has exponent 1, by the inverse factor -1. Sizes read
    from no field keep their value; the layer count is left out (a symbol on both sides)."""
    from ..errors import SymbolicError
    from ..hf import from_hf_config

    # the fields as transformers resolved them (a head_dim it derived is a field the code reads)
    config = {**config, **fields}
    base = from_hf_config(dict(config)).sizes
    exponents: dict[str, dict[str, int]] = {size: {} for size in base}
    for field, value in fields.items():
        for new in (2 * value, value // 2 if value % 2 == 0 else 0):
            if not new:
                continue
            try:
                changed = from_hf_config({**config, field: new}).sizes
            except (SymbolicError, ValueError, TypeError, ZeroDivisionError):
                continue
            for size, old in base.items():
                ratio = sp.Rational(changed.get(size, old), old)
                if ratio != 1:
                    step = sp.Rational(new, value)
                    exponents[size][field] = 1 if ratio == step else -1 if ratio == 1 / step else 0
            break
    out: dict[str, sp.Expr] = {}
    for size, value in base.items():
        if size in ("n_layers", "batch", "seq"):
            continue
        powers = exponents[size]
        if not powers or 0 in powers.values():
            out[size] = sp.Integer(value)
            continue
        monomial = sp.Mul(*(field_symbol(f) ** e for f, e in powers.items()))
        coefficient = sp.Rational(value) / monomial.xreplace({field_symbol(f): fields[f] for f in powers})
        out[size] = coefficient * monomial
    return out


def _under(expr: sp.Expr, conditions: tuple[sp.Basic, ...]) -> sp.Expr:
    """``expr`` with the trace's size conditions applied: ``x = y`` between two fields substitutes
    ``y`` by ``x``; ``x = m*floor(e)`` (any factor ``m``) replaces ``floor(e)`` by ``x/m``;
    ``Mod(x, y) = 0`` replaces ``floor(x/y)`` by ``x/y``; and ``floor(e) = n`` replaces it by ``n``."""
    for cond in conditions:
        if not isinstance(cond, sp.Equality):
            continue
        lhs, rhs = cond.lhs, cond.rhs
        if isinstance(lhs, sp.floor) and rhs.is_Integer:  # a width the code fixed: floor(d/2 + 1/2) = 2
            expr = expr.xreplace({lhs: rhs})
            continue
        if isinstance(lhs, sp.Mod) and rhs == 0:
            expr = expr.xreplace({sp.floor(lhs.args[0] / lhs.args[1]): lhs.args[0] / lhs.args[1]})
            continue
        if not isinstance(lhs, sp.Symbol):
            lhs, rhs = rhs, lhs
        if not isinstance(lhs, sp.Symbol):
            continue
        if isinstance(rhs, sp.Symbol):
            expr = expr.xreplace({rhs: lhs})
            continue
        floors = [f for f in sp.Mul.make_args(rhs) if isinstance(f, sp.floor)]
        if len(floors) == 1:
            expr = expr.xreplace({floors[0]: lhs / (rhs / floors[0])})
    return sp.expand(expr)


def _zero_in_sizes(
    expr: sp.Expr, seqs: list[int], conditions: tuple[sp.Basic, ...], at_config: Mapping[sp.Symbol, int]
) -> bool:
    """Whether a difference whose pieces are chosen by batch and sequence vanishes, as an expression
    in the model's sizes, at every sample batch (1, 2, 3) and sequence (``seqs``). A piece's
    condition on the sizes (one head) is read at the config's sizes: the case the trace ran."""

    def piece(*args: sp.Basic) -> sp.Expr:
        for value, cond in args:
            if cond.xreplace(at_config) is sp.true:
                return value
        return sp.nan

    for b in (1, 2, 3):
        for s in seqs:
            at = expr.subs({S.batch: b, S.seq: s}).replace(sp.Piecewise, piece)
            if at.has(sp.nan) or _under(sp.expand(at), conditions) != 0:
                return False
    return True


def _traced(trace: Trace, quantities: tuple[str, ...]) -> list[tuple[str, Breakdown]]:
    """The trace's Breakdowns of the ``quantities`` asked for, with their names."""
    every = (("parameters", trace.parameters), ("activations", trace.activations), ("flops", trace.flops))
    return [(name, breakdown) for name, breakdown in every if name in quantities]


def _bound(expr: sp.Expr, values: Mapping[sp.Basic, sp.Expr]) -> sp.Expr:
    """``expr`` with ``values`` put in until nothing changes (a replaced inner floor can leave an
    outer one that matches a key only then)."""
    for _ in range(4):
        new = expr.xreplace(values)
        if new == expr:
            break
        expr = new
    return expr


def _pieces_at_their_sizes(expr: sp.Expr) -> sp.Expr:
    """A Piecewise with each piece evaluated at the sizes its condition fixes (``batch = 1``), so a
    piece that vanishes there reads 0."""
    if not isinstance(expr, sp.Piecewise):
        return expr
    pieces = [(sp.expand(e.xreplace(fixed_by(c))), c) for e, c in expr.args]
    if all(e == 0 for e, _ in pieces):
        return sp.Integer(0)
    return sp.Piecewise(*pieces)


def difference(
    config: Mapping[str, Any],
    trace: Trace,
    convention: str = "exact",
    quantities: tuple[str, ...] = ("parameters", "activations", "flops"),
) -> list[Difference]:
    """The parts where ``convention`` and the trace disagree (an empty list: they agree), for the
    ``quantities`` named (a parameters-only trace: ``("parameters",)``).

    With a trace of symbolic sizes the parts are compared as expressions in the config's size
    fields (see the module doc); else at the config's sizes, in batch and sequence."""
    if trace.size_symbols:
        return _symbolic_difference(config, trace, convention, quantities)
    hand, model_sizes = hand_written(config, trace, convention)
    sizes = {S.symbol(k): v for k, v in model_sizes.items() if k not in ("batch", "seq")}
    bind_traced = {S.n_layers: trace.sizes["n_layers"]}
    seqs = sorted({*_SAMPLE_SEQS, *_windows(config)})
    out: list[Difference] = []
    for quantity, traced in _traced(trace, quantities):
        mine = _parts(hand[quantity], sizes)
        theirs = _parts(traced, bind_traced)
        for part in ("total", "layers", "outside layers"):
            diff = sp.expand(mine[part] - theirs[part])
            if not _zero(diff, seqs):
                out.append(Difference(quantity, part, mine[part], theirs[part], sp.simplify(sp.piecewise_fold(diff))))
    return out


def _symbolic_difference(
    config: Mapping[str, Any], trace: Trace, convention: str, quantities: tuple[str, ...]
) -> list[Difference]:
    hand, _ = hand_written(config, trace, convention)
    in_fields = {S.symbol(k): v for k, v in size_expressions(config, trace.size_symbols).items()}
    fixed: dict[sp.Basic, sp.Expr] = {field_symbol(k): sp.Integer(v) for k, v in trace.fixed_sizes.items()}
    seqs = sorted({*_SAMPLE_SEQS, *_windows(config)})
    # the layer count is a number where the trace ran one layer (it cannot tell a per-layer storage
    # from one shared by all layers) or where its layers form several groups (each counted apart)
    one_group = len(trace.layer_groups) == 1 and trace.sizes["n_layers"] > 1
    one_layer = {} if one_group else {S.n_layers: sp.Integer(trace.sizes["n_layers"])}
    at_config = {field_symbol(k): v for k, v in trace.size_symbols.items()}
    for expr in in_fields.values():
        # a size the hand-written model derives as a ratio (d_head = hidden/heads) requires that it
        # divide exactly, so the trace's floor of that ratio is the ratio there
        if isinstance(expr, sp.Mul) and any(isinstance(f, sp.Pow) and f.exp == -1 for f in expr.args):
            fixed[sp.floor(expr)] = expr
        # the hand-written rules are those of the config's size case, an even rotary width among
        # them (an odd one is a case of its own): there, half the width rounded either way is exact
        if expr.free_symbols and int(expr.xreplace(at_config)) % 2 == 0:
            fixed[sp.floor(expr / 2 + sp.Rational(1, 2))] = expr / 2
            fixed[sp.floor(expr / 2)] = expr / 2
    out: list[Difference] = []
    for quantity, traced in _traced(trace, quantities):
        mine = {k: _bound(v, fixed) for k, v in _parts(hand[quantity], {**in_fields, **one_layer}).items()}
        theirs = {k: _bound(v, fixed) for k, v in _parts(traced, one_layer).items()}
        for part in ("total", "layers", "outside layers"):
            # the conditions can turn a floor into one the hand-written ratios fix (kv = a: floor(h/kv) is floor(h/a))
            diff = _under(sp.piecewise_fold(mine[part] - theirs[part]), trace.size_conditions)
            diff = _pieces_at_their_sizes(sp.expand(_bound(diff, fixed)))
            if diff != 0 and diff.has(sp.Piecewise) and _zero_in_sizes(diff, seqs, trace.size_conditions, at_config):
                diff = sp.Integer(0)
            if diff != 0:
                out.append(Difference(quantity, part, mine[part], theirs[part], diff))
            elif part == "total":  # the totals agree: a layer of its own (one dense layer) may sit
                break  # inside the layers on one side and outside on the other
    return out
