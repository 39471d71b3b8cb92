"""The ``exact`` activation convention: what PyTorch autograd keeps for backward in transformers.

Definition (what the tests measure): the bytes of the unique storages that autograd saves during
one training forward (``model.train()``, ``use_cache=False``, ``model(ids, labels=ids)``), without
parameters, buffers and the ids. Terms follow the modules of transformers 5.24.0 under torch
2.13.0, measured on CPU (``tests/harness/measure.py``; per-family survey in
``docs/notes/activations-survey.md``). Rules shared by families are written once; the few
family-specific facts live in :mod:`symbolic.families` as data. Terms marked ``cuda-assumed`` describe
CUDA kernels (SDPA flash / memory-efficient, bool dropout masks) and are not measured here.
"""

from __future__ import annotations

import sympy as sp

from ... import symbols as S
from ...arch import AttentionKind, LayerGroup, MLPKind, Model, NormKind, NormPlacement, Positions, Sliding
from ...errors import SymbolicError
from ...families import (
    ACTIVATION_DROPS_INPUT,
    ACTIVATION_EXTRA_SAVED,
    ACTIVATION_OTHER_SAVED,
    GATED_MLP_SAVED,
    STANDARD_MLP_SAVED,
    rules_for,
)
from ...numeric.values import rational
from ...terms import Breakdown, Quantity, Term
from ..inference import sliding_layers
from .options import TORCH_VERSION, TRANSFORMERS_VERSION, ActivationOptions

__all__ = ["exact_activation_terms", "dropout_probabilities", "odd_rotary_fails"]

BYTES = Quantity.BYTES
ONE = sp.Integer(1)
MEASURED = (
    f"measured: torch {TORCH_VERSION} CPU, transformers {TRANSFORMERS_VERSION} (docs/notes/activations-survey.md)"
)
ASSUMED = "cuda-assumed: known kernel behaviour, not measured here"
b, s, h, a, g, dh, V = S.batch, S.seq, S.d_model, S.n_heads, S.n_kv_heads, S.d_head, S.n_vocab
FP32, INT64 = 4, 8
# what a parallel split divides in a term (``Term.shards``; one device's share: symbolic.parallel):
# heads (column-parallel q/k/v outputs, attention, the row-parallel o_proj's input), the MLP width,
# and ``seq`` for the residual stream that sequence parallelism splits (norms, dropouts)
NONE: frozenset[sp.Symbol] = frozenset()
HEADS, SEQ = frozenset({a, g}), frozenset({s})
EXPERTS, EXPERT_WIDTH = frozenset({S.n_experts}), frozenset({S.d_expert})


def dropout_probabilities(model: Model, options: ActivationOptions) -> dict[str, float]:
    """The dropout probabilities that apply (attention, residual, embedding): the Arch's (read from the
    config), or ``options.dropout`` where the family has that dropout; 0 where the forward never applies it."""
    rules = rules_for(model.arch.family)
    given = model.arch.dropout
    out = {}
    for key, field, p in (
        ("attention", rules.attn_dropout, given.attention),
        ("residual", rules.resid_dropout, given.residual),
        ("embedding", rules.embd_dropout, given.embedding),
    ):
        out[key] = p if options.dropout is None or field is None else float(options.dropout)
    if not rules.attn_dropout_applied:
        out["attention"] = 0.0
    return out


