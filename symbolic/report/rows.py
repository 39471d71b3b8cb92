"""Breakdown + numbers -> rows: plain dicts of strings and Raw LaTeX for the templates (no SymPy in them).

Every formula shown is ``sympy.latex`` of a term's own expression, with symbol names mapped to the
registry's LaTeX; every number is that expression evaluated exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

from .. import symbols as S
from ..render import Raw
from ..terms import Breakdown, Quantity
from ..units import GB, GIB
from .values import value_at

__all__ = [
    "VIEWS",
    "latex",
    "substituted",
    "integer_text",
    "bytes_text",
    "number_text",
    "latex_int",
    "symbol_rows",
    "term_rows",
    "section_rows",
    "view_rows",
    "breakdown_section",
    "degree_ones",
    "degree_ones_expr",
    "dominance_rows",
    "sensitivity_rows",
]

VIEWS = ("collect", "expand", "factor")


def _names() -> dict[sp.Symbol, str]:
    return {entry.symbol: entry.latex for entry in S.REGISTRY.values()}


class _DocumentLatex(LatexPrinter):
    """SymPy's LaTeX printer, with a term that is zero outside a condition written with an Iverson
    bracket, ``[s \\geq w] (2 b s^2)``: inline math TeX can break, where ``cases`` is one box."""

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        if len(expr.args) == 2 and expr.args[1].cond == sp.true and expr.args[1].expr == 0:
            value, condition = expr.args[0]
            return rf"\bigl[{self._print(condition)}\bigr]\,\left({self._print(value)}\right)"
        return super()._print_Piecewise(expr)


def _latex(expr: sp.Expr, **settings: Any) -> str:
    return _DocumentLatex(settings).doprint(sp.sympify(expr, strict=True))


def latex(expr: sp.Expr) -> Raw:
    """LaTeX of ``expr`` in the registry's notation (``h`` for d_model, ``L`` for n_layers, ...).

    >>> s, w = S.symbol("seq"), S.symbol("window")
    >>> print(latex(sp.Piecewise((2 * s**2, s >= w), (0, True))))
    \\bigl[s \\geq w\\bigr]\\,\\left(2 s^{2}\\right)
    """
    return Raw(_latex(expr, symbol_names=_names()))


def substituted(expr: sp.Expr, values: Mapping[str, int]) -> Raw:
    """LaTeX of ``expr`` with each symbol written as its number, unevaluated (``2 \\cdot 4096 \\cdot 32000``)."""
    expr = sp.sympify(expr, strict=True)
    names = {s: f"{values[str(s)]:,}".replace(",", "{,}") for s in expr.free_symbols}
    return Raw(_latex(expr, symbol_names=names, mul_symbol="dot"))


def integer_text(value: int) -> str:
    """An exact integer with thousands separators: ``6,738,415,616``."""
    return f"{int(value):,}"


def bytes_text(value: int | sp.Expr) -> dict[str, str]:
    """A byte count as text: exact bytes, GiB and GB (two decimals)."""
    number = sp.nsimplify(value) if not isinstance(value, int) else sp.Integer(value)
    exact = int(sp.floor(number)) if number.is_Integer is False else int(number)
    return {
        "bytes": integer_text(exact) if number.is_Integer else f"{float(number):,.1f}",
        "gib": f"{float(number) / GIB:,.2f}",
        "gb": f"{float(number) / GB:,.2f}",
    }


def number_text(value: sp.Expr) -> str:
    return integer_text(int(value)) if value.is_Integer else f"{float(value):,.2f}"


def symbol_rows(exprs: Iterable[sp.Expr], values: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per registry symbol that ``exprs`` use, in registry order: LaTeX, meaning, unit, value."""
    used = set().union(*(sp.sympify(e, strict=True).free_symbols for e in exprs)) if exprs else set()
    rows = []
    for name in S.ORDER:
        entry = S.REGISTRY[name]
        if entry.symbol in used:
            value = values.get(name)
            rows.append(
                {
                    "name": name,
                    "latex": Raw(entry.latex),
                    "meaning": entry.meaning,
                    "unit": entry.unit,
                    "value": integer_text(value) if value is not None else None,
                }
            )
    return rows


def term_rows(terms: Breakdown, values: Mapping[str, int], whole: sp.Expr | None = None) -> list[dict[str, Any]]:
    """One row per term: path, description, per-instance and count LaTeX, exact value and share.

    The share (percent) is of ``whole`` (a number), by default of the terms' own total. Byte
    terms carry GiB and GB as well.
    """
    numbers = {t.path: value_at(t.total, values) for t in terms}
    total = sum(numbers.values(), sp.Integer(0)) if whole is None else whole
    rows = []
    for t in terms:
        n = numbers[t.path]
        row = {
            "path": t.path,
            "description": t.description,
            "formula": latex(t.expr),
            "count": latex(t.count),
            "total_formula": latex(t.total),
            "value": number_text(n),
            "share": f"{100 * float(n / total):.2f}" if total else "0.00",
            "trainable": t.trainable,
            "source": t.source,
        }
        if terms.quantity is Quantity.BYTES:
            row.update(bytes_text(n))
        rows.append(row)
    return rows


