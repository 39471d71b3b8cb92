"""Exact values over int64 arrays: an expression as integer arithmetic, proven exact on each call.

Sums, differences and products in int64 are exact modulo 2^64, so an integer polynomial whose true
value lies within int64 is computed exactly however large its intermediate values get. An expression
of the package (rational functions of the sizes, with ceilings and floors of shares, maxima and
minima) is lowered once to a chain of integer steps:

- a ceiling or floor of ``N/D`` becomes an integer division of two integer polynomials;
- a maximum or minimum of ``N_i/D_i`` becomes ``M/D`` with ``D`` the polynomials' least common
  multiple and ``M`` the maximum (minimum) of the integer polynomials ``N_i * D/D_i``;
- a piecewise expression whose conditions compare integer polynomials (``b = 1``, ``s >= window``,
  joined by and/or) becomes ``M/D`` the same way, ``M`` the scaled numerator of the first branch
  whose condition holds on each row;
- what is left is ``N/D``, integer polynomials in the sizes and the steps before.

Each call bounds every polynomial from the inputs' largest magnitudes (every coefficient made
positive) and checks every denominator and scale is positive; when a bound reaches 2^62 or a check
fails it declines (returns ``None``) and the caller computes with Python ints instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # SymPy is imported where an expression is lowered, not where a program runs
    import sympy as sp

__all__ = ["IntProgram", "lower"]

SAFE = 2**62  # |value| bound under which int64 ring arithmetic is exact (with margin)


@dataclass(frozen=True)
class _Poly:
    """An integer polynomial: ``terms`` are (coefficient, exponent of each of ``names``)."""

    names: tuple[str, ...]
    terms: tuple[tuple[int, tuple[int, ...]], ...]

    def bound(self, top: Mapping[str, int]) -> int:
        """An upper bound of |value| when each variable's magnitude is at most ``top[name]`` (exact)."""
        return sum(
            abs(c) * math.prod(top[n] ** e for n, e in zip(self.names, exps, strict=True) if e)
            for c, exps in self.terms
        )

    def positive_constant(self) -> bool:
        """Whether the polynomial is a positive number (no variable)."""
        return all(not any(e) for _, e in self.terms) and sum(c for c, _ in self.terms) > 0

    def source(self) -> str:
        """Python source computing the polynomial (nested by shared variables, integer literals only)."""
        import sympy as sp

        from .codegen import _nest

        symbols = [sp.Symbol(n) for n in self.names]
        expr = sp.Add(
            *(sp.Integer(c) * sp.Mul(*(s**e for s, e in zip(symbols, exps, strict=True))) for c, exps in self.terms)
        )
        return _print(_nest(expr))


def _print(e: sp.Basic) -> str:
    """Integer-only Python source of a polynomial expression (no division)."""

    if e.is_Symbol:
        return e.name
    if e.is_Integer:
        return repr(int(e))
    if e.is_Add:
        return "(" + " + ".join(_print(a) for a in e.args) + ")"
    if e.is_Mul:
        return "(" + " * ".join(_print(a) for a in e.args) + ")"
    if e.is_Pow and e.exp.is_Integer and e.exp > 0:
        return "(" + " * ".join([_print(e.base)] * int(e.exp)) + ")"
    raise ValueError(f"not an integer polynomial: {e}")


def _fraction(expr: sp.Expr, names: Sequence[str]) -> tuple[_Poly, _Poly]:
    """``expr`` as N / D, integer polynomials in ``names``; ValueError if it is not a rational function of them."""
    import sympy as sp

    symbols = [sp.Symbol(n) for n in names]
    if not expr.is_rational_function(*symbols):
        raise ValueError("not a rational function")
    num, den = sp.fraction(sp.together(expr))
    polys = [sp.Poly(num, *symbols, domain="QQ"), sp.Poly(den, *symbols, domain="QQ")]
    scale = sp.ilcm(*(c.q for poly in polys for c in poly.coeffs()))
    out = [
        _Poly(tuple(names), tuple((int(c * scale), tuple(int(e) for e in m)) for m, c in poly.terms()))
        for poly in polys
    ]
    return out[0], out[1]


