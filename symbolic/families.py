"""Per-family facts as data: what each transformers implementation does that changes what autograd saves.

A family is a transformers ``model_type``. Each field of :class:`FamilyRules` is one difference
between implementations, with the reason it matters (which tensor PyTorch saves and why). The
activation builders (``formulas/activations/exact.py``) read these fields and never a family's name;
:mod:`symbolic.hf` reads the config fields named here into the :class:`~symbolic.arch.Arch`.
Measured on CPU with torch 2.13.0 and transformers 5.24.0 (``tests/harness/measure.py``; the survey
is ``docs/notes/activations-survey.md``).

A new family: add its ``model_type`` to :data:`FAMILY` with the fields that differ from the defaults
(the defaults are Llama's), a mapper in :mod:`symbolic.hf`, and a tiny config to the tests' factories.

>>> FAMILY["falcon"].resid_sites
1
>>> rules_for("llama") == FamilyRules()
True
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .errors import SymbolicError

__all__ = [
    "FamilyRules",
    "FAMILY",
    "rules_for",
    "ACTIVATION_EXTRA_SAVED",
    "ACTIVATION_DROPS_INPUT",
    "ACTIVATION_OTHER_SAVED",
    "STANDARD_MLP_SAVED",
    "GATED_MLP_SAVED",
]


@dataclass(frozen=True)
class FamilyRules:
    """Facts about one family's modules that change what autograd saves for backward."""

    # -- config fields (read by symbolic.hf into Arch.dropout) --
    attn_dropout: str | None = "attention_dropout"  # config field of the attention-probability dropout
    resid_dropout: str | None = None  # config field of the residual dropout (None: the family has none)
    embd_dropout: str | None = None  # config field of the embedding dropout (None: none)
    # -- dropout --
    resid_sites: int = 0  # residual dropouts per layer: each saves a mask of b*s*h
    attn_dropout_applied: bool = True  # False: the forward never applies its attention dropout (Falcon)
    # -- attention --
    softmax_fp32: bool = True  # eager attention upcasts the scores to fp32: softmax saves fp32 probabilities
    eager_qk_fp32: bool = False  # eager attention upcasts q and k to fp32 (GPT-J): QK^T saves fp32 copies
    # "query": under autocast fp32 where the rotation promoted the query, so the dropout mask is fp32
    eager_probs_cast: str = "query"  # eager attention casts its probabilities to the query's or the values' dtype
    sdpa: bool = True  # the implementation offers SDPA (False: eager only, so no O(s) kernel)
    sdpa_expand_kv: bool = False  # keys/values repeated to all heads before SDPA: SDPA saves a*d_head wide k, v
    sdpa_mask: bool = False  # an explicit mask tensor is passed to SDPA (not is_causal): SDPA saves it
    sdpa_fused_qkv: bool = False  # q, k, v are views of one projection output: SDPA saves that one storage
    sdpa_query_cat: bool = False  # partial rotary builds q with a cat: SDPA's output keeps that layout, o_proj copies
    sdpa_values_view: bool = False  # SDPA's values are a view of the fused q/k/v output: the whole storage stays
    # -- positions --
    rotary: str = "shared"  # cos/sin computed once per forward ("shared"), per layer ("per_layer", GPT-J) or "none"
    # the rotation casts q and k back to their dtype, so under autocast they stay 16-bit (elsewhere the fp32
    # tables promote them to fp32)
    rotary_fp32: bool = False  # the cos/sin tables stay fp32 in a 16-bit model (OLMo): saved at 4 bytes
    # an odd partial rotary width r: the tables hold ceil(r/2) frequencies twice, r + 1 wide
    odd_rotary_rounds_up: bool = False  # the forward rotates r + 1 dims (slices q by the table); else it fails
    positions: str = "none"  # int64 position ids the position embedding saves: "s", "bs" (OPT) or "none"
    ckpt_positions: str = "s"  # int64 position ids a checkpoint closure keeps (with full recompute)
    alternating_sliding: bool = False  # with a window, even layers slide and odd ones attend fully (Gemma 2)
    # which layers slide where the config lists no ``layer_types`` (its class derives them): "all" layers
    # (Mistral, Phi-3, Starcoder2), those from ``max_window_layers`` on ("from_max_window", Qwen2/Qwen3),
    # or the even ones below it ("even_below_max_window", Qwen2-MoE); Qwen's need ``use_sliding_window``
    sliding_layers: str = "all"  # the sliding layers' rule: each keeps an SDPA mask once s >= window
    causal_mask_buffer: bool = False  # a bool n_ctx x n_ctx causal mask registered as a buffer (GPTBigCode)
    checkpoint_alibi: bool = False  # the ALiBi bias tensor is passed to every layer: the checkpoints keep it
    # -- norms --
    rmsnorm_fp32_scale: bool = False  # RMSNorm multiplies by (1 + weight) in fp32 (Gemma): fp32 normalized, fp32 scale
    layernorm_fp32: bool = False  # the parameter-free LayerNorm computes in fp32 (OLMo): fp32 input and statistics
    # -- layers --
    layer_int64_scalars: int = 0  # int64 index tensors a layer saves splitting q/k/v by index (Falcon: 2, 8 bytes each)
    # -- mixture of experts --
    router_sigmoid: bool = False  # router scores are a sigmoid (DeepSeek-V3), not a softmax; both saved in fp32
    router_fp32: bool = False  # the router casts input and weight to fp32 before its linear: fp32 copies saved
    routing_weights_fp32: bool = True  # top-k routing weights stay fp32 (Qwen2-MoE casts them to the dtype)
    # (DeepSeek-V3, Qwen2-MoE): under autocast its input linears still keep their 16-bit copies of the input
    shared_mlp_always: bool = False  # the shared expert's MLP is built even when its width is 0
    # -- autocast --
    fused_qkv: bool = False  # one linear computes q, k, v: autocast casts its input once, not once per projection
    fused_gate_up: bool = False  # one linear computes gate and up: autocast casts the MLP's input once


