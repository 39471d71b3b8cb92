"""The numbers path: SymPy expression + sizes -> exact value.

Exact evaluation substitutes integers into the expression (``xreplace``), so results stay exact
whatever their size. Compiled, cached numeric functions build on this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import sympy as sp

from . import symbols as S
from .errors import SymbolicError

__all__ = ["evaluate", "as_number"]


def evaluate(expr: sp.Expr, values: Mapping[str, int | float | Fraction]) -> sp.Expr:
    """The exact value of ``expr`` with each symbol replaced by ``values[name]``.

    Raises :class:`SymbolicError` naming a symbol the expression needs and ``values`` lacks.
    """
    expr = sp.sympify(expr)
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
