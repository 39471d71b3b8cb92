"""The ``exact`` activation convention: what PyTorch autograd keeps for backward in transformers.

Definition (what the tests measure): the bytes of the unique storages that autograd saves during
one training forward (``model.train()``, ``use_cache=False``, ``model(ids, labels=ids)``), without
parameters, buffers and the ids. Terms follow the modules of transformers 5.24.0 under torch
2.13.0, measured on CPU (``tests/harness/measure.py``; per-family survey in
``docs/notes/activations-survey.md``). Rules shared by families are written once; the few
family-specific facts live in :data:`FAMILY` as data. Terms marked ``cuda-assumed`` describe
CUDA kernels (SDPA flash / memory-efficient, bool dropout masks) and are not measured here.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ... import symbols as S
from ...arch import Arch, AttentionKind, LayerGroup, Model, NormKind, NormPlacement, Positions
from ...errors import SymbolicError
from ...terms import Breakdown, Quantity, Term
from .options import TORCH_VERSION, TRANSFORMERS_VERSION, ActivationOptions

__all__ = ["FamilyRules", "FAMILY", "exact_activation_terms", "dropout_probabilities"]

B = Quantity.BYTES
ONE = sp.Integer(1)
MEASURED = (
    f"measured: torch {TORCH_VERSION} CPU, transformers {TRANSFORMERS_VERSION} (docs/notes/activations-survey.md)"
)
ASSUMED = "cuda-assumed: known kernel behaviour, not measured here"
b, s, h, a, g, dh, V = S.batch, S.seq, S.d_model, S.n_heads, S.n_kv_heads, S.d_head, S.n_vocab
FP32, INT64 = 4, 8


@dataclass(frozen=True)
class FamilyRules:
    """Facts about one family's modules that change what autograd saves (measured, per family).

    ``attn_dropout``/``resid_dropout``/``embd_dropout``: the config fields of the dropout
    probabilities; ``resid_sites``: residual dropouts per layer; ``softmax_fp32``: eager attention
    upcasts the scores to fp32; ``rotary``: ``shared`` (cos/sin once per forward), ``per_layer``
    (GPT-J) or ``none``; ``rotary_fp32``: tables kept in fp32 (OLMo); ``positions``: the int64
    positions saved outside the layers (``s``, ``bs`` or ``none``);
    ``ckpt_positions``: the int64 positions a checkpoint closure keeps; ``sdpa``: supported;
    ``sdpa_expand_kv``: keys/values repeated to all heads before SDPA; ``sdpa_mask``: an explicit
    mask is passed to SDPA; ``sdpa_fused_qkv``: q, k, v are views of one projection output;
    ``sdpa_query_cat``: rotary builds the queries with a ``cat`` in the [b, a, s, d_head] layout
    (partial-rotary code: Phi-3, GPT-NeoX, StableLM), so SDPA's output has that layout too and the
    output projection's input is a copy; ``sdpa_values_view``: the values SDPA saves are a view of a
    fused q/k/v projection output (Phi-3, GPT-NeoX), so that whole storage is kept;
    ``mlp_saved``: b*s*f tensors an MLP keeps (None: from the activation function);
    ``layer_int64``: int64 scalars saved per layer (bytes); ``eager_qk_fp32``: eager attention
    upcasts queries and keys to fp32 (GPT-J).
    ``router_fp32``: the MoE router casts its input and weight to fp32 before the linear (DeepSeek-V3),
    so 16-bit models keep fp32 copies of both; ``routing_weights_fp32``: the top-k routing weights
    the experts multiply by stay fp32 (Mixtral, DeepSeek-V3; Qwen2-MoE casts them to the dtype).
    """

    attn_dropout: str | None = "attention_dropout"
    resid_dropout: str | None = None
    resid_sites: int = 0
    embd_dropout: str | None = None
    attn_dropout_applied: bool = True
    softmax_fp32: bool = True
    rotary: str = "shared"
    rotary_fp32: bool = False
    positions: str = "none"
    ckpt_positions: str = "s"
    sdpa: bool = True
    sdpa_expand_kv: bool = False
    sdpa_mask: bool = False
    sdpa_fused_qkv: bool = False
    sdpa_query_cat: bool = False
    sdpa_values_view: bool = False
    mlp_saved: int | None = None
    layer_int64: int = 0
    eager_qk_fp32: bool = False
    router_fp32: bool = False
    routing_weights_fp32: bool = True


_GPT = dict(attn_dropout="attn_pdrop", resid_dropout="resid_pdrop", resid_sites=2, embd_dropout="embd_pdrop")
FAMILY: dict[str, FamilyRules] = {
    "llama": FamilyRules(),
    "mistral": FamilyRules(),
    "mixtral": FamilyRules(),
    "qwen2": FamilyRules(),
    "qwen2_moe": FamilyRules(routing_weights_fp32=False),
    "qwen3": FamilyRules(),
    "gemma": FamilyRules(),
    "gemma2": FamilyRules(sdpa=False),
    "phi3": FamilyRules(resid_dropout="resid_pdrop", resid_sites=2, sdpa_query_cat=True, sdpa_values_view=True),
    "olmo": FamilyRules(rotary_fp32=True),
    "deepseek_v3": FamilyRules(router_fp32=True),
    "stablelm": FamilyRules(resid_dropout="hidden_dropout", resid_sites=1, sdpa_query_cat=True),
    "starcoder2": FamilyRules(resid_dropout="residual_dropout", resid_sites=2, embd_dropout="embedding_dropout"),
    "gpt2": FamilyRules(**_GPT, softmax_fp32=False, rotary="none", positions="s", ckpt_positions="none"),
    "gpt_bigcode": FamilyRules(**_GPT, rotary="none", positions="s", ckpt_positions="none", sdpa_fused_qkv=True),
    "gptj": FamilyRules(**_GPT, rotary="per_layer", eager_qk_fp32=True),
    "gpt_neox": FamilyRules(
        resid_dropout="hidden_dropout",
        resid_sites=2,
        embd_dropout="hidden_dropout",
        sdpa_query_cat=True,
        sdpa_values_view=True,
    ),
    "falcon": FamilyRules(
        resid_dropout="hidden_dropout",
        resid_sites=1,
        attn_dropout_applied=False,
        softmax_fp32=False,
        sdpa_expand_kv=True,
        sdpa_mask=True,
        layer_int64=16,
    ),
    "opt": FamilyRules(resid_dropout="dropout", resid_sites=2, rotary="none", positions="bs", ckpt_positions="bs"),
    "bloom": FamilyRules(
        resid_dropout="hidden_dropout", resid_sites=2, rotary="none", ckpt_positions="none", sdpa=False
    ),
}
# b*s*f tensors an MLP keeps, by activation function (gated: gate out, act out, up out, down input)
_MLP_SAVED = {"gelu_new": 5, "gelu_fast": 5, "relu": 1}
_STANDARD_MLP_DEFAULT = 2  # act input + second linear input (nn.GELU, gelu_pytorch_tanh)
_GATED_MLP = 4


def _rules(arch: Arch) -> FamilyRules:
    try:
        return FAMILY[arch.family]
    except KeyError:
        raise SymbolicError(
            "convention", f"exact activations are not described for {arch.family!r}; families: {', '.join(FAMILY)}"
        ) from None


def dropout_probabilities(model: Model, options: ActivationOptions) -> dict[str, float]:
    """The dropout probabilities that apply (attention, residual, embedding), from the config."""
    rules = _rules(model.arch)
    out = {}
    for key, field in (
        ("attention", rules.attn_dropout),
        ("residual", rules.resid_dropout),
        ("embedding", rules.embd_dropout),
    ):
        p = 0.0 if field is None else float(model.config.get(field) or 0.0)
        out[key] = p if options.dropout is None or field is None else float(options.dropout)
    if not rules.attn_dropout_applied:
        out["attention"] = 0.0
    return out


class _Builder:
    """Collects terms; each knows its per-instance expression, count and where it comes from."""

    def __init__(self, model: Model, options: ActivationOptions) -> None:
        self.model, self.arch, self.o = model, model.arch, options
        self.rules = _rules(model.arch)
        self.D = options.nbytes
        self.cuda = options.device == "cuda"
        self.p = dropout_probabilities(model, options)
        self.terms: list[Term] = []

    def add(self, path: str, expr: sp.Expr, what: str, count: sp.Expr = ONE, tags: tuple[str, ...] = (), cuda=False):
        if expr == 0:
            return
        source = ASSUMED if (cuda and self.cuda) else MEASURED
        self.terms.append(
            Term(path, sp.sympify(expr, strict=True), B, what, count=count, source=source, tags=frozenset(tags))
        )

    @property
    def mask_bytes(self) -> int:
        """A dropout mask's element size: model dtype on CPU (mask*scale), bool on CUDA (native_dropout)."""
        return 1 if self.cuda else self.D

    # ---- building blocks ----
    def norm(self, path: str, n: sp.Expr, rows: sp.Expr, count, kind: NormKind, save_input: bool = True) -> None:
        D = self.D
        if kind is NormKind.RMSNORM:
            gemma = self.arch.family in ("gemma", "gemma2")
            if save_input or D != FP32:
                self.add(f"{path}.input_fp32", n * FP32, "RMSNorm's fp32 input (the input itself in fp32)", count)
            self.add(f"{path}.rstd", rows * FP32, "RMSNorm's reciprocal RMS, fp32", count)
            normed = FP32 if gemma else D
            self.add(f"{path}.normalized", n * normed, "normalized input saved by the weight multiply", count)
            if gemma:
                self.add(f"{path}.one_plus_weight", h * FP32, "Gemma's (1 + weight), fp32", count)
        else:
            nb = FP32 if kind is NormKind.NONPARAMETRIC and self.arch.family == "olmo" else D
            if save_input or nb != D:
                self.add(f"{path}.input", n * nb, "LayerNorm's input", count)
            self.add(f"{path}.stats", 2 * rows * nb, "LayerNorm's mean and reciprocal std", count)

    def _norm_kind(self) -> NormKind:
        return self.arch.norm.kind

    def rotary_width(self) -> sp.Expr:
        cfg = self.model.config
        if self.arch.attention.kind is AttentionKind.MLA:
            return S.d_rope
        if self.arch.family == "gptj":
            return sp.Integer(int(cfg.get("rotary_dim") or self.model.sizes["d_head"]))
        pct = cfg.get("rotary_pct", cfg.get("partial_rotary_factor", 1.0)) or 1.0
        if float(pct) == 1.0:
            return dh
        return sp.Integer(int(self.model.sizes["d_head"] * float(pct)))

    # ---- the decoder layer ----
    def layer(self, group: LayerGroup) -> None:
        arch, D, n = self.arch, self.D, group.count
        pre = group.name
        tokens = b * s
        kind = self._norm_kind()
        if arch.parallel_block:
            self.norm(f"{pre}.norm", tokens * h, tokens, n, kind)
            if arch.parallel_norms == 2:
                self.norm(f"{pre}.norm_2", tokens * h, tokens, n, kind, save_input=False)
        else:
            count = 4 if arch.norm_placement is NormPlacement.SANDWICH else 2
            for i in range(count):
                self.norm(f"{pre}.norm_{i + 1}", tokens * h, tokens, n, kind)
        self.add(f"{pre}.attention.input", tokens * h * D, "q/k/v projections' input (one storage)", n)
        if arch.attention.kind is AttentionKind.MLA:
            self.mla(pre, n)
        else:
            self.attention(pre, n)
        p_res = self.p["residual"]
        if p_res > 0 and self.rules.resid_sites:
            self.add(
                f"{pre}.dropout_masks",
                self.rules.resid_sites * tokens * h * self.mask_bytes,
                f"{self.rules.resid_sites} residual dropout mask(s), p={p_res}",
                n,
                cuda=True,
            )
        if not (arch.parallel_block and arch.parallel_norms == 1):
            self.add(f"{pre}.mlp.input", tokens * h * D, "MLP (or router) input", n)
        if group.moe:
            self.moe(pre, n)
        else:
            self.mlp(f"{pre}.mlp", S.d_ffn, n)
        if self.rules.layer_int64:
            self.add(f"{pre}.index_scalars", sp.Integer(self.rules.layer_int64), "int64 index scalars", n)

    def mlp(self, path: str, f: sp.Expr, n: sp.Expr) -> None:
        mlp = self.arch.mlp
        if self.rules.mlp_saved is not None:
            k = self.rules.mlp_saved
        elif mlp.kind.value == "gated":
            k = _GATED_MLP
        else:
            k = _MLP_SAVED.get(mlp.activation, _STANDARD_MLP_DEFAULT)
        self.add(
            f"{path}.intermediates",
            k * b * s * f * self.D,
            f"{k} b*s*f tensors ({mlp.kind.value} MLP, {mlp.activation})",
            n,
        )

    def probs(self, pre: str, n: sp.Expr, softcap: bool) -> None:
        """Eager attention's s^2 tensors: scores (softcap), softmax, its cast, dropout mask and output."""
        D, sq = self.D, b * a * s**2
        soft = FP32 if self.rules.softmax_fp32 else D
        if softcap:
            self.add(f"{pre}.attention.softcap", sq * D, "tanh output of the score soft-capping", n)
        self.add(f"{pre}.attention.probs", sq * soft, "softmax output" + (" (fp32 upcast)" if soft != D else ""), n)
        if self.p["attention"] > 0:
            self.add(f"{pre}.attention.dropout_mask", sq * self.mask_bytes, "attention dropout mask", n, cuda=True)
            self.add(f"{pre}.attention.dropped_probs", sq * D, "dropped probabilities (P@V's input)", n)
        elif soft != D:
            self.add(f"{pre}.attention.probs_cast", sq * D, "probabilities cast back to the dtype (P@V's input)", n)

    def attention(self, pre: str, n: sp.Expr) -> None:
        arch, rules, D, o = self.arch, self.rules, self.D, self.o
        qd, kvd, tokens = a * dh, g * dh, b * s
        qk = arch.attention.qk_norm
        if qk.value != "none":
            kind = arch.attention.qk_norm_kind.kind
            self.norm(f"{pre}.attention.q_norm", tokens * qd, tokens * a, n, kind)
            self.norm(f"{pre}.attention.k_norm", tokens * kvd, tokens * g, n, kind)
        if rules.rotary == "per_layer":
            self.add(f"{pre}.attention.rotary", 4 * s * self.rotary_width() * D, "GPT-J's sin/cos, per layer", n)
        dropout = self.p["attention"] > 0
        if o.attention == "eager" or (o.attention == "sdpa" and dropout and not self.cuda):
            fp = FP32 if o.attention == "sdpa" else D  # SDPA's math fallback upcasts q, k, v and probabilities
            why = "math fallback of SDPA with dropout (fp32)" if o.attention == "sdpa" else "eager"
            if o.attention == "eager" and rules.eager_qk_fp32:
                self.add(f"{pre}.attention.qk", 2 * tokens * qd * FP32, "queries and keys upcast to fp32 (eager)", n)
                self.add(f"{pre}.attention.v", tokens * qd * D, "values (eager)", n)
            else:
                self.add(
                    f"{pre}.attention.qkv",
                    3 * tokens * qd * fp,
                    f"q, k, v, keys/values repeated to all heads ({why})",
                    n,
                )
            if o.attention == "sdpa":
                sq = b * a * s**2 * FP32
                self.add(
                    f"{pre}.attention.probs", 3 * sq, "softmax output, scaled mask and dropped probabilities (fp32)", n
                )
            else:
                self.probs(pre, n, softcap=arch.family == "gemma2")
            self.add(f"{pre}.attention.output", tokens * qd * D, "output projection's input", n)
            return
        # SDPA (CPU flash kernel; CUDA flash / memory-efficient) and flash_attention_2 keep O(s) state
        kv = qd if rules.sdpa_expand_kv else kvd
        if rules.sdpa_fused_qkv:
            self.add(f"{pre}.attention.qkv", tokens * (qd + 2 * kv) * D, "q, k, v: views of one projection output", n)
        else:
            self.add(f"{pre}.attention.q", tokens * qd * D, "query (after rotary)", n)
            if rules.sdpa_values_view:
                self.add(f"{pre}.attention.k", tokens * kv * D, "keys (after rotary, a fresh tensor)", n)
                self.add(
                    f"{pre}.attention.qkv_output",
                    tokens * (qd + 2 * kv) * D,
                    "fused q/k/v projection output, kept whole: SDPA's values are a view of it",
                    n,
                )
            else:
                self.add(f"{pre}.attention.kv", 2 * tokens * kv * D, "keys and values (kv heads)", n)
        also = "" if rules.sdpa_query_cat else " (also the output projection's input)"
        self.add(f"{pre}.attention.output", tokens * qd * D, "attention output" + also, n)
        if rules.sdpa_query_cat:
            self.add(
                f"{pre}.attention.output_copy",
                tokens * qd * D,
                "output projection's input: a copy, SDPA's output follows the [b, a, s, d] layout of the cat-built query",
                n,
            )
        lse = s
        if self.cuda and o.attention == "sdpa" and D == FP32:
            lse = sp.ceiling(s / 32) * 32  # memory-efficient kernel pads the log-sum-exp rows
        self.add(f"{pre}.attention.logsumexp", b * a * lse * FP32, "log-sum-exp per query row, fp32", n, cuda=True)
        if rules.sdpa_mask:
            self.add(f"{pre}.attention.mask", b * s**2 * D, "explicit attention mask passed to SDPA", n)

    def mla(self, pre: str, n: sp.Expr) -> None:
        """DeepSeek's latent attention. Its q/k and v head widths differ, so SDPA takes the math path,
        which upcasts q, k, v and the probabilities to fp32 in 16-bit models (torch's default
        ``allow_fp16_bf16_reduction_math_sdp(False)``); eager attention keeps them in the dtype."""
        D, tokens = self.D, b * s
        rms = NormKind.RMSNORM
        if self.arch.attention.q_lora:
            self.norm(f"{pre}.attention.q_a_norm", tokens * S.q_lora_rank, tokens, n, rms)
            self.add(f"{pre}.attention.q_b_input", tokens * S.q_lora_rank * D, "q_b_proj input", n)
        rkr = S.kv_lora_rank + S.d_rope
        if D == FP32:
            # the norm's fp32 input is a view of the whole kv_a_proj output (latent + decoupled rope key)
            self.add(f"{pre}.attention.kv_a_output", tokens * rkr * D, "kv_a_proj output (the norm reads a view)", n)
        self.norm(f"{pre}.attention.kv_a_norm", tokens * S.kv_lora_rank, tokens, n, rms, save_input=False)
        self.add(f"{pre}.attention.kv_b_input", tokens * S.kv_lora_rank * D, "kv_b_proj input", n)
        dq, heads = S.d_nope + S.d_rope, b * a * s
        if self.o.attention == "eager" or D == FP32:
            # P@V reshapes the values (a split of kv_b_proj's output) to b*a rows: with b = 1 that is a
            # view, so the whole kv_b_proj output (nope keys too) stays alive; with b > 1 a copy
            self.add(
                f"{pre}.attention.v_batch1_view",
                sp.Piecewise((s * a * S.d_nope * D, sp.Eq(b, 1)), (0, True)),
                "b = 1 only: P@V keeps the whole kv_b_proj output, not a copy of the values",
                n,
            )
        if self.o.attention == "sdpa":
            self.add(f"{pre}.attention.qk", 2 * heads * dq * FP32, "queries and keys (nope + rope), math path fp32", n)
            sq = b * a * s**2 * FP32
            if self.p["attention"] > 0:
                what = "softmax output, scaled dropout mask and dropped probabilities (math path, fp32)"
                self.add(f"{pre}.attention.probs", 3 * sq, what, n)
            else:
                self.add(f"{pre}.attention.probs", sq, "softmax output (math path, fp32; P@V reads it)", n)
            self.add(f"{pre}.attention.v", heads * S.d_v * FP32, "values, math path fp32", n)
            self.add(f"{pre}.attention.output", heads * S.d_v * D, "attention output (o_proj input)", n)
            return
        self.add(f"{pre}.attention.qk", 2 * heads * dq * D, "queries and keys (nope + rope)", n)
        self.probs(pre, n, softcap=False)
        self.add(f"{pre}.attention.v_output", 2 * heads * S.d_v * D, "values and output projection input", n)

    def moe(self, pre: str, n: sp.Expr) -> None:
        D, tokens, E, k = self.D, b * s, S.n_experts, S.top_k
        fam = self.arch.family
        cfg = self.model.config
        fe = S.d_expert
        if self.rules.router_fp32 and D != FP32:
            self.add(
                f"{pre}.moe.router_fp32_copies",
                tokens * h * FP32 + h * E * FP32,
                "router's fp32 copies of its input and weight (saved by the fp32 linear)",
                n,
            )
        self.add(
            f"{pre}.moe.router_probs",
            tokens * E * FP32,
            "router " + ("sigmoid" if fam == "deepseek_v3" else "softmax") + " output, fp32",
            n,
        )
        self.add(f"{pre}.moe.topk_indices", tokens * k * 8, "top-k expert indices, int64", n)
        normalize = fam == "mixtral" or bool(cfg.get("norm_topk_prob", fam != "qwen2_moe"))
        if normalize:
            self.add(
                f"{pre}.moe.topk_normalize",
                tokens * FP32 + tokens * k * FP32,
                "top-k weight normalisation: denominator and normalized weights, fp32",
                n,
            )
        wb = FP32 if self.rules.routing_weights_fp32 else D
        if self.o.experts == "grouped_mm":
            self.add(f"{pre}.moe.experts.offsets", E * 4, "grouped_mm group offsets, int32", n)
            self.add(f"{pre}.moe.experts.permutation", 3 * tokens * k * 8, "token permutation indices, int64", n)
            self.add(f"{pre}.moe.experts.tokens", 2 * tokens * k * h * D, "gathered inputs and weighted outputs", n)
            self.add(
                f"{pre}.moe.experts.intermediates",
                4 * tokens * k * fe * D,
                "gate_up output, activation output, down_proj input",
                n,
            )
            self.add(f"{pre}.moe.experts.weights", tokens * k * wb, "routing weight per token-slot", n)
        else:
            self.add(
                f"{pre}.moe.experts.loop",
                tokens * k * (16 + D * (3 * h + 4 * fe) + wb),
                "per-expert loop: index pairs (one int64 storage), gathered input, gate_up, act, down input, "
                "routing weight, down output and weighted output",
                n,
            )
        if self.arch.moe is not None and self.arch.moe.shared_experts:
            self.mlp(f"{pre}.moe.shared_expert", S.d_shared, n)
            if self.arch.moe.shared_expert_gate:
                self.add(
                    f"{pre}.moe.shared_gate",
                    tokens * D + tokens * h * D,
                    "shared expert's sigmoid gate and gated output",
                    n,
                )

    # ---- once per forward ----
    def shared(self) -> None:
        rules, D = self.rules, self.D
        rot_bytes = FP32 if rules.rotary_fp32 else D
        full = self.o.recompute == "full"
        if rules.rotary == "shared" and self.arch.positions is Positions.ROTARY:
            self.add(
                "shared.rotary",
                2 * s * self.rotary_width() * rot_bytes,
                "rotary cos and sin, computed once and saved by every layer",
                tags=("shared",),
            )
        if not full:
            return
        if rules.rotary == "per_layer":
            self.add(
                "shared.rotary",
                s * self.rotary_width() * D,
                "GPT-J's sin/cos kept by the checkpoints",
                tags=("shared",),
            )
        pos = {"s": s * 8, "bs": b * s * 8, "none": 0}[rules.ckpt_positions]
        self.add("shared.position_ids", pos, "position ids kept by the checkpoints, int64", tags=("shared",))
        eager = self.o.attention == "eager"  # SDPA (MLA's math path too) gets is_causal and no mask
        masks = 2 if self.arch.family == "gemma2" and self.model.sizes.get("n_layers", 1) > 1 else 1
        if eager:
            self.add(
                "shared.attention_mask",
                masks * b * s**2 * D,
                "4-D causal mask kept by the checkpoints",
                tags=("shared",),
            )
        elif self.rules.sdpa_mask:
            self.add("shared.attention_mask", s**2, "bool causal mask kept by the checkpoints", tags=("shared",))
        if self.arch.positions is Positions.ALIBI and self.arch.family == "bloom":
            self.add("shared.alibi", b * a * s * D, "ALiBi biases kept by the checkpoints", tags=("shared",))

    def checkpointed_layer(self, group: LayerGroup) -> None:
        self.add(
            f"{group.name}.checkpoint_input",
            b * s * h * self.D,
            "the layer's input, saved by the checkpoint (everything else is recomputed)",
            group.count,
        )

    def outside(self) -> None:
        arch, D, rules = self.arch, self.D, self.rules
        tokens = b * s
        if arch.embedding_norm:
            self.norm("embedding.norm", tokens * h, tokens, ONE, arch.norm.kind)
        if self.p["embedding"] > 0:
            self.add("embedding.dropout_mask", tokens * h * self.mask_bytes, "embedding dropout mask", cuda=True)
        pos = {"s": s * 8, "bs": b * s * 8, "none": 0}[rules.positions]
        self.add("embedding.position_ids", pos, "position ids saved by the position embedding, int64")
        if arch.final_norm:
            self.norm("head.final_norm", tokens * h, tokens, ONE, arch.norm.kind)
        self.add("head.lm_head_input", tokens * h * D, "lm_head's input")
        if arch.family == "gemma2" and self.model.config.get("final_logit_softcapping"):
            self.add("head.softcap", tokens * V * D, "tanh output of the logit soft-capping")
        self.add("loss.log_probs", tokens * V * FP32, "cross-entropy's fp32 log-softmax of the logits")
        self.add("loss.labels", tokens * 8, "shifted labels, int64 (b=1: s+1 elements)")
        self.add("loss.total_weight", sp.Integer(FP32), "nll_loss's total weight, one fp32 scalar")


