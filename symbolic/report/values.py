"""The one evaluation the documents use: an expression at the document's values, exact."""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from ..numeric import evaluate

__all__ = ["value_at"]


def value_at(expr: sp.Expr, values: Mapping[str, int]) -> sp.Expr:
    """``expr`` evaluated exactly at ``values`` (a SymPy number, in the unit of ``expr``)."""
    return evaluate(expr, values)
