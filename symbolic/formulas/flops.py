"""Training FLOPs of one step (``batch`` sequences of ``seq`` tokens), term per operation.

Every term is a :class:`~symbolic.terms.Term` of :attr:`Quantity.FLOPS` whose path starts with
its pass: ``forward.``, ``backward.`` or ``recompute.`` (the extra forward work activation
recomputation does). Model FLOPs are forward + backward; hardware FLOPs add the recompute
terms. A multiply-add counts as 2 FLOPs. Backward terms are written as a multiple of their
forward term (2x: one product for the input gradient, one for the weight gradient), so each
operation's count exists once.

Conventions (see ``symbolic/conventions.py``):

- ``exact``: derived from the architecture's parameter terms: 2 FLOPs per multiply-add over each
  weight matrix (``Term.shape``), routed experts at ``top_k`` of ``n_experts``, grouped-query
  key/value widths, and the attention products ``QK^T`` and ``AV`` over ``seq^2`` pairs
  (``causal=True`` counts only the ``seq(seq+1)/2`` unmasked ones). Embedding look-ups, norms,
  biases, activations and softmax are not matrix products and are left out.
- ``kaplan``: Kaplan et al. 2020, Table 1, non-embedding: ``C_forward = 2N + 2 n_layer n_ctx d_attn``
  per token, with ``n_ctx = seq`` and ``d_attn = n_heads d_head``.
- ``chinchilla``: Hoffmann et al. 2022, Appendix FLOPS, every row (embeddings, softmax, logits).
- ``megatron``: Korthikanti et al. 2022, App. A / Eq. 7: ``72BLsh^2(1 + s/6h + V/12hL)``; selective
  recompute is Eq. 8 as printed (it counts the attention-matrix forward 3 times, not once),
  full recompute gives Narayanan et al. 2021 Eq. 3.
- ``palm``: Chowdhery et al. 2022, App. B: ``6N + 12 L H Q T`` per token, N every parameter a token
  meets (routed experts at ``top_k`` of ``n_experts``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from .. import symbols as S
from ..arch import Arch, AttentionKind, LayerGroup, Model
from ..errors import SymbolicError
from ..terms import Breakdown, Quantity, Term
from .params import parameter_terms

__all__ = [
    "RECOMPUTE",
    "FlopsRule",
    "EXACT_FLOPS",
    "KAPLAN_FLOPS",
    "CHINCHILLA_FLOPS",
    "MEGATRON_FLOPS",
    "PALM_FLOPS",
    "step_terms",
    "model_flops",
    "hardware_flops",
    "per_token",
    "time_to_train",
    "utilization",
]

FLOPS = Quantity.FLOPS
ONE = sp.Integer(1)
RECOMPUTE: tuple[str, ...] = ("none", "selective", "full")

KAPLAN = "Kaplan et al. 2020, Scaling Laws for Neural Language Models (arXiv 2001.08361), Table 1"
CHINCHILLA = "Hoffmann et al. 2022, Training Compute-Optimal LLMs (arXiv 2203.15556), Appendix F"
MEGATRON = "Korthikanti et al. 2022 (arXiv 2205.05198), Appendix A, Eq. 7/8; Narayanan et al. 2021 Eq. 3"
PALM = "Chowdhery et al. 2022, PaLM (arXiv 2204.02311), Appendix B"
EXACT = "2 FLOPs per multiply-add over each weight matrix of the exact parameter terms"

LAYER = "layer"  # a term inside a layer group: full recomputation re-runs it
SCORES = "scores"  # an attention-matrix term (s^2): selective recomputation re-runs it


def _op(path: str, expr: sp.Expr, description: str, count: sp.Expr = ONE, source: str = "", tags=()) -> Term:
    return Term(f"forward.{path}", expr, FLOPS, description, count=count, source=source, tags=frozenset(tags))


def _arch(model: Model | Arch) -> Arch:
    return model.arch if isinstance(model, Model) else model


def _dense_groups(arch: Arch, convention: str) -> tuple[LayerGroup, ...]:
    if arch.is_moe or arch.attention.kind is not AttentionKind.STANDARD:
        raise SymbolicError(
            "convention", f"{convention} describes dense stacks with standard attention; use exact or palm"
        )
    return arch.groups


def _pairs(causal: bool) -> sp.Expr:
    """Query-key pairs per sequence: all ``seq^2`` or the ``seq(seq+1)/2`` a causal mask keeps."""
    return S.seq * (S.seq + 1) / 2 if causal else S.seq**2


def _attention_widths(arch: Arch) -> tuple[sp.Expr, sp.Expr]:
    """Per-head widths of the query-key product and of the value product."""
    if arch.attention.kind is AttentionKind.MLA:
        return S.d_nope + S.d_rope, S.d_v
    return S.d_head, S.d_head


def _active(term: Term) -> sp.Expr:
    """Parameters of ``term`` one token meets: routed experts at top_k of n_experts (parameters)."""
    per_copy = sp.Mul(*term.shape) if term.shape is not None else term.expr / term.copies
    return (S.top_k if term.expert else term.copies) * per_copy


def _exact(arch: Arch, causal: bool) -> list[Term]:
    b, s = S.batch, S.seq
    params = parameter_terms(arch)
    out: list[Term] = []
    for t in params:
        if t.shape is None or len(t.shape) != 2 or t.path.startswith("embedding."):
            continue
        layer = t.count != 1 or t.path.split(".")[0] in {g.name for g in arch.groups}
        what = "routed experts (top_k of n_experts active)" if t.expert else t.description
        out.append(_op(t.component, 2 * b * s * _active(t), what, t.count, EXACT, (LAYER,) if layer else ()))
    if arch.lm_head and arch.tied_embeddings:
        emb = params.term("embedding.tokens.weight")
        assert emb.shape is not None
        out.append(
            _op("lm_head", 2 * b * s * sp.Mul(*emb.shape), "output projection (tied to the embedding)", ONE, EXACT)
        )
    qk, v = _attention_widths(arch)
    for g in arch.groups:
        p, tags = f"{g.name}.attention", (LAYER, SCORES)
        out.append(
            _op(f"{p}.scores", 2 * b * _pairs(causal) * S.n_heads * qk, "attention scores QK^T", g.count, EXACT, tags)
        )
        out.append(
            _op(f"{p}.values", 2 * b * _pairs(causal) * S.n_heads * v, "attention over values AV", g.count, EXACT, tags)
        )
    return out


def _kaplan(arch: Arch) -> list[Term]:
    tokens, d, d_attn, d_ff = S.batch * S.seq, S.d_model, S.n_heads * S.d_head, S.d_ffn
    out = []
    for g in _dense_groups(arch, "kaplan"):
        n = g.name
        tag = (LAYER,)
        out += [
            _op(f"{n}.attention.qkv", tokens * 2 * d * 3 * d_attn, "Attention: QKV", g.count, KAPLAN, tag),
            _op(
                f"{n}.attention.mask",
                tokens * 2 * S.seq * d_attn,
                "Attention: Mask (n_ctx = seq)",
                g.count,
                KAPLAN,
                (LAYER, SCORES),
            ),
            _op(f"{n}.attention.project", tokens * 2 * d_attn * d, "Attention: Project", g.count, KAPLAN, tag),
            _op(f"{n}.mlp", tokens * 2 * 2 * d * d_ff, "Feedforward", g.count, KAPLAN, tag),
        ]
    return out


def _chinchilla(arch: Arch) -> list[Term]:
    b, s, V, d, H = S.batch, S.seq, S.n_vocab, S.d_model, S.n_heads
    kqh, ffw = S.d_head * H, S.d_ffn
    out = [_op("embedding", b * 2 * s * V * d, "Embeddings", ONE, CHINCHILLA)]
    for g in _dense_groups(arch, "chinchilla"):
        n, tag, sc = g.name, (LAYER,), (LAYER, SCORES)
        out += [
            _op(
                f"{n}.attention.qkv",
                b * 2 * 3 * s * d * kqh,
                "key, query and value projections",
                g.count,
                CHINCHILLA,
                tag,
            ),
            _op(f"{n}.attention.logits", b * 2 * s * s * kqh, "Key @ Query logits", g.count, CHINCHILLA, sc),
            _op(f"{n}.attention.softmax", b * 3 * H * s * s, "Softmax", g.count, CHINCHILLA, sc),
            _op(f"{n}.attention.values", b * 2 * s * s * kqh, "Softmax @ query reductions", g.count, CHINCHILLA, sc),
            _op(f"{n}.attention.project", b * 2 * s * kqh * d, "Final linear", g.count, CHINCHILLA, tag),
            _op(f"{n}.mlp", b * 2 * s * (d * ffw + d * ffw), "Dense block", g.count, CHINCHILLA, tag),
        ]
    out.append(_op("logits", b * 2 * s * d * V, "Final logits", ONE, CHINCHILLA))
    return out


def _megatron(arch: Arch) -> list[Term]:
    B, s, h, V = S.batch, S.seq, S.d_model, S.n_vocab
    out = []
    for g in _dense_groups(arch, "megatron"):
        n, tag, sc = g.name, (LAYER,), (LAYER, SCORES)
        out += [
            _op(f"{n}.attention.qkv", 6 * B * s * h**2, "QKV transformation 6Bsh^2", g.count, MEGATRON, tag),
            _op(f"{n}.attention.scores", 2 * B * s**2 * h, "attention matrix 2Bs^2h", g.count, MEGATRON, sc),
            _op(f"{n}.attention.values", 2 * B * s**2 * h, "attention over values 2Bs^2h", g.count, MEGATRON, sc),
            _op(
                f"{n}.attention.project",
                2 * B * s * h**2,
                "post-attention linear projection 2Bsh^2",
                g.count,
                MEGATRON,
                tag,
            ),
            _op(f"{n}.mlp", 16 * B * s * h**2, "feed-forward network (4h) 16Bsh^2", g.count, MEGATRON, tag),
        ]
    out.append(_op("logits", 2 * B * s * h * V, "logit layer 2BshV", ONE, MEGATRON))
    return out


def _palm(arch: Arch) -> list[Term]:
    tokens = S.batch * S.seq
    groups = {g.name for g in arch.groups}
    out = []
    for t in parameter_terms(arch):
        layer = t.path.split(".")[0] in groups
        out.append(
            _op(
                f"weights.{t.path}",
                2 * tokens * _active(t),
                f"2N: {t.description}",
                t.count,
                PALM,
                (LAYER,) if layer else (),
            )
        )
    qk, v = _attention_widths(arch)
    for g in arch.groups:
        # 12 L H Q T per token over forward + backward: one third of it forward
        expr = 2 * S.n_heads * (qk + v) * S.seq * tokens
        out.append(
            _op(
                f"{g.name}.attention",
                expr,
                "dense self-attention 12LHQT (forward third)",
                g.count,
                PALM,
                (LAYER, SCORES),
            )
        )
    return out


@dataclass(frozen=True)
class FlopsRule:
    """A convention's FLOPs: its forward builder and the facts the step composition needs.

    ``forward(arch, causal)`` returns the forward terms (FLOPs; paths ``forward.*``, tagged
    ``layer``/``scores`` for recomputation). ``causal``: the builder honours ``causal=True``.
    ``selective_factor``: how many times selective recomputation counts the attention-matrix forward
    (1; Megatron's Eq. 8 as printed counts it 3 times, Korthikanti et al. 2022).
    ``reads_model``: the builders take the :class:`Model` (its config), not only the Arch.
    ``backward``: the backward terms (paths ``backward.*``) where the convention has its own, rather
    than twice each forward term. ``recomputes``: the recompute settings the rule can count.
    """

    forward: Callable[[Any, bool], list[Term]]
    causal: bool = False
    selective_factor: int = 1
    reads_model: bool = False
    backward: Callable[[Any, bool], list[Term]] | None = None
    recomputes: tuple[str, ...] = RECOMPUTE


EXACT_FLOPS = FlopsRule(_exact, causal=True)
KAPLAN_FLOPS = FlopsRule(lambda arch, causal: _kaplan(arch))
CHINCHILLA_FLOPS = FlopsRule(lambda arch, causal: _chinchilla(arch))
MEGATRON_FLOPS = FlopsRule(lambda arch, causal: _megatron(arch), selective_factor=3)
PALM_FLOPS = FlopsRule(lambda arch, causal: _palm(arch))


def step_terms(
    model: Model | Arch, rule: FlopsRule, convention: str = "exact", recompute: str = "none", causal: bool = False
) -> Breakdown:
    """FLOPs of one training step of ``batch`` sequences of ``seq`` tokens, per operation (FLOPs).

    Forward terms of ``rule`` (the convention called ``convention``), backward terms (2x forward
    each) and, with ``recompute`` ``selective`` or ``full``, the forward work recomputed in the
    backward pass. ``causal`` (only where ``rule.causal``) counts only the query-key pairs a causal
    mask keeps.
    """
    if recompute not in RECOMPUTE:
        raise SymbolicError("recompute", f"unknown {recompute!r}; allowed: {', '.join(RECOMPUTE)}")
    if causal and not rule.causal:
        raise SymbolicError("causal", f"only the exact convention has a causal option; {convention} is fixed")
    if recompute not in rule.recomputes:
        raise SymbolicError(
            "recompute", f"{convention} cannot count {recompute!r} recomputation; allowed: {', '.join(rule.recomputes)}"
        )
    if rule.reads_model and not isinstance(model, Model):
        raise SymbolicError("convention", f"{convention} reads the model's config: pass a Model, not an Arch")
    subject = model if rule.reads_model else _arch(model)
    forward = rule.forward(subject, causal)
    backward = (
        rule.backward(subject, causal)
        if rule.backward is not None
        else [
            t.with_(
                path="backward" + t.path.removeprefix("forward"),
                expr=2 * t.expr,
                description=f"backward of {t.description} (2x forward)",
            )
            for t in forward
        ]
    )
    extra: list[Term] = []
    if recompute != "none":
        wanted = LAYER if recompute == "full" else SCORES
        factor = rule.selective_factor if recompute == "selective" else 1
        for t in forward:
            if wanted in t.tags:
                extra.append(
                    t.with_(
                        path="recompute" + t.path.removeprefix("forward"),
                        expr=factor * t.expr,
                        description=f"{recompute} recomputation of {t.description}"
                        + (" (Eq. 8 as printed: 3x)" if factor != 1 else ""),
                    )
                )
    return Breakdown(FLOPS, tuple(forward + backward + extra))


def model_flops(terms: Breakdown) -> Breakdown:
    """The forward and backward terms (model FLOPs, as MFU counts them; FLOPs)."""
    return terms.where(lambda t: not t.path.startswith("recompute."))


def hardware_flops(terms: Breakdown) -> Breakdown:
    """All terms, recomputation included (hardware FLOPs, as HFU counts them; FLOPs)."""
    return terms


def per_token(expr: sp.Expr) -> sp.Expr:
    """A step's FLOPs divided by its ``batch * seq`` tokens (FLOPs per token)."""
    return sp.expand(expr / (S.batch * S.seq))


def time_to_train(total_flops: float, devices: int, flops_per_second: float) -> float:
    """Seconds to run ``total_flops`` on ``devices`` each sustaining ``flops_per_second`` (s)."""
    if devices <= 0 or flops_per_second <= 0:
        raise SymbolicError("devices" if devices <= 0 else "flops_per_second", "must be positive")
    return float(total_flops) / (devices * float(flops_per_second))


def utilization(flops_per_step: float, step_seconds: float, devices: int, peak_flops_per_second: float) -> float:
    """Achieved / peak FLOP/s (a fraction): MFU with model FLOPs, HFU with hardware FLOPs."""
    if step_seconds <= 0 or devices <= 0 or peak_flops_per_second <= 0:
        raise SymbolicError("utilization", "step time, devices and peak must be positive")
    return float(flops_per_step) / step_seconds / devices / float(peak_flops_per_second)
