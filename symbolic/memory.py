"""Memory per device: the composition of model states, activations and transient buffers.

:func:`memory` builds, from a model's parameter terms (never re-derived), the byte terms one
device holds: weights, gradients, master weights and optimizer state
(:mod:`symbolic.formulas.states`), activations (:func:`device_activation_terms`) and transient buffers
(ZeRO-3's gathered layer). Each category's total is a SymPy expression in the model's sizes and
the parallel degrees; :class:`DeviceMemory` evaluates them exactly. The peak is the largest point
of the training step's timeline (:mod:`symbolic.formulas.step`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from . import symbols as S
from .arch import Model
from .conventions import DEFAULT as DEFAULT_CONVENTION
from .conventions import get_convention
from .defaults import default_workload
from .errors import SymbolicError
from .formulas.activations import (
    ActivationOptions,
    Layout,
    activations_json,
    check_parallel,
    check_workload,
    on_stage,
)
from .formulas.states import (
    CATEGORIES,
    DEFAULT_OPTIMIZER,
    DEFAULT_RECIPE,
    Optimizer,
    Recipe,
    gathered_layer_terms,
    get_optimizer,
    get_recipe,
    state_terms,
)
from .formulas.step import LAYER, Timeline, get_implementation, step_timeline
from .formulas.weights import get_weight_format
from .model import check_lora_rank, parameters
from .numeric import ceil_int, evaluate, rational
from .parallel import Parallelism
from .terms import Breakdown, Quantity, Term

__all__ = [
    "Workload",
    "device_activation_terms",
    "DeviceMemory",
    "memory",
    "whole_bytes",
    "memory_json",
]

BYTES = Quantity.BYTES


@dataclass(frozen=True)
class Workload:
    """What one device processes per step: ``batch`` sequences of ``seq`` tokens."""

    batch: int = 1
    seq: int = 2048

    def __post_init__(self) -> None:
        for option in ("batch", "seq"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SymbolicError(option, f"must be a positive integer, got {value!r}")

    def values(self) -> dict[str, int]:
        """The workload as symbol values (sequences, tokens)."""
        return {"batch": self.batch, "seq": self.seq}


def device_activation_terms(
    model: Model, workload: Workload, parallel: Parallelism, convention: str = "exact", **options: Any
) -> Breakdown:
    """Activation bytes one device holds for the backward pass (bytes).

    ``options`` (``dtype``, ``attention``, ``recompute``, ``device``, ``interleave``) build an
    :class:`~symbolic.formulas.activations.ActivationOptions`. A rule with ``per_tp_device`` writes
    tensor, sequence and pipeline parallelism into its own terms (Korthikanti's Table 2); the other
    rules' terms carry what splits them (``Term.shards``): one device's share comes from
    :meth:`Parallelism.activation_share`, its pipeline stage's layers and micro-batches in flight
    from :func:`~symbolic.formulas.activations.on_stage`.
    """
    rule = get_convention(convention, "activations").activations
    assert rule is not None
    check_workload(model, workload.batch, workload.seq)
    opts = ActivationOptions(**options)
    check_parallel(model, rule, opts, parallel.cp)
    terms = rule.build(model, opts, Layout(parallel.sequence_parallel, parallel.pp, parallel.cp, parallel.tp))
    if rule.places_stages:
        return terms
    if (parallel.tp > 1 or parallel.cp > 1) and not any(t.shards for t in terms):
        raise SymbolicError(
            "convention",
            f"the {convention} activation terms do not say how tensor or context parallelism splits them "
            "(traced: the model type has no tensor-parallel plan, base_model_tp_plan, in transformers); "
            "use --convention exact (or megatron) with --tp/--cp above 1",
        )
    if parallel.tp > 1 and any(S.tp in t.shards for t in terms):
        _check_whole_heads(model, parallel.tp)
    staged = on_stage(terms, parallel.stage or 0, parallel.pp, opts.interleave)
    return staged.map(parallel.activation_share)


def _check_whole_heads(model: Model, tp: int) -> None:
    """Refuse a ``tp`` that splits attention heads: transformers' tensor-parallel plan (which the
    traced terms follow) splits the q/k/v projections' columns evenly, with no replication of
    key/value heads, so ``tp`` must divide the head counts of the config."""
    config = model.config or {}
    heads = config.get("num_attention_heads")
    kv = config.get("num_key_value_heads") or heads
    for name, value in (("num_attention_heads", heads), ("num_key_value_heads", kv)):
        if isinstance(value, int) and value % tp:
            raise SymbolicError(
                "tp",
                f"{tp} must divide {name} ({value}): transformers' tensor-parallel plan, which the traced "
                "terms follow, splits the attention projections by whole heads",
            )


def whole_bytes(term: Term) -> sp.Expr:
    """The bytes of ``term`` on one device with each tensor (shard) rounded up to a whole byte (bytes).

    The rounding rule of every printed byte count: ZeRO/FSDP and tensor parallelism split each
    tensor into equal shards, and a shard that does not come out even is stored whole, so each
    instance's bytes are rounded up before they are multiplied by the instance count:
    ``ceiling(per-instance bytes) * count``. Sums of such terms are exact integers, so a total is
    always the sum of its parts. (A shard holds whole elements, so a real one may be up to one
    element larger again; the allocator's own block rounding is not modelled.)
    """
    return sp.ceiling(term.expr) * term.count


@dataclass(frozen=True)
class DeviceMemory:
    """Bytes per device, by category, as SymPy expressions and exact integers (bytes).

    ``terms`` holds the weights, gradients, master, optimizer and transient terms (each tagged
    with its category); ``activations`` the activation terms or ``None`` when not computed;
    ``values`` the symbol values the numbers are evaluated at; ``stage`` the pipeline stage.
    """

    model: Model
    terms: Breakdown
    activations: Breakdown | None
    values: Mapping[str, int]
    stage: int
    notes: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    timeline: Timeline | None = None

    def category(self, name: str) -> Breakdown:
        """The terms of one category (bytes): weights, gradients, master, optimizer, activations, transient."""
        if name not in CATEGORIES:
            raise SymbolicError("category", f"unknown {name!r}; allowed: {', '.join(CATEGORIES)}")
        if name == "activations":
            return self.activations if self.activations is not None else Breakdown(BYTES)
        return self.terms.where(lambda t: name in t.tags)

    def expr(self, name: str) -> sp.Expr:
        """The per-device total of a category, a SymPy expression (bytes)."""
        return self.category(name).total

    @property
    def states_expr(self) -> sp.Expr:
        """Weights + gradients + master + optimizer per device (bytes)."""
        return sp.Add(*(self.expr(c) for c in ("weights", "gradients", "master", "optimizer")))

    @property
    def transient_expr(self) -> sp.Expr:
        """The largest transient buffer per device (bytes): the max over the transient terms, or 0."""
        parts = [t.total for t in self.category("transient")]
        return sp.Max(*parts) if parts else sp.Integer(0)

    @property
    def peak_expr(self) -> sp.Expr | None:
        """The step's peak (bytes): the maximum of the training step's timeline
        (:mod:`symbolic.formulas.step`); without an optimizer, weights + activations + the largest
        transient buffer; ``None`` without activations."""
        if self.activations is None:
            return None
        if self.timeline is not None:
            return self.timeline.peak_expr
        return self.states_expr + self.activations.total + self.transient_expr

    def peak_candidates(self) -> tuple[sp.Expr, ...] | None:
        """The expressions (bytes) whose largest value is the step's peak, where the peak is the
        timeline's (each point, or a layer group's two ends: :meth:`~symbolic.formulas.step.Point.candidates`);
        ``None`` where it is not (no activations, or no optimizer step)."""
        if self.activations is None or self.timeline is None:
            return None
        return tuple(e for p in self.timeline.points for e in p.candidates())

    def peak_point(self) -> dict[str, Any] | None:
        """Where the peak falls: the timeline point with the most bytes (phase, label, bytes, layer)."""
        points = self.timeline_points()
        return None if points is None else max(points, key=lambda p: p["bytes"])

    def timeline_points(self) -> list[dict[str, Any]] | None:
        """Every point of the step's timeline at this report's values, in step order: ``phase``,
        ``label``, ``bytes`` (a per-layer point at its worst layer) and ``layer`` (that index, or None)."""
        if self.timeline is None:
            return None
        out = []
        for p in self.timeline.points:
            if p.layers is None:
                out.append({"phase": p.phase, "label": p.label, "bytes": self.evaluate(p.expr), "layer": None})
                continue
            n = self.evaluate(p.layers)
            ends = [(self.evaluate(p.expr.subs(LAYER, i)), i) for i in ((0, n - 1) if n > 1 else (0,))]
            value, layer = max(ends)
            out.append({"phase": p.phase, "label": p.label, "bytes": value, "layer": layer})
        return out

    def timeline_series(self) -> list[tuple[str, str, int]] | None:
        """The timeline with every layer spelled out: ``(phase, label, bytes)`` in step order."""
        if self.timeline is None:
            return None
        out = []
        for p in self.timeline.points:
            if p.layers is None:
                out.append((p.phase, p.label, self.evaluate(p.expr)))
                continue
            n = self.evaluate(p.layers)
            order = range(n) if p.phase == "forward" else range(n - 1, -1, -1)
            for i in order:
                out.append((p.phase, p.label.replace("layer i", f"layer {i}"), self.evaluate(p.expr.subs(LAYER, i))))
        return out

    def evaluate(self, expr: sp.Expr) -> int:
        """An expression of this report evaluated at its values (bytes, an int rounded up)."""
        return ceil_int(evaluate(expr, self.values), "bytes")

    def whole_expr(self, name: str) -> sp.Expr | None:
        """A per-device figure with every tensor rounded up to whole bytes (see :func:`whole_bytes`):
        a category, ``states``, ``transient`` or ``peak``; ``None`` where activations are unknown.
        The printed integers and the sweep's exact values both evaluate this expression (bytes)."""
        if name == "states":
            return sp.Add(*(self.whole_expr(c) for c in ("weights", "gradients", "master", "optimizer")))
        if name == "transient":
            parts = [whole_bytes(t) for t in self.category("transient")]
            return sp.Max(*parts) if parts else sp.Integer(0)
        if name == "peak":
            if self.activations is None:
                return None
            if self.timeline is not None:
                return self.timeline.peak_expr
            return sp.Add(*(self.whole_expr(c) for c in ("states", "activations", "transient")))
        if name == "activations" and self.activations is None:
            return None
        return sp.Add(*(whole_bytes(t) for t in self.category(name)))

    def term_bytes(self, term: Term) -> int:
        """The bytes of one term on this device, each tensor rounded up to whole bytes (bytes)."""
        return ceil_int(evaluate(whole_bytes(term), self.values), "bytes")

    def bytes(self, name: str) -> int | None:
        """One per-device figure in bytes: a category, ``states``, ``transient`` or ``peak`` (None if
        unknown); the sum of its terms, each tensor rounded up to whole bytes (:func:`whole_bytes`)."""
        candidates = self.peak_candidates() if name == "peak" else None
        if candidates is not None:
            # the largest point, each evaluated on its own: the value of Timeline.peak_expr (rounding up
            # is monotone), without SymPy comparing every pair of symbolic points to build the Max
            return max(self.evaluate(e) for e in candidates)
        expr = self.whole_expr(name)
        return None if expr is None else self.evaluate(expr)

    def per_device(self) -> dict[str, int | None]:
        """Every per-device figure in bytes (``None`` for activations and peak until computed)."""
        keys = ("weights", "gradients", "master", "optimizer", "states", "activations", "transient", "peak")
        return {k: self.bytes(k) for k in keys}

    def all_terms(self) -> Breakdown:
        """States, transient and activation terms together (bytes)."""
        return self.terms + (self.activations or Breakdown(BYTES))


