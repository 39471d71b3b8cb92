"""The builders of the ``traced`` row of :mod:`symbolic.conventions`.

Each builder traces the model's Hugging Face config (:func:`symbolic.trace.trace`, cached on disk)
and returns the same structures the hand-written conventions return: Breakdowns of SymPy terms in
the engine's ``batch`` and ``seq`` symbols (and ``n_layers`` where one group holds every decoder
layer). Parameters come from the model built on fake tensors; activations are the storages one
training step saves for backward; FLOPs are the matrix products and attention of the traced
forward and backward passes, per module.

A trace runs one unsharded replica on CPU kernels with the sizes of the config: an option it cannot
honour (a size other than the config's, pipeline or context parallelism, an override of the
config's dropout, selective recomputation, the per-expert loop) is refused with a
:class:`~symbolic.errors.SymbolicError` naming the field, never ignored. An amp recipe (fp32 weights,
``torch.autocast`` to 16 bits) is traced as it runs: fp32 weights, the step under ``torch.autocast``.
torch and transformers are imported only when a builder runs; without them a builder raises one
error naming the extra.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sympy as sp

from .. import symbols as S
from ..errors import SymbolicError
from ..terms import Breakdown, Quantity, Term
from .result import EXTRA_HINT, Trace, TraceOptions
from .terms import VIEW_TAG

if TYPE_CHECKING:
    from ..arch import Model
    from ..formulas.activations import ActivationOptions, Layout

__all__ = [
    "parameter_terms",
    "activation_terms",
    "transient_terms",
    "buffer_bytes",
    "forward_terms",
    "backward_terms",
    "LAYER",
    "SOURCE",
]

_AT_A_POINT = "trace at a concrete size"
LAYER = "layer"  # the tag of a term inside the decoder layers (full recomputation re-runs it)
SOURCE = "traced: one training step of the transformers model on fake tensors (CPU kernels)"


def _run(model: Model, options: TraceOptions) -> Trace:
    """The trace of ``model``'s config under ``options`` (sizes checked against the config)."""
    from . import available
    from .api import trace

    if not available():
        raise SymbolicError("convention", f"traced needs torch and transformers; {EXTRA_HINT}")
    _check_sizes(model)
    try:
        result = trace(dict(model.config), options)
    except ImportError:
        raise SymbolicError("convention", f"traced needs torch and transformers; {EXTRA_HINT}") from None
    except SymbolicError as err:
        if err.field == "trace" and _AT_A_POINT in err.message:  # the convention needs a formula in b and s
            cause = err.message.split("; ")[0]
            raise SymbolicError(
                "convention",
                f"traced: {cause}; 'symbolic trace MODEL --batch B --seq S' traces it at one point",
            ) from None
        raise
    if model.sizes.get("n_layers", result.sizes["n_layers"]) != result.sizes["n_layers"] and not _one_group(result):
        raise SymbolicError(
            "n_layers",
            f"the traced {result.model_type} has layer groups of {', '.join(str(len(g)) for g in result.layer_groups)}, "
            f"so its layer count is the config's ({result.sizes['n_layers']}); edit config.json to trace another",
        )
    return result


def _one_group(result: Trace) -> bool:
    return len(result.layer_groups) == 1


def _config_sizes(model: Model) -> Mapping[str, int]:
    if not model.hand_written:
        from ..registry import untyped_model

        return untyped_model(model.config, model.name).sizes
    from ..hf import from_hf_config

    return from_hf_config(dict(model.config)).sizes


def _check_sizes(model: Model) -> None:
    """Refuse sizes other than the config's (a trace runs the config's model), but ``n_layers``."""
    base = _config_sizes(model)
    for key, value in model.sizes.items():
        if key != "n_layers" and base.get(key) != value:
            raise SymbolicError(
                key,
                f"the traced convention runs the model of the config ({key} = {base.get(key)}); "
                f"got {value}: edit config.json to trace another size, or use a hand-written convention",
            )


def _bind(model: Model, result: Trace, breakdown: Breakdown, tags: Any = None) -> Breakdown:
    """The traced terms in the model's symbols: ``n_layers`` stays a symbol when the model has it."""
    bind = {} if "n_layers" in model.sizes else {S.n_layers: sp.Integer(result.sizes["n_layers"])}
    source = f"{SOURCE}; torch {result.versions['torch']}, transformers {result.versions['transformers']}"
    terms = []
    for t in breakdown:
        extra = frozenset(tags(t)) if tags is not None else frozenset()
        terms.append(
            t.with_(expr=t.expr.xreplace(bind), count=t.count.xreplace(bind), source=source, tags=t.tags | extra)
        )
    return Breakdown(breakdown.quantity, tuple(terms))


def parameter_terms(model: Model) -> Breakdown:
    """The parameters of the model transformers builds from ``model.config``, each tensor once
    (tied ones once), decoder layers by group (parameters)."""
    result = _run(model, TraceOptions(attention="eager", parameters_only=True))
    return _bind(model, result, result.parameters)


def buffer_bytes(model: Model, weight_bytes: sp.Expr | int) -> sp.Expr:
    """Bytes of the buffers of the model transformers builds from ``model.config`` (each storage
    once): floating-point ones at ``weight_bytes`` per element (``model.to(dtype)`` casts them),
    integer and boolean ones at their own size."""
    result = _run(model, TraceOptions(attention="eager", parameters_only=True))
    floats = result.sizes.get("buffer_float_elements", 0)
    return floats * weight_bytes + sp.Integer(result.sizes.get("buffer_other_bytes", 0))