def section_rows(terms: Breakdown, values: Mapping[str, int]) -> list[dict[str, Any]]:
    """Terms grouped by their first path segment (``embedding``, ``block``, ``forward``...).

    Each section has its terms, the count they repeat (``L`` for a layer group), the per-instance
    subtotal formula and the section's value.
    """
    whole = value_at(terms.total, values)
    order: list[str] = []
    for t in terms:
        head = t.path.split(".")[0]
        if head not in order:
            order.append(head)
    out = []
    for head in order:
        part = Breakdown(terms.quantity, tuple(t for t in terms if t.path.split(".")[0] == head))
        counts = {t.count for t in part}
        count = counts.pop() if len(counts) == 1 else sp.Integer(1)
        per_instance = sp.factor(sp.Add(*(t.expr for t in part))) if count != 1 else part.total
        value = value_at(part.total, values)
        out.append(
            {
                "name": head,
                "count": latex(count),
                "repeated": count != 1,
                "per_instance": latex(per_instance),
                "total_formula": latex(count * per_instance if count != 1 else part.total),
                "value": number_text(value),
                "share": f"{100 * float(value / whole):.2f}" if whole else "0.00",
                "terms": term_rows(part, values, whole),
            }
        )
    return out


def view_rows(terms: Breakdown, views: Iterable[str] = VIEWS) -> list[dict[str, Any]]:
    """The total in each view (collect, expand, factor) as LaTeX."""
    return [{"name": how, "latex": latex(terms.view(how))} for how in views]


def breakdown_section(
    key: str,
    title: str,
    letter: str,
    terms: Breakdown,
    values: Mapping[str, int],
    intro: str = "",
    views: Iterable[str] = VIEWS,
) -> dict[str, Any]:
    """One derivation section of any quantity: grouped terms, the total's views, numbers, result.

    ``letter`` names the total in the formulas (``N`` for parameters); the total comes as exact
    text in the quantity's unit, plus GiB and GB for bytes.
    """
    collected = terms.view("collect")
    total = value_at(terms.total, values)
    rows = term_rows(terms, values)
    out = {
        "key": key,
        "title": title,
        "intro": intro,
        "letter": Raw(letter),
        "unit": terms.quantity.unit,
        "bytes": terms.quantity is Quantity.BYTES,
        "sections": section_rows(terms, values),
        "views": view_rows(terms, views),
        "total_formula": latex(collected),
        "total_substituted": substituted(collected, values),
        "total": number_text(total),
        "total_int": int(total) if total.is_Integer else None,
        "largest": max(rows, key=lambda r: float(r["share"]))["path"] if rows else None,
        "largest_share": max((float(r["share"]) for r in rows), default=0.0),
    }
    if out["bytes"]:
        out["total_bytes"] = bytes_text(total)
    return out


def degree_ones(terms: Breakdown, values: Mapping[str, int]) -> Breakdown:
    """Terms with parallel degrees that are 1 written as 1 (presentation only; values unchanged)."""
    ones = {S.symbol(k): sp.Integer(1) for k in ("dp", "tp", "pp", "cp", "ep") if values.get(k) == 1}
    return terms.map(lambda t: t.with_(expr=t.expr.xreplace(ones), count=t.count.xreplace(ones)))


def degree_ones_expr(expr: sp.Expr, values: Mapping[str, int]) -> sp.Expr:
    ones = {S.symbol(k): sp.Integer(1) for k in ("dp", "tp", "pp", "cp", "ep") if values.get(k) == 1}
    return sp.sympify(expr, strict=True).xreplace(ones)


def latex_int(value: int) -> str:
    return f"{int(value):,}".replace(",", "{,}")


def dominance_rows(
    quantities: Iterable[tuple[str, Breakdown]], grow: Iterable[str], values: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Which terms lead each quantity as one size grows (``symbolic.analysis.dominant``)."""
    from .. import analysis

    rows = []
    for label, terms in quantities:
        for name in grow:
            if S.symbol(name) not in terms.total.free_symbols:
                continue
            result = analysis.dominant(terms, name, values=values)
            rows.append(
                {
                    "quantity": label,
                    "grows": name,
                    "order": result.words,
                    "leaders": ", ".join(path for path, _ in result.leaders[:4])
                    + (f" (+{len(result.leaders) - 4} more)" if len(result.leaders) > 4 else ""),
                    "leading": latex(sp.Add(*(lead.term for _, lead in result.leaders))),
                }
            )
    return rows


def sensitivity_rows(label: str, expr: sp.Expr, values: Mapping[str, int], letter: str = "X") -> list[dict[str, Any]]:
    """Elasticity of ``expr`` in each of its symbols, symbolic and at ``values`` (``symbolic.analysis``).

    Each row has the elasticity as a formula and a number, and its numerator ``x dX/dx`` (the
    elasticity is that over the total ``letter``), which stays readable where the fraction does not.
    """
    from .. import analysis

    return [
        {
            "quantity": label,
            "letter": Raw(letter),
            "symbol": Raw(S.by_symbol(row.symbol).latex),
            "name": str(row.symbol),
            "elasticity": latex(row.elasticity),
            "numerator": latex(sp.expand(row.symbol * sp.diff(expr, row.symbol))),
            "value": f"{float(row.elasticity_value if row.elasticity_value is not None else 'nan'):.4f}",
        }
        for row in analysis.sensitivity_table(expr, values)
    ]
