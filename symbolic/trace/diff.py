"""The traced terms against a hand-written convention, part by part (empty = agreement).

Both sides are put in the same symbols: the hand-written expression with the model's sizes
substituted (batch and sequence stay symbols), the traced one with its layer count bound. Each
quantity is compared in total, inside the decoder layers (terms repeated per layer) and outside
them; a part agrees when the difference simplifies to 0 and is 0 at sample sizes (b = 1, 2, 3;
s on both sides of every window).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp

from .. import symbols as S
from ..terms import Breakdown
from .api import Trace

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


def difference(config: Mapping[str, Any], trace: Trace, convention: str = "exact") -> list[Difference]:
    """The parts where ``convention`` and the trace disagree (an empty list: they agree)."""
    hand, model_sizes = hand_written(config, trace, convention)
    sizes = {S.symbol(k): v for k, v in model_sizes.items() if k not in ("batch", "seq")}
    bind_traced = {S.n_layers: trace.sizes["n_layers"]}
    seqs = sorted({*_SAMPLE_SEQS, *_windows(config)})
    out: list[Difference] = []
    for quantity, traced in (
        ("parameters", trace.parameters),
        ("activations", trace.activations),
        ("flops", trace.flops),
    ):
        mine = _parts(hand[quantity], sizes)
        theirs = _parts(traced, bind_traced)
        for part in ("total", "layers", "outside layers"):
            diff = sp.expand(mine[part] - theirs[part])
            if not _zero(diff, seqs):
                out.append(Difference(quantity, part, mine[part], theirs[part], sp.simplify(sp.piecewise_fold(diff))))
    return out
