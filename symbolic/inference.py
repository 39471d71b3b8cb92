"""Inference memory per device: the weights in a chosen format plus the KV cache (bytes).

Composition only, beside :mod:`symbolic.memory` (training): the formulas are
:mod:`symbolic.formulas.weights` and :mod:`symbolic.formulas.inference`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import Model
from .errors import SymbolicError
from .formulas.inference import KV_DTYPES, kv_cache_terms
from .formulas.weights import get_weight_format, weight_terms
from .model import parameters
from .numeric import ceil_int, evaluate
from .parallel import Parallelism
from .terms import Breakdown

__all__ = ["InferenceMemory", "inference_memory"]


@dataclass(frozen=True)
class InferenceMemory:
    """Weights and KV cache one device holds to serve a model (bytes), with the values to evaluate at."""

    model: Model
    weights: Breakdown
    kv_cache: Breakdown
    values: dict[str, int]
    dtype: str
    kv_dtype: str
    tp: int

    def bytes(self, which: str) -> int:
        """``weights``, ``kv_cache`` or ``total`` per device, exact (bytes; fractions rounded up)."""
        exprs = {"weights": self.weights.total, "kv_cache": self.kv_cache.total}
        exprs["total"] = exprs["weights"] + exprs["kv_cache"]
        return ceil_int(evaluate(exprs[which], self.values), "bytes")


def inference_memory(
    model: Model, batch: int, seq: int, dtype: str = "bf16", kv_dtype: str = "bf16", tp: int = 1
) -> InferenceMemory:
    """Weights stored in ``dtype`` and the KV cache of ``batch`` x ``seq`` tokens in ``kv_dtype`` (bytes per device).

    ``tp`` splits both over tensor-parallel devices (the MLA latent cache is replicated).
    """
    fmt = get_weight_format(dtype, "dtype")
    if kv_dtype not in KV_DTYPES:
        raise SymbolicError("kv_dtype", f"unknown {kv_dtype!r}; allowed: {', '.join(KV_DTYPES)}")
    from .formulas.activations import check_workload

    check_workload(model, batch, seq)  # a KV cache holds at most the learned positions too
    parallel = Parallelism(tp=tp)
    parallel.check(model)
    device = parallel.device_terms(model.arch, parameters(model), 0)
    values = {**model.sizes, **parallel.values(), "batch": batch, "seq": seq}
    window = model.config.get("sliding_window")
    if isinstance(window, int) and window > 0:
        values["window"] = window
    kv = kv_cache_terms(model, KV_DTYPES[kv_dtype], tp=True)
    return InferenceMemory(model, weight_terms(device, fmt), kv, values, dtype, kv_dtype, tp)
