"""The namespace compiled code runs in: NumPy and a few exact-arithmetic helpers (no SymPy).

:mod:`symbolic.numeric.codegen` prints code for these names; a cached compiled function is run
with them without importing SymPy.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from ..errors import SymbolicError

__all__ = ["runtime", "BLOCK"]


def runtime() -> dict[str, Any]:
    """The names the generated code may use (NumPy and a few exact-arithmetic helpers)."""
    import numpy as np

    def is_array(x: Any) -> bool:
        return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, np.generic)

    def to_int(name: str, x: Any) -> Any:
        # exact mode: Python ints (object arrays), never fixed-width integers that could wrap
        if isinstance(x, bool):
            raise SymbolicError(name, f"must be a positive integer, got {x!r}")
        if isinstance(x, int | Fraction):
            return x
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, float | np.floating):
            if not float(x).is_integer():
                raise SymbolicError(name, f"must be an integer in exact mode, got {x!r}")
            return int(x)
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        if arr.dtype == object:
            return arr
        if arr.dtype.kind in "iu":
            return arr.astype(object)
        if arr.dtype.kind == "f":
            if not np.all(np.mod(arr, 1) == 0):
                raise SymbolicError(name, "must hold integers in exact mode (got non-integral floats)")
            return np.vectorize(int, otypes=[object])(arr) if arr.ndim else int(arr)
        raise SymbolicError(name, f"must be an integer or an array of integers, got {arr.dtype}")

    def to_float(name: str, x: Any) -> Any:
        # float mode: float64 throughout (an int64 input would wrap silently)
        if isinstance(x, int | float | Fraction | np.number) and not isinstance(x, bool):
            return float(x)
        if isinstance(x, np.ndarray):
            return x.astype(np.float64, copy=False)
        if is_array(x):  # another array library (dask, cupy, array-API): keep it lazy, cast only
            return x.astype("float64")
        try:
            return np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise SymbolicError(name, f"must be a number or an array of numbers, got {x!r}") from None

    fdiv_elem = np.frompyfunc(lambda a, b: Fraction(a) / b, 2, 1)
    norm_elem = np.frompyfunc(lambda v: int(v) if isinstance(v, Fraction) and v.denominator == 1 else v, 1, 1)

    def fdiv(a: Any, b: Any) -> Any:
        if is_array(a) or is_array(b):
            return fdiv_elem(a, b)
        return Fraction(a) / b

    def norm(v: Any) -> Any:
        if is_array(v):
            return norm_elem(v) if v.dtype == object else v
        return int(v) if isinstance(v, Fraction) and v.denominator == 1 else v

    def reduce2(op: Callable[[Any, Any], Any], pyop: Callable[..., Any]) -> Callable[..., Any]:
        def f(*args: Any) -> Any:
            if not any(is_array(a) for a in args):
                return pyop(*args)
            out = args[0]
            for a in args[1:]:
                out = op(out, a)
            return out

        return f

    def where(cond: Any, a: Any, b: Any) -> Any:
        if not any(is_array(v) for v in (cond, a, b)):
            return a if cond else b
        return np.where(cond, a, b)

    return {
        "np": np,
        "Fraction": Fraction,
        "_to_int": to_int,
        "_to_float": to_float,
        "_fdiv": fdiv,
        "_norm": norm,
        "_max": reduce2(np.maximum, max),
        "_min": reduce2(np.minimum, min),
        "_where": where,
        "_ffloor": lambda x: x // 1,
        "_fceil": lambda x: -((-x) // 1),
    }


BLOCK = 1 << 13  # elements per block of a float evaluation: 64 KiB per temporary


def _blocked(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``function(*args)``, block by block when the arrays among ``args`` are 1-D NumPy arrays of one length.

    Anything else (scalars only, other shapes, other array types such as dask) is passed whole.
    """
    import numpy as np

    length = None
    for a in args:
        if isinstance(a, np.ndarray) and a.ndim:
            if a.ndim != 1 or (length is not None and len(a) != length):
                return function(*args)
            length = len(a)
        elif not isinstance(a, int | float | np.number) or isinstance(a, bool):
            return function(*args)
    if length is None or length < 2 * BLOCK:
        return function(*args)

    def part(start: int) -> Any:
        return function(*(a[start : start + BLOCK] if isinstance(a, np.ndarray) and a.ndim else a for a in args))

    first = np.asarray(part(0))
    out = np.empty(length, dtype=first.dtype)
    out[:BLOCK] = first
    for start in range(BLOCK, length, BLOCK):
        out[start : start + BLOCK] = part(start)
    return out