class _Builder:
    """Collects terms; each knows its per-instance expression, count and where it comes from."""

    def __init__(self, model: Model, options: ActivationOptions) -> None:
        self.model, self.arch, self.options = model, model.arch, options
        self.rules = rules_for(model.arch.family)
        self.nbytes = options.nbytes
        self.amp = options.autocast
        # the model's own dtype, fp32 under autocast: norms, the residual stream (a checkpointed layer's
        # input), masks and biases built from it, and rotary tables
        self.nbytes_norm = FP32 if options.autocast else options.nbytes
        self.cuda = options.device == "cuda"
        # under autocast the rotation's fp32 tables promote q and k to fp32 (unless the family casts them back),
        # as GPT-J's own upcast does: eager attention's QK^T then saves autocast copies of them in the dtype
        rotated = model.arch.positions is Positions.ROTARY and not self.rules.rotary_fp32
        self.qk_cast = options.autocast and (rotated or self.rules.eager_qk_fp32)
        self.p = dropout_probabilities(model, options)
        self.terms: list[Term] = []

    def add(
        self,
        path: str,
        expr: sp.Expr,
        what: str,
        count: sp.Expr = ONE,
        tags: tuple[str, ...] = (),
        cuda=False,
        shards: frozenset[sp.Symbol] = NONE,
    ):
        if expr == 0:
            return
        source = ASSUMED if (cuda and self.cuda) else MEASURED
        term = Term(path, sp.sympify(expr, strict=True), BYTES, what, count=count, source=source, tags=frozenset(tags))
        self.terms.append(term.with_(shards=shards))

    @property
    def mask_bytes(self) -> int:
        """A dropout mask's element size: model dtype on CPU (mask*scale), bool on CUDA (native_dropout)."""
        return 1 if self.cuda else self.nbytes

    @property
    def probs_mask_bytes(self) -> int:
        """The attention dropout mask's element size: the probabilities' dtype on CPU, fp32 under autocast where
        they are cast to a query the rotation promoted to fp32; bool on CUDA."""
        if self.cuda:
            return 1
        return FP32 if self.qk_cast and self.rules.eager_probs_cast == "query" else self.nbytes

    # ---- building blocks ----
    def norm(
        self,
        path: str,
        n: sp.Expr,
        rows: sp.Expr,
        count,
        kind: NormKind,
        save_input: bool = True,
        shards: frozenset[sp.Symbol] = SEQ,
        in_stream: bool = True,
    ) -> None:
        """A norm's saved tensors; ``shards``: the residual stream's norms split along the sequence (SP);
        ``in_stream=False``: a norm of a linear's output (q/k norms), in the compute dtype under autocast."""
        D, sh = (self.nbytes_norm if in_stream else self.nbytes), shards
        if kind is NormKind.RMSNORM:
            fp32_scale = self.rules.rmsnorm_fp32_scale
            if save_input or D != FP32:
                self.add(
                    f"{path}.input_fp32", n * FP32, "RMSNorm's fp32 input (the input itself in fp32)", count, shards=sh
                )
            self.add(f"{path}.rstd", rows * FP32, "RMSNorm's reciprocal RMS, fp32", count, shards=sh)
            normed = FP32 if fp32_scale else D
            self.add(
                f"{path}.normalized", n * normed, "normalized input saved by the weight multiply", count, shards=sh
            )
            if fp32_scale:
                self.add(f"{path}.one_plus_weight", h * FP32, "Gemma's (1 + weight), fp32", count)
        else:
            nb = FP32 if kind is NormKind.NONPARAMETRIC and self.rules.layernorm_fp32 else D
            if save_input or nb != D:
                self.add(f"{path}.input", n * nb, "LayerNorm's input", count, shards=sh)
            self.add(f"{path}.stats", 2 * rows * nb, "LayerNorm's mean and reciprocal std", count, shards=sh)

    def _norm_kind(self) -> NormKind:
        return self.arch.norm.kind

    def rotary_width(self) -> sp.Expr:
        """The width rotary positions rotate per head (elements): ``d_rope`` for latent attention, else
        the Arch's share of ``d_head``, one wider where that share is odd and the family rounds it up."""
        if self.arch.attention.kind is AttentionKind.MLA:
            return S.d_rope
        return dh * rational(self.model.rotary_table_fraction)

    # ---- the decoder layer ----
    def layer(self, group: LayerGroup) -> None:
        arch, D, n = self.arch, self.nbytes, group.count
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
        if self.amp:  # autocast casts the fp32 input once per linear that reads it, and keeps each copy
            # latent attention: q (or q_a) and kv_a projections read the input
            reads = 2 if arch.attention.kind is AttentionKind.MLA else 1 if self.rules.fused_qkv else 3
            self.add(f"{pre}.attention.input", reads * tokens * h * D, f"{reads} autocast copies of q/k/v's input", n)
        else:
            self.add(f"{pre}.attention.input", tokens * h * D, "q/k/v projections' input (one storage)", n)
        if arch.attention.kind is AttentionKind.MLA:
            self.mla(pre, n)
        else:
            self.attention(pre, n, self.sliding_count(group))
        p_res = self.p["residual"]
        if p_res > 0 and self.rules.resid_sites:
            self.add(
                f"{pre}.dropout_masks",
                self.rules.resid_sites * tokens * h * self.mask_bytes,
                f"{self.rules.resid_sites} residual dropout mask(s), p={p_res}",
                n,
                cuda=True,
                shards=SEQ,
            )
        if self.amp:
            reads = 2 if (arch.mlp.kind.value == "gated" and not self.rules.fused_gate_up and not group.moe) else 1
            self.add(f"{pre}.mlp.input", reads * tokens * h * D, f"{reads} autocast copies of the MLP's input", n)
        elif not (arch.parallel_block and arch.parallel_norms == 1):
            self.add(f"{pre}.mlp.input", tokens * h * D, "MLP (or router) input", n)
        if self.amp:
            self.weight_copies(group)
        if group.moe:
            self.moe(pre, n)
        else:
            self.mlp(f"{pre}.mlp", S.d_ffn, n)
        if self.rules.layer_int64_scalars and not arch.attention.qkv_views:
            scalars = sp.Integer(INT64 * self.rules.layer_int64_scalars)
            self.add(f"{pre}.index_scalars", scalars, "int64 index scalars", n)

    def weight_copies(self, group: LayerGroup) -> None:
        """Autocast's copies of a layer's linear weights in the dtype, kept for backward."""
        from ..params import parameter_terms

        mats = [
            t.expr
            for t in parameter_terms(self.arch)
            if t.count == group.count
            and t.shape is not None
            and len(t.shape) == 2
            and not (t.expert and self.options.experts == "grouped_mm")  # torch._grouped_mm is not autocast
        ]
        what = "autocast copies of the weights"
        self.add(f"{group.name}.autocast.weight_copies", sp.Add(*mats) * self.nbytes, what, group.count)

    def activation_saves(self, rows: sp.Expr, width: sp.Expr, fused_gate_up: bool) -> tuple[sp.Expr, int]:
        """What the MLP's activation keeps beyond a fused kernel's one input, for ``rows`` rows of
        ``width``: (bytes, extra tensors in the dtype). ``fused_gate_up``: its input is the gate half of
        one gate/up projection output, which stays anyway (``ACTIVATION_DROPS_INPUT``)."""
        act = self.arch.mlp.activation
        extra = ACTIVATION_EXTRA_SAVED.get(act)
        if extra is None:  # never a silent default: an unknown activation keeps an unknown count
            raise SymbolicError(
                "hidden_act",
                f"{act!r} has no exact rule for the tensors it keeps; described: "
                f"{', '.join(ACTIVATION_EXTRA_SAVED)}; --convention traced reads it off the code",
            )
        if fused_gate_up and act in ACTIVATION_DROPS_INPUT:
            extra += 1
        masks, scalars = ACTIVATION_OTHER_SAVED.get(act, (0, 0))
        return masks * rows * width + scalars * self.nbytes, extra

    def mlp(self, path: str, f: sp.Expr, n: sp.Expr) -> None:
        mlp = self.arch.mlp
        gated = mlp.kind is MLPKind.GATED
        other, extra = self.activation_saves(b * s, f, gated and self.rules.fused_gate_up)
        k = (GATED_MLP_SAVED if gated else STANDARD_MLP_SAVED) + extra
        self.add(
            f"{path}.intermediates",
            k * b * s * f * self.nbytes + other,
            f"{k} b*s*f tensors ({mlp.kind.value} MLP, {mlp.activation})",
            n,
            shards=frozenset({f}),
        )

    def probs(self, pre: str, n: sp.Expr, softcap: bool) -> None:
        """Eager attention's s^2 tensors: scores (softcap), softmax, its cast, dropout mask and output. Under
        autocast the softmax runs in fp32 in every family (the scores meet the fp32 mask or the softmax takes
        the fp32 hidden states' dtype) and P@V saves an autocast copy of the probabilities in the dtype."""
        D, sq = self.nbytes, b * a * s**2
        soft = FP32 if (self.rules.softmax_fp32 or self.amp) else D
        if softcap:
            self.add(f"{pre}.attention.softcap", sq * D, "tanh output of the score soft-capping", n, shards=HEADS)
        self.add(
            f"{pre}.attention.probs",
            sq * soft,
            "softmax output" + (" (fp32 upcast)" if soft != D else ""),
            n,
            shards=HEADS,
        )
        if self.p["attention"] > 0:
            self.add(
                f"{pre}.attention.dropout_mask",
                sq * self.probs_mask_bytes,
                "attention dropout mask",
                n,
                cuda=True,
                shards=HEADS,
            )
            self.add(f"{pre}.attention.dropped_probs", sq * D, "dropped probabilities (P@V's input)", n, shards=HEADS)
        elif soft != D:
            self.add(
                f"{pre}.attention.probs_cast",
                sq * D,
                "probabilities cast back to the dtype (P@V's input)",
                n,
                shards=HEADS,
            )

    def sdpa_broadcast(self, pre: str, n: sp.Expr, dropout: bool) -> None:
        """SDPA with keys and values of fewer heads than the queries, broadcast (Falcon's original
        multi-query attention): no fused kernel takes it, so torch's math path runs, in fp32 (16-bit
        inputs are upcast). It keeps the query, the keys and values expanded to all heads (with b = 1
        the expansion is a view of the one-head tensor), the fp32 probabilities (with dropout also the
        scaled mask and the dropped probabilities) and the output projection's input; the mask is
        added to the scores and not kept."""
        D, tokens, qd, kvd, F = self.nbytes, b * s, a * dh, g * dh, FP32
        self.add(f"{pre}.attention.q", tokens * qd * F, "query (SDPA math path, fp32)", n, shards=HEADS)
        kv = sp.Piecewise((s * kvd, sp.Eq(b, 1)), (tokens * qd, True))
        self.add(
            f"{pre}.attention.kv",
            2 * kv * F,
            "keys and values broadcast to all heads (math path, fp32; with b = 1 a view of the one head)",
            n,
            shards=HEADS,
        )
        sq = b * a * s**2 * FP32
        kept = 3 if dropout else 1
        self.add(f"{pre}.attention.probs", kept * sq, "softmax output (math path, fp32)", n, shards=HEADS)
        self.add(f"{pre}.attention.output", tokens * qd * D, "output projection's input", n, shards=HEADS)

    def values_view_of_fused(self) -> bool:
        """Whether the attention's values are a view of the fused q/k/v projection output while the
        queries and keys are fresh rotated tensors, so that the whole fused output stays alive where
        the values are kept: Phi-3 and GPT-NeoX, and Falcon's original layout without multi-query
        (its q/k/v are slices of the fused output; rotary makes q and k new tensors). True or False."""
        rotary = self.arch.positions is Positions.ROTARY
        return self.rules.sdpa_values_view or (self.arch.attention.qkv_views and rotary)

    def eager_batch1_views(self, pre: str, n: sp.Expr) -> None:
        """With b = 1 (or one query head), the 4-D matmuls of eager attention keep views where b > 1 keeps copies.

        ``matmul`` folds ``[b, heads, s, d]`` to ``[b*heads, s, d]``: a copy when the keys and values
        are not laid out batch-major (b > 1 and more than one head), a view when b = 1 or there is one
        head (read at the model's own head count). ``repeat_kv`` copies them to all heads unless there is one key/value head (then a view: the
        keys and values stay ``kv``-wide) or as many as query heads (nothing to repeat). A view of the
        values keeps the storage they were cut from: the fused q/k/v projection output where there is
        one (Phi-3, GPT-NeoX), else the value projection's output; the keys are a fresh rotated tensor.
        Under autocast, where the rotation promoted q and k to fp32, QK^T saves fresh copies of them
        in the dtype, all heads wide: only the values are views.
        """
        D = self.nbytes
        fused = self.values_view_of_fused()
        # which case applies is read at the model's own head counts (a tensor-parallel split that leaves one
        # kv head per device is not followed: the formula stays in one line)
        one_kv, kv_is_heads, _, _ = self.model.size_cases
        # widths (in head widths) kept beyond the all-heads copies counted with q, k and v
        keys = g - a if one_kv and not self.qk_cast else 0  # the keys stay one head wide
        if fused and (one_kv or kv_is_heads):  # the values' view keeps the whole fused output
            values = 2 * g
        elif one_kv:  # the values stay one head wide
            values = g - a
        else:
            values = 0
        views = b * s * D * dh * (keys + values)
        if views == 0:
            return
        if self.model.sizes.get("n_heads") != 1:  # one head: the fold is a view at every b
            views = sp.Piecewise((views, sp.Eq(b, 1)), (0, True))
        self.add(
            f"{pre}.attention.batch1_views",
            views,
            "b = 1 (every b with one head): keys and values kept as views (kv-wide with one kv head; the "
            "values' whole source)",
            n,
            shards=HEADS,
        )

    def sliding_count(self, group: LayerGroup) -> sp.Expr:
        """How many of ``group``'s layers attend within a sliding window (layers). Where the pattern
        is not all layers and the layers form several groups, the first group answers for all of them
        (the attention of every group is the same)."""
        pattern = self.arch.attention.sliding
        if pattern is Sliding.NONE:
            return sp.Integer(0)
        if pattern is Sliding.ALL:
            return group.count
        return sliding_layers(self.arch) if group is self.arch.groups[0] else sp.Integer(0)

    def attention(self, pre: str, n: sp.Expr, sliding: sp.Expr | None = None) -> None:
        arch, rules, D, o = self.arch, self.rules, self.nbytes, self.options
        qd, kvd, tokens = a * dh, g * dh, b * s
        qk = arch.attention.qk_norm
        if qk.value != "none":
            kind = arch.attention.qk_norm_kind.kind
            self.norm(f"{pre}.attention.q_norm", tokens * qd, tokens * a, n, kind, shards=HEADS, in_stream=False)
            self.norm(f"{pre}.attention.k_norm", tokens * kvd, tokens * g, n, kind, shards=HEADS, in_stream=False)
        if rules.rotary == "per_layer":
            self.add(
                f"{pre}.attention.rotary",
                4 * s * self.rotary_width() * self.nbytes_norm,
                "GPT-J's sin/cos, per layer",
                n,
            )
        dropout = self.p["attention"] > 0
        broadcast = arch.attention.kv_broadcast and o.attention == "sdpa"
        if o.attention == "eager" or (o.attention == "sdpa" and dropout and not self.cuda) or broadcast:
            fp = FP32 if o.attention == "sdpa" else D  # SDPA's math fallback upcasts q, k, v and probabilities
            why = "math fallback of SDPA with dropout (fp32)" if o.attention == "sdpa" else "eager"
            if broadcast:
                self.sdpa_broadcast(pre, n, dropout)
                return
            if o.attention == "eager" and rules.eager_qk_fp32:
                self.add(
                    f"{pre}.attention.qk",
                    2 * tokens * qd * (D if self.amp else FP32),
                    "queries and keys upcast to fp32 (eager; under autocast QK^T's copies in the dtype)",
                    n,
                    shards=HEADS,
                )
                self.add(f"{pre}.attention.v", tokens * qd * D, "values (eager)", n, shards=HEADS)
            else:
                self.add(
                    f"{pre}.attention.qkv",
                    3 * tokens * qd * fp,
                    f"q, k, v, keys/values repeated to all heads ({why})",
                    n,
                    shards=HEADS,
                )
            if o.attention == "sdpa":
                sq = b * a * s**2 * FP32
                self.add(
                    f"{pre}.attention.probs", 3 * sq, "softmax output, scaled mask and dropped probabilities (fp32)", n
                )
                if rules.fused_qkv and fp == D and not self.amp:
                    # with b = 1 the values P@V saves are a view of the fused projection's output, not a copy
                    # (not GPT-BigCode's multi-query values: one head, expanded)
                    # (with one head the fold of [b, 1, s, d] to [b, s, d] is a view at every b)
                    mqa = rules.sdpa_fused_qkv and not self.model.size_cases[1]  # fewer kv heads than heads
                    view = sp.false if mqa else sp.Or(sp.Eq(b, 1), sp.Eq(a, 1))
                    self.add(
                        f"{pre}.attention.v_batch1_view",
                        sp.Piecewise((2 * tokens * qd * D, view), (0, True)),
                        "b = 1 or one head: P@V keeps the whole fused q/k/v output (its values are a view of it)",
                        n,
                    )
            else:
                self.probs(pre, n, softcap=arch.attention.softcap)
                self.eager_batch1_views(pre, n)
            self.add(f"{pre}.attention.output", tokens * qd * D, "output projection's input", n, shards=HEADS)
            return
        # SDPA (CPU flash kernel; CUDA flash / memory-efficient) and flash_attention_2 keep O(s) state
        kv = qd if rules.sdpa_expand_kv else kvd
        if rules.sdpa_fused_qkv:
            self.add(
                f"{pre}.attention.qkv",
                tokens * (qd + 2 * kv) * D,
                "q, k, v: views of one projection output",
                n,
                shards=HEADS,
            )
        else:
            self.add(f"{pre}.attention.q", tokens * qd * D, "query (after rotary)", n, shards=HEADS)
            if self.values_view_of_fused():
                self.add(f"{pre}.attention.k", tokens * kv * D, "keys (after rotary, a fresh tensor)", n, shards=HEADS)
                self.add(
                    f"{pre}.attention.qkv_output",
                    tokens * (qd + 2 * kv) * D,
                    "fused q/k/v projection output, kept whole: SDPA's values are a view of it",
                    n,
                    shards=HEADS,
                )
            else:
                self.add(f"{pre}.attention.kv", 2 * tokens * kv * D, "keys and values (kv heads)", n, shards=HEADS)
        also = "" if rules.sdpa_query_cat else " (also the output projection's input)"
        self.add(f"{pre}.attention.output", tokens * qd * D, "attention output" + also, n, shards=HEADS)
        if rules.sdpa_query_cat:
            self.add(
                f"{pre}.attention.output_copy",
                # with one head (on this device) the [b, a, s, d] -> [b, s, a*d] reshape is a view: no copy
                tokens * qd * D * sp.Piecewise((0, sp.Eq(a, 1)), (1, True)),
                "output projection's input: a copy, SDPA's output follows the [b, a, s, d] layout of the cat-built "
                "query (none with one head)",
                n,
                shards=HEADS,
            )
        lse = s
        if self.cuda and o.attention == "sdpa" and D == FP32:
            lse = sp.ceiling(s / 32) * 32  # memory-efficient kernel pads the log-sum-exp rows
        self.add(
            f"{pre}.attention.logsumexp",
            b * a * lse * FP32,
            "log-sum-exp per query row, fp32",
            n,
            cuda=True,
            shards=HEADS,
        )
        if rules.sdpa_mask:
            self.add(f"{pre}.attention.mask", b * s**2 * D, "explicit attention mask passed to SDPA", n)
        elif sliding is not None and sliding != 0:
            self.sliding_sdpa(pre, sliding)

    def sliding_sdpa(self, pre: str, count: sp.Expr) -> None:
        """What a sliding-window layer keeps beyond the causal SDPA call once ``s >= window``.

        Below the window transformers drops the mask (SDPA's ``is_causal``); from ``s = window`` on it
        passes a ``b x 1 x s x s`` boolean mask, which SDPA converts to an additive mask in the
        dtype and keeps, and it repeats the keys and values to all heads (``repeat_kv``: SDPA's
        ``enable_gqa`` is used only without a mask). The repetition is a copy unless there is one key/value
        head (then a view) or as many as query heads (nothing to repeat); the copied values replace
        the fused projection output that a view of the values kept whole (Phi-3).
        """
        D = self.nbytes
        # keys a heads wide instead of g; values a copy a heads wide instead of g (or of the whole fused output)
        repeat = (D * b * s * dh * (a - 3 * g)) if self.values_view_of_fused() else (2 * D * b * s * dh * (a - g))
        one_kv, kv_is_heads, _, _ = self.model.size_cases
        if self.rules.sdpa_expand_kv or self.rules.sdpa_fused_qkv or one_kv or kv_is_heads:
            repeat = sp.Integer(0)  # nothing repeated, or a view (one kv head): read at the model's head counts
        beyond = sp.Piecewise((b * s**2 * D, s >= S.window), (0, True))
        self.add(
            f"{pre}.attention.sliding_mask",
            beyond,
            "sliding window, s >= window: the additive mask SDPA keeps (b*s^2, dtype)",
            count,
        )
        self.add(
            f"{pre}.attention.sliding_repeat_kv",
            sp.Piecewise((repeat, s >= S.window), (0, True)),
            "sliding window, s >= window: keys and values repeated to all heads (a copy unless kv = 1)",
            count,
            shards=HEADS,
        )

    def mla(self, pre: str, n: sp.Expr) -> None:
        """DeepSeek's latent attention. Its q/k and v head widths differ, so SDPA takes the math path,
        which upcasts q, k, v and the probabilities to fp32 in 16-bit models (torch's default
        ``allow_fp16_bf16_reduction_math_sdp(False)``); eager attention keeps them in the dtype."""
        D, tokens = self.nbytes, b * s
        rms = NormKind.RMSNORM
        if self.arch.attention.q_lora:
            self.norm(f"{pre}.attention.q_a_norm", tokens * S.q_lora_rank, tokens, n, rms, in_stream=False)
            self.add(f"{pre}.attention.q_b_input", tokens * S.q_lora_rank * D, "q_b_proj input", n)
        rkr = S.kv_lora_rank + S.d_rope
        if D == FP32:
            # the norm's fp32 input is a view of the whole kv_a_proj output (latent + decoupled rope key)
            self.add(f"{pre}.attention.kv_a_output", tokens * rkr * D, "kv_a_proj output (the norm reads a view)", n)
        self.norm(
            f"{pre}.attention.kv_a_norm", tokens * S.kv_lora_rank, tokens, n, rms, save_input=False, in_stream=False
        )
        self.add(f"{pre}.attention.kv_b_input", tokens * S.kv_lora_rank * D, "kv_b_proj input", n)
        dq, heads = S.d_nope + S.d_rope, b * a * s
        if self.options.attention == "eager" or D == FP32:
            # P@V reshapes the values (a split of kv_b_proj's output) to b*a rows: with b = 1 that is a
            # view, so the whole kv_b_proj output (nope keys too) stays alive; with b > 1 a copy
            self.add(
                f"{pre}.attention.v_batch1_view",
                sp.Piecewise((s * a * S.d_nope * D, sp.Eq(b, 1)), (0, True)),
                "b = 1 only: P@V keeps the whole kv_b_proj output, not a copy of the values",
                n,
                shards=HEADS,
            )
        if self.options.attention == "sdpa":
            self.add(
                f"{pre}.attention.qk",
                2 * heads * dq * FP32,
                "queries and keys (nope + rope), math path fp32",
                n,
                shards=HEADS,
            )
            sq = b * a * s**2 * FP32
            if self.p["attention"] > 0:
                what = "softmax output, scaled dropout mask and dropped probabilities (math path, fp32)"
                self.add(f"{pre}.attention.probs", 3 * sq, what, n, shards=HEADS)
            else:
                self.add(
                    f"{pre}.attention.probs", sq, "softmax output (math path, fp32; P@V reads it)", n, shards=HEADS
                )
            self.add(f"{pre}.attention.v", heads * S.d_v * FP32, "values, math path fp32", n, shards=HEADS)
            self.add(f"{pre}.attention.output", heads * S.d_v * D, "attention output (o_proj input)", n, shards=HEADS)
            return
        self.add(f"{pre}.attention.qk", 2 * heads * dq * D, "queries and keys (nope + rope)", n, shards=HEADS)
        self.probs(pre, n, softcap=False)
        self.add(
            f"{pre}.attention.v_output", 2 * heads * S.d_v * D, "values and output projection input", n, shards=HEADS
        )

    def moe(self, pre: str, n: sp.Expr) -> None:
        D, tokens, E, k = self.nbytes, b * s, S.n_experts, S.top_k
        fe = S.d_expert
        moe = self.arch.moe
        # a router that casts to fp32 itself runs in autocast's dtype under autocast (its linear is cast back)
        rb = D if (self.rules.router_fp32 and self.amp) else FP32
        if self.rules.router_fp32 and D != FP32 and not self.amp:
            self.add(
                f"{pre}.moe.router_fp32_copies",
                tokens * h * FP32 + h * E * FP32,
                "router's fp32 copies of its input and weight (saved by the fp32 linear)",
                n,
            )
        kind = "sigmoid" if self.rules.router_sigmoid else "softmax"
        self.add(f"{pre}.moe.router_probs", tokens * E * rb, f"router {kind} output, {_dtype_name(rb)}", n)
        self.add(f"{pre}.moe.topk_indices", tokens * k * 8, "top-k expert indices, int64", n)
        if moe is not None and moe.normalize_topk:
            self.add(
                f"{pre}.moe.topk_normalize",
                tokens * rb + tokens * k * rb,
                f"top-k weight normalisation: denominator and normalized weights, {_dtype_name(rb)}",
                n,
            )
        wb = FP32 if (self.rules.routing_weights_fp32 and rb == FP32) else D
        shared_bytes = D  # the shared expert and its gate run through linears: autocast's dtype
        if self.options.experts == "grouped_mm" and self.amp:
            D = FP32  # autocast leaves torch._grouped_mm alone: the experts run on the fp32 weights and inputs
        if self.options.experts == "grouped_mm":
            self.add(f"{pre}.moe.experts.offsets", E * 4, "grouped_mm group offsets, int32", n, shards=EXPERTS)
            self.add(f"{pre}.moe.experts.permutation", 3 * tokens * k * 8, "token permutation indices, int64", n)
            self.add(f"{pre}.moe.experts.tokens", 2 * tokens * k * h * D, "gathered inputs and weighted outputs", n)
            other, extra = self.activation_saves(tokens * k, fe, True)
            self.add(
                f"{pre}.moe.experts.intermediates",
                (4 + extra) * tokens * k * fe * D + other,
                "gate_up output, activation output, down_proj input"
                + (f" and {extra:+d} b*s*k*f_e tensors of {self.arch.mlp.activation}" if extra else ""),
                n,
                shards=EXPERT_WIDTH,
            )
            self.add(f"{pre}.moe.experts.weights", tokens * k * wb, "routing weight per token-slot", n)
        else:
            other, extra = self.activation_saves(tokens * k, fe, True)
            if other != 0 and ACTIVATION_OTHER_SAVED.get(self.arch.mlp.activation, (0, 0))[1]:
                raise SymbolicError(
                    "experts",
                    f"{self.arch.mlp.activation} keeps one-element tensors per expert call, and the per-expert loop "
                    "calls only the experts that receive tokens; allowed: grouped_mm",
                )
            self.add(
                f"{pre}.moe.experts.loop",
                tokens * k * (16 + D * (3 * h + (4 + extra) * fe) + wb) + other,
                "per-expert loop: index pairs (one int64 storage), gathered input, gate_up, act, down input, "
                "routing weight, down output and weighted output",
                n,
                shards=EXPERT_WIDTH,
            )
        if moe is not None and moe.shared_experts:
            self.mlp(f"{pre}.moe.shared_expert", S.d_shared, n)
        # each of the shared expert's input linears casts the fp32 input again, even at width 0
        if self.amp and moe is not None and (moe.shared_experts or self.rules.shared_mlp_always):
            reads = 2 if (self.arch.mlp.kind.value == "gated" and not self.rules.fused_gate_up) else 1
            self.add(
                f"{pre}.moe.shared_expert.input",
                reads * tokens * h * shared_bytes,
                f"{reads} autocast copies of the shared expert's input"
                + ("" if moe.shared_experts else " (its MLP is built with width 0)"),
                n,
            )
        if moe is not None and moe.shared_expert_gate:  # Qwen2-MoE gates it even when its width is 0
            casts = 1 if self.amp else 0  # under autocast the gate's linear casts the input once more
            self.add(
                f"{pre}.moe.shared_gate",
                tokens * shared_bytes + (1 + casts) * tokens * h * shared_bytes,
                "shared expert's sigmoid gate and gated output" + (" and the gate's autocast input" if casts else ""),
                n,
            )

    # ---- once per forward ----
    def shared(self) -> None:
        rules = self.rules
        rot_bytes = FP32 if rules.rotary_fp32 else self.nbytes_norm
        full = self.options.recompute == "full"
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
                s * self.rotary_width() * self.nbytes_norm,
                "GPT-J's sin/cos kept by the checkpoints",
                tags=("shared",),
            )
        pos = {"s": s * 8, "bs": b * s * 8, "none": 0}[rules.ckpt_positions]
        self.add("shared.position_ids", pos, "position ids kept by the checkpoints, int64", tags=("shared",))
        eager = self.options.attention == "eager"  # SDPA (MLA's math path too) gets is_causal and no mask
        # one mask per kind of layer present (full attention, sliding window)
        layers = sp.Add(*(g.count for g in self.arch.groups))
        sliding = sliding_layers(self.arch)
        kinds = sp.Piecewise((1, layers > sliding), (0, True)) + sp.Piecewise((1, sliding > 0), (0, True))
        if eager:
            self.add(
                "shared.attention_mask",
                kinds * b * s**2 * self.nbytes_norm,
                "4-D causal mask(s) kept by the checkpoints (one per kind of layer: full, sliding)",
                tags=("shared",),
            )
        elif self.rules.sdpa_mask:
            self.add("shared.attention_mask", s**2, "bool causal mask kept by the checkpoints", tags=("shared",))
        if not eager and sliding != 0 and self.arch.attention.kind is not AttentionKind.MLA:
            self.add(
                "shared.sliding_mask",
                sp.Piecewise((s**2, s >= S.window), (0, True)),
                "sliding window, s >= window: the bool mask (broadcast over the batch) kept by the checkpoints",
                tags=("shared",),
            )
        if self.arch.positions is Positions.ALIBI and self.rules.checkpoint_alibi:
            self.add(
                "shared.alibi", b * a * s * self.nbytes_norm, "ALiBi biases kept by the checkpoints", tags=("shared",)
            )

    def checkpointed_layer(self, group: LayerGroup) -> None:
        self.add(
            f"{group.name}.checkpoint_input",
            b * s * h * self.nbytes_norm,
            "the layer's input, saved by the checkpoint (everything else is recomputed)",
            group.count,
            shards=SEQ,
        )

    def outside(self) -> None:
        arch, D, rules = self.arch, self.nbytes, self.rules
        tokens = b * s
        if arch.embedding_norm:
            self.norm("embedding.norm", tokens * h, tokens, ONE, arch.norm.kind)
        if self.p["embedding"] > 0:
            mask = 1 if self.cuda else self.nbytes_norm
            self.add("embedding.dropout_mask", tokens * h * mask, "embedding dropout mask", cuda=True, shards=SEQ)
        pos = {"s": s * 8, "bs": b * s * 8, "none": 0}[rules.positions]
        self.add("embedding.position_ids", pos, "position ids saved by the position embedding, int64")
        if arch.final_norm:
            self.norm("head.final_norm", tokens * h, tokens, ONE, arch.norm.kind)
        self.add("head.lm_head_input", tokens * h * D, "lm_head's input")
        if self.amp and arch.lm_head:
            self.add("head.autocast.weight_copy", V * h * D, "autocast copy of the output layer's weight")
        if arch.final_softcap:
            self.add("head.softcap", tokens * V * D, "tanh output of the logit soft-capping")
        self.add("loss.log_probs", tokens * V * FP32, "cross-entropy's fp32 log-softmax of the logits")
        # the loss pads the labels by one position and shifts them: with b = 1 the shifted labels are a
        # view of the padded (s + 1)-element tensor, with b > 1 a contiguous copy of b*s elements
        labels = sp.Piecewise((s + 1, sp.Eq(b, 1)), (tokens, True))
        self.add("loss.labels", labels * INT64, "shifted labels, int64 (b = 1: a view of the s + 1 padded ones)")
        self.add("loss.total_weight", sp.Integer(FP32), "nll_loss's total weight, one fp32 scalar")