def _category_of(tags: Iterable[str]) -> str:
    for c in CATEGORIES:
        if c in tags:
            return c
    return "activations"


def memory(
    model: Model,
    workload: Workload | None = None,
    parallel: Parallelism | None = None,
    precision: str | Recipe = DEFAULT_RECIPE,
    optimizer: str | Optimizer = DEFAULT_OPTIMIZER,
    freeze: Iterable[str] = (),
    lora_rank: int | None = None,
    lora_targets: Sequence[str] | None = None,
    qlora: str | None = None,
    convention: str = "exact",
    step_counters: bool = False,
    optimizer_impl: str | None = None,
    zero_grad: str = "set-to-none",
    accumulation: int = 1,
    **activation_options: Any,
) -> DeviceMemory:
    """Bytes one device holds to train (or, with optimizer ``none``, run) ``model`` (bytes).

    ``precision``: a recipe name (``fp32``, ``mixed``, ``mixed-fp32-grads``, ``mixed-fp32-accum``,
    ``bf16``, ``custom:W,G,M,S[,A]``); ``optimizer``: ``adamw``, ``adam``, ``sgd``, ``sgd-momentum``,
    ``lion``, ``adafactor``, ``adam-8bit`` or ``none``; ``freeze``: components without gradients or
    optimizer state; ``lora_rank``/``lora_targets``: LoRA adapters (the base is frozen); ``qlora``:
    ``nf4`` or ``nf4-dq`` to store the frozen base matrices in 4 bits. ``parallel`` sets the degrees,
    ZeRO stage and pipeline stage (default: the stage holding the most). ``convention`` and
    ``activation_options`` go to :func:`device_activation_terms`. ``optimizer_impl``: ``for-loop``,
    ``foreach`` or ``fused`` (``None``: torch's default on ``device``); ``zero_grad``:
    ``set-to-none`` or ``zero``; ``accumulation``: micro-batches per optimizer step. The peak is the
    maximum of the step's timeline (:func:`symbolic.formulas.step.step_timeline`).

    >>> from symbolic.registry import load_model
    >>> memory(load_model("gpt2")).bytes("states")  # bf16 weights, mixed precision, AdamW: 16 bytes each
    1991036928
    """
    if workload is None:  # the default: 2048 tokens, or the learned position table if shorter
        workload = Workload(**default_workload(model))
    parallel = parallel or Parallelism()
    recipe = precision if isinstance(precision, Recipe) else get_recipe(precision)
    opt = optimizer if isinstance(optimizer, Optimizer) else get_optimizer(optimizer)
    notes = parallel.check(model)
    if lora_rank is not None and (isinstance(lora_rank, bool) or not isinstance(lora_rank, int) or lora_rank <= 0):
        raise SymbolicError("lora_rank", f"must be a positive integer, got {lora_rank!r}")
    if lora_targets and lora_rank is None:
        raise SymbolicError("lora_targets", "needs --lora-rank R")
    if lora_rank is not None:
        check_lora_rank(model, lora_rank, lora_targets or ())
    base_format = None
    if qlora is not None:
        if qlora not in ("nf4", "nf4-dq"):
            raise SymbolicError("qlora", f"unknown {qlora!r}; allowed: nf4, nf4-dq")
        if lora_rank is None:
            raise SymbolicError("qlora", "needs --lora-rank R (QLoRA trains LoRA adapters on a 4-bit base)")
        base_format = get_weight_format(qlora, "qlora")
    conv = get_convention(convention, "memory")
    param_convention = conv.name if conv.parameters is not None else DEFAULT_CONVENTION
    targets = (tuple(lora_targets or ())) if lora_rank is not None else None
    params = parameters(model, param_convention, freeze, targets)

    values: dict[str, int] = {**model.sizes, **parallel.values(), **workload.values()}
    if lora_rank is not None:
        values["lora_rank"] = lora_rank
    values["interleave"] = int(activation_options.get("interleave", 1))
    window = model.config.get("sliding_window")
    if isinstance(window, int) and window > 0:
        values["window"] = window

    def build(stage: int) -> Breakdown:
        device = parallel.device_terms(model.arch, params, stage)
        states = state_terms(device, recipe, opt, parallel, base_format, step_counters)
        return states + gathered_layer_terms(device, recipe, parallel)

    def on(stage: int) -> Parallelism:
        return Parallelism(**{**parallel.__dict__, "stage": stage}) if parallel.pp > 1 else parallel

    if recipe.autocast is not None:
        if activation_options.get("dtype", recipe.autocast) != recipe.autocast:
            raise SymbolicError(
                "dtype", f"{recipe.name} computes in {recipe.autocast}; got --dtype {activation_options['dtype']}"
            )
        activation_options = {**activation_options, "dtype": recipe.autocast, "autocast": True}
    # states and activations of each stage asked about: the first stages keep more micro-batches in flight
    candidates = {
        stage: (build(stage), device_activation_terms(model, workload, on(stage), convention, **activation_options))
        for stage in parallel.stages()
    }
    if len(candidates) == 1:
        stage = next(iter(candidates))
    else:
        stage = max(
            candidates, key=lambda s: ceil_int(evaluate((candidates[s][0] + candidates[s][1]).total, values), "bytes")
        )
        notes.append(
            f"pipeline stage {stage} of {parallel.pp} holds the most states + activations (asked for none: the largest)"
        )
    terms, acts = candidates[stage]
    chosen = on(stage)
    opts = ActivationOptions(**activation_options)
    layout = Layout(parallel.sequence_parallel, parallel.pp, parallel.cp, parallel.tp)
    share = None if conv.activations is None or conv.activations.per_tp_device else chosen.activation_share
    terms = terms + conv.transient_terms(model, opts, layout, share)
    impl = get_implementation(optimizer_impl, activation_options.get("device", "cuda"))
    timeline = None
    if acts is not None and opt.trains:
        others = [t.total for t in terms.where(lambda t: "transient" in t.tags) if t.path != "transient.logits_grad"]
        timeline = step_timeline(
            model,
            terms,
            acts,
            dtype_bytes=ActivationOptions(**activation_options).nbytes,
            grad_bytes=rational(recipe.gradients + recipe.accumulation),
            state_bytes=rational(recipe.state),
            optimizer=opt.name,
            implementation=impl,
            zero_grad=zero_grad,
            accumulation=accumulation,
            step_counters=not step_counters,
            layer_transient=sp.Max(*others) if others else sp.Integer(0),
            autocast=bool(activation_options.get("autocast")),
            weight_bytes=rational(recipe.weights),
            eager=activation_options.get("attention") == "eager",
            buffers=None if model.hand_written else _traced_buffers(model, rational(recipe.weights)),
        )
    if not opt.trains:
        notes.append("optimizer none: inference, so no gradients, master weights or optimizer state")
    if lora_rank is not None and parallel.tp > 1:
        notes.append("LoRA adapters are replicated on every tensor-parallel device")
    if step_counters and opt.step_bytes:
        notes.append(f"includes torch.optim's {opt.step_bytes}-byte step counter per tensor")
    settings = {
        "precision": recipe.name,
        "precision_bytes": {
            "weights": float(recipe.weights),
            "gradients": float(recipe.gradients),
            "master": float(recipe.master),
            "optimizer_state": float(recipe.state),
            "accumulation": float(recipe.accumulation),
        },
        "optimizer": opt.name,
        "optimizer_impl": impl.name,
        "zero_grad": zero_grad,
        "grad_accum": accumulation,
        "freeze": list(freeze),
        "lora_rank": lora_rank,
        "lora_targets": list(targets) if targets is not None else None,
        "qlora": qlora,
        "convention": convention,
        "batch": workload.batch,
        "seq": workload.seq,
        **parallel.values(),
        "zero": parallel.zero,
        "hybrid_shard": parallel.hybrid_shard,
        "sequence_parallel": parallel.sequence_parallel,
        "stage": stage,
        "vocab_multiple": parallel.vocab_multiple,
        "devices": parallel.devices,
        **{k: v for k, v in activation_options.items()},
    }
    return DeviceMemory(model, terms, acts, values, stage, tuple(notes), settings, timeline)


