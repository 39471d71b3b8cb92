"""Breakdowns + numbers -> plain dicts for the document templates (templates never see SymPy).

# [Model, options] -> [Breakdown (SymPy)] -> [rows of strings and Raw LaTeX] -> render.py

Every formula shown is ``sympy.latex`` of a term's own expression, with symbol names mapped to
the registry's LaTeX; every number is that expression evaluated exactly. Sections for memory,
activations, FLOPs, dominance and sensitivity appear when the modules that provide them exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from . import symbols as S
from .arch import Model
from .conventions import CONVENTIONS
from .errors import SymbolicError
from .model import convention_difference, parameters
from .numeric import evaluate
from .render import Raw
from .terms import Breakdown, Quantity
from .units import GB, GIB, format_flops

__all__ = [
    "GIB",
    "GB",
    "DocumentOptions",
    "latex",
    "substituted",
    "integer_text",
    "bytes_text",
    "symbol_rows",
    "term_rows",
    "section_rows",
    "view_rows",
    "parameters_section",
    "conventions_section",
    "errata_section",
    "derivation_context",
]

VIEWS = ("collect", "expand", "factor")
NOTE = "the design note"


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


def _names() -> dict[sp.Symbol, str]:
    return {entry.symbol: entry.latex for entry in S.REGISTRY.values()}


def latex(expr: sp.Expr) -> Raw:
    """LaTeX of ``expr`` in the registry's notation (``h`` for d_model, ``L`` for n_layers, ...)."""
    return Raw(sp.latex(sp.sympify(expr, strict=True), symbol_names=_names()))


def substituted(expr: sp.Expr, values: Mapping[str, int]) -> Raw:
    """LaTeX of ``expr`` with each symbol written as its number, unevaluated (``2 \\cdot 4096 \\cdot 32000``)."""
    expr = sp.sympify(expr, strict=True)
    names = {s: f"{values[str(s)]:,}".replace(",", "{,}") for s in expr.free_symbols}
    return Raw(sp.latex(expr, symbol_names=names, mul_symbol="dot"))


def integer_text(value: int) -> str:
    """An exact integer with thousands separators: ``6,738,415,616``."""
    return f"{int(value):,}"


def bytes_text(value: int | sp.Expr) -> dict[str, str]:
    """A byte count as text: exact bytes, GiB and GB (two decimals)."""
    number = sp.nsimplify(value) if not isinstance(value, int) else sp.Integer(value)
    exact = int(sp.floor(number)) if number.is_Integer is False else int(number)
    return {
        "bytes": integer_text(exact) if number.is_Integer else f"{float(number):,.1f}",
        "gib": f"{float(number) / GIB:,.2f}",
        "gb": f"{float(number) / GB:,.2f}",
    }


def _value(expr: sp.Expr, values: Mapping[str, int]) -> sp.Expr:
    return evaluate(expr, values)


def _number_text(value: sp.Expr) -> str:
    return integer_text(int(value)) if value.is_Integer else f"{float(value):,.2f}"


