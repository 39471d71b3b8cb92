"""What a trace is asked (``TraceOptions``) and what it answers (``Trace``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SymbolicError
from ..terms import Breakdown, Quantity

__all__ = ["TraceOptions", "Trace", "EXTRA_HINT"]

EXTRA_HINT = 'install the trace extra: pip install "symbolic[trace]"'
DTYPES = ("fp32", "bf16", "fp16")
ATTENTIONS = ("sdpa", "eager")
RECOMPUTES = ("none", "full")
EXPERTS = ("grouped_mm", "batched_mm")
AUTOCASTS = ("bf16", "fp16")


@dataclass(frozen=True)
class TraceOptions:
    """How the training step is run: dtype, attention kernel, recomputation, MoE experts path.

    ``unrolled=True`` runs every decoder layer (slow for deep models; for checking the grouping).
    ``at=(batch, seq)``: where the code fixes a size (so no formula in b and s comes out), trace at
    this one point instead; the answer then holds there only (``Trace.conditions`` says so).
    ``parameters_only=True`` builds the model and reads its parameters without running a step
    (the activation and FLOP Breakdowns are empty).
    ``autocast``: run the step under ``torch.autocast("cpu")`` to this 16-bit dtype (``bf16`` or
    ``fp16``) over weights of ``dtype``, which must then be ``fp32`` (the amp recipes); ``None``: no
    autocast.
    ``symbolic_sizes=True`` keeps the config's size fields as symbols too (:mod:`symbolic.trace.sizes`).
    """

    dtype: str = "fp32"
    attention: str = "sdpa"
    recompute: str = "none"
    experts: str | None = None
    unrolled: bool = False
    at: tuple[int, int] | None = None
    parameters_only: bool = False
    autocast: str | None = None
    symbolic_sizes: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("dtype", self.dtype, DTYPES),
            ("attention", self.attention, ATTENTIONS),
            ("recompute", self.recompute, RECOMPUTES),
        ):
            if value not in allowed:
                raise SymbolicError(name, f"{value!r} cannot be traced; allowed: {', '.join(allowed)}")
        if self.experts is not None and self.experts not in EXPERTS:
            raise SymbolicError(
                "experts",
                f"{self.experts!r} cannot be traced (the per-expert loop's sizes depend on the routing); "
                f"allowed: {', '.join(EXPERTS)}",
            )
        if self.autocast is not None and self.autocast not in AUTOCASTS:
            raise SymbolicError("autocast", f"{self.autocast!r} cannot be traced; allowed: {', '.join(AUTOCASTS)}")
        if self.autocast is not None and self.dtype != "fp32":
            raise SymbolicError(
                "dtype", f"{self.dtype!r} under autocast: autocast runs over fp32 weights; allowed: fp32"
            )

    def key(self) -> dict[str, Any]:
        """The options as a JSON-able dict (part of the cache key)."""
        return {
            "dtype": self.dtype,
            "attention": self.attention,
            "recompute": self.recompute,
            "experts": self.experts,
            "unrolled": self.unrolled,
            "at": list(self.at) if self.at else None,
            "parameters_only": self.parameters_only,
            "autocast": self.autocast,
            "symbolic_sizes": self.symbolic_sizes,
        }


@dataclass(frozen=True)
class Trace:
    """A traced model: Breakdowns in parameters, bytes (saved for backward) and FLOPs.

    Expressions are in the symbols ``batch``, ``seq`` and (for one group of identical layers)
    ``n_layers``; ``sizes`` binds ``n_layers``. An activation term that tensor parallelism divides (as
    the model's own plan says) carries ``shards = {tp}``; ``split_copies`` are the ``1/tp`` slices a
    module splitting a whole input saves besides it, which only a tensor-parallel run makes. ``conditions`` are the guards the general region
    assumes; ``versions`` the torch and transformers that answered; ``seconds`` the tracing time.
    With symbolic sizes, ``size_symbols`` names the config fields the expressions are written in
    (with the config's values),
    ``size_conditions`` the branches the code took on them, and ``fixed_sizes`` the fields the code
    read as numbers (kept at the config's value).
    """

    model_type: str
    parameters: Breakdown
    activations: Breakdown
    flops: Breakdown
    sizes: dict[str, int]
    layer_groups: tuple[tuple[int, ...], ...]
    conditions: tuple[str, ...]
    versions: dict[str, str]
    options: TraceOptions
    seconds: float = 0.0
    cached: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    split_copies: Breakdown = field(default_factory=lambda: Breakdown(Quantity.BYTES))
    size_symbols: dict[str, int] = field(default_factory=dict)
    size_conditions: tuple[Any, ...] = ()  # SymPy booleans in the size fields' symbols
    fixed_sizes: dict[str, int] = field(default_factory=dict)