def _check(model: Model, o: ActivationOptions) -> None:
    rules = _rules(model.arch)
    fam = model.arch.family
    if o.attention == "flash" and o.device != "cuda":
        raise SymbolicError(
            "--attention", "flash (flash_attention_2) runs on CUDA only; use --device cuda or sdpa/eager"
        )
    if o.attention == "flash" and model.arch.attention.kind is AttentionKind.MLA:
        raise SymbolicError("--attention", f"{fam} (latent attention) has no flash kernel here; allowed: eager, sdpa")
    if o.attention in ("sdpa", "flash") and not rules.sdpa:
        raise SymbolicError(
            "--attention", f"{fam} supports only eager attention in transformers {TRANSFORMERS_VERSION}"
        )
    if o.recompute == "selective":
        raise SymbolicError(
            "--recompute",
            "transformers has no selective recompute; allowed for exact: none, full "
            "(selective is the megatron convention's)",
        )


def exact_activation_terms(model: Model, options: ActivationOptions | None = None) -> Breakdown:
    """Activation bytes autograd keeps for backward in ``model``'s transformers implementation (bytes).

    Terms per layer group (``count`` = its layer symbol), ``shared.*`` terms kept once for all layers
    (rotary tables, checkpoint closures) and embedding/head/loss terms, in ``batch`` and ``seq``.
    """
    o = options or ActivationOptions()
    _check(model, o)
    bld = _Builder(model, o)
    for group in model.arch.groups:
        if o.recompute == "full":
            bld.checkpointed_layer(group)
        else:
            bld.layer(group)
    bld.shared()
    bld.outside()
    return Breakdown(B, tuple(bld.terms))
