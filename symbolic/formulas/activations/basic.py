"""The design note's forward activation formula (the ``basic`` convention), term for term.

The note (section 2, "activations occupancy") assumes mixed precision: every
element 2 bytes. Its per-operation lines and its total agree except for the MLP line, which lacks
the ``* 2 [bytes]`` the total applies; we follow the total (see :data:`ERRATA`). It counts
``n_norms`` norm layers per decoder layer, one ``b*s*d_model`` each.
"""

from __future__ import annotations

import sympy as sp

from ... import symbols as S
from ...arch import Model, NormPlacement
from ...errors import SymbolicError
from ...terms import Breakdown, Quantity, Term
from ..basic import NOTE_SOURCE
from .options import ActivationOptions

__all__ = ["basic_activation_terms", "ERRATA", "BACKWARD_CLAIM", "norms_per_layer"]

BYTES = Quantity.BYTES
SOURCE = NOTE_SOURCE.replace("section 1", "section 2, activations occupancy")
# (what the note says, the correction)
ERRATA = (
    (
        "2.5 Mlp layer: O(mlp) = b*s*d_ffn + b*s*d_ffn + b*s*d_model, with no '* 2 [bytes]', "
        "while the total O(forward) multiplies it by 2",
        "the line and the total disagree; the note assumes mixed precision, 2 bytes per element, so the basic "
        "convention follows the total",
    ),
    (
        "2.3 is titled 'Query' with the formula b*s*n_head*d_head",
        "a b*s*n_head*d_head tensor after the scores is the attention output (probabilities times V); the "
        "queries, and V itself, are already counted in 2.1 (QKV projection)",
    ),
    (
        "2.5 numbers both the Mlp layer and the Norm",
        "a numbering slip, not a double count: the norms are a separate item (2.6), counted once",
    ),
)
BACKWARD_CLAIM = (
    "O(backward) = O(forward)",
    "backward does not keep a second copy of the activations: it frees each saved tensor once its layer's "
    "gradient is done; what it adds on top are transient buffers (the logits' gradient, a recomputed layer), "
    "which the peak counts",
)
NOTE_BYTES = 2  # "we assume mixed precision mode below"
ONE = sp.Integer(1)


def norms_per_layer(model: Model) -> int:
    """The note's ``n_norms``: norm layers in one decoder layer of ``model`` (norms)."""
    arch = model.arch
    if arch.parallel_block:
        return arch.parallel_norms
    return 4 if arch.norm_placement is NormPlacement.SANDWICH else 2


def basic_activation_terms(model: Model, options: ActivationOptions | None = None) -> Breakdown:
    """The note's O(forward) of ``model`` as terms (bytes): 2 bytes per element, no recompute."""
    o = options or ActivationOptions()
    if o.recompute != "none":
        raise SymbolicError("recompute", "the note's formula has no recompute; use exact or megatron")
    if model.arch.attention.kind.value != "standard" or len(model.arch.groups) != 1:
        raise SymbolicError("convention", "basic describes dense stacks with standard attention; use exact")
    b, s, h, a, dh, f, V = S.batch, S.seq, S.d_model, S.n_heads, S.d_head, S.d_ffn, S.n_vocab
    L = model.arch.groups[0].count
    blk = model.arch.groups[0].name
    n_norms = norms_per_layer(model)

    def term(path: str, expr: sp.Expr, what: str, count: sp.Expr = ONE, shards: frozenset = frozenset()) -> Term:
        return Term(path, expr * NOTE_BYTES, BYTES, what, count=count, source=SOURCE, shards=shards)

    # how tensor/sequence parallelism splits each line (ours, not the note's: it has no parallelism)
    heads, width, sequence = frozenset({a}), frozenset({f}), frozenset({s})

    return Breakdown(
        BYTES,
        (
            term("embedding", b * s * h, "1. O(embedding) = n_batch*n_seq*d_model*2", shards=sequence),
            term(
                f"{blk}.attention.qkv_proj", 3 * b * s * a * dh, "2.1 O(qkv_proj) = 3*(b*s*n_head*d_head)*2", L, heads
            ),
            term(f"{blk}.attention.qk_atten", b * a * s**2, "2.2 O(qk_atten) = b*n_head*s*s*2", L, heads),
            term(f"{blk}.attention.v", b * s * a * dh, "2.3 O(v) = b*s*n_head*d_head*2", L, heads),
            term(f"{blk}.attention.linear_project", b * s * h, "2.4 O(l) = b*s*d_model*2", L),
            term(
                f"{blk}.mlp",
                2 * b * s * f + b * s * h,
                "2.5 O(mlp) = (2*b*s*d_ffn + b*s*d_model)*2 (errata 1)",
                L,
                width,
            ),
            term(
                f"{blk}.norm",
                n_norms * b * s * h,
                f"2.5 O(norm) = n_norms*b*s*d_model*2, n_norms={n_norms}",
                L,
                sequence,
            ),
            term("lm_head", b * s * V, "3. O(lm_head) = b*s*n_vocab*2"),
        ),
    )
