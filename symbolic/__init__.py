"""symbolic: a symbolic formula engine for the arithmetic of transformer language models.

Every figure (parameters, bytes, FLOPs) is a SymPy expression written once per layer in named
symbols; numbers, documents, sensitivities and compiled functions all derive from it.

The public names below load lazily, so ``import symbolic`` stays cheap for code that only needs
compiled numbers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SymbolicError": "symbolic.errors",
    "Quantity": "symbolic.terms",
    "Term": "symbolic.terms",
    "Breakdown": "symbolic.terms",
    "Arch": "symbolic.arch",
    "Model": "symbolic.arch",
    "load_model": "symbolic.registry",
    "shipped_models": "symbolic.registry",
    "from_hf_config": "symbolic.hf",
    "parameters": "symbolic.model",
    "parameter_counts": "symbolic.model",
    "convention_difference": "symbolic.model",
    "evaluate": "symbolic.numeric",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'symbolic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