def symbol_rows(exprs: Iterable[sp.Expr], values: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per registry symbol that ``exprs`` use, in registry order: LaTeX, meaning, unit, value."""
    used = set().union(*(sp.sympify(e, strict=True).free_symbols for e in exprs)) if exprs else set()
    rows = []
    for name in S.ORDER:
        entry = S.REGISTRY[name]
        if entry.symbol in used:
            value = values.get(name)
            rows.append(
                {
                    "name": name,
                    "latex": Raw(entry.latex),
                    "meaning": entry.meaning,
                    "unit": entry.unit,
                    "value": integer_text(value) if value is not None else None,
                }
            )
    return rows


def term_rows(terms: Breakdown, values: Mapping[str, int], whole: sp.Expr | None = None) -> list[dict[str, Any]]:
    """One row per term: path, description, per-instance and count LaTeX, exact value and share.

    The share (percent) is of ``whole`` (a number), by default of the terms' own total. Byte
    terms carry GiB and GB as well.
    """
    numbers = {t.path: _value(t.total, values) for t in terms}
    total = sum(numbers.values(), sp.Integer(0)) if whole is None else whole
    rows = []
    for t in terms:
        n = numbers[t.path]
        row = {
            "path": t.path,
            "description": t.description,
            "formula": latex(t.expr),
            "count": latex(t.count),
            "total_formula": latex(t.total),
            "value": _number_text(n),
            "share": f"{100 * float(n / total):.2f}" if total else "0.00",
            "trainable": t.trainable,
            "source": t.source,
        }
        if terms.quantity is Quantity.BYTES:
            row.update(bytes_text(n))
        rows.append(row)
    return rows


def section_rows(terms: Breakdown, values: Mapping[str, int]) -> list[dict[str, Any]]:
    """Terms grouped by their first path segment (``embedding``, ``block``, ``forward``...).

    Each section has its terms, the count they repeat (``L`` for a layer group), the per-instance
    subtotal formula and the section's value.
    """
    whole = _value(terms.total, values)
    order: list[str] = []
    for t in terms:
        head = t.path.split(".")[0]
        if head not in order:
            order.append(head)
    out = []
    for head in order:
        part = terms.where(lambda t, head=head: t.path.split(".")[0] == head)
        counts = {t.count for t in part}
        count = counts.pop() if len(counts) == 1 else sp.Integer(1)
        per_instance = sp.factor(sp.Add(*(t.expr for t in part))) if count != 1 else part.total
        value = _value(part.total, values)
        out.append(
            {
                "name": head,
                "count": latex(count),
                "repeated": count != 1,
                "per_instance": latex(per_instance),
                "total_formula": latex(count * per_instance if count != 1 else part.total),
                "value": _number_text(value),
                "share": f"{100 * float(value / whole):.2f}" if whole else "0.00",
                "terms": term_rows(part, values, whole),
            }
        )
    return out


def view_rows(terms: Breakdown, views: Iterable[str] = VIEWS) -> list[dict[str, Any]]:
    """The total in each view (collect, expand, factor) as LaTeX."""
    return [{"name": how, "latex": latex(terms.view(how))} for how in views]


def breakdown_section(
    key: str,
    title: str,
    letter: str,
    terms: Breakdown,
    values: Mapping[str, int],
    intro: str = "",
    views: Iterable[str] = VIEWS,
) -> dict[str, Any]:
    """One derivation section of any quantity: grouped terms, the total's views, numbers, result.

    ``letter`` names the total in the formulas (``N`` for parameters); the total comes as exact
    text in the quantity's unit, plus GiB and GB for bytes.
    """
    collected = terms.view("collect")
    total = _value(terms.total, values)
    rows = term_rows(terms, values)
    out = {
        "key": key,
        "title": title,
        "intro": intro,
        "letter": Raw(letter),
        "unit": terms.quantity.unit,
        "bytes": terms.quantity is Quantity.BYTES,
        "sections": section_rows(terms, values),
        "views": view_rows(terms, views),
        "total_formula": latex(collected),
        "total_substituted": substituted(collected, values),
        "total": _number_text(total),
        "total_int": int(total) if total.is_Integer else None,
        "largest": max(rows, key=lambda r: float(r["share"]))["path"] if rows else None,
        "largest_share": max((float(r["share"]) for r in rows), default=0.0),
    }
    if out["bytes"]:
        out["total_bytes"] = bytes_text(total)
    return out


def workload_of(model: Model, options: DocumentOptions) -> dict[str, int]:
    """The document's ``batch`` and ``seq``: the options', else 1 x min(2048, learned positions)."""
    if options.workload is not None:
        return dict(options.workload)
    return {"batch": 1, "seq": min(2048, model.sizes.get("n_ctx", 2048))}


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


def flops_section(model: Model, options: DocumentOptions) -> dict[str, Any] | None:
    """FLOPs of one training step (``batch`` sequences of ``seq`` tokens), when the FLOPs module exists."""
    from .formulas import flops

    values = _sizes(model, options)
    terms = flops.flops_terms(model, "exact", options.recompute)
    out = breakdown_section(
        "flops",
        "Training FLOPs of one step",
        "C",
        terms,
        values,
        f"One training step of {values['batch']} sequence(s) of {values['seq']:,} tokens, exact convention, "
        f"recomputation: {options.recompute}. A multiply-add counts as 2 FLOPs; the backward pass is twice the "
        "forward. Attention counts every one of the s × s query-key pairs (no causal mask).",
        views=("expand", "factor"),
    )
    total = _value(terms.total, values)
    causal = _value(flops.flops_terms(model, "exact", options.recompute, causal=True).total, values)
    out["causal"] = {
        "total": _number_text(causal),
        "saving": f"{100 * float(1 - causal / total):.2f}" if total else "0.00",
    }
    out["human"] = format_flops(total)
    return out


def _degree_ones(terms: Breakdown, values: Mapping[str, int]) -> Breakdown:
    """Terms with parallel degrees that are 1 written as 1 (presentation only; values unchanged)."""
    ones = {S.symbol(k): sp.Integer(1) for k in ("dp", "tp", "pp", "cp", "ep") if values.get(k) == 1}
    return terms.map(lambda t: t.with_(expr=t.expr.xreplace(ones), count=t.count.xreplace(ones)))


def memory_report(model: Model, options: DocumentOptions) -> Any:
    """The memory module's report for ``model`` at the document's workload and settings."""
    from . import memory as mem
    from .parallel import Parallelism

    settings = {"recompute": options.recompute, **options.memory}
    degrees = {k: settings.pop(k) for k in ("dp", "tp", "pp", "zero") if k in settings}
    parallel = Parallelism(**degrees)
    load = workload_of(model, options)
    workload = mem.Workload(load["batch"], load["seq"])
    try:
        return mem.memory(model, workload, parallel, **settings)
    except SymbolicError as err:
        # a model whose transformers implementation has only eager attention
        if err.field != "--attention" or "attention" in settings:
            raise
        return mem.memory(model, workload, parallel, **settings, attention="eager")


def _memory_intro(report: Any) -> str:
    settings = report.settings
    return (
        f"precision recipe {settings.get('precision')}, optimizer {settings.get('optimizer')}, "
        f"data/tensor/pipeline parallel {settings.get('dp')}/{settings.get('tp')}/{settings.get('pp')}, "
        f"ZeRO stage {settings.get('zero')}"
    )


def per_parameter_rows(report: Any) -> list[dict[str, Any]] | None:
    """Bytes per parameter of each state category, when each is a constant times the parameter count.

    Returns ``None`` where some category is not a multiple of the model's parameter total (ZeRO
    shards, frozen or quantized tensors): then the states are not ``k N``.
    """
    n_total = _degree_ones(parameters(report.model), report.values).total
    rows = []
    for name in ("weights", "gradients", "master", "optimizer"):
        expr = _degree_ones(report.category(name), report.values).total
        ratio = sp.cancel(expr / n_total)
        if not ratio.is_Number:
            return None
        rows.append({"name": name, "per_parameter": _number_text(ratio), "ratio": ratio})
    total = sum((r.pop("ratio") for r in rows), sp.Integer(0))
    rows.append({"name": "states", "per_parameter": _number_text(total)})
    return rows


def states_section(report: Any) -> dict[str, Any]:
    """Model states per device (weights, gradients, master weights, optimizer state), term by term."""
    values = report.values
    terms = _degree_ones(report.terms.where(lambda t: "transient" not in t.tags), values)
    out = breakdown_section(
        "states",
        "Model states per device",
        "M_{\\mathrm{states}}",
        terms,
        values,
        f"The bytes one device holds for the parameters whatever the workload: {_memory_intro(report)}.",
        views=("expand",),
    )
    n_value = int(_value(parameters(report.model).total, values))
    per_parameter = per_parameter_rows(report)
    out["per_parameter"] = per_parameter
    out["parameters"] = integer_text(n_value)
    out["states_formula"] = None
    if per_parameter is not None:
        k = per_parameter[-1]["per_parameter"]
        states = report.bytes("states")
        out["states_formula"] = Raw(f"{k} N = {k} \\cdot {_latex_int(n_value)} = {_latex_int(states)}")
    return out


def activations_section(report: Any) -> dict[str, Any] | None:
    """The activations one device keeps from forward to backward, term by term (None when not computed)."""
    if report.activations is None:
        return None
    values = report.values
    settings = report.settings
    return breakdown_section(
        "activations",
        "Activations per device",
        "M_{\\mathrm{act}}",
        _degree_ones(report.activations, values),
        values,
        f"The tensors autograd saves in the forward pass and frees in the backward pass, for batch "
        f"{settings.get('batch')} and sequence {settings.get('seq')}: {settings.get('attention', 'sdpa')} "
        f"attention, recomputation {settings.get('recompute', 'none')}, {_memory_intro(report)}. "
        "Grouped by where they are saved: every decoder layer (block), once for all layers (shared), "
        "the final norm and output projection (head), and the loss.",
        views=("expand",),
    )


def memory_section(report: Any) -> dict[str, Any]:
    """The peak per device: states + activations + the largest transient buffer, derived with numbers."""
    values = report.values
    per_device = report.per_device()
    transient = _degree_ones(report.category("transient"), values)
    largest = report.transient_expr
    out: dict[str, Any] = {
        "key": "memory",
        "title": "Memory per device: the peak",
        "intro": "The peak of a training step is the model states, plus the activations (all alive when "
        "the backward pass starts), plus the largest buffer the backward pass creates on top of them.",
        "transient": term_rows(transient, values) if len(transient) else [],
        "transient_formula": latex(_degree_ones_expr(largest, values)),
        "per_device": [
            {"name": name, **(bytes_text(value) if value is not None else {"bytes": None, "gib": None, "gb": None})}
            for name, value in per_device.items()
        ],
        "notes": list(report.notes),
        "single_device": report.settings.get("devices") == 1,
        "peak": None,
    }
    if per_device.get("peak") is not None:
        parts = [per_device[k] for k in ("states", "activations", "transient")]
        out["peak"] = {
            "sum": Raw(" + ".join(_latex_int(v) for v in parts) + f" = {_latex_int(per_device['peak'])}"),
            **bytes_text(per_device["peak"]),
        }
    return out


def _latex_int(value: int) -> str:
    return f"{int(value):,}".replace(",", "{,}")


def _degree_ones_expr(expr: sp.Expr, values: Mapping[str, int]) -> sp.Expr:
    ones = {S.symbol(k): sp.Integer(1) for k in ("dp", "tp", "pp", "cp", "ep") if values.get(k) == 1}
    return sp.sympify(expr, strict=True).xreplace(ones)


def dominance_rows(
    quantities: Iterable[tuple[str, Breakdown]], grow: Iterable[str], values: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Which terms lead each quantity as one size grows (``symbolic.analysis.dominant``)."""
    from . import analysis

    rows = []
    for label, terms in quantities:
        for name in grow:
            if S.symbol(name) not in terms.total.free_symbols:
                continue
            result = analysis.dominant(terms, name, values=values)
            rows.append(
                {
                    "quantity": label,
                    "grows": name,
                    "order": result.words,
                    "leaders": ", ".join(path for path, _ in result.leaders[:4])
                    + (f" (+{len(result.leaders) - 4} more)" if len(result.leaders) > 4 else ""),
                    "leading": latex(sp.Add(*(lead.term for _, lead in result.leaders))),
                }
            )
    return rows