def _trace_options(options: ActivationOptions, layout: Layout) -> TraceOptions:
    """The trace that honours ``options`` and ``layout``; a choice it cannot honour is refused."""
    refusals = (
        (layout.pp > 1, "pp", f"{layout.pp}: a trace runs one unsharded replica; allowed: 1"),
        (layout.cp > 1, "cp", f"{layout.cp}: a trace runs one unsharded replica; allowed: 1"),
        (layout.sequence_parallel, "sequence_parallel", "a trace runs one unsharded replica"),
        (options.interleave != 1, "interleave", f"{options.interleave}: a trace has no pipeline; allowed: 1"),
        (
            options.dropout is not None,
            "dropout",
            "the traced convention runs the dropout of the config; edit config.json instead",
        ),
        (
            options.experts != "grouped_mm",
            "experts",
            f"{options.experts!r} cannot be traced (the per-expert loop's sizes depend on the routing); "
            "allowed: grouped_mm",
        ),
    )
    for refused, field, message in refusals:
        if refused:
            raise SymbolicError(field, message)
    if options.autocast:  # the amp recipes: fp32 weights, the step under torch.autocast to options.dtype
        return TraceOptions(
            dtype="fp32", attention=options.attention, recompute=options.recompute, autocast=options.dtype
        )
    return TraceOptions(dtype=options.dtype, attention=options.attention, recompute=options.recompute)


def activation_terms(model: Model, options: ActivationOptions, layout: Layout) -> Breakdown:
    """The storages one training step keeps for backward, as traced (bytes), in ``batch``, ``seq``.

    Traced with torch's CPU kernels: under ``device="cuda"`` the CUDA attention kernels' saved
    tensors are assumed to be the CPU kernel's (``Term.source`` says traced on CPU kernels). A term
    that transformers' own tensor-parallel plan divides carries ``shards = {tp}``; with
    ``layout.tp`` above 1 the slices only a tensor-parallel run keeps are added (whole size; the
    share is taken by :meth:`symbolic.parallel.Parallelism.activation_share`), and the copies that
    are views at that ``tp`` (tagged ``tp_view:<tp>``) dropped.
    """
    result = _run(model, _trace_options(options, layout))
    step = _step_tags(result.activations)
    saved = result.activations
    if layout.tp > 1:  # the slices a module splitting a whole input keeps besides it (rowwise_split_input)
        view = f"{VIEW_TAG}{layout.tp}"  # copies that are views when one rank holds one of the divided rows
        kept = [t for t in saved.terms if view not in t.tags]
        saved = Breakdown(Quantity.BYTES, (*kept, *result.split_copies.terms))
    terms = _bind(
        model,
        result,
        saved,
        lambda t: {"shared"} if t.path.startswith("shared.") else step.get(t.path, ()),
    )
    if options.device != "cpu":  # what was traced is the CPU kernels' saving; on the device it is assumed
        note = f"; on {options.device} assumed the same as on the CPU kernels traced (not measured)"
        terms = terms.map(lambda t: t.with_(source=t.source + note, description=t.description + note))
    return terms


_IN_LAYER = re.compile(r"\.(?:each|group\d+)\.")  # the segment naming a group of decoder layers
_CROSS_ENTROPY = ("LogSoftmaxBackward0", "NllLossBackward0")  # the loss's two nodes (log-softmax, NLL)


def _step_tags(terms: Breakdown) -> dict[str, frozenset[str]]:
    """The step timeline's tags, by path: what is saved after the decoder layers (the final norm, the
    output layer, the loss) is ``head``, freed by the backward before the layers run; the terms saved by
    the cross-entropy's nodes are also ``loss``, its log-softmax output ``log_probs``. Terms are in the
    order they were first saved."""
    order = list(terms)
    last_layer = max((i for i, t in enumerate(order) if _IN_LAYER.search(t.path)), default=-1)
    out: dict[str, frozenset[str]] = {}
    for t in order[last_layer + 1 :]:
        if t.path.startswith("shared."):
            continue
        node = t.path.rsplit(".", 1)[-1].split("#")[0]
        tags = {"head"}
        if node in _CROSS_ENTROPY:
            tags |= {"loss", "log_probs"} if node == _CROSS_ENTROPY[0] else {"loss"}
        out[t.path] = frozenset(tags)
    return out


def transient_terms(*args: Any, **kwargs: Any) -> Breakdown:
    """No transient buffers: the trace records what is saved for backward, not the backward's
    temporary buffers (an empty Breakdown in bytes; the convention's ``leaves_out`` says so)."""
    return Breakdown(Quantity.BYTES)


def _flops(model: Model, phase: str) -> list[Term]:
    try:
        result = _run(model, TraceOptions())
    except SymbolicError as err:  # no SDPA path in this model type: eager counts the same products
        if err.field != "attention":
            raise
        result = _run(model, TraceOptions(attention="eager"))
    terms = _bind(model, result, result.flops, lambda t: {LAYER} if t.count != 1 else ())
    return [t for t in terms if t.path.startswith(f"{phase}.")]


def forward_terms(model: Model, causal: bool) -> list[Term]:
    """The traced forward pass's matrix products and attention, per module (FLOPs; paths ``forward.*``,
    layer terms tagged ``layer``). Attention counts all ``s x s`` query-key pairs, as torch does."""
    return _flops(model, "forward")


def backward_terms(model: Model, causal: bool) -> list[Term]:
    """The traced backward pass's matrix products and attention, per module (FLOPs; ``backward.*``)."""
    return _flops(model, "backward")
