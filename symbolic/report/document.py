"""The derivation document of one model, as plain data for the templates: one orchestration function.

# [Model, DocumentOptions] -> request (parameters, memory, FLOPs) -> rows (sections) -> errata -> context
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ..arch import Model
from ..conventions import CONVENTIONS, DEFAULT, get_convention, names_for
from ..errors import SymbolicError
from ..memory import DeviceMemory
from ..model import convention_difference, flops_terms, parameters
from ..render import Raw
from ..request import default_workload, request
from ..terms import Breakdown, Quantity
from ..units import format_flops
from .errata import errata_section
from .rows import (
    breakdown_section,
    bytes_text,
    degree_ones,
    degree_ones_expr,
    dominance_rows,
    integer_text,
    latex,
    latex_int,
    number_text,
    sensitivity_rows,
    symbol_rows,
    term_rows,
)
from .values import value_at

__all__ = [
    "DocumentOptions",
    "workload_of",
    "parameters_section",
    "flops_section",
    "document_memory",
    "states_section",
    "activations_section",
    "memory_section",
    "conventions_section",
    "derivation_context",
]


@dataclass(frozen=True)
class DocumentOptions:
    """What a derivation document covers: the parameter convention and workload/memory settings.

    ``workload`` maps ``batch`` and ``seq`` to integers (default: 1 sequence of 2048 tokens, or of
    the model's learned position table when shorter); ``memory`` holds the memory module's keyword
    options (``dp``, ``tp``, ``pp``, ``zero``, ``precision``, ``optimizer``, ``attention``, ...).
    """

    convention: str = "exact"
    workload: Mapping[str, int] | None = None
    recompute: str = "none"
    grow: tuple[str, ...] = ("seq", "batch", "d_model")
    memory: Mapping[str, Any] = field(default_factory=dict)
    plots: Mapping[str, str] = field(default_factory=dict)


def workload_of(model: Model, options: DocumentOptions) -> dict[str, int]:
    """The document's ``batch`` and ``seq``: the options', else :func:`symbolic.request.default_workload`."""
    if options.workload is not None:
        return dict(options.workload)
    return default_workload(model)


def _sizes(model: Model, options: DocumentOptions) -> dict[str, int]:
    return {**model.sizes, **workload_of(model, options)}


def parameters_section(model: Model, options: DocumentOptions) -> dict[str, Any]:
    """The parameter derivation: sections of terms, the total's views, numbers substituted, result."""
    terms = parameters(model, options.convention)
    out = breakdown_section(
        "parameters",
        "Parameters, term by term",
        "N",
        terms,
        _sizes(model, options),
        "Each part of the model is a sum of named tensors. A part that repeats (a layer group) is written "
        "once per instance and multiplied by its count, which stays a symbol.",
    )
    out["convention"] = options.convention
    out["published"] = integer_text(model.published_params) if model.published_params else None
    return out


def covering(options: DocumentOptions, quantity: str) -> str:
    """The convention the document counts ``quantity`` (``parameters``, ``memory``, ``flops``) in: its
    own where that convention covers the quantity, else the default."""
    return options.convention if options.convention in names_for(quantity) else DEFAULT


def flops_section(model: Model, options: DocumentOptions) -> dict[str, Any]:
    """FLOPs of one training step (``batch`` sequences of ``seq`` tokens), term by term (FLOPs)."""
    values = _sizes(model, options)
    convention = covering(options, "flops")
    terms = flops_terms(model, convention, options.recompute)
    rule = get_convention(convention, "flops").flops
    backward = (
        "the backward pass is counted as traced"
        if rule is not None and rule.backward is not None
        else "the backward pass is twice the forward"
    )
    out = breakdown_section(
        "flops",
        "Training FLOPs of one step",
        "C",
        terms,
        values,
        f"One training step of {values['batch']} sequence(s) of {values['seq']:,} tokens, {convention} convention, "
        f"recomputation: {options.recompute}. A multiply-add counts as 2 FLOPs; {backward}. "
        "Attention counts every one of the s × s query-key pairs (no causal mask).",
        views=("expand", "factor"),
    )
    total = value_at(terms.total, values)
    if rule is not None and rule.causal:
        causal = value_at(flops_terms(model, convention, options.recompute, causal=True).total, values)
        out["causal"] = {
            "total": number_text(causal),
            "saving": f"{100 * float(1 - causal / total):.2f}" if total else "0.00",
        }
    out["human"] = format_flops(total)
    return out


def document_memory(model: Model, options: DocumentOptions) -> DeviceMemory:
    """The memory per device for ``model`` at the document's workload and settings (bytes).

    A model whose implementation has only eager attention is shown with eager attention, unless the
    options ask for a kernel.
    """
    settings = {"recompute": options.recompute, **options.memory}
    workload = workload_of(model, options)
    batch, seq = workload["batch"], workload["seq"]
    convention = covering(options, "memory")
    try:
        answer = request(model, "memory", batch=batch, seq=seq, convention=convention, options=settings)
    except SymbolicError as err:
        if err.field != "attention" or "attention" in settings:
            raise
        settings = {**settings, "attention": "eager"}
        answer = request(model, "memory", batch=batch, seq=seq, convention=convention, options=settings)
    assert answer.memory is not None
    return answer.memory


def _memory_intro(device: Any) -> str:
    settings = device.settings
    return (
        f"precision recipe {settings.get('precision')}, optimizer {settings.get('optimizer')}, "
        f"data/tensor/pipeline parallel {settings.get('dp')}/{settings.get('tp')}/{settings.get('pp')}, "
        f"ZeRO stage {settings.get('zero')}"
    )


def per_parameter_rows(device: Any) -> list[dict[str, Any]] | None:
    """Bytes per parameter of each state category, when each is a constant times the parameter count.

    Returns ``None`` where some category is not a multiple of the model's parameter total (ZeRO
    shards, frozen or quantized tensors): then the states are not ``k N``.
    """
    n_total = degree_ones(parameters(device.model, _state_convention(device)), device.values).total
    rows = []
    for name in ("weights", "gradients", "master", "optimizer"):
        expr = degree_ones(device.category(name), device.values).total
        ratio = sp.cancel(expr / n_total)
        if not ratio.is_Number:
            return None
        rows.append({"name": name, "per_parameter": number_text(ratio), "ratio": ratio})
    total = sum((r.pop("ratio") for r in rows), sp.Integer(0))
    rows.append({"name": "states", "per_parameter": number_text(total)})
    return rows


def _state_convention(device: Any) -> str:
    """The convention whose parameters a memory report's states count (its own, else the default)."""
    conv = CONVENTIONS[device.settings.get("convention", DEFAULT)]
    return conv.name if conv.parameters is not None else DEFAULT


def states_section(device: Any) -> dict[str, Any]:
    """Model states per device (weights, gradients, master weights, optimizer state), term by term."""
    values = device.values
    terms = degree_ones(device.terms.where(lambda t: "transient" not in t.tags), values)
    out = breakdown_section(
        "states",
        "Model states per device",
        "M_{\\mathrm{states}}",
        terms,
        values,
        f"The bytes one device holds for the parameters whatever the workload: {_memory_intro(device)}.",
        views=("expand",),
    )
    convention = _state_convention(device)
    n_value = int(value_at(parameters(device.model, convention).total, values))
    per_parameter = per_parameter_rows(device)
    out["per_parameter"] = per_parameter
    out["parameters"] = integer_text(n_value)
    out["convention"] = convention
    out["states_formula"] = None
    if per_parameter is not None:
        k = per_parameter[-1]["per_parameter"]
        states = device.bytes("states")
        out["states_formula"] = Raw(f"{k} N = {k} \\cdot {latex_int(n_value)} = {latex_int(states)}")
    return out


def activations_section(device: Any) -> dict[str, Any] | None:
    """The activations one device keeps from forward to backward, term by term (None when not computed)."""
    if device.activations is None:
        return None
    values = device.values
    settings = device.settings
    return breakdown_section(
        "activations",
        "Activations per device",
        "M_{\\mathrm{act}}",
        degree_ones(device.activations, values),
        values,
        f"The tensors autograd saves in the forward pass and frees in the backward pass, for batch "
        f"{settings.get('batch')} and sequence {settings.get('seq')}: {settings.get('attention', 'sdpa')} "
        f"attention, recomputation {settings.get('recompute', 'none')}, {_memory_intro(device)}. "
        "Grouped by where they are saved: every decoder layer (block), once for all layers (shared), "
        "the final norm and output projection (head), and the loss.",
        views=("expand",),
    )


def memory_section(device: Any) -> dict[str, Any]:
    """The peak per device: the largest point of the step's timeline (or, without one, states +
    activations + the largest transient buffer), derived with numbers."""
    values = device.values
    per_device = device.per_device()
    transient = degree_ones(device.category("transient"), values)
    largest = device.transient_expr
    out: dict[str, Any] = {
        "key": "memory",
        "title": "Memory per device: the peak",
        "intro": "The peak of a training step is the model states, plus the activations (all alive when "
        "the backward pass starts), plus the largest buffer the backward pass creates on top of them.",
        "transient": term_rows(transient, values) if len(transient) else [],
        "transient_formula": latex(degree_ones_expr(largest, values)),
        "per_device": [
            {"name": name, **(bytes_text(value) if value is not None else {"bytes": None, "gib": None, "gb": None})}
            for name, value in per_device.items()
        ],
        "notes": list(device.notes),
        "single_device": device.settings.get("devices") == 1,
        "peak": None,
        "timeline": [],
    }
    points = device.timeline_points()
    if points:
        out["transient"] = []  # the loss's and the layers' buffers are points of the timeline
        out["intro"] = (
            "The peak of a training step is the largest point of its timeline: gradients appear during "
            "the backward pass while the activations are freed layer by layer, and the optimizer step "
            "allocates temporaries of its own (each per-layer point at its worst layer)."
        )
        out["timeline"] = [
            {
                "phase": p["phase"],
                "label": p["label"] + ("" if p["layer"] is None else f" (worst: layer {p['layer']})"),
                **bytes_text(p["bytes"]),
            }
            for p in points
        ]
    if per_device.get("peak") is not None:
        if points:
            top = max(points, key=lambda p: p["bytes"])
            where = top["label"] + ("" if top["layer"] is None else f", layer {top['layer']}")
            out["peak"] = {
                "sum": Raw(f"\\max_{{\\text{{points}}}} = {latex_int(per_device['peak'])}"),
                "where": f"{top['phase']}: {where}",
                **bytes_text(per_device["peak"]),
            }
        else:
            parts = [per_device[k] for k in ("states", "activations", "transient")]
            out["peak"] = {
                "sum": Raw(" + ".join(latex_int(v) for v in parts) + f" = {latex_int(per_device['peak'])}"),
                **bytes_text(per_device["peak"]),
            }
    return out


def conventions_section(model: Model, options: DocumentOptions) -> dict[str, Any]:
    """Each parameter convention's total for ``model`` and what it leaves out, and exact minus basic."""
    values = _sizes(model, options)
    rows = []
    for name, conv in CONVENTIONS.items():
        if conv.parameters is None or conv.extra is not None:  # an optional install: not in every document
            continue
        try:
            terms = parameters(model, name)
        except SymbolicError as err:
            rows.append(
                {
                    "name": name,
                    "title": conv.title,
                    "source": conv.source,
                    "leaves_out": conv.leaves_out,
                    "formula": None,
                    "total": None,
                    "note": err.message,
                }
            )
            continue
        rows.append(
            {
                "name": name,
                "title": conv.title,
                "source": conv.source,
                "leaves_out": conv.leaves_out,
                "formula": latex(terms.view("collect")),
                "total": integer_text(int(value_at(terms.total, values))),
                "note": "",
            }
        )
    differences = []
    others = [
        name
        for name, conv in CONVENTIONS.items()
        if conv.parameters is not None and conv.extra is None and name != DEFAULT
    ]
    for other in others:
        try:
            diff = convention_difference(model, DEFAULT, other)
        except SymbolicError:
            continue
        differences.append(
            {
                "first": DEFAULT,
                "second": other,
                "rows": [
                    {"path": t.path, "formula": latex(t.total), "value": number_text(value_at(t.total, values))}
                    for t in diff
                ],
                "total": number_text(value_at(diff.total, values)),
            }
        )
    return {"rows": rows, "differences": differences}


def _figure_section(path: str) -> str | None:
    """The section a figure belongs in, from its file name: ``memory``, ``flops`` or None (its own)."""
    name = path.rsplit("/", 1)[-1].lower()
    for key in ("memory", "flops"):
        if key in name:
            return key
    return None


def _model_facts(model: Model, published: str | None) -> dict[str, Any]:
    """The model's name, family, source, published count and scalar config fields (text)."""
    return {
        "name": model.name,
        "family": model.arch.family,
        "source": model.source,
        "published": published,
        "config": [
            {"key": k, "value": v if isinstance(v, str) else repr(v)}
            for k, v in sorted(model.config.items())
            if isinstance(v, str | int | float | bool)
        ],
    }


def derivation_context(model: Model, options: DocumentOptions | None = None) -> dict[str, Any]:
    """Everything a derivation document shows for ``model``, as plain data (strings, ints, Raw LaTeX).

    ``derivations`` lists the breakdown sections in order (parameters, model states, activations,
    FLOPs), each a :func:`breakdown_section`; ``memory`` is the peak (:func:`memory_section`), shown
    after the section named by ``memory_after``. ``dominance`` and ``sensitivity`` come from
    :mod:`symbolic.analysis`. A figure whose file name says ``memory`` or ``flops`` sits in that
    section; the others get a section of their own.
    """
    options = options or DocumentOptions()
    values = _sizes(model, options)

    # [1 request] the three quantities at the document's workload
    param_terms = parameters(model, options.convention)
    device = document_memory(model, options)
    memory_terms = device.terms.where(lambda t: "transient" not in t.tags)
    memory_terms = degree_ones(memory_terms + (device.activations or Breakdown(Quantity.BYTES)), device.values)
    flop_terms = flops_terms(model, covering(options, "flops"), options.recompute)
    fixed = (
        get_convention(options.convention, "parameters").fixed_sizes(model)
        if options.convention in names_for("parameters")
        else frozenset()
    )
    grow = tuple(g for g in options.grow if g not in fixed)  # sizes read from the config do not grow
    quantities: list[tuple[str, str, Breakdown, Mapping[str, int]]] = [
        ("parameters", "N", param_terms, values),
        ("memory (bytes)", r"\left(M_{\mathrm{states}} + M_{\mathrm{act}}\right)", memory_terms, device.values),
        ("FLOPs", "C", flop_terms, values),
    ]

    # [2 rows] one section per quantity (parameters, states, activations, FLOPs), the peak, the symbols
    params = parameters_section(model, options)
    activations = activations_section(device)
    derivations = [params, states_section(device)] + ([activations] if activations is not None else [])
    derivations.append(flops_section(model, options))
    memory = memory_section(device)
    every_value = {k: v for _, _, _, vals in quantities for k, v in vals.items()}
    symbols = symbol_rows([terms.total for _, _, terms, _ in quantities], every_value)
    plots = [
        {"path": path, "caption": caption, "section": _figure_section(path)} for path, caption in options.plots.items()
    ]

    # [3 analysis] which terms lead as sizes grow; elasticities (memory without activations is
    # bytes-per-parameter times parameters: the same elasticities, left out)
    dominance = [row for label, _, terms, vals in quantities for row in dominance_rows([(label, terms)], grow, vals)]
    sensitivity = [
        row
        for label, letter, terms, vals in quantities
        if label != "memory (bytes)" or device.activations is not None
        for row in sensitivity_rows(label, terms.total, vals, letter)
    ]

    # [4 context] what the templates read; the errata where the document's model has some
    return {
        "model": _model_facts(model, params["published"]),
        "workload": {"batch": values["batch"], "seq": integer_text(values["seq"])},
        "symbols": symbols,
        "parameters": params,
        "derivations": derivations,
        "memory_after": "activations" if activations is not None else "states",
        "conventions": conventions_section(model, options),
        "memory": memory,
        "dominance": dominance,
        "sensitivity": sensitivity,
        "plots": plots,
        "loose_plots": [p for p in plots if p["section"] is None],
        "errata": errata_section(model, workload_of(model, options), memory, device),
    }
