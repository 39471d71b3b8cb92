"""Code generation: a SymPy expression printed as plain Python over NumPy (or exact ints and Fractions).

``source(expr, mode, args)`` prints ``def _f(<args>): ...`` after common-subexpression elimination
and choosing the cheapest of a few equivalent forms; ``runtime()`` is the namespace that code runs in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import sympy as sp

from ..errors import SymbolicError

__all__ = ["CODEGEN_VERSION", "MODES", "runtime", "source"]

CODEGEN_VERSION = "4"  # bump when the generated code changes meaning
MODES = ("exact", "float")


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
