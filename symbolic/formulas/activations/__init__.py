"""Activation memory: named SymPy terms in three conventions (``exact``, ``megatron``, ``basic``).

:func:`activation_terms` returns the terms of one convention (bytes); :func:`activation_bytes`
evaluates them per layer group, once-per-forward, outside the layers and in total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...arch import Model
from ...errors import SymbolicError
from ...numeric.values import ceil_int, evaluate
from ...terms import Breakdown
from .basic import BACKWARD_CLAIM, ERRATA, basic_activation_terms
from .exact import dropout_probabilities, exact_activation_terms
from .megatron import megatron_activation_terms
from .options import ActivationOptions

__all__ = [
    "ActivationOptions",
    "ActivationBytes",
    "activation_terms",
    "activation_bytes",
    "check_workload",
    "dropout_probabilities",
    "BACKWARD_CLAIM",
    "ERRATA",
    "on_stage",
    "activations_json",
]

CONVENTIONS = ("exact", "megatron", "basic")


def check_workload(model: Model, batch: object, seq: object) -> None:
    """Raise :class:`SymbolicError` for a batch or sequence that no run can have."""
    for option, value in (("--batch", batch), ("--seq", seq)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SymbolicError(option, f"must be a positive integer, got {value!r}")
    limit = model.sizes.get("n_ctx")
    if limit is not None and seq > limit:
        raise SymbolicError("--seq", f"{seq} exceeds {model.name}'s learned position table ({limit} positions)")


def activation_terms(
    model: Model,
    convention: str = "exact",
    options: ActivationOptions | None = None,
    *,
    sequence_parallel: bool = False,
    pp: int = 1,
) -> Breakdown:
    """The activation terms of ``model`` under ``convention`` (bytes), in ``batch``, ``seq`` and the sizes.

    ``megatron`` also uses the symbols ``tp`` (and ``pp``, ``interleave``); ``sequence_parallel`` and
    ``pp`` (the pipeline degree, a number: the head terms sit on the first stage only when it is 1)
    choose its Table 2 row.
    """
    options = options or ActivationOptions()
    if convention == "exact":
        return exact_activation_terms(model, options)
    if convention == "megatron":
        return megatron_activation_terms(model, options, sequence_parallel=sequence_parallel, pp=pp)
    if convention == "basic":
        return basic_activation_terms(model, options)
    raise SymbolicError("--convention", f"unknown {convention!r} for activations; allowed: {', '.join(CONVENTIONS)}")


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


def on_stage(terms: Breakdown, stage: int, pp: int) -> Breakdown:
    """The share of ``terms`` one pipeline stage holds under 1F1B (bytes).

    Stage ``i`` of ``pp`` holds its ``n_layers/pp`` layers for ``pp - i`` micro-batches in flight; the
    embedding terms sit on stage 0 and the head and loss on the last stage (one micro-batch).
    """
    if pp == 1:
        return terms
    from ... import symbols as S

    flight = pp - stage
    out = []
    for t in terms:
        top = t.path.split(".", 1)[0]
        if top in ("embedding",):
            if stage == 0:
                out.append(t.with_(count=t.count * flight))
        elif top in ("head", "loss"):
            if stage == pp - 1:
                out.append(t)
        elif "shared" in t.tags:
            out.append(t.with_(count=t.count * flight))
        else:
            out.append(t.with_(count=t.count * flight / S.pp))
    return Breakdown(terms.quantity, tuple(out))


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
