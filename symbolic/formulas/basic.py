"""The design note's parameter formulas (the ``basic`` convention), term for term.

The note (section 1) counts an embedding ``n_vocab*d_model``, per block
``3*(d_model*d_head*n_head) + d_head*n_head*d_model`` for attention and
``d_model*d_ffn + d_ffn*d_model`` for a two-matrix MLP, and an lm_head ``d_model*n_vocab``. It
leaves out norms, biases and positions, assumes ``n_kv_heads == n_heads`` and never ties.
"""

from __future__ import annotations

import sympy as sp

from .. import symbols as S
from ..arch import Arch, MLPKind
from ..errors import SymbolicError
from ..terms import Breakdown, Quantity, Term

__all__ = ["basic_parameter_terms", "NOTE_SOURCE"]

NOTE_SOURCE = "the design note, section 1"
PARAMETERS = Quantity.PARAMETERS
ONE = sp.Integer(1)


def basic_parameter_terms(arch: Arch, gated: bool = False) -> Breakdown:
    """The note's parameter count of ``arch`` as terms (parameters).

    ``gated=False`` is the note's literal two-matrix MLP; ``gated=True`` uses three matrices
    when ``arch`` has a gated MLP, which is how the note's own llama2-7b number was computed.
    """
    if arch.is_moe or len(arch.groups) != 1:
        raise SymbolicError("convention", "basic describes dense, uniform stacks only; use exact")
    h, V, f, a, dh = S.d_model, S.n_vocab, S.d_ffn, S.n_heads, S.d_head
    count = arch.groups[0].count
    block = arch.groups[0].name
    matrices = 3 if gated and arch.mlp.kind is MLPKind.GATED else 2
    mlp_what = "three-matrix (gated) MLP" if matrices == 3 else "two-linear MLP"

    def term(path: str, expr: sp.Expr, description: str, n: sp.Expr = ONE) -> Term:
        return Term(path, expr, PARAMETERS, description, count=n, source=NOTE_SOURCE)

    return Breakdown(
        PARAMETERS,
        (
            term("embedding.tokens.weight", V * h, "embedding look-up table n_vocab*d_model"),
            term(f"{block}.attention.qkv", 3 * (h * dh * a), "N(Q,K,V) = 3*(d_model*d_head*n_head)", count),
            term(f"{block}.attention.o_proj", dh * a * h, "output projection d_head*n_head*d_model", count),
            term(f"{block}.mlp", matrices * h * f, f"{mlp_what}: {matrices}*d_model*d_ffn", count),
            term("lm_head.weight", h * V, "lm_head d_model*n_vocab (never tied in the note)"),
        ),
    )
