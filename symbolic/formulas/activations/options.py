"""The choices an activation count depends on, validated once: dtype, kernel, recompute, device.

Every activation convention takes an :class:`ActivationOptions`; bad values raise
:class:`~symbolic.errors.SymbolicError` naming the command-line option and the allowed values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...arch import Model
from ...errors import SymbolicError
from ...terms import Breakdown

__all__ = ["ActivationOptions", "Layout", "ActivationRule", "DTYPE_BYTES", "TORCH_VERSION", "TRANSFORMERS_VERSION"]

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
ATTENTION = ("eager", "sdpa", "flash")
RECOMPUTE = ("none", "selective", "full")
DEVICES = ("cpu", "cuda")
EXPERTS = ("grouped_mm", "eager")
# the versions the ``exact`` terms describe (measured on CPU with tests/harness/measure.py)
TORCH_VERSION = "2.13.0"
TRANSFORMERS_VERSION = "5.24.0"


def _choice(option: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SymbolicError(option, f"unknown {value!r}; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class ActivationOptions:
    """How a training step runs: activation ``dtype``, ``attention`` kernel, ``recompute``, ``device``.

    ``experts``: transformers' MoE experts implementation (``grouped_mm``, its 5.24 default, or the
    per-expert loop ``eager``). ``dropout``: override every dropout probability of the config
    (``None`` reads them from the config). ``interleave``: model chunks per pipeline stage (Megatron). ``autocast``: fp32 weights under
    ``torch.autocast`` to ``dtype`` (norms and the residual stream stay fp32, each linear casts its
    input and its weight, and keeps both for backward).
    """

    dtype: str = "bf16"
    attention: str = "sdpa"
    recompute: str = "none"
    device: str = "cuda"
    experts: str = "grouped_mm"
    dropout: float | None = None
    interleave: int = 1
    autocast: bool = False

    def __post_init__(self) -> None:
        _choice("dtype", self.dtype, tuple(DTYPE_BYTES))
        _choice("attention", self.attention, ATTENTION)
        _choice("recompute", self.recompute, RECOMPUTE)
        _choice("device", self.device, DEVICES)
        _choice("experts", self.experts, EXPERTS)
        if self.dropout is not None and not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise SymbolicError("dropout", f"must be a probability in [0, 1), got {self.dropout!r}")
        if isinstance(self.interleave, bool) or not isinstance(self.interleave, int) or self.interleave <= 0:
            raise SymbolicError("interleave", f"must be a positive integer, got {self.interleave!r}")

    @property
    def nbytes(self) -> int:
        """Bytes of one activation element in the model dtype (bytes)."""
        return DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class Layout:
    """How one device's work is laid out, as far as an activation builder needs numbers.

    ``sequence_parallel``: Megatron sequence parallelism is on; ``pp``: the pipeline degree (a
    number: whether the output layer and the loss share a stage with the first layers); ``cp``: the
    context-parallel degree (a number); ``tp``: the tensor-parallel degree (a number: the traced
    terms add the slices only a tensor-parallel run keeps). Builders that describe unsharded layers
    ignore it.
    """

    sequence_parallel: bool = False
    pp: int = 1
    cp: int = 1
    tp: int = 1


ActivationBuilder = Callable[[Model, ActivationOptions, Layout], Breakdown]


@dataclass(frozen=True)
class ActivationRule:
    """A convention's activation builder and how parallelism applies to its terms.

    ``build(model, options, layout)`` returns the activation terms (bytes) in ``batch``, ``seq`` and
    the sizes. ``per_tp_device``: the terms are already per tensor-parallel device (they divide by
    ``tp``, and the logits gradient is vocab-parallel); without it the terms describe unsharded layers
    and carry what splits them (``Term.shards``), and :meth:`symbolic.parallel.Parallelism.activation_share`
    gives one device's share. ``places_stages``: the builder itself writes what the
    pipeline stage holds (Korthikanti's Table 2 rows); without it :func:`on_stage` cuts the terms to the
    stage. ``uniform_layers``: every layer term repeats ``n_layers`` times (one layer kind), rather than
    once per layer group of the Arch.
    """

    build: ActivationBuilder
    per_tp_device: bool = False
    places_stages: bool = False
    uniform_layers: bool = False
