"""Errata as data: what the design note claimed about the model it worked through, beside the corrections.

The note worked one example, llama2-7b; :data:`ERRATA_FOR` says which document carries which errata,
and :data:`NOTE_CLAIMS` quotes the note's claims (each is checked against a computed value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import sympy as sp

from ..arch import Model
from ..formulas.activations import BACKWARD_CLAIM, ERRATA
from ..formulas.activations.basic import norms_per_layer
from ..memory import DeviceMemory
from ..model import activation_terms, convention_difference, parameters
from ..terms import Breakdown
from ..units import GIB
from .rows import bytes_text, integer_text
from .values import value_at

__all__ = ["NOTE_CLAIMS", "ERRATA_FOR", "errata_section"]


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
        out[group] = out.get(group, sp.Integer(0)) + value_at(t.total, values)
    return {k: f"{float(v) / GIB:,.2f} GiB" for k, v in out.items()}


def errata_section(
    model: Model, workload: Mapping[str, int], memory: Mapping[str, Any] | None, device: DeviceMemory
) -> list[dict[str, Any]]:
    """The note's slips about ``model`` beside their corrections and why (rows; empty for a model the note
    did not work through). ``workload`` is the document's batch and seq, ``memory`` its memory section and
    ``device`` the memory it shows (bytes)."""
    build = ERRATA_FOR.get(model.name)
    return build(model, workload, memory, device) if build is not None else []


def _design_note_llama2(
    model: Model, workload: Mapping[str, int], memory: Mapping[str, Any] | None, device: DeviceMemory
) -> list[dict[str, Any]]:
    """The design note's llama2-7b worked example: its parameter count, its 16N bytes, its activations."""
    values = dict(model.sizes)
    literal = int(value_at(parameters(model, "basic").total, values))
    gated = int(value_at(parameters(model, "basic-gated").total, values))
    exact = int(value_at(parameters(model, "exact").total, values))
    third = convention_difference(model, "basic-gated", "basic")
    missing = convention_difference(model, "exact", "basic-gated")
    norms = [t for t in missing if value_at(t.total, values) != 0]
    out = [
        {
            "topic": "The composed formula does not give the stated number",
            "note": "N(model) = n_vocab*d_model + n_blocks*(4(d_model*d_head*n_head) + 2(d_model*d_ffn)) + d_model*n_vocab",
            "correction": f"As written, with two MLP matrices, it gives {integer_text(literal)}. The stated "
            f"{NOTE_CLAIMS['parameters']['value']} is what it gives with Llama's gated MLP, whose third matrix "
            f"(gate_proj, d_model*d_ffn per layer) adds {integer_text(int(value_at(third.total, values)))}.",
            "ok": literal == gated,
        },
        {
            "topic": "The stated total leaves out the RMSNorm weights",
            "note": NOTE_CLAIMS["parameters"]["quote"],
            "correction": f"transformers builds {integer_text(exact)} parameters. The note counts no norms; Llama "
            "has an RMSNorm scale before attention and before the MLP in every layer and a final one: "
            + " + ".join(f"{integer_text(int(value_at(t.total, values)))} ({t.path})" for t in norms)
            + f" = {integer_text(int(value_at(missing.total, values)))}.",
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
    basic = activation_terms(model, "basic")
    values = {**model.sizes, **workload}
    note_bytes = bytes_text(value_at(basic.total, values))
    exact_row = next((r for r in (memory or {}).get("per_device", ()) if r["name"] == "activations"), None)
    if exact_row is not None and exact_row["bytes"] is not None and single:
        assert device.activations is not None
        ours = _grouped_gib(device.activations, device.values)
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
    for said, correction in (*ERRATA, BACKWARD_CLAIM):
        out.append({"topic": "Activations", "note": said, "correction": correction, "ok": False})
    return out


ErrataBuilder = Callable[[Model, Mapping[str, int], Mapping[str, Any] | None, DeviceMemory], list[dict[str, Any]]]

# which document carries which errata: the note worked through one model
ERRATA_FOR: Mapping[str, ErrataBuilder] = MappingProxyType({"llama2-7b": _design_note_llama2})