_GPT: dict[str, Any] = dict(
    attn_dropout="attn_pdrop", resid_dropout="resid_pdrop", resid_sites=2, embd_dropout="embd_pdrop"
)

FAMILY: MappingProxyType[str, FamilyRules] = MappingProxyType(
    {
        "llama": FamilyRules(),
        "mistral": FamilyRules(),
        "mixtral": FamilyRules(),
        "qwen2": FamilyRules(sliding_layers="from_max_window"),
        "qwen2_moe": FamilyRules(
            routing_weights_fp32=False, sliding_layers="even_below_max_window", shared_mlp_always=True
        ),
        "qwen3": FamilyRules(sliding_layers="from_max_window"),
        "gemma": FamilyRules(rmsnorm_fp32_scale=True),
        "gemma2": FamilyRules(rmsnorm_fp32_scale=True, sdpa=False, alternating_sliding=True),
        "phi3": FamilyRules(
            resid_dropout="resid_pdrop",
            resid_sites=2,
            sdpa_query_cat=True,
            sdpa_values_view=True,
            fused_qkv=True,
            fused_gate_up=True,
            odd_rotary_rounds_up=True,
        ),
        "olmo": FamilyRules(rotary_fp32=True, layernorm_fp32=True),
        "deepseek_v3": FamilyRules(router_fp32=True, router_sigmoid=True, shared_mlp_always=True),
        "stablelm": FamilyRules(resid_dropout="hidden_dropout", resid_sites=1, sdpa_query_cat=True),
        "starcoder2": FamilyRules(resid_dropout="residual_dropout", resid_sites=2, embd_dropout="embedding_dropout"),
        "gpt2": FamilyRules(
            **_GPT,
            softmax_fp32=False,
            eager_probs_cast="value",
            rotary="none",
            positions="s",
            ckpt_positions="none",
            fused_qkv=True,
        ),
        "gpt_bigcode": FamilyRules(
            **_GPT,
            rotary="none",
            positions="s",
            ckpt_positions="none",
            sdpa_fused_qkv=True,
            fused_qkv=True,
            causal_mask_buffer=True,
        ),
        "gptj": FamilyRules(**_GPT, rotary="per_layer", eager_qk_fp32=True, eager_probs_cast="value"),
        "gpt_neox": FamilyRules(
            resid_dropout="hidden_dropout",
            resid_sites=2,
            embd_dropout="hidden_dropout",
            sdpa_query_cat=True,
            sdpa_values_view=True,
            fused_qkv=True,
            odd_rotary_rounds_up=True,
        ),
        "falcon": FamilyRules(
            resid_dropout="hidden_dropout",
            resid_sites=1,
            attn_dropout_applied=False,
            softmax_fp32=False,
            sdpa_expand_kv=True,
            sdpa_mask=True,
            layer_int64_scalars=2,
            fused_qkv=True,
        ),
        "opt": FamilyRules(resid_dropout="dropout", resid_sites=2, rotary="none", positions="bs", ckpt_positions="bs"),
        "bloom": FamilyRules(
            resid_dropout="hidden_dropout",
            resid_sites=2,
            rotary="none",
            ckpt_positions="none",
            sdpa=False,
            checkpoint_alibi=True,
            fused_qkv=True,
        ),
    }
)

