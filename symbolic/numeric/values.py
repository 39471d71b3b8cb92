"""Exact numbers from expressions: substitute integers, read the result back as a Python number.

``evaluate`` substitutes exact integers (or rationals) into an expression (``xreplace``), so a value
stays exact whatever its size; ``as_number``, ``ceil_int`` and ``rational`` are the only conversions
between SymPy numbers and Python numbers in the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import sympy as sp

from .. import symbols as S
from ..errors import SymbolicError

__all__ = ["evaluate", "as_number", "ceil_int", "rational"]


def evaluate(expr: sp.Expr, values: Mapping[str, int | float | Fraction]) -> sp.Expr:
    """The exact value of ``expr`` with each symbol replaced by ``values[name]``.

    Raises :class:`SymbolicError` naming a symbol the expression needs and ``values`` lacks.
    """
    expr = sp.sympify(expr, strict=True)
    subs = {}
    for sym in expr.free_symbols:
        name = str(sym)
        if name not in values:
            raise SymbolicError(name, f"needs a value ({S.info(name).meaning})")
        subs[sym] = (
            sp.Rational(Fraction(values[name])) if not isinstance(values[name], int) else sp.Integer(values[name])
        )
    return expr.xreplace(subs)


def as_number(value: sp.Expr) -> int | float:
    """A Python int for an integer value, else a float."""
    value = sp.nsimplify(value) if not value.is_Number else value
    if value.is_Integer:
        return int(value)
    return float(value)


def ceil_int(value: sp.Expr, field: str = "value") -> int:
    """An exact count as an int, rounded up when sharding or packing leaves a fraction (the unit of ``value``).

    >>> ceil_int(sp.Rational(7, 2))
    4
    >>> ceil_int(sp.Integer(12))
    12

    Raises :class:`SymbolicError` naming ``field`` when ``value`` is not a number (a symbol is left).
    """
    value = sp.nsimplify(value) if not value.is_Rational else value
    if value.is_Integer:
        return int(value)
    if value.is_Rational:
        return -(-int(value.p) // int(value.q))  # a Python int (math.ceil would give a SymPy Integer)
    raise SymbolicError(field, f"does not evaluate to a number: {value}")


def rational(x: Fraction | int) -> sp.Rational:
    """The exact SymPy rational of a Python int or Fraction (bytes per element, shares, ...).

    >>> rational(Fraction(9, 16))
    9/16
    """
    x = Fraction(x)
    return sp.Rational(x.numerator, x.denominator)