def sensitivity_rows(label: str, expr: sp.Expr, values: Mapping[str, int], letter: str = "X") -> list[dict[str, Any]]:
    """Elasticity of ``expr`` in each of its symbols, symbolic and at ``values`` (``symbolic.analysis``).

    Each row has the elasticity as a formula and a number, and its numerator ``x dX/dx`` (the
    elasticity is that over the total ``letter``), which stays readable where the fraction does not.
    """
    from . import analysis

    return [
        {
            "quantity": label,
            "letter": Raw(letter),
            "symbol": Raw(S.by_symbol(row.symbol).latex),
            "name": str(row.symbol),
            "elasticity": latex(row.elasticity),
            "numerator": latex(sp.expand(row.symbol * sp.diff(expr, row.symbol))),
            "value": f"{float(row.elasticity_value):.4f}",
        }
        for row in analysis.sensitivity_table(expr, values)
    ]


def conventions_section(model: Model, options: DocumentOptions) -> dict[str, Any]:
    """Each parameter convention's total for ``model`` and what it leaves out, and exact minus basic."""
    values = _sizes(model, options)
    rows = []
    for name, conv in CONVENTIONS.items():
        if "parameters" not in conv.quantities:
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
                "total": integer_text(int(_value(terms.total, values))),
                "note": "",
            }
        )
    differences = []
    for other in ("basic", "basic-gated"):
        try:
            diff = convention_difference(model, "exact", other)
        except SymbolicError:
            continue
        differences.append(
            {
                "first": "exact",
                "second": other,
                "rows": [
                    {"path": t.path, "formula": latex(t.total), "value": _number_text(_value(t.total, values))}
                    for t in diff
                ],
                "total": _number_text(_value(diff.total, values)),
            }
        )
    return {"rows": rows, "differences": differences}


