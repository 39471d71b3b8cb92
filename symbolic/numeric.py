"""The numbers path: SymPy expression + sizes -> exact value.

Exact evaluation substitutes integers into the expression (``xreplace``), so results stay exact
whatever their size. ``compile_quantity`` is the one compile boundary: it turns an expression
into a vectorized function (exact Python ints, or float64) and caches the generated code on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy as sp

from . import symbols as S
from .errors import SymbolicError

__all__ = [
    "evaluate",
    "as_number",
    "CompiledQuantity",
    "compile_quantity",
    "cached_evaluate",
    "cache_dir",
    "cache_key",
]


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


# ---------------------------------------------------------------------------------------------
# [SymPy expression] -> [Python source] -> [compiled function], cached on disk.
#
# The generated code is plain Python over NumPy (or Python ints and Fractions in exact mode): it
# is printed once per expression by ``_Emitter`` after common-subexpression elimination, stored
# with a checksum under the cache directory and, on later runs, loaded and ``exec``-ed without
# printing, simplifying or lambdifying anything again.
# ---------------------------------------------------------------------------------------------

CODEGEN_VERSION = "4"  # bump when the generated code changes meaning
MODES = ("exact", "float")


def _runtime() -> dict[str, Any]:
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
    inside, outside = [], []
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


def _source(expr: sp.Expr, mode: str, args: tuple[str, ...]) -> str:
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


@dataclass(frozen=True)
class CompiledQuantity:
    """A compiled, vectorized function of an expression's free symbols.

    Call it with keyword arguments named by registry symbols (scalars or arrays broadcast
    together; extra names are ignored) or positionally in ``args`` order (``symbols.ORDER``
    filtered to the free symbols). ``mode="exact"`` returns Python ints (Fractions when the value
    is not whole; object arrays for array input); ``mode="float"`` returns float64. The unit is
    that of the expression compiled (parameters, bytes or FLOPs).
    """

    args: tuple[str, ...]
    mode: str
    source: str
    key: str
    function: Callable[..., Any] = field(repr=False, compare=False)

    def __call__(self, *positional: Any, **values: Any) -> Any:
        if positional:
            if len(positional) != len(self.args):
                raise SymbolicError("arguments", f"expected {len(self.args)} ({', '.join(self.args)})")
            return self.function(*positional)
        missing = [a for a in self.args if a not in values]
        if missing:
            raise SymbolicError(missing[0], f"needs a value ({S.info(missing[0]).meaning})")
        return self.function(*(values[a] for a in self.args))


def cache_dir() -> Path:
    """The directory compiled code is cached in: ``$SYMBOLIC_CACHE_DIR`` or ``~/.cache/symbolic``."""
    from .resultcache import cache_root

    return cache_root()


def _arg_names(expr: sp.Expr) -> tuple[str, ...]:
    names = {str(s) for s in expr.free_symbols}
    unknown = sorted(names - set(S.ORDER))
    if unknown:
        raise SymbolicError("expression", f"symbols not in the registry: {', '.join(unknown)}")
    return tuple(n for n in S.ORDER if n in names)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("symbolic")
    except Exception:  # not installed (running from a checkout)
        return "0"


_PACKAGE_VERSION: list[str] = []
_MEMO: dict[tuple[sp.Expr, str], CompiledQuantity] = {}


def cache_key(expr: sp.Expr, mode: str) -> str:
    """The hex SHA-256 naming ``expr``'s cache entry in ``mode`` (SymPy and package versions included)."""
    if not _PACKAGE_VERSION:
        _PACKAGE_VERSION.append(_version())
    text = f"{sp.srepr(expr)}|{mode}|sympy {sp.__version__}|symbolic {_PACKAGE_VERSION[0]}|codegen {CODEGEN_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()


def _checksum(key: str, mode: str, args: tuple[str, ...], source: str) -> str:
    return hashlib.sha256(json.dumps([key, mode, list(args), source]).encode()).hexdigest()


def _load(path: Path, key: str, mode: str) -> CompiledQuantity | None:
    """The entry at ``path`` if it is whole and is the one asked for; None otherwise."""
    try:
        entry = json.loads(path.read_text())
        args, source = tuple(entry["args"]), entry["source"]
        if entry["key"] != key or entry["mode"] != mode:
            return None
        if entry["checksum"] != _checksum(key, mode, args, source):
            return None
        return _build(source, args, mode, key)
    except Exception:  # truncated, edited, unreadable: rebuild, never trust
        return None


def _build(source: str, args: tuple[str, ...], mode: str, key: str) -> CompiledQuantity:
    namespace = _runtime()
    exec(compile(source, f"<symbolic {key[:12]}>", "exec"), namespace)
    return CompiledQuantity(args, mode, source, key, namespace["_f"])


def _store(path: Path, compiled: CompiledQuantity) -> None:
    """Write the entry atomically (a temporary file, then ``os.replace``); failures are ignored."""
    entry = {
        "key": compiled.key,
        "mode": compiled.mode,
        "args": list(compiled.args),
        "source": compiled.source,
        "checksum": _checksum(compiled.key, compiled.mode, compiled.args, compiled.source),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(entry, fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only or full cache only costs speed


def compile_quantity(expr: sp.Expr, mode: str = "exact", *, cache: bool = True) -> CompiledQuantity:
    """Compile ``expr`` (parameters, bytes or FLOPs) to a vectorized function of its free symbols.

    ``mode="exact"`` computes with Python ints and Fractions (never wraps); ``mode="float"`` with
    float64. The generated code is cached on disk (see :func:`cache_dir`) keyed by a hash of the
    expression, the mode and the SymPy and package versions; a corrupt entry is rebuilt.
    """
    if mode not in MODES:
        raise SymbolicError("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    expr = sp.sympify(expr, strict=True)
    memo_key = (expr, mode)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    key = cache_key(expr, mode)
    path = cache_dir() / f"{key}.json"
    compiled = _load(path, key, mode) if cache else None
    if compiled is None:
        args = _arg_names(expr)
        compiled = _build(_source(expr, mode, args), args, mode, key)
        if cache:
            _store(path, compiled)
    _MEMO[memo_key] = compiled
    return compiled


def cached_evaluate(expr: sp.Expr, values: Mapping[str, Any], mode: str = "exact") -> Any:
    """The value of ``expr`` at ``values`` through the compiled, cached function.

    Exact mode returns a Python int (a Fraction when not whole), float mode a float; arrays in
    ``values`` give arrays. Unit: that of ``expr`` (parameters, bytes or FLOPs).
    """
    return compile_quantity(expr, mode)(**values)