# b*s*f tensors an MLP keeps: a two-matrix MLP keeps the activation's input (a fused kernel's only saved
# tensor) and the down projection's input: 2; a gated MLP keeps the gate projection's output (the
# activation's input), the activation's output, the up projection's output and the down projection's
# input: 4.
STANDARD_MLP_SAVED = 2
GATED_MLP_SAVED = 4
# b*s*f tensors an activation keeps beyond a fused kernel's one input, in the dtype (read off the traced
# step of a one-layer llama (gated) and gpt_neox (two-matrix) per hidden_act, the same in fp32 and bf16,
# and equal to autograd's): every name transformers' ACT2FN accepts
ACTIVATION_EXTRA_SAVED: MappingProxyType[str, int] = MappingProxyType(
    {
        "silu": 0,  # fused kernel: keeps its input
        "swish": 0,  # transformers' name for silu
        "gelu": 0,  # fused kernel (BLOOM's own GELU function also keeps only its input)
        "gelu_pytorch_tanh": 0,  # fused kernel (approximate="tanh")
        "gelu_new": 3,  # tanh GELU in Python ops: x (for x^3), tanh's output, 0.5*x, 1 + tanh
        "gelu_fast": 6,  # tanh GELU in Python ops written with more intermediate products
        "gelu_accurate": 3,  # tanh GELU in Python ops, like gelu_new
        "gelu_python_tanh": 3,  # tanh GELU in Python ops, like gelu_new
        "gelu_python": 2,  # x/sqrt(2) (erf's input), 0.5*x and 1 + erf (not x itself)
        "gelu_10": 1,  # the fused GELU's output, which the clip keeps
        "quick_gelu": 1,  # x * sigmoid(1.702 x): sigmoid's output besides x
        "laplace": 0,  # erf's input (a shifted, scaled copy of x), not x itself
        "relu2": 0,  # relu's output (squared), not x itself
        "sqrtsoftplus": 0,  # softplus keeps x, sqrt keeps its output (the activation's output)
        "hardswish": 0,  # fused kernels that keep their input
        "leaky_relu": 0,
        "relu6": 0,
        "mish": 0,
        "prelu": 0,
        "relu": -1,  # keeps only its output, which is the next product's input
        "sigmoid": -1,  # keeps only its output
        "tanh": -1,  # keeps only its output
        "linear": -1,  # the identity: its output is its input
        # xIELU's Python form (transformers' CPU path; its CUDA kernel is a separate package): x (for x*x),
        # beta*x, expm1's output and the product with alpha_n, plus ACTIVATION_OTHER_SAVED
        "xielu": 3,
    }
)
# activations whose saved tensors do not include their input: where that input is a view of a storage
# that stays anyway (the gate half of a fused gate/up projection output, whose up half the next product
# keeps), the extra tensors above are one more (relu keeps its output besides the whole gate/up output)
ACTIVATION_DROPS_INPUT: frozenset[str] = frozenset({"gelu_python", "laplace", "relu2", "relu", "sigmoid", "tanh"})
# other storages an activation keeps: (bool b*s*f masks, one-element tensors in the dtype) per call
ACTIVATION_OTHER_SAVED: MappingProxyType[str, tuple[int, int]] = MappingProxyType(
    {"xielu": (1, 2)}  # torch.where's condition x > 0; softplus(alpha_p) and beta + softplus(alpha_n)
)


def rules_for(family: str) -> FamilyRules:
    """The rules of ``family`` (a transformers ``model_type``); an error names the described families."""
    try:
        return FAMILY[family]
    except KeyError:
        raise SymbolicError(
            "convention", f"exact activations are not described for {family!r}; families: {', '.join(FAMILY)}"
        ) from None
