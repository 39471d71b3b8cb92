"""``trace``: a transformers causal LM's parameters, saved activations and FLOPs, from its code.

# [config] -> fake model -> [fake steps, one per region] -> [Breakdowns]  (cached on disk)

The general step has batch ``b`` and sequence ``s`` as symbols (example values 3 and 37); the
b = 1 step fixes the batch at 1, since PyTorch specialises sizes of 1 (views instead of copies).
Where the general step's guards put a threshold on ``s`` (a sliding window), a step is taken on
each side of it. The answer is a ``Piecewise`` over these regions; ``Trace.conditions`` lists the
guards that the general region still assumes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import sympy as sp

import symbolic.trace.cache as trace_cache
import symbolic.trace.run as R

from .. import symbols as S
from ..errors import SymbolicError
from ..terms import Breakdown, Quantity
from .result import EXTRA_HINT, Trace, TraceOptions
from .sizes import SizeSymbols, size_conditions
from .split import parameter_splits, resolved_plan
from .terms import condition_of, merge_regions, parameter_terms, region_terms

__all__ = ["TraceOptions", "Trace", "trace", "EXTRA_HINT"]

_MAX_REGIONS = 4
_DATA_DEPENDENT = "depends on tensor values"
_CONCRETE = "trace at a concrete size instead (e.g. --batch 1 --seq 2048)"


def _check_model_type(config: Mapping[str, Any]) -> str:
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise SymbolicError("model_type", "missing: a config.json names its model_type")
    _, transformers = R.import_torch()
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        known = "known to transformers" if model_type in CONFIG_MAPPING_NAMES else "unknown to transformers"
        raise SymbolicError(
            "model_type",
            f"{model_type!r} is {known} {transformers.__version__} but has no causal-LM class; "
            f"{len(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)} model types have one (e.g. llama, qwen3, phi)",
        )
    return model_type


def trace(config: Mapping[str, Any], options: TraceOptions | None = None, use_cache: bool = True) -> Trace:
    """Trace one training step of the causal LM a HF ``config`` describes (see the module doc).

    Returns a :class:`Trace` (parameters in parameters, activations in bytes, FLOPs in FLOPs).
    Raises :class:`SymbolicError` (one line: the cause and what to try) for configs transformers
    rejects, model types without a causal-LM class and steps that depend on tensor values; and
    ImportError when torch/transformers are missing.
    """
    options = options or TraceOptions()
    try:
        versions = R.versions()  # the cache key; torch itself is imported on a miss only
    except ImportError as err:
        raise ImportError(f"tracing needs torch and transformers ({err.name} is missing); {EXTRA_HINT}") from None
    key = trace_cache.key_for(config, options.key(), versions) if use_cache else None
    if key is not None:
        hit = trace_cache.load(key)
        if hit is not None:
            return hit
    model_type = _check_model_type(config)
    started = time.perf_counter()
    result = _trace_keeping_sizes(model_type, config, options, versions)
    result = _with(result, seconds=time.perf_counter() - started)
    if key is not None:
        trace_cache.save(key, result)
    return result


def _with(result: Trace, **changes: Any) -> Trace:
    from dataclasses import replace

    return replace(result, **changes)


def _trace_keeping_sizes(
    model_type: str, config: Mapping[str, Any], options: TraceOptions, versions: dict[str, str]
) -> Trace:
    """The trace; with symbolic sizes, a size whose symbol stops the step (a shape check torch cannot
    prove for every value, such as ``s//2 + (s+1)//2 == s``) is left a number and the trace taken
    again, so sizes stay symbols where the shapes allow."""
    numeric: frozenset[str] = frozenset()
    while True:
        made: list[SizeSymbols] = []
        try:
            return _trace(model_type, config, options, versions, numeric, made)
        except SymbolicError as err:
            blamed = made[0].fields_named_in(err.message) - numeric if made and made[0] else set()
            if not blamed:
                raise
            numeric |= blamed


def _trace(
    model_type: str,
    config: Mapping[str, Any],
    options: TraceOptions,
    versions: dict[str, str],
    numeric: frozenset[str] = frozenset(),
    made: list[SizeSymbols] | None = None,
) -> Trace:
    try:
        model, fake, env, size_symbols = R.build_fake(
            config,
            options.dtype,
            options.attention,
            options.recompute,
            options.experts,
            options.symbolic_sizes,
            numeric,
        )
        if made is not None and size_symbols is not None:
            made.append(size_symbols)
    except SymbolicError:
        raise
    except Exception as err:  # transformers rejects the config: its own words, one line
        if "does not support an attention implementation" in str(err):
            raise SymbolicError(
                "attention",
                f"{model_type} has no {options.attention} attention in transformers {versions['transformers']}; "
                "allowed: eager",
            ) from None
        if "data-dependent" in str(err) or "DataDependent" in type(err).__name__:
            raise SymbolicError(
                "trace",
                f"building {model_type} on fake tensors {_DATA_DEPENDENT}{_user_frame(err)}; use a hand-written convention",
            ) from None
        if "Couldn't swap" in str(err):
            raise SymbolicError(
                "trace",
                f"the {model_type} model converts its parameters while it is built, which torch cannot do on fake "
                f"tensors ({_one_line(err)}); use a hand-written convention",
            ) from None
        raise SymbolicError("config", f"transformers rejects this {model_type} config: {_one_line(err)}") from None
    layers = R.find_layers(model)
    if layers is not None and options.unrolled:  # every layer its own group of one
        layers = R.Layers(layers.path, layers.signatures, [[i] for i in range(len(layers.signatures))])
    n_layers = len(layers.signatures) if layers else 0
    plan, _ = resolved_plan(model)  # without a plan nothing says it is divided: tp > 1 is refused
    params = parameter_terms(model, layers, n_layers, size_symbols, parameter_splits(model, plan))
    sizes = {"n_layers": n_layers, **R.buffer_sizes(model)}
    if options.parameters_only:
        empty = (Breakdown(Quantity.BYTES), Breakdown(Quantity.FLOPS))
        return _with_sizes(
            Trace(model_type, params, *empty, sizes, _groups(layers), (), versions, options), size_symbols, env
        )
    kept_first: set[int] = set()
    if layers is not None:
        R.select_layers(model, layers, options.unrolled)
        kept_first = {g[0] for g in layers.groups} if not options.unrolled else set(range(n_layers))
    path = layers.path if layers else None

    def step(batch: int | None, hint: int, flops: bool, fixed: bool = False) -> R.StepResult:
        try:
            return R.run_step(
                model,
                fake,
                env,
                path,
                batch,
                hint,
                flops,
                seq_fixed=fixed,
                autocast=options.autocast,
                sizes=size_symbols,
                tp_plan=plan,
            )
        except Exception as err:
            raise _step_error(model_type, err, batch, hint) from None

    notes: tuple[str, ...] = ()
    try:
        general = step(None, R.SEQ_HINT, True)
        _check_specialised(model_type, general)
    except SymbolicError as err:
        if options.at is None or err.field != "trace" or _DATA_DEPENDENT in err.message:
            raise
        at_batch, at_seq = options.at
        point = step(at_batch, at_seq, True, fixed=True)
        notes = (f"traced at batch = {at_batch}, seq = {at_seq} only: {err.message.split(';')[0]}",)
        regions = [region_terms(point, layers, kept_first, n_layers, sp.true)]
        general = point
    else:
        hints = _other_hints(general)
        regions = []
        for hint in [*hints, R.SEQ_HINT]:
            try:
                steps = [general if (b is None and hint == R.SEQ_HINT) else step(b, hint, False) for b in (1, None)]
            except SymbolicError as err:
                if hint == R.SEQ_HINT:
                    raise
                # past a limit of the model itself (its position table): the code does not run there,
                # and the general region's conditions say where the formulas hold
                notes += (f"no formula past seq = {hint - 1}: {err.message}",)
                continue
            for batch, result in zip((1, None), steps, strict=True):
                fixed = {S.batch: 1} if batch == 1 else {}
                cond = condition_of(result.guards, result, fixed) if (batch or hint != R.SEQ_HINT) else sp.true
                regions.append(region_terms(result, layers, kept_first, n_layers, cond))
    # the general region last (its condition is the fallback); flops only from the general step
    regions.sort(key=lambda r: r.condition is sp.true)
    activations = merge_regions(regions, "activations", Quantity.BYTES)
    split_copies = merge_regions(regions, "split_copies", Quantity.BYTES)
    flops = merge_regions([regions[-1]], "flops", Quantity.FLOPS)
    found = activations.total.free_symbols | flops.total.free_symbols
    unbacked = {x for x in found if re.fullmatch(r"u\d+", str(x))}  # torch names unbacked sizes u0, u1, ...
    if unbacked:  # sizes read from tensor values (tokens per expert): no formula in b and s
        raise SymbolicError(
            "trace",
            f"the {model_type} step {_DATA_DEPENDENT} (sizes {', '.join(sorted(map(str, unbacked)))} come from "
            "them), which fake tensors do not have; for MoE use the grouped_mm experts path, else a hand-written "
            "convention",
        )
    conditions = tuple(sorted({str(c) for c in _general_conditions(general)}))
    groups = _groups(layers)
    traced = Trace(
        model_type=model_type,
        parameters=params,
        activations=activations,
        flops=flops,
        sizes=sizes,
        layer_groups=groups,
        conditions=conditions,
        versions=versions,
        options=options,
        notes=notes,
        split_copies=split_copies,
    )
    return _with_sizes(traced, size_symbols, env)


def _with_sizes(result: Trace, size_symbols: SizeSymbols | None, env: Any) -> Trace:
    """``result`` with what the trace says of the model sizes it kept symbolic (if any). A field
    the code fixed at a value late in the step (``range(num_experts)``) is that value everywhere."""
    if size_symbols is None:
        return result
    fixed = size_symbols.fixed(env)
    names = {field.name: value for field, value in size_symbols.symbols.values() if field.name not in fixed}
    values = {field: sp.Integer(value) for field, value in size_symbols.symbols.values() if field.name in fixed}

    def bind(breakdown: Breakdown) -> Breakdown:
        return breakdown.map(lambda t: t.with_(expr=t.expr.xreplace(values), count=t.count.xreplace(values)))

    bound = (c.xreplace(values) for c in size_conditions(env, size_symbols))
    conditions = tuple(c for c in dict.fromkeys(bound) if c is not sp.true)
    return _with(
        result,
        parameters=bind(result.parameters),
        activations=bind(result.activations),
        flops=bind(result.flops),
        size_symbols=dict(sorted(names.items())),
        size_conditions=conditions,
        fixed_sizes=fixed,
    )


def _groups(layers: R.Layers | None) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(g) for g in layers.groups) if layers else ()


def _general_conditions(step: R.StepResult) -> list[sp.Basic]:
    cond = condition_of(step.guards, step, {})
    if cond is sp.true:
        return []
    return list(cond.args) if isinstance(cond, sp.And) else [cond]


def _other_hints(step: R.StepResult) -> list[int]:
    """Example sequence lengths on the other side of every threshold the general step's guards put on s."""
    hints: list[int] = []
    for cond in _general_conditions(step):
        if cond.free_symbols != {S.seq} or not isinstance(cond, sp.core.relational.Relational):
            continue
        try:
            roots = sp.solve(sp.Eq(cond.lhs, cond.rhs), S.seq)
        except Exception:  # floor divisions, modulos (chunked code): the first size past the threshold
            roots = [_first_outside(cond)]
        for root in roots:
            if root is None or not root.is_number:
                continue
            for candidate in (int(sp.floor(root)) - 1, int(sp.floor(root)), int(sp.floor(root)) + 1):
                if candidate >= 2 and not bool(cond.subs(S.seq, candidate)) and candidate not in hints:
                    hints.append(candidate)
                    break
    return sorted(hints)[:_MAX_REGIONS]


def _holds(cond: sp.Basic, seq: int) -> bool:
    """Whether a guard on s alone holds at ``seq`` (one where it is undefined, a modulo by zero, counts
    as holding); guards may hold torch's own FloorDiv, so they are substituted, not lambdified."""
    try:
        return bool(cond.subs(S.seq, seq))
    except Exception:
        return True


def _first_outside(cond: sp.Basic, limit: int = 1 << 16) -> sp.Integer | None:
    """The smallest sequence length >= 2 where ``cond`` (a guard on s alone) does not hold, by
    doubling then bisection over the sizes where it changes once; None when none below ``limit``."""

    def holds(n: int) -> bool:
        return _holds(cond, n)

    if not holds(R.SEQ_HINT):
        return None
    low = R.SEQ_HINT
    high = next((n for n in (2**k for k in range(1, 17)) if n > low and not holds(n)), None)
    if high is None or high > limit:
        lower = next((n for n in range(2, low) if not holds(n)), None)
        return sp.Integer(lower) if lower is not None else None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if holds(mid) else (low, mid)
    return sp.Integer(high)


def _check_specialised(model_type: str, step: R.StepResult) -> None:
    if step.specialised:
        which = ", ".join(f"{k} = {v}" for k, v in step.specialised.items())
        raise SymbolicError(
            "trace",
            f"the {model_type} code fixes {which} (it reads the size as a number), so no formula in b and s "
            f"comes out; {_CONCRETE}",
        )
    pins = [
        c
        for c in _general_conditions(step)
        if isinstance(c, sp.Eq) and c.free_symbols == {S.seq} and sum(_holds(c, n) for n in range(2, 1025)) < 64
    ]
    if pins:  # e.g. s // 16 == 2: the code took a branch that holds for a few lengths only
        raise SymbolicError(
            "trace",
            f"the {model_type} code pins the sequence length ({pins[0]}), so no formula in b and s comes out; "
            f"{_CONCRETE}",
        )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(err).__name__


def _step_error(model_type: str, err: BaseException, batch: int | None, hint: int) -> SymbolicError:
    name = type(err).__name__
    if "DataDependent" in name or "DynamicOutputShape" in name or "Unbacked" in name or "data-dependent" in str(err):
        where = _user_frame(err)
        return SymbolicError(
            "trace",
            f"the {model_type} step {_DATA_DEPENDENT} ({name}{where}), which fake tensors do not have; "
            f"for MoE use the grouped_mm experts path, else a hand-written convention",
        )
    where = _user_frame(err)
    if "concrete" in str(err) or "GuardOnDataDependent" in name or "specializ" in str(err):
        return SymbolicError(
            "trace", f"the {model_type} code needs concrete sizes ({name}{where}: {_one_line(err)[:120]}); {_CONCRETE}"
        )
    return SymbolicError(
        "trace",
        f"the {model_type} step failed on fake tensors at b={batch or 'symbolic'}, s={hint}{where}: {_one_line(err)}",
    )


def _user_frame(err: BaseException) -> str:
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if "/transformers/" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" in {f.filename.split('/transformers/', 1)[1]}:{f.lineno}"


def config_bytes(config: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a config (sorted keys), as the cache key uses them."""
    return json.dumps(config, sort_keys=True, default=str).encode()
