"""The default workload, defined once: what a question about memory, FLOPs or a document assumes
when it names no batch or sequence length.

>>> from symbolic.registry import load_model
>>> default_workload(load_model("gpt2"))
{'batch': 1, 'seq': 1024}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .arch import Model

__all__ = ["DEFAULT_BATCH", "DEFAULT_SEQ", "default_workload"]

DEFAULT_BATCH = 1  # sequences per device
DEFAULT_SEQ = 2048  # tokens; clipped to a learned position table (default_workload)


def default_workload(model: Model) -> dict[str, int]:
    """1 sequence of 2048 tokens, or of the model's learned position table when that is shorter
    (sequences, tokens)."""
    return {"batch": DEFAULT_BATCH, "seq": min(DEFAULT_SEQ, model.sizes.get("n_ctx", DEFAULT_SEQ))}
