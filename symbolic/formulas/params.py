"""Parameter counts of every part of a stack, as named terms (the ``exact`` convention).

Each parameter tensor is one :class:`~symbolic.terms.Term` whose path mirrors Hugging Face's
module names (``block.attention.q_proj.weight``). Fused tensors (GPT-2's ``c_attn``, Phi-3's
``qkv_proj``) hold exactly the parameters of their parts, so they are written as their parts.
"""

from __future__ import annotations

import sympy as sp

from .. import symbols as S
from ..arch import Arch, AttentionKind, LayerGroup, MLPKind, Norm, NormKind, NormPlacement, QKNorm
from ..arch import Positions as Pos
from ..terms import Breakdown, Quantity, Split, Term

__all__ = ["parameter_terms"]

PARAMETERS = Quantity.PARAMETERS
ONE = sp.Integer(1)


def _tensor(
    path: str,
    shape: tuple[sp.Expr, ...],
    description: str,
    count: sp.Expr = ONE,
    split: Split = Split.NONE,
    copies: sp.Expr = ONE,
    expert: bool = False,
) -> Term:
    expr = copies * sp.Mul(*shape)
    return Term(
        path=path,
        expr=expr,
        quantity=PARAMETERS,
        description=description,
        count=count,
        shape=tuple(sp.sympify(d, strict=True) for d in shape),
        copies=sp.sympify(copies, strict=True),
        split=split,
        expert=expert,
    )


def _linear(
    path: str,
    d_in: sp.Expr,
    d_out: sp.Expr,
    bias: bool,
    description: str,
    count: sp.Expr = ONE,
    split: Split = Split.COLUMN,
    copies: sp.Expr = ONE,
    expert: bool = False,
) -> list[Term]:
    """A linear layer's weight (d_out x d_in) and, if it has one, its bias (d_out)."""
    out = [_tensor(f"{path}.weight", (d_out, d_in), description, count, split, copies, expert)]
    if bias:
        # a row-parallel layer's bias is added after the all-reduce: replicated
        bias_split = Split.COLUMN if split is Split.COLUMN else Split.NONE
        out.append(_tensor(f"{path}.bias", (d_out,), f"bias of {description}", count, bias_split, copies, expert))
    return out


def _norm(path: str, norm: Norm, width: sp.Expr, description: str, count: sp.Expr = ONE) -> list[Term]:
    """A norm's weight and bias (none for a parameter-free LayerNorm)."""
    if norm.kind is NormKind.NONPARAMETRIC:
        return []
    out = [_tensor(f"{path}.weight", (width,), f"{description} scale", count)]
    if norm.bias:
        out.append(_tensor(f"{path}.bias", (width,), f"{description} shift", count))
    return out


def _attention(arch: Arch, prefix: str, count: sp.Expr) -> list[Term]:
    att = arch.attention
    h, a = S.d_model, S.n_heads
    p = f"{prefix}.attention"
    if att.kind is AttentionKind.MLA:
        qk = S.d_nope + S.d_rope
        terms: list[Term] = []
        if att.q_lora:
            terms += _linear(
                f"{p}.q_a_proj", h, S.q_lora_rank, att.qkv_bias, "query down-projection", count, Split.NONE
            )
            terms += _norm(f"{p}.q_a_norm", Norm(NormKind.RMSNORM), S.q_lora_rank, "query latent norm", count)
            terms += _linear(f"{p}.q_b_proj", S.q_lora_rank, a * qk, False, "query up-projection", count)
        else:
            terms += _linear(f"{p}.q_proj", h, a * qk, False, "query projection", count)
        terms += _linear(
            f"{p}.kv_a_proj",
            h,
            S.kv_lora_rank + S.d_rope,
            att.qkv_bias,
            "key/value down-projection with the shared rotary key",
            count,
            Split.NONE,
        )
        terms += _norm(f"{p}.kv_a_norm", Norm(NormKind.RMSNORM), S.kv_lora_rank, "key/value latent norm", count)
        terms += _linear(
            f"{p}.kv_b_proj", S.kv_lora_rank, a * (S.d_nope + S.d_v), False, "key/value up-projection", count
        )
        terms += _linear(f"{p}.o_proj", a * S.d_v, h, att.out_bias, "attention output projection", count, Split.ROW)
        return terms
    g, dh = S.n_kv_heads, S.d_head
    terms = []
    terms += _linear(f"{p}.q_proj", h, a * dh, att.qkv_bias, "query projection", count)
    terms += _linear(f"{p}.k_proj", h, g * dh, att.qkv_bias, "key projection", count)
    terms += _linear(f"{p}.v_proj", h, g * dh, att.qkv_bias, "value projection", count)
    terms += _linear(f"{p}.o_proj", a * dh, h, att.out_bias, "attention output projection", count, Split.ROW)
    if att.qk_norm is QKNorm.HEAD:
        terms += _norm(f"{p}.q_norm", att.qk_norm_kind, dh, "query norm (one per head width)", count)
        terms += _norm(f"{p}.k_norm", att.qk_norm_kind, dh, "key norm (one per head width)", count)
    elif att.qk_norm is QKNorm.PER_HEAD:
        terms += _norm(f"{p}.q_norm", att.qk_norm_kind, a * dh, "query norms (one per head)", count)
        terms += _norm(f"{p}.k_norm", att.qk_norm_kind, g * dh, "key norms (one per key/value head)", count)
    return terms


