"""The names generated modules use: exact arithmetic on Python ints and Fractions (no NumPy, no SymPy)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

__all__ = ["Fraction", "_fdiv", "_norm", "_max", "_min", "_ffloor", "_fceil", "_where"]


def _fdiv(a: Any, b: Any) -> Fraction:
    return Fraction(a) / b


def _norm(v: Any) -> Any:
    return int(v) if isinstance(v, Fraction) and v.denominator == 1 else v


def _where(cond: Any, a: Any, b: Any) -> Any:
    return a if cond else b


def _ffloor(x: Any) -> Any:
    return x // 1


def _fceil(x: Any) -> Any:
    return -((-x) // 1)


_max = max
_min = min
