"""Composition: a model and a convention -> the breakdowns. The only place layers combine.

Each function looks the convention up in :mod:`symbolic.conventions` and calls its builder:
``parameters`` (with components frozen and LoRA adapters added; ``parameter_counts`` evaluates
them to exact integers), ``activation_terms`` and ``flops_terms``. Memory per device composes these
in :mod:`symbolic.memory`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sympy as sp

from . import symbols as S
from .arch import Arch, Model
from .conventions import get_convention
from .errors import SymbolicError
from .formulas.activations import ActivationOptions, Layout
from .formulas.flops import step_terms
from .numeric import evaluate
from .terms import Breakdown, Quantity, Term, path_matches

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "parameters",
    "activation_terms",
    "flops_terms",
    "ParameterCounts",
    "parameter_counts",
    "convention_difference",
    "check_lora_rank",
]

# PEFT's default LoRA targets for Llama-style models
DEFAULT_LORA_TARGETS: tuple[str, ...] = ("q_proj", "v_proj")


def _base_terms(model: Model | Arch, convention: str) -> Breakdown:
    return get_convention(convention, "parameters").parameter_terms(model)


def _check_patterns(option: str, patterns: Sequence[str], terms: Breakdown) -> None:
    for pattern in patterns:
        if not any(path_matches(pattern, p) for p in terms.paths):
            components = sorted({".".join(p.split(".")[:2]) for p in terms.paths})
            raise SymbolicError(option, f"{pattern!r} matches no parameter; components: {', '.join(components)}")


def _lora_terms(terms: Breakdown, targets: Sequence[str]) -> list[Term]:
    """One adapter pair (A: r x d_in, B: d_out x r) per targeted weight matrix (parameters)."""
    out = []
    for t in terms:
        if not t.path.endswith(".weight") or t.shape is None or len(t.shape) != 2:
            continue
        if not any(path_matches(p, t.path) for p in targets):
            continue
        d_out, d_in = t.shape
        out.append(
            Term(
                path="lora." + t.path.removesuffix(".weight"),
                expr=t.copies * S.lora_rank * (d_in + d_out),
                quantity=Quantity.PARAMETERS,
                description=f"LoRA adapter A (r x {d_in}) and B ({d_out} x r) on {t.component}",
                count=t.count,
                shape=None,
                copies=t.copies,
                expert=t.expert,
                source="Hu et al. 2021, LoRA (arXiv 2106.09685)",
                tags=frozenset({"lora"}),
            )
        )
    return out


def parameters(
    model: Model | Arch,
    convention: str = "exact",
    freeze: Iterable[str] = (),
    lora_targets: Sequence[str] | None = None,
) -> Breakdown:
    """The parameter terms of ``model`` (parameters).

    ``freeze`` names components (``embedding``, ``attention``, ``block.mlp.up_proj``, ``all``)
    whose terms become frozen. ``lora_targets`` (e.g. ``("q_proj", "v_proj")``) adds rank
    ``lora_rank`` adapters on those weight matrices and freezes the whole base, as PEFT does.
    """
    terms = _base_terms(model, convention)
    freeze = tuple(freeze)
    _check_patterns("freeze", freeze, terms)
    if lora_targets is not None:
        targets = tuple(lora_targets) or DEFAULT_LORA_TARGETS
        _check_patterns("lora_targets", targets, terms.where(lambda t: t.path.endswith(".weight")))
        adapters = _lora_terms(terms, targets)
        if not adapters:
            raise SymbolicError("lora_targets", f"{', '.join(targets)} name no weight matrix")
        freeze = ("all",)
    if freeze:
        terms = terms.map(lambda t: t.with_(trainable=not any(path_matches(p, t.path) for p in freeze)))
    if lora_targets is not None:
        terms = terms + Breakdown(Quantity.PARAMETERS, tuple(adapters))
    return terms


def check_lora_rank(model: Model, rank: int, lora_targets: Sequence[str] = ()) -> None:
    """Refuse a LoRA ``rank`` above the smaller side of a matrix it adapts (a rank-r update of a
    d_out x d_in matrix is only low-rank while r <= min(d_out, d_in)); ``SymbolicError`` names
    ``lora_rank`` and the largest rank allowed."""
    from .inputs import integer

    integer("lora_rank", rank, "rank")
    terms = _base_terms(model, "exact")
    targets = tuple(lora_targets) or DEFAULT_LORA_TARGETS
    sides = []
    for t in terms:
        if t.path.endswith(".weight") and t.shape is not None and len(t.shape) == 2:
            if any(path_matches(p, t.path) for p in targets):
                sides += [int(evaluate(side, model.sizes)) for side in t.shape]
    if sides and rank > min(sides):
        raise SymbolicError(
            "lora_rank",
            f"{rank} is above the smaller side of the adapted matrices ({min(sides)}); allowed: 1 .. {min(sides)}",
        )


def activation_terms(
    model: Model, convention: str = "exact", options: ActivationOptions | None = None, layout: Layout | None = None
) -> Breakdown:
    """The activation terms of ``model`` under ``convention`` (bytes), in ``batch``, ``seq`` and the sizes.

    ``layout`` (sequence parallelism, the pipeline degree) matters to conventions whose terms are per
    tensor-parallel device (``megatron``: Korthikanti's Table 2 rows); the others ignore it.
    """
    conv = get_convention(convention, "activations")
    conv.check_model(model)
    rule = conv.activations
    assert rule is not None
    return rule.build(model, options or ActivationOptions(), layout or Layout())


def flops_terms(
    model: Model | Arch, convention: str = "exact", recompute: str = "none", causal: bool = False
) -> Breakdown:
    """FLOPs of one training step of ``batch`` sequences of ``seq`` tokens, per operation (FLOPs).

    Forward terms, backward terms (2x forward each) and, with ``recompute`` ``selective`` or
    ``full``, the forward work recomputed in the backward pass. ``causal`` (``exact`` only)
    counts only the query-key pairs a causal mask keeps.

    >>> from symbolic.registry import load_model
    >>> from symbolic.numeric import evaluate
    >>> gpt2 = load_model("gpt2")
    >>> evaluate(flops_terms(gpt2, "palm").total, {**gpt2.sizes, "batch": 1, "seq": 1024})
    880522297344
    """
    conv = get_convention(convention, "flops")
    conv.check_model(model)
    rule = conv.flops
    assert rule is not None
    return step_terms(model, rule, convention, recompute, causal)


@dataclass(frozen=True)
class ParameterCounts:
    """Exact parameter counts of a model (parameters): total, trainable, frozen, per term."""

    total: int
    trainable: int
    frozen: int
    per_term: dict[str, int]


def parameter_counts(model: Model, terms: Breakdown | None = None, **sizes: int) -> ParameterCounts:
    """Evaluate parameter terms at the model's sizes (plus ``sizes``, e.g. ``lora_rank``) (parameters).

    >>> from symbolic.registry import load_model
    >>> parameter_counts(load_model("llama2-7b")).total  # what transformers builds
    6738415616
    """
    terms = parameters(model) if terms is None else terms
    values = {**model.sizes, **sizes}
    per_term = {t.path: int(evaluate(t.total, values)) for t in terms}
    trainable = sum(per_term[t.path] for t in terms if t.trainable)
    total = sum(per_term.values())
    return ParameterCounts(total, trainable, total - trainable, per_term)


def convention_difference(
    model: Model | Arch, first: str = "exact", second: str = "basic", depth: int = 2
) -> Breakdown:
    """Per component (paths cut to ``depth`` segments): ``first`` minus ``second`` (parameters).

    Terms that cancel are left out; the sum of the result is the difference of the totals.
    """
    a = _base_terms(model, first).grouped(depth)
    b = _base_terms(model, second).grouped(depth)
    keys = list(dict.fromkeys(a.paths + b.paths))
    out = []
    for key in keys:
        ea = a.term(key).total if key in a.paths else sp.Integer(0)
        eb = b.term(key).total if key in b.paths else sp.Integer(0)
        diff = sp.expand(ea - eb)
        if diff != 0:
            out.append(Term(key, diff, Quantity.PARAMETERS, f"{first} minus {second} for {key}"))
    return Breakdown(Quantity.PARAMETERS, tuple(out))
