"""One quantity request: (model, quantity, options) -> the Breakdown, its values and the defaults applied.

Every caller that needs "the terms of a quantity at a point" asks here: the command line (params,
flops, memory, dominates, sensitivity, crossover, fit, plot), the sweep, the derivation documents
and the notebooks. Nothing here mutates its inputs; errors name fields (``batch``, ``seq``,
``convention``), and the command line maps them to its flags.

# [model, quantity, options] -> (defaults) -> [Breakdown (SymPy) + values] -> analysis / numeric / report

>>> from symbolic.registry import load_model
>>> answer = request(load_model("llama2-7b"), "flops")
>>> answer.defaults
{'batch': 1, 'seq': 2048}
>>> answer.terms.quantity.unit
'FLOPs'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .defaults import DEFAULT_BATCH, DEFAULT_SEQ, default_workload
from .errors import SymbolicError

if TYPE_CHECKING:  # the command line reads this module's defaults at start-up: SymPy loads on first request
    from .arch import Model
    from .memory import DeviceMemory
    from .parallel import Parallelism
    from .terms import Breakdown

__all__ = ["QUANTITIES", "DEFAULT_BATCH", "DEFAULT_SEQ", "DEGREES", "SOLVABLE", "Answer", "default_workload", "request"]

QUANTITIES = ("params", "flops", "memory")
DEGREES = ("dp", "tp", "pp", "cp", "ep")
SOLVABLE = ("batch", "seq", *DEGREES)  # what a memory fit may leave open (symbolic.analysis.fit_memory)
_PARALLEL_FIELDS = (*DEGREES, "zero", "hybrid_shard", "sequence_parallel", "stage", "vocab_multiple")


@dataclass(frozen=True)
class Answer:
    """What a request returns.

    ``model``: the model asked about (with size overrides applied); ``terms``: the Breakdown (its
    unit is ``terms.quantity``); ``values``: every symbol value the terms are evaluated at (sizes,
    ``batch``, ``seq``, degrees); ``defaults``: the options the request filled in (name -> value);
    ``memory``: the whole memory report for ``memory`` (None otherwise).
    """

    model: Model
    quantity: str
    terms: Breakdown
    values: Mapping[str, int]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    memory: DeviceMemory | None = None


def _parallel(options: Mapping[str, Any], sizes: Mapping[str, int]) -> tuple[Parallelism, dict[str, Any]]:
    """The Parallelism named by ``options`` (and degrees set as sizes), and the remaining options."""
    from .parallel import Parallelism

    fields = {k: v for k, v in options.items() if k in _PARALLEL_FIELDS}
    fields.update({k: sizes[k] for k in DEGREES if k in sizes})
    rest = {k: v for k, v in options.items() if k not in _PARALLEL_FIELDS}
    return Parallelism(**fields), rest


def _check_unsharded(convention: str, parallel: Parallelism) -> None:
    """Refuse each parallel split a convention's terms do not say how they are divided by (one line each)."""
    from .conventions import get_convention

    splits = get_convention(convention, "memory").parallel
    how = (
        f"splits its terms by {', '.join(sorted(splits))} only" if splits else "counts one unsharded replica"
    ) + " (data parallelism and ZeRO apply)"
    for degree in ("tp", "pp", "cp", "ep"):
        value = getattr(parallel, degree)
        if value > 1 and degree not in splits:
            raise SymbolicError(
                degree,
                f"{value}: the {convention} convention {how}; allowed: 1, or a convention with parallel rules (exact)",
            )
    if parallel.sequence_parallel and "sequence_parallel" not in splits:
        raise SymbolicError("sequence_parallel", f"the {convention} convention {how}")
    if parallel.vocab_multiple is not None and "vocab_multiple" not in splits:
        raise SymbolicError("vocab_multiple", f"the {convention} convention pads no vocabulary: it {how}")


def request(
    model: Model,
    quantity: str,
    *,
    convention: str = "exact",
    batch: int | None = None,
    seq: int | None = None,
    recompute: str = "none",
    causal: bool = False,
    sizes: Mapping[str, int] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Answer:
    """The terms of ``quantity`` (``params``: parameters, ``flops``: FLOPs, ``memory``: bytes per device)
    of ``model`` and the values to evaluate them at.

    ``batch``/``seq`` default to :func:`default_workload` (recorded in ``Answer.defaults``);
    ``sizes`` overrides symbol values (a model size such as ``n_layers`` changes the model; a degree
    such as ``tp`` sets the parallel layout of ``memory``). ``recompute`` and ``causal`` shape the
    FLOPs; ``convention`` picks the convention of parameters and FLOPs, and of memory's activations.
    ``options`` are memory's settings (``precision``, ``optimizer``, ``freeze``, ``lora_rank``,
    ``qlora``, degrees and ``zero``, activation ``dtype``/``attention``/``device``...). The memory
    terms leave the transient buffers out (``Answer.memory`` has them).
    """
    from .memory import Workload, memory
    from .model import flops_terms, parameters

    if quantity not in QUANTITIES:
        raise SymbolicError("quantity", f"unknown {quantity!r}; allowed: {', '.join(QUANTITIES)}")
    sizes = dict(sizes or {})
    options = dict(options or {})
    defaults: dict[str, Any] = {}
    workload = default_workload(model)
    if batch is None:
        batch = defaults["batch"] = workload["batch"]
    if seq is None:
        seq = defaults["seq"] = workload["seq"]
    model_sizes = {k: v for k, v in sizes.items() if k in model.sizes}
    if model_sizes:
        model = model.with_sizes(**model_sizes)
    values: dict[str, int] = {**model.sizes, "batch": batch, "seq": seq, **sizes}
    if quantity == "params":
        return Answer(model, quantity, parameters(model, convention), values, defaults)
    if quantity == "flops":
        return Answer(model, quantity, flops_terms(model, convention, recompute, causal), values, defaults)
    parallel, settings = _parallel(options, sizes)
    _check_unsharded(convention, parallel)
    if recompute != "none":
        settings["recompute"] = recompute
    report = memory(model, Workload(batch, seq), parallel, convention=convention, **settings)
    terms = report.all_terms().where(lambda t: "transient" not in t.tags)
    return Answer(model, quantity, terms, {**report.values, **sizes}, defaults, report)
