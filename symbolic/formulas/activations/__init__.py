"""Activation memory: named SymPy terms in three conventions (``exact``, ``megatron``, ``basic``).

Each convention's builder is wrapped in an :class:`ActivationRule` (``EXACT_ACTIVATIONS``, ...), which
the table in :mod:`symbolic.conventions` carries; :func:`symbolic.model.activation_terms` asks the
table. :func:`activation_bytes` evaluates terms per layer group, once-per-forward, outside the
layers and in total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from ...arch import AttentionKind, Model
from ...errors import SymbolicError
from ...numeric.values import ceil_int, evaluate
from ...terms import Breakdown
from .basic import BACKWARD_CLAIM, ERRATA, basic_activation_terms
from .exact import dropout_probabilities, exact_activation_terms
from .megatron import megatron_activation_terms
from .options import ActivationOptions, ActivationRule, Layout

__all__ = [
    "ActivationOptions",
    "ActivationRule",
    "Layout",
    "EXACT_ACTIVATIONS",
    "MEGATRON_ACTIVATIONS",
    "BASIC_ACTIVATIONS",
    "ActivationBytes",
    "activation_bytes",
    "check_workload",
    "dropout_probabilities",
    "BACKWARD_CLAIM",
    "ERRATA",
    "on_stage",
    "in_flight",
    "check_parallel",
    "activations_json",
]


def check_workload(model: Model, batch: int, seq: int) -> None:
    """Raise :class:`SymbolicError` for a batch or sequence that no run can have."""
    for option, value in (("batch", batch), ("seq", seq)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SymbolicError(option, f"must be a positive integer, got {value!r}")
    limit = model.sizes.get("n_ctx")
    if limit is not None and seq > limit:
        raise SymbolicError("seq", f"{seq} exceeds {model.name}'s learned position table ({limit} positions)")


def _exact(model: Model, options: ActivationOptions, layout: Layout) -> Breakdown:
    return exact_activation_terms(model, options)


def _megatron(model: Model, options: ActivationOptions, layout: Layout) -> Breakdown:
    return megatron_activation_terms(
        model, options, sequence_parallel=layout.sequence_parallel, pp=layout.pp, cp=layout.cp
    )


def _basic(model: Model, options: ActivationOptions, layout: Layout) -> Breakdown:
    return basic_activation_terms(model, options)


# the activation rules of the conventions (symbolic.conventions puts them in its table)
EXACT_ACTIVATIONS = ActivationRule(_exact)
MEGATRON_ACTIVATIONS = ActivationRule(_megatron, per_tp_device=True, places_stages=True, uniform_layers=True)
BASIC_ACTIVATIONS = ActivationRule(_basic)


@dataclass(frozen=True)
class ActivationBytes:
    """Evaluated activation bytes: ``total``; ``per_layer`` (one layer of each group, without the
    once-per-forward terms); ``shared`` (kept once for all layers, attributed to layer 0);
    ``outside`` (embedding, head, loss); ``per_term`` (each term's total). All in bytes."""

    total: int
    per_layer: dict[str, int]
    shared: int
    outside: int
    per_term: dict[str, int]


def activation_bytes(terms: Breakdown, model: Model, values: Mapping[str, int]) -> ActivationBytes:
    """Evaluate activation ``terms`` at the model's sizes plus ``values`` (batch, seq, degrees) (bytes)."""
    vals = {**model.sizes, **values}

    groups = {str(g.count): g.name for g in model.arch.groups}
    per_layer: dict[str, int] = {}
    shared = outside = 0
    for t in terms:
        group = next((groups[str(x)] for x in t.count.free_symbols if str(x) in groups), None)
        if group is not None:
            name = group
            per_layer[name] = per_layer.get(name, 0) + ceil_int(evaluate(t.expr, vals), "bytes")
        elif "shared" in t.tags:
            shared += ceil_int(evaluate(t.total, vals), "bytes")
        else:
            outside += ceil_int(evaluate(t.total, vals), "bytes")
    per_term = {t.path: ceil_int(evaluate(t.total, vals), "bytes") for t in terms}
    return ActivationBytes(sum(per_term.values()), per_layer, shared, outside, per_term)


def in_flight(stage: int, pp: int, interleave: int = 1) -> sp.Rational:
    """Micro-batches whose activations one pipeline stage holds at once, in units of its whole layers.

    1F1B (``interleave`` = 1): stage ``i`` of ``p`` holds ``p - i``. Interleaved 1F1B with ``m`` model
    chunks per stage (Megatron-LM's schedule): stage ``i`` runs ``2(p - i - 1) + (m - 1)p + 1`` chunk
    forwards before its first backward, each chunk ``1/m`` of its layers, which on the first stage is
    Korthikanti's ``p(1 + (p - 1)/(p m))``. Assumes enough micro-batches per step that the warm-up is
    not cut short: at least ``p``, and with chunks at least that many chunk forwards (micro-batches).

    >>> in_flight(0, 4), in_flight(3, 4), in_flight(0, 4, 2)
    (4, 1, 11/2)
    """
    if interleave == 1:
        return sp.Integer(pp - stage)
    return sp.Rational(2 * (pp - stage - 1) + (interleave - 1) * pp + 1, interleave)


def on_stage(terms: Breakdown, stage: int, pp: int, interleave: int = 1) -> Breakdown:
    """The share of ``terms`` one pipeline stage holds under 1F1B or interleaved 1F1B (bytes).

    Stage ``i`` holds its ``n_layers/pp`` layers for :func:`in_flight` micro-batches (the once-per-forward
    tensors once per model chunk and micro-batch: ``in_flight * interleave``); the embedding
    terms sit on stage 0 (``pp`` micro-batches in flight) and the head and loss on the last stage
    (one micro-batch: its backward follows its forward at once).
    """
    if pp == 1:
        return terms
    from ... import symbols as S

    flight = in_flight(stage, pp, interleave)
    out = []
    for t in terms:
        top = t.path.split(".", 1)[0]
        if top in ("embedding",):
            if stage == 0:
                out.append(t.with_(count=t.count * pp))
        elif top in ("head", "loss"):
            if stage == pp - 1:
                out.append(t)
        elif "shared" in t.tags:  # each model chunk computes its own (rotary tables, masks)
            out.append(t.with_(count=t.count * flight * interleave))
        else:
            out.append(t.with_(count=t.count * flight / S.pp))
    return Breakdown(terms.quantity, tuple(out))


def check_parallel(model: Model, rule: ActivationRule, options: ActivationOptions, cp: int) -> None:
    """Raise :class:`SymbolicError` where a convention has no answer for a parallel layout.

    Context parallelism shards attention with ring attention over SDPA kernels (torch's
    ``context_parallel``, Megatron-LM's CP): eager attention and its ``s^2`` tensors have no
    context-parallel form.
    """
    if cp > 1 and not rule.per_tp_device and options.attention == "eager":
        raise SymbolicError(
            "--attention",
            "context parallelism (ring attention) runs on SDPA or flash attention; use --attention sdpa or flash",
        )
    if cp > 1 and not rule.per_tp_device and model.arch.attention.kind is AttentionKind.MLA:
        raise SymbolicError(
            "--cp", f"{model.arch.family}'s latent attention takes SDPA's math path, which has no ring form; allowed: 1"
        )


def activations_json(terms: Breakdown, model: Model, values: Mapping[str, int]) -> dict:
    """The ``activations`` object of ``symbolic memory --json``: total, per layer, shared, outside, per term (bytes)."""
    ev = activation_bytes(terms, model, values)
    return {
        "unit": "bytes",
        "total": ev.total,
        "per_layer": ev.per_layer,
        "shared": ev.shared,
        "outside_layers": ev.outside,
        "terms": [
            {"path": t.path, "formula": str(t.total), "bytes": ev.per_term[t.path], "source": t.source} for t in terms
        ],
    }