@dataclass(frozen=True)
class _Step:
    """One integer value computed before the outer fraction: ``kind`` is ceil, floor, max, min or select.

    ceil/floor: ``polys`` is (N, D), the value ceil(N/D) or floor(N/D). max/min: ``polys`` are the
    scaled numerators N_i * D/D_i and ``scales`` the D/D_i (each must be positive at every row).
    select: ``polys`` and ``scales`` as for max, one per branch of a piecewise expression, and
    ``condition`` the source of each branch's condition (integer comparisons of ``tests``).
    """

    name: str
    kind: str
    polys: tuple[_Poly, ...]
    scales: tuple[_Poly, ...] = ()
    condition: tuple[str, ...] = ()
    tests: tuple[_Poly, ...] = ()


@dataclass(frozen=True)
class IntProgram:
    """An expression lowered to integer steps and an outer N / D over the arguments ``args``.

    Call it with int64 arrays (or Python ints) in ``args`` order: it returns ``(N, D)`` (int64
    arrays or ints, exact) or ``None`` when the inputs' magnitudes do not prove int64 exact.
    """

    args: tuple[str, ...]
    steps: tuple[_Step, ...]
    numerator: _Poly
    denominator: _Poly
    source: str
    function: Any = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        namespace: dict[str, Any] = {"np": np}
        exec(compile(self.source, "<symbolic int64>", "exec"), namespace)
        object.__setattr__(self, "function", namespace["_g"])

    def to_data(self) -> dict[str, Any]:
        """The program as JSON data (see :meth:`from_data`)."""

        def poly(p: _Poly) -> list[Any]:
            return [list(p.names), [[c, list(e)] for c, e in p.terms]]

        return {
            "args": list(self.args),
            "steps": [
                [
                    s.name,
                    s.kind,
                    [poly(p) for p in s.polys],
                    [poly(p) for p in s.scales],
                    list(s.condition),
                    [poly(p) for p in s.tests],
                ]
                for s in self.steps
            ],
            "numerator": poly(self.numerator),
            "denominator": poly(self.denominator),
            "source": self.source,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> IntProgram:
        """The program :meth:`to_data` gave (from an authenticated cache entry: its source is executed)."""

        def poly(d: Sequence[Any]) -> _Poly:
            return _Poly(tuple(d[0]), tuple((int(c), tuple(int(x) for x in e)) for c, e in d[1]))

        steps = tuple(
            _Step(
                str(name),
                str(kind),
                tuple(poly(p) for p in polys),
                tuple(poly(p) for p in scales),
                tuple(str(c) for c in condition),
                tuple(poly(p) for p in tests),
            )
            for name, kind, polys, scales, condition, tests in data["steps"]
        )
        return cls(tuple(data["args"]), steps, poly(data["numerator"]), poly(data["denominator"]), str(data["source"]))

    def bounds_hold(self, top: Mapping[str, int]) -> bool:
        """Whether every intermediate value stays below 2^62 in magnitude when each argument's does below ``top``."""
        top = dict(top)
        for step in self.steps:
            bounds = [p.bound(top) for p in (*step.polys, *step.scales, *step.tests)]
            if any(b >= SAFE for b in bounds):
                return False
            top[step.name] = (bounds[0] + 1) if step.kind in ("ceil", "floor") else max(bounds[: len(step.polys)])
        return self.numerator.bound(top) < SAFE and self.denominator.bound(top) < SAFE

    def __call__(self, *values: Any) -> tuple[Any, Any] | None:
        top: dict[str, int] = {}
        inputs: list[Any] = []
        for name, v in zip(self.args, values, strict=True):
            if isinstance(v, np.ndarray):
                if v.dtype.kind not in "iu":
                    return None
                if v.size == 0:
                    top[name] = 0
                else:
                    top[name] = max(abs(int(v.max())), abs(int(v.min())))
                if top[name] >= SAFE:
                    return None
                inputs.append(v.astype(np.int64, copy=False))
            elif isinstance(v, int | np.integer) and not isinstance(v, bool):
                top[name] = abs(int(v))
                if top[name] >= SAFE:
                    return None
                inputs.append(int(v))
            else:
                return None
        if not self.bounds_hold(top):
            return None
        with np.errstate(over="ignore"):  # wrapping intermediates are exact modulo 2^64; the bounds cover the results
            return self.function(*inputs)


def lower(expr: sp.Expr, args: Sequence[str]) -> IntProgram | None:
    """``expr`` (a function of the symbols named ``args``) as an :class:`IntProgram`; None when it is not
    made of rational functions, ceilings, floors, maxima and minima (or holds a Float).

    >>> import numpy as np
    >>> import sympy as sp
    >>> from symbolic import symbols as S
    >>> program = lower(sp.Max(S.batch * S.seq / S.tp, 3 * S.seq), ("batch", "seq", "tp"))
    >>> num, den = program(np.array([1, 8]), np.array([4, 4]), np.array([2, 3]))
    >>> num.tolist(), den.tolist()  # max(b*s/t, 3s) as N / D with D = t: 24/2 and 36/3
    ([24, 36], [2, 3])
    """
    import sympy as sp

    if expr.has(sp.Float):
        return None
    plain = {s: sp.Symbol(s.name) for s in expr.free_symbols}  # no assumptions: plain polynomial variables
    expr = expr.xreplace(plain)
    names: list[str] = list(args)
    steps: list[_Step] = []
    memo: dict[sp.Expr, sp.Expr] = {}

    def low(e: sp.Expr) -> sp.Expr:
        if not e.args:
            return e
        if e in memo:
            return memo[e]
        if isinstance(e, sp.ceiling | sp.floor):
            num, den = _fraction(low(e.args[0]), names)
            name = f"_s{len(steps)}"
            steps.append(_Step(name, "ceil" if isinstance(e, sp.ceiling) else "floor", (num, den)))
            names.append(name)
            out: sp.Expr = sp.Symbol(name)
        elif isinstance(e, sp.Max | sp.Min):
            scaled, scales, common = _common_denominator([low(a) for a in e.args], names)
            name = f"_s{len(steps)}"
            steps.append(_Step(name, "max" if isinstance(e, sp.Max) else "min", scaled, scales))
            names.append(name)
            out = sp.Symbol(name) / common
        elif isinstance(e, sp.Piecewise):
            out = _select(e, low, names, steps)
        else:
            out = e.func(*(low(a) for a in e.args))
        memo[e] = out
        return out

    try:
        outer = low(expr)
        numerator, denominator = _fraction(outer, names)
    except (sp.PolynomialError, ValueError, TypeError, ZeroDivisionError):
        return None
    return IntProgram(tuple(args), tuple(steps), numerator, denominator, _source(args, steps, numerator, denominator))


def _condition(cond: sp.Basic, low: Any, names: list[str], tests: list[_Poly]) -> str:
    """Source of a condition over integer polynomials (``(_k0 >= 0) & ...``), its polynomials appended to
    ``tests``; ValueError for any other condition."""
    import sympy as sp

    compare = {sp.Eq: "==", sp.Ne: "!=", sp.Ge: ">=", sp.Gt: ">", sp.Le: "<=", sp.Lt: "<"}
    if cond is sp.true:
        return "True"
    if cond is sp.false:
        return "False"
    if isinstance(cond, sp.And | sp.Or):
        joint = " & " if isinstance(cond, sp.And) else " | "
        return "(" + joint.join(_condition(c, low, names, tests) for c in cond.args) + ")"
    if isinstance(cond, sp.Not):
        return f"(~{_condition(cond.args[0], low, names, tests)})"
    op = next((text for kind, text in compare.items() if isinstance(cond, kind)), None)
    if op is None:
        raise ValueError(f"not an integer comparison: {cond}")
    num, den = _fraction(low(cond.lhs - cond.rhs), names)
    if not den.positive_constant():  # N/D compared with 0 is N compared with 0 only for a positive D
        raise ValueError("a comparison with a variable denominator")
    tests.append(num)
    return f"(np.asarray({num.source()}) {op} 0)"


def _select(e: sp.Piecewise, low: Any, names: list[str], steps: list[_Step]) -> sp.Expr:
    """Lower a piecewise expression to a ``select`` step over its branches' common denominator."""
    import sympy as sp

    if e.args[-1].cond is not sp.true:
        raise ValueError("a piecewise expression undefined where no condition holds")
    tests: list[_Poly] = []
    condition = tuple(_condition(c, low, names, tests) for _, c in e.args)
    scaled, scales, common = _common_denominator([low(value) for value, _ in e.args], names)
    name = f"_s{len(steps)}"
    steps.append(_Step(name, "select", scaled, scales, condition, tuple(tests)))
    names.append(name)
    return sp.Symbol(name) / common


def _common_denominator(
    values: Sequence[sp.Expr], names: list[str]
) -> tuple[tuple[_Poly, ...], tuple[_Poly, ...], sp.Expr]:
    """``values`` (rational functions of ``names``) over their least common denominator ``D``: the
    numerators ``N_i * D/D_i``, the scales ``D/D_i`` and ``D``; ValueError where the division is not exact."""
    import sympy as sp

    parts = [_fraction(v, names) for v in values]
    symbols = [sp.Symbol(n) for n in names]
    dens = [sp.Poly(_expr(d), *symbols) for _, d in parts]
    common = dens[0]
    for d in dens[1:]:
        common = sp.lcm(common, d)
    scaled, scales = [], []
    for (num, _), d in zip(parts, dens, strict=True):
        q, r = sp.div(common, d)
        if not r.is_zero:
            raise ValueError("no common denominator")
        scaled.append(_fraction(_expr(num) * q.as_expr(), names)[0])
        scales.append(_fraction(q.as_expr(), names)[0])
    return tuple(scaled), tuple(scales), common.as_expr()


def _expr(p: _Poly) -> sp.Expr:
    import sympy as sp

    symbols = [sp.Symbol(n) for n in p.names]
    return sp.Add(*(c * sp.Mul(*(s**e for s, e in zip(symbols, exps, strict=True))) for c, exps in p.terms))


def _source(args: Sequence[str], steps: Sequence[_Step], num: _Poly, den: _Poly) -> str:
    lines = [f"def _g({', '.join(args)}):"]
    for step in steps:
        if step.kind in ("ceil", "floor"):
            top, bottom = step.polys
            lines.append(f"    _d = {bottom.source()}")
            if not bottom.positive_constant():
                lines.append("    if not np.all(np.asarray(_d) > 0): return None")
            sign = "-" if step.kind == "ceil" else ""
            lines.append(f"    {step.name} = {sign}(({sign}{top.source()}) // _d)")
        else:
            for scale in step.scales:
                if not scale.positive_constant():
                    lines.append(f"    if not np.all(np.asarray({scale.source()}) > 0): return None")
            parts = [p.source() for p in step.polys]
            if step.kind == "select":  # the first branch whose condition holds
                expr = parts[-1]
                for cond, part in zip(step.condition[-2::-1], parts[-2::-1], strict=True):
                    expr = f"np.where({cond}, {part}, {expr})"
                lines.append(f"    {step.name} = {expr}")
                continue
            fn = "np.maximum" if step.kind == "max" else "np.minimum"
            expr = parts[0]
            for part in parts[1:]:
                expr = f"{fn}({expr}, {part})"
            lines.append(f"    {step.name} = {expr}")
    lines.append(f"    return {num.source()}, {den.source()}")
    return "\n".join(lines) + "\n"
