"""Code generation: a SymPy expression printed as plain Python over NumPy (or exact ints and Fractions).

``source(expr, mode, args)`` prints ``def _f(<args>): ...`` after common-subexpression elimination
and choosing the cheapest of a few equivalent forms; ``runtime()`` is the namespace that code runs in.
"""

from __future__ import annotations

import contextlib

import sympy as sp

from ..errors import SymbolicError
from .runtime import runtime

__all__ = ["CODEGEN_VERSION", "MODES", "runtime", "source"]

CODEGEN_VERSION = "4"  # bump when the generated code changes meaning
MODES = ("exact", "float")


class _Emitter:
    """Prints a SymPy expression as Python source for one mode (``exact`` or ``float``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.divides = False

    def __call__(self, e: sp.Basic) -> str:
        exact = self.mode == "exact"
        if e.is_Symbol:
            return e.name
        if e.is_Integer:
            return repr(int(e)) if exact else repr(float(int(e)))
        if e.is_Rational:
            if exact:
                return f"Fraction({int(e.p)}, {int(e.q)})"
            return repr(int(e.p) / int(e.q))
        if e.is_Float:
            self._not_exact(e)
            return repr(float(e))
        if e is sp.true or e is sp.false:
            return repr(bool(e))
        if e.is_Add:
            out = self(e.args[0])
            for arg in e.args[1:]:
                coeff, rest = arg.as_coeff_Mul()
                if coeff.is_negative:
                    out += f" - {self._atom(-arg)}"
                else:
                    out += f" + {self(arg)}"
            return f"({out})"
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(e)
        if isinstance(e, sp.Max | sp.Min):
            name = "_max" if isinstance(e, sp.Max) else "_min"
            return f"{name}({', '.join(self(a) for a in e.args)})"
        if isinstance(e, sp.floor | sp.ceiling):
            (arg,) = e.args
            if exact:
                return f"{'_ffloor' if isinstance(e, sp.floor) else '_fceil'}({self(arg)})"
            return f"np.{'floor' if isinstance(e, sp.floor) else 'ceil'}({self(arg)})"
        if isinstance(e, sp.Piecewise):
            out = self(e.args[-1].expr) if e.args[-1].cond is sp.true else "np.nan"
            for piece in reversed(e.args[:-1] if e.args[-1].cond is sp.true else e.args):
                out = f"_where({self(piece.cond)}, {self(piece.expr)}, {out})"
            return out
        if isinstance(e, sp.core.relational.Relational):
            return f"({self(e.lhs)} {e.rel_op} {self(e.rhs)})"
        if isinstance(e, sp.And | sp.Or):
            joiner = " & " if isinstance(e, sp.And) else " | "
            return "(" + joiner.join(self(a) for a in e.args) + ")"
        if isinstance(e, sp.log | sp.exp | sp.Abs):
            self._not_exact(e) if not isinstance(e, sp.Abs) else None
            fn = {sp.log: "log", sp.exp: "exp", sp.Abs: "abs"}[type(e)]
            return f"np.{fn}({self(e.args[0])})"
        raise SymbolicError("expression", f"cannot compile {type(e).__name__} ({e})")

    def _atom(self, e: sp.Basic) -> str:
        text = self(e)
        simple = text.isidentifier() or text.replace(".", "", 1).isdigit()
        return text if simple or text.startswith(("(", "_", "np.", "Fraction")) else f"({text})"

    def _not_exact(self, e: sp.Basic) -> None:
        if self.mode == "exact":
            raise SymbolicError("mode", f"{e} has no exact value; compile with mode='float'")

    def _mul(self, e: sp.Mul) -> str:
        num, den = [], []
        for f in e.args:
            if f.is_Rational and not f.is_Integer and self.mode == "exact":
                if f.p != 1:
                    num.append(sp.Integer(f.p))
                den.append(sp.Integer(f.q))
            elif f.is_Pow and f.exp.is_Integer and f.exp.is_negative:
                den.append(f.base ** (-f.exp))
            else:
                num.append(f)
        top = " * ".join(self._atom(f) for f in num) if num else ("1" if self.mode == "exact" else "1.0")
        if not den:
            return f"({top})" if len(num) > 1 else top
        bottom = " * ".join(self._atom(f) for f in den)
        if self.mode == "exact":
            self.divides = True
            return f"_fdiv({top}, {bottom})"
        return f"({top} / ({bottom}))"

    def _pow(self, e: sp.Pow) -> str:
        base, exp = e.args
        if exp.is_Integer and exp.is_negative:
            den = self._atom(base ** (-exp))
            if self.mode == "exact":
                self.divides = True
                return f"_fdiv(1, {den})"
            return f"(1.0 / {den})"
        if exp.is_Integer:
            b = self._atom(base)
            return f"({' * '.join([b] * int(exp))})" if int(exp) <= 3 else f"({b} ** {int(exp)})"
        if exp == sp.Rational(1, 2):
            self._not_exact(e)
            return f"np.sqrt({self(base)})"
        self._not_exact(e)
        return f"({self._atom(base)} ** {self._atom(exp)})"


def _nest(e: sp.Expr) -> sp.Expr:
    """``e`` with sums nested greedily (multivariate Horner): the same value in fewer operations.

    Repeatedly pulls out the symbol (or reciprocal of a symbol) that divides the most terms of a
    sum: ``a*b + a*c + d`` becomes ``a*(b + c) + d``. Exact: only regroups, never approximates.
    """
    if not e.args:
        return e
    if not e.is_Add:
        return e.func(*(_nest(a) for a in e.args))
    terms = sp.Add.make_args(e)
    counts: dict[sp.Expr, int] = {}
    for t in terms:
        for base, exp in t.as_powers_dict().items():
            if base.is_Symbol and exp.is_Integer:
                factor = base if exp > 0 else 1 / base
                counts[factor] = counts.get(factor, 0) + 1
    if not counts or max(counts.values()) < 2:
        return sp.Add(*(_nest(t) for t in terms))
    factor = max(counts, key=lambda f: (counts[f], str(f)))
    inside: list[sp.Expr] = []
    outside: list[sp.Expr] = []
    for t in terms:
        exp = t.as_powers_dict().get(factor if factor.is_Symbol else factor.base, 0)
        has = exp > 0 if factor.is_Symbol else exp < 0
        (inside if has else outside).append(t)
    nested = factor * _nest(sp.Add(*(t / factor for t in inside)))
    return nested + _nest(sp.Add(*outside)) if outside else nested


def _cost(expr: sp.Expr, mode: str) -> int:
    """Arithmetic operations in the code generated for ``expr`` (a proxy for its run time)."""
    replacements, (reduced,) = sp.cse([expr], symbols=sp.numbered_symbols("_t"), order="none")
    emit = _Emitter(mode)
    text = "".join(emit(v) for _, v in replacements) + emit(reduced)
    return sum(text.count(op) for op in (" + ", " - ", " * ", " / ", "_fdiv", "np.", "_max", "_min"))


_FACTOR_LIMIT = 400  # operations; factoring larger expressions costs more than it saves


def source(expr: sp.Expr, mode: str, args: tuple[str, ...]) -> str:
    """Python source of ``_f(<args>)`` computing ``expr`` in ``mode`` (common subexpressions hoisted).

    The cheapest of ``expr`` as written, its nested form (:func:`_nest`) and its factored, nested
    form is printed.
    """
    emit = _Emitter(mode)
    candidates = [expr]
    with contextlib.suppress(Exception):  # nesting is an optimisation; the expression as written always works
        candidates.append(_nest(expr))
    if expr.is_rational_function() and sp.count_ops(expr) <= _FACTOR_LIMIT:
        with contextlib.suppress(Exception):  # a factored form often shares whole sums (ZeRO's 4 + 12/dp)
            candidates.append(sp.factor_terms(_nest(sp.factor(expr))))
    expr = min(candidates, key=lambda c: _cost(c, mode))
    replacements, (reduced,) = sp.cse([expr], symbols=sp.numbered_symbols("_t"), order="none")
    convert = "_to_int" if mode == "exact" else "_to_float"
    lines = [f"def _f({', '.join(args)}):"]
    lines += [f"    {a} = {convert}({a!r}, {a})" for a in args]
    lines += [f"    {sym} = {emit(value)}" for sym, value in replacements]
    result = emit(reduced)
    lines.append(f"    return _norm({result})" if emit.divides else f"    return {result}")
    return "\n".join(lines) + "\n"
