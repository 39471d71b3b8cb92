"""The ``traced`` convention: formulas read off the transformers code itself.

``trace(config)`` builds a causal LM from its Hugging Face config on fake tensors (no memory),
with batch ``b`` and sequence ``s`` as SymPy symbols, runs one training forward and backward and
returns Breakdowns of named terms: parameters, the storages autograd saves for backward (the rule
of ``docs/activations.md``) and FLOPs. Needs the ``trace`` extra (torch, transformers);
``symbolic`` itself imports without them.
"""

from __future__ import annotations

from .api import trace
from .result import EXTRA_HINT, Trace, TraceOptions

__all__ = ["EXTRA_HINT", "Trace", "TraceOptions", "trace", "available"]


def available() -> bool:
    """True when torch and transformers can be imported (the ``trace`` extra is installed)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))