# What the design note wrote about llama2-7b, quoted; each claim is checked against a computed value.
NOTE_CLAIMS: dict[str, dict[str, str]] = {
    "parameters": {"quote": "N(llama2-7b) = 6738149376, almost 7b parameters.", "value": "6,738,149,376"},
    "model_states": {"quote": "total memory usage is 16N (bytes). With a llama2-7b, it becomes 104G", "value": "104G"},
}


def _activation_group(path: str) -> str:
    """Which part of a layer an activation term belongs to, for comparing two conventions."""
    if path.rsplit(".", 1)[-1] in ("qk_atten", "logsumexp", "scores", "probs", "attn_weights", "softmax"):
        return "scores"
    if ".mlp" in path or path.startswith("mlp"):
        return "mlp"
    if "norm" in path:
        return "norms"
    if "attention" in path:
        return "attention"
    return "rest"


def _grouped_gib(terms: Breakdown, values: Mapping[str, int]) -> dict[str, str]:
    out: dict[str, sp.Expr] = {}
    for t in terms:
        group = _activation_group(t.path)
        out[group] = out.get(group, sp.Integer(0)) + _value(t.total, values)
    return {k: f"{float(v) / GIB:,.2f} GiB" for k, v in out.items()}


def errata_section(model: Model, options: DocumentOptions, memory: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The note's slips about ``model``: what it says, the correction and why (only for the note's llama2-7b)."""
    if model.name != "llama2-7b":
        return []
    values = dict(model.sizes)
    literal = int(_value(parameters(model, "basic").total, values))
    gated = int(_value(parameters(model, "basic-gated").total, values))
    exact = int(_value(parameters(model, "exact").total, values))
    third = convention_difference(model, "basic-gated", "basic")
    missing = convention_difference(model, "exact", "basic-gated")
    norms = [t for t in missing if _value(t.total, values) != 0]
    out = [
        {
            "topic": "The composed formula does not give the stated number",
            "note": "N(model) = n_vocab*d_model + n_blocks*(4(d_model*d_head*n_head) + 2(d_model*d_ffn)) + d_model*n_vocab",
            "correction": f"As written, with two MLP matrices, it gives {integer_text(literal)}. The stated "
            f"{NOTE_CLAIMS['parameters']['value']} is what it gives with Llama's gated MLP, whose third matrix "
            f"(gate_proj, d_model*d_ffn per layer) adds {integer_text(int(_value(third.total, values)))}.",
            "ok": literal == gated,
        },
        {
            "topic": "The stated total leaves out the RMSNorm weights",
            "note": NOTE_CLAIMS["parameters"]["quote"],
            "correction": f"transformers builds {integer_text(exact)} parameters. The note counts no norms; Llama "
            "has an RMSNorm scale before attention and before the MLP in every layer and a final one: "
            + " + ".join(f"{integer_text(int(_value(t.total, values)))} ({t.path})" for t in norms)
            + f" = {integer_text(int(_value(missing.total, values)))}.",
            "ok": gated == exact,
        },
    ]
    single = bool(memory and memory.get("single_device"))
    states = next((row for row in (memory or {}).get("per_device", ()) if row["name"] == "states"), None)
    if states is not None and single:
        out.append(
            {
                "topic": "16N bytes is not 104G",
                "note": NOTE_CLAIMS["model_states"]["quote"],
                "correction": f"16 bytes per parameter is right (the model states section derives it), but "
                f"16 × {integer_text(exact)} = {states['bytes']} bytes = {states['gb']} GB = {states['gib']} GiB, "
                f"neither 104 GB nor 104 GiB: 104 GB would take {104e9 / 16 / 1e9:.1f} billion parameters.",
                "ok": False,
            }
        )
    from .formulas import activations as acts
    from .formulas.activations.basic import norms_per_layer

    basic = acts.activation_terms(model, "basic")
    values = _sizes(model, options)
    note_bytes = bytes_text(_value(basic.total, values))
    exact_row = next((r for r in (memory or {}).get("per_device", ()) if r["name"] == "activations"), None)
    if exact_row is not None and exact_row["bytes"] is not None and single:
        report = memory_report(model, options)
        ours = _grouped_gib(report.activations, report.values)
        theirs = _grouped_gib(basic, values)
        n_norms = norms_per_layer(model)
        why = (
            f" The difference: the note stores every head's s × s score matrix in 16 bits "
            f"({theirs.get('scores', '0')}), where SDPA keeps one log-sum-exp per query row "
            f"({ours.get('scores', '0.00 GiB')}); it counts a two-matrix MLP ({theirs.get('mlp', '0')}) where "
            f"Llama's gated MLP saves its input and four b*s*d_ffn tensors ({ours.get('mlp', '0')}); and "
            f"{n_norms} norms per layer saving a 16-bit input ({theirs.get('norms', '0')}) where RMSNorm keeps an "
            f"fp32 copy of its input, its reciprocal RMS and the normalized input ({ours.get('norms', '0')})."
        )
        correction = (
            f"The note's own formula at batch {values['batch']}, sequence {values['seq']:,} gives "
            f"{note_bytes['bytes']} bytes = {note_bytes['gib']} GiB; the exact count (checked against "
            f"PyTorch autograd on transformers) is {exact_row['bytes']} bytes = {exact_row['gib']} GiB." + why
        )
    else:
        correction = (
            f"The note's own formula at batch {values['batch']}, sequence {values['seq']:,} gives "
            f"{note_bytes['bytes']} bytes = {note_bytes['gib']} GiB."
        )
    out.append(
        {
            "topic": "The activations example was never finished",
            "note": "Use llama2-7b as example,",
            "correction": correction,
            "ok": False,
        }
    )
    for said, correction in (*acts.ERRATA, acts.BACKWARD_CLAIM):
        out.append({"topic": "Activations", "note": said, "correction": correction, "ok": False})
    return out


def _figure_section(path: str) -> str | None:
    """The section a figure belongs in, from its file name: ``memory``, ``flops`` or None (its own)."""
    name = path.rsplit("/", 1)[-1].lower()
    for key in ("memory", "flops"):
        if key in name:
            return key
    return None


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
    params = parameters_section(model, options)
    param_terms = parameters(model, options.convention)
    quantities: list[tuple[str, str, Breakdown, Mapping[str, int]]] = [("parameters", "N", param_terms, values)]
    report = memory_report(model, options)
    states = states_section(report)
    activations = activations_section(report)
    memory = memory_section(report)
    derivations = [params, states] + ([activations] if activations is not None else [])
    mem_terms = report.terms.where(lambda t: "transient" not in t.tags)
    mem_terms = _degree_ones(mem_terms + (report.activations or Breakdown(Quantity.BYTES)), report.values)
    quantities.append(
        ("memory (bytes)", r"\left(M_{\mathrm{states}} + M_{\mathrm{act}}\right)", mem_terms, report.values)
    )
    from .formulas import flops

    flop_terms = flops.flops_terms(model, "exact", options.recompute)
    derivations.append(flops_section(model, options))
    quantities.append(("FLOPs", "C", flop_terms, values))
    symbols = symbol_rows(
        [terms.total for _, _, terms, _ in quantities],
        {k: v for _, _, _, vals in quantities for k, v in vals.items()},
    )
    plots = [
        {"path": path, "caption": caption, "section": _figure_section(path)} for path, caption in options.plots.items()
    ]
    context: dict[str, Any] = {
        "model": {
            "name": model.name,
            "family": model.arch.family,
            "source": model.source,
            "published": params["published"],
            "config": [
                {"key": k, "value": v if isinstance(v, str) else repr(v)}
                for k, v in sorted(model.config.items())
                if isinstance(v, str | int | float | bool)
            ],
        },
        "workload": {"batch": values["batch"], "seq": integer_text(values["seq"])},
        "symbols": symbols,
        "parameters": params,
        "derivations": derivations,
        "memory_after": "activations" if activations is not None else "states",
        "conventions": conventions_section(model, options),
        "memory": memory,
        "dominance": [
            row for label, _, terms, vals in quantities for row in dominance_rows([(label, terms)], options.grow, vals)
        ],
        # memory without activations is bytes-per-parameter times parameters: same elasticities, left out
        "sensitivity": [
            row
            for label, letter, terms, vals in quantities
            if label != "memory (bytes)" or report.activations is not None
            for row in sensitivity_rows(label, terms.total, vals, letter)
        ],
        "plots": plots,
        "loose_plots": [p for p in plots if p["section"] is None],
    }
    context["errata"] = errata_section(model, options, memory)
    return context
