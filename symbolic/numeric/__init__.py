"""The numbers path: SymPy expression + sizes -> numbers.

- :mod:`.values`: exact evaluation (``evaluate``) and the conversions between SymPy and Python numbers
  (``as_number``, ``ceil_int``, ``rational``);
- :mod:`.codegen`: an expression printed as Python source (exact ints/Fractions, or float64);
- :mod:`.cache`: the one compile boundary, ``compile_quantity``: generate once, cache on disk, load later.
"""

from __future__ import annotations

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
