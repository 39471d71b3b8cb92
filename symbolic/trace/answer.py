"""``params``, ``memory`` and ``flops`` answered by the traced convention.

Used for ``--convention traced`` and for model types without hand-written rules. The parameters,
the saved activations and the FLOPs come from :func:`symbolic.trace.trace`; memory's model states
are the traced parameter terms under a precision recipe and an optimizer
(:func:`symbolic.formulas.states.state_terms`, one device, no parallelism); the backward pass's
transient buffers are not traced and are left out of the figure (``leaves_out`` says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp

from .. import symbols as S
from ..terms import Breakdown
from .result import Trace, TraceOptions

__all__ = ["QUANTITIES", "traced_answer"]

QUANTITIES = ("params", "memory", "flops")
LEAVES_OUT = "the backward pass's transient buffers (not traced); parallelism (one device)"


def _value(expr: sp.Expr, values: Mapping[sp.Symbol, int]) -> int:
    return int(sp.piecewise_fold(expr).subs(values))


def _terms_json(breakdown: Breakdown, values: Mapping[sp.Symbol, int]) -> list[dict[str, Any]]:
    return [
        {
            "path": t.path,
            "description": t.description,
            "formula": str(t.expr),
            "count": str(t.count),
            "value": _value(t.total, values),
        }
        for t in breakdown
    ]


def traced_answer(
    name: str,
    config: Mapping[str, Any],
    quantity: str,
    batch: int,
    seq: int,
    options: TraceOptions | None = None,
    precision: str = "mixed",
    optimizer: str = "adamw",
) -> dict[str, Any]:
    """The answer of ``quantity`` (params: parameters; memory: bytes on one device; flops: FLOPs of
    one training step) at ``batch`` sequences of ``seq`` tokens, as a JSON-able dict with
    ``"convention": "traced"`` and the torch/transformers versions that answered."""
    from ..formulas.states import get_optimizer, get_recipe, state_terms
    from .api import trace

    options = options or TraceOptions(at=(batch, seq))
    result: Trace = trace(config, options)
    values = {S.n_layers: result.sizes["n_layers"], S.batch: batch, S.seq: seq}
    out: dict[str, Any] = {
        "model": name,
        "model_type": result.model_type,
        "convention": "traced",
        "versions": result.versions,
        "batch": batch,
        "seq": seq,
        "options": result.options.key(),
        "notes": list(result.notes),
    }
    params = _value(result.parameters.total, values)
    if quantity == "params":
        out |= {"unit": "parameters", "total": params, "terms": _terms_json(result.parameters, values)}
        return out
    if quantity == "flops":
        total = _value(result.flops.total, values)
        out |= {"unit": "FLOPs", "total": total, "per_token": total / (batch * seq)}
        out["terms"] = _terms_json(result.flops, values)
        return out
    recipe, opt = get_recipe(precision), get_optimizer(optimizer)
    states = state_terms(result.parameters, recipe, opt)
    state_bytes = _value(states.total, values)
    activations = _value(result.activations.total, values)
    out |= {
        "unit": "bytes",
        "precision": recipe.name,
        "optimizer": opt.name,
        "parameters": params,
        "states": state_bytes,
        "activations": {"total": activations, "terms": _terms_json(result.activations, values)},
        "total": state_bytes + activations,
        "leaves_out": LEAVES_OUT,
    }
    return out
