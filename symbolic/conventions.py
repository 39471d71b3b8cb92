"""Named conventions: which formulas a figure is computed with, as values.

``exact`` (the default) counts what real implementations build; ``basic`` is the design note
literally; ``basic-gated`` is the note's formula with the gated MLP's third matrix, which is how
the note computed its llama2-7b number. Other modules add conventions for other quantities
(``megatron`` for activations, FLOPs conventions) in the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SymbolicError

__all__ = ["Convention", "CONVENTIONS", "get_convention", "DEFAULT"]


@dataclass(frozen=True)
class Convention:
    """A named way of counting: what it covers, where it comes from, what it leaves out."""

    name: str
    title: str
    source: str
    leaves_out: str
    quantities: frozenset[str]


CONVENTIONS: dict[str, Convention] = {}


def register(convention: Convention) -> Convention:
    """Add a convention to the table (names are unique) and return it."""
    if convention.name in CONVENTIONS:
        raise ValueError(f"convention {convention.name!r} is already registered")
    CONVENTIONS[convention.name] = convention
    return convention


DEFAULT = "exact"

register(
    Convention(
        "exact",
        "Exact: what the implementation builds",
        "Hugging Face transformers 5.24 modules; checked against models built on the meta device",
        "nothing: every weight, bias and norm is counted, tied tensors once",
        frozenset({"parameters", "memory", "activations", "flops"}),
    )
)
register(
    Convention(
        "basic",
        "The design note, literally",
        "the design note, section 1 (its formula as written)",
        "norms, biases, learned positions, grouped-query sharing, tying, the gated MLP's third matrix",
        frozenset({"parameters", "memory", "activations"}),
    )
)
register(
    Convention(
        "basic-gated",
        "The design note's formula with the gated MLP's third matrix",
        "design note, section 1: how its llama2-7b figure 6,738,149,376 comes out",
        "norms, biases, learned positions, grouped-query sharing, tying",
        frozenset({"parameters"}),
    )
)


# [FLOPs conventions] (symbolic/formulas/flops.py). A later quantity that shares one of these
# names (megatron activations) should add its quantity to this entry rather than register it again.
register(
    Convention(
        "kaplan",
        "Kaplan et al. 2020, Table 1: C_forward = 2N + 2 n_layer n_ctx d_attn per token",
        "Kaplan et al. 2020, Scaling Laws for Neural Language Models (arXiv 2001.08361), Table 1",
        "embeddings, de-embedding, biases, norms, non-linearities; causal attention half-counted",
        frozenset({"flops"}),
    )
)
register(
    Convention(
        "chinchilla",
        "Hoffmann et al. 2022, Appendix F: every matrix product, embeddings and softmax, backward = 2x forward",
        "Hoffmann et al. 2022, Training Compute-Optimal LLMs (arXiv 2203.15556), Appendix F",
        "norms, biases, non-linearities; a two-matrix MLP",
        frozenset({"flops"}),
    )
)
register(
    Convention(
        "megatron",
        "Megatron: 72BLsh^2(1 + s/6h + V/12hL) per step; recompute variants (Eq. 8, Narayanan Eq. 3)",
        "Korthikanti et al. 2022 (arXiv 2205.05198), App. A; Narayanan et al. 2021 (arXiv 2104.04473), Eq. 3",
        "GQA, gated MLPs, MoE (assumes MHA, a 4h MLP and tied logits); non-matrix operations",
        frozenset({"flops", "activations"}),  # activations: Korthikanti Table 2 (formulas/activations/megatron.py)
    )
)
register(
    Convention(
        "palm",
        "PaLM: 6N + 12 L H Q T per token (model FLOPs for MFU)",
        "Chowdhery et al. 2022, PaLM (arXiv 2204.02311), Appendix B",
        "rematerialisation (counted separately as hardware FLOPs)",
        frozenset({"flops"}),
    )
)


def get_convention(name: str, quantity: str = "parameters") -> Convention:
    """Return the convention called ``name``; a clear error names the allowed ones."""
    allowed = [c for c, conv in CONVENTIONS.items() if quantity in conv.quantities]
    if name not in allowed:
        raise SymbolicError("convention", f"unknown {name!r} for {quantity}; allowed: {', '.join(allowed)}")
    return CONVENTIONS[name]