def _mlp(
    arch: Arch, path: str, width: sp.Expr, count: sp.Expr, what: str, copies: sp.Expr = ONE, expert: bool = False
) -> list[Term]:
    h, bias = S.d_model, arch.mlp.bias
    terms: list[Term] = []
    if arch.mlp.kind is MLPKind.GATED:
        terms += _linear(
            f"{path}.gate_proj", h, width, bias, f"{what} gate projection", count, Split.COLUMN, copies, expert
        )
    terms += _linear(f"{path}.up_proj", h, width, bias, f"{what} up projection", count, Split.COLUMN, copies, expert)
    terms += _linear(f"{path}.down_proj", width, h, bias, f"{what} down projection", count, Split.ROW, copies, expert)
    return terms


def _moe(arch: Arch, prefix: str, count: sp.Expr) -> list[Term]:
    moe = arch.moe
    assert moe is not None
    h = S.d_model
    p = f"{prefix}.moe"
    terms = _linear(f"{p}.router", h, S.n_experts, moe.router_bias, "router (one score per expert)", count, Split.NONE)
    terms += _mlp(arch, f"{p}.experts", S.d_expert, count, "routed expert", copies=S.n_experts, expert=True)
    if moe.shared_experts:
        terms += _mlp(arch, f"{p}.shared", S.d_shared, count, "shared expert")
    if moe.shared_expert_gate:
        # Qwen2-MoE builds the gate even when the shared expert's width is 0
        terms += _linear(f"{p}.shared_gate", h, ONE, False, "shared expert gate", count, Split.NONE)
    return terms


def _block_norms(arch: Arch, prefix: str, count: sp.Expr) -> list[Term]:
    h, norm = S.d_model, arch.norm
    if arch.parallel_block:
        if arch.parallel_norms == 1:
            return _norm(f"{prefix}.norm", norm, h, "block norm (shared by attention and MLP)", count)
        return _norm(f"{prefix}.norm_attn", norm, h, "attention norm", count) + _norm(
            f"{prefix}.norm_mlp", norm, h, "MLP norm", count
        )
    terms = _norm(f"{prefix}.norm_attn", norm, h, "attention norm", count)
    terms += _norm(f"{prefix}.norm_mlp", norm, h, "MLP norm", count)
    if arch.norm_placement is NormPlacement.SANDWICH:
        terms += _norm(f"{prefix}.norm_attn_post", norm, h, "norm after attention", count)
        terms += _norm(f"{prefix}.norm_mlp_post", norm, h, "norm after the MLP", count)
    return terms


def _group(arch: Arch, group: LayerGroup) -> list[Term]:
    prefix, count = group.name, group.count
    terms = _block_norms(arch, prefix, count)
    terms += _attention(arch, prefix, count)
    if group.moe:
        terms += _moe(arch, prefix, count)
    else:
        terms += _mlp(arch, f"{prefix}.mlp", S.d_ffn, count, "MLP")
    return terms


def parameter_terms(arch: Arch) -> Breakdown:
    """Every parameter tensor of ``arch`` as a term; the total is the exact count (parameters).

    Tied input/output embeddings are one tensor, counted once (as ``embedding.tokens``).
    """
    h, V = S.d_model, S.n_vocab
    terms = [_tensor("embedding.tokens.weight", (V, h), "token embedding", split=Split.VOCAB)]
    if arch.positions is Pos.LEARNED:
        rows = S.n_ctx + arch.position_offset
        terms.append(_tensor("embedding.positions.weight", (rows, h), "learned position embedding"))
    if arch.embedding_norm:
        terms += _norm("embedding.norm", arch.norm, h, "embedding norm")
    for group in arch.groups:
        terms += _group(arch, group)
    if arch.final_norm:
        terms += _norm("final_norm", arch.norm, h, "final norm")
    if arch.lm_head and not arch.tied_embeddings:
        terms.append(_tensor("lm_head.weight", (V, h), "output projection (untied)", split=Split.VOCAB))
    if arch.lm_head and arch.lm_head_bias:
        terms.append(_tensor("lm_head.bias", (V,), "output bias", split=Split.VOCAB))
    return Breakdown(PARAMETERS, tuple(terms))