def memory_json(report: DeviceMemory) -> dict[str, Any]:
    """The ``symbolic memory --json`` object: per-device bytes, per-term bytes and formulas, notes, settings."""
    values = report.values
    degree_ones = {S.symbol(k): 1 for k in ("dp", "tp", "pp", "cp", "ep") if values[k] == 1}

    def formula(expr: sp.Expr) -> str:
        return str(expr.xreplace(degree_ones))

    per_device = report.per_device()
    formulas = {c: formula(report.expr(c)) for c in ("weights", "gradients", "master", "optimizer")}
    formulas["states"] = formula(report.states_expr)
    return {
        "model": report.model.name,
        "unit": "bytes",
        "per_device": per_device,
        "per_device_formula": formulas,
        "terms": [
            {
                "path": t.path,
                "category": _category_of(t.tags),
                "description": t.description,
                "formula": formula(t.total),
                "bytes": report.term_bytes(t),
            }
            for t in report.all_terms()
        ],
        "activations": _activations_json(report),
        "peak_point": report.peak_point(),
        "timeline": report.timeline_points(),
        "notes": list(report.notes),
        "settings": dict(report.settings),
        "values": dict(values),
    }


def _activations_json(report: DeviceMemory) -> dict[str, Any] | None:
    """The activations object (bytes): total, per layer, shared, outside the layers, per term; None if unknown."""
    if report.activations is None:
        return None
    return activations_json(report.activations, report.model, report.values)


def _traced_buffers(model: Model, weight_bytes: sp.Expr) -> sp.Expr:
    """The buffers' bytes of a model known only through its trace (read off the traced model)."""
    from .trace.convention import buffer_bytes

    return buffer_bytes(model, weight_bytes)