def _dtype_name(nbytes: int) -> str:
    """``fp32`` for 4 bytes, else ``16-bit`` (the dtype of a term's text)."""
    return "fp32" if nbytes == FP32 else "16-bit"


def odd_rotary_fails(model: Model) -> bool:
    """Whether ``model`` rotates an odd number of each head's dims where its family's forward then fails in
    transformers (the cos/sin tables one wider than the rotated dims); GPT-NeoX and Phi-3 rotate the
    wider width instead, below the full head width (:attr:`Model.rotary_table_fraction`)."""
    _, _, odd, partial = model.size_cases
    rounds_up = rules_for(model.arch.family).odd_rotary_rounds_up and partial
    return model.arch.positions is Positions.ROTARY and odd and not rounds_up


def _check(model: Model, o: ActivationOptions) -> None:
    rules = rules_for(model.arch.family)
    fam = model.arch.family
    if odd_rotary_fails(model):
        rotated = model.rotated_width
        raise SymbolicError(
            "partial_rotary_factor",
            f"rotates {rotated} of {model.sizes['d_head']} head dims, an odd number: {fam}'s cos/sin tables are "
            f"then {rotated + 1} wide and its forward fails in transformers {TRANSFORMERS_VERSION}; "
            "choose a factor that rotates an even number of dims",
        )
    if o.attention == "flash" and o.device != "cuda":
        raise SymbolicError("attention", "flash (flash_attention_2) runs on CUDA only; use --device cuda or sdpa/eager")
    if o.attention == "flash" and model.arch.attention.kind is AttentionKind.MLA:
        raise SymbolicError("attention", f"{fam} (latent attention) has no flash kernel here; allowed: eager, sdpa")
    if o.attention in ("sdpa", "flash") and not rules.sdpa:
        raise SymbolicError("attention", f"{fam} supports only eager attention in transformers {TRANSFORMERS_VERSION}")
    if o.recompute == "selective":
        raise SymbolicError(
            "recompute",
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
    return Breakdown(BYTES, tuple(bld.terms))
