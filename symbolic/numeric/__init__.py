"""The numbers path: SymPy expression + sizes -> numbers.

- :mod:`.values`: exact evaluation (``evaluate``) and the conversions between SymPy and Python numbers
  (``as_number``, ``ceil_int``, ``rational``);
- :mod:`.codegen`: an expression printed as Python source (exact ints/Fractions, or float64);
- :mod:`.cache`: the one compile boundary, ``compile_quantity``: generate once, cache on disk, load later;
- :mod:`.runtime` and :mod:`.intexact`'s programs run compiled code without importing SymPy.

The names below are loaded on first use, so a submodule that needs no SymPy (a cached program
being run) can be imported without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import (
        CompiledQuantity,
        cache_dir,
        cache_key,
        cached_evaluate,
        cached_expression,
        clear_memo,
        compile_quantity,
        int64_program,
    )
    from .values import as_number, ceil_int, evaluate, rational

__all__ = [
    "evaluate",
    "as_number",
    "ceil_int",
    "rational",
    "CompiledQuantity",
    "compile_quantity",
    "int64_program",
    "cached_evaluate",
    "cached_expression",
    "cache_dir",
    "cache_key",
    "clear_memo",
]

_HOME = {name: "values" for name in ("evaluate", "as_number", "ceil_int", "rational")}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME.get(name, 'cache')}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
