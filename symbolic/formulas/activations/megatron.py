"""The ``megatron`` convention: Korthikanti et al. 2022, activation memory per layer (Table 2).

Per layer ``sbh(34 + 5as/h)`` bytes (16-bit activations, 1-byte dropout masks, a 4h GeLU MLP),
split per operation so that tensor parallelism (``tp``), sequence parallelism, selective and full
recomputation act on the right parts; plus the embedding dropout, final norm, output layer and
fp32 logits (§4.3) and the interleaved pipeline factor ``1 + (p-1)/(p m)`` (§4.2.3).
Source: Korthikanti et al. 2022, Reducing Activation Recomputation in Large Transformer Models (arXiv 2205.05198).
"""

from __future__ import annotations

import sympy as sp

from ... import symbols as S
from ...arch import Model
from ...terms import Breakdown, Quantity, Term
from .options import ActivationOptions

__all__ = ["megatron_activation_terms", "SOURCE"]

BYTES = Quantity.BYTES
SOURCE = "Korthikanti et al. 2022 (arXiv 2205.05198), §4-5, Table 2"

# (path, coefficient of s*b*h or of a*s^2*b, s^2 part?, divided by t without SP?, what)
# Replicated under plain TP (10 sbh): norms 4, dropout masks 2, block inputs 4; everything else / t.
_OPS = (
    ("attention.qkv_input", 2, False, False, "QKV matmul input 2sbh"),
    ("attention.qk", 4, False, True, "Q and K for QK^T 4sbh"),
    ("attention.softmax", 2, True, True, "softmax output 2as^2b"),
    ("attention.softmax_dropout_mask", 1, True, True, "softmax dropout mask as^2b"),
    ("attention.dropout_output", 2, True, True, "attention over V: dropout output 2as^2b"),
    ("attention.v", 2, False, True, "attention over V: V 2sbh"),
    ("attention.proj_input", 2, False, True, "output projection input 2sbh"),
    ("attention.dropout_mask", 1, False, False, "attention dropout mask sbh"),
    ("mlp.fc1_input", 2, False, False, "first linear input 2sbh"),
    ("mlp.gelu_input", 8, False, True, "GeLU input 8sbh"),
    ("mlp.fc2_input", 8, False, True, "second linear input 8sbh"),
    ("mlp.dropout_mask", 1, False, False, "MLP dropout mask sbh"),
    ("norm", 4, False, False, "two LayerNorm inputs 4sbh"),
)


def megatron_activation_terms(
    model: Model,
    options: ActivationOptions | None = None,
    *,
    sequence_parallel: bool = False,
    pp: int = 1,
    cp: int = 1,
) -> Breakdown:
    """Korthikanti's activation bytes for ``model`` on the first pipeline stage (bytes).

    ``options.recompute``: ``none``, ``selective`` (drops the 5as^2b attention part) or ``full``
    (2sbh per layer: the layer input). ``sequence_parallel`` divides the replicated 10sbh by ``tp``.
    ``pp`` (a number) decides whether the output layer and loss are on the first stage (p = 1).
    ``cp`` (a number): context parallelism (Megatron-LM's CP, ring attention) leaves each device
    ``s/cp`` tokens of every tensor, so every term divides by ``cp``: the ``sbh`` terms and the
    logits because they are per token, the ``5as^2b`` attention terms once (not ``cp^2``) because
    each device's ``s/cp`` queries still attend to all ``s`` keys; K and V of other devices pass
    through the ring and are not kept.
    """
    o = options or ActivationOptions()
    s, b, h, a, t, V, L = S.seq, S.batch, S.d_model, S.n_heads, S.tp, S.n_vocab, S.n_layers
    p, m = S.pp, S.interleave
    sbh = s * b * h
    terms: list[Term] = []
    layers = L
    if o.recompute == "full":
        terms.append(
            Term(
                "block.input",
                2 * sbh,
                BYTES,
                "full recomputation: the layer input 2sbh",
                count=layers,
                source=SOURCE + ", §5",
            )
        )
    else:
        for path, coef, quad, split, what in _OPS:
            if quad and o.recompute == "selective":
                continue
            expr = coef * a * s**2 * b if quad else coef * sbh
            if split or sequence_parallel:
                expr = expr / t
            terms.append(Term(f"block.{path}", expr, BYTES, what, count=layers, source=SOURCE))
    if o.interleave > 1:
        per_layer = sp.Add(*(t_.expr for t_ in terms))
        terms.append(
            Term(
                "pipeline.interleave",
                per_layer * (p - 1) / (p * m),
                BYTES,
                "interleaved schedule: the first stage keeps L(1 + (p-1)/(p m)) layers",
                count=layers,
                source=SOURCE + ", §4.2.3",
            )
        )
    emb = sbh * p / t if sequence_parallel else sbh * p
    terms.append(
        Term(
            "embedding.dropout_mask",
            emb,
            BYTES,
            "embedding dropout masks of p micro-batches in flight",
            source=SOURCE + ", §4.3",
        )
    )
    if pp == 1:
        rep = 1 / t if sequence_parallel else sp.Integer(1)
        terms.append(
            Term("head.final_norm", 2 * sbh * rep, BYTES, "final LayerNorm input 2sbh", source=SOURCE + ", §4.3")
        )
        terms.append(
            Term("head.output_input", 2 * sbh * rep, BYTES, "output layer input 2sbh", source=SOURCE + ", §4.3")
        )
        terms.append(
            Term("loss.logits", 4 * s * b * V / t, BYTES, "logits in fp32 for the loss 4sbv", source=SOURCE + ", §4.3")
        )
    if cp > 1:
        terms = [t_.with_(expr=t_.expr / S.cp, description=t_.description + ", /cp") for t_ in terms]
    return Breakdown(BYTES, tuple(terms))
