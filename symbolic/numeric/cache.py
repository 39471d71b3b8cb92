"""The compile boundary: expression -> compiled function, generated once and cached on disk.

[SymPy expression] -> (codegen.source) -> [Python source] -> (exec) -> [CompiledQuantity]. The source
is stored under the cache directory; later runs load and ``exec`` it without printing, simplifying or
lambdifying anything again.

The cache never runs code this installation did not write: an entry's name and its content are
authenticated with the installation's secret (HMAC-SHA256, see :func:`symbolic.resultcache.secret`),
so an entry written or edited by anyone without the secret is rebuilt, never executed. A cache
folder others can write to is not used (code is then compiled in memory only), a non-regular file
where an entry should be is skipped without blocking, and writes are atomic and leave nothing
behind when they fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy as sp

from .. import symbols as S
from ..errors import SymbolicError
from .codegen import CODEGEN_VERSION, MODES, runtime
from .codegen import source as generate_source
from .entries import read_entry as _read_entry
from .entries import write_entry as _write_entry
from .runtime import BLOCK, _blocked

__all__ = [
    "BLOCK",
    "CompiledQuantity",
    "compile_quantity",
    "cached_evaluate",
    "cached_expression",
    "int64_program",
    "cache_dir",
    "cache_key",
    "clear_memo",
]


@dataclass(frozen=True)
class CompiledQuantity:
    """A compiled, vectorized function of an expression's free symbols.

    Call it with keyword arguments named by registry symbols (scalars or arrays broadcast
    together; extra names are ignored) or positionally in ``args`` order (``symbols.ORDER``
    filtered to the free symbols). ``mode="exact"`` returns Python ints (Fractions when the value
    is not whole; object arrays for array input); ``mode="float"`` returns float64. The unit is
    that of the expression compiled (parameters, bytes or FLOPs). In float mode, long 1-D NumPy
    arrays are evaluated in blocks of :data:`~symbolic.numeric.runtime.BLOCK` elements, so every temporary stays in the CPU
    cache (same values, fewer trips to memory).
    """

    args: tuple[str, ...]
    mode: str
    source: str
    key: str
    function: Callable[..., Any] = field(repr=False, compare=False)
    expr: sp.Expr | None = field(default=None, repr=False, compare=False)
    _lowered: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def _arguments(self, positional: tuple[Any, ...], values: Mapping[str, Any]) -> tuple[Any, ...]:
        if positional:
            if len(positional) != len(self.args):
                raise SymbolicError("arguments", f"expected {len(self.args)} ({', '.join(self.args)})")
            return positional
        missing = [a for a in self.args if a not in values]
        if missing:
            raise SymbolicError(missing[0], f"needs a value ({S.info(missing[0]).meaning})")
        return tuple(values[a] for a in self.args)

    def __call__(self, *positional: Any, **values: Any) -> Any:
        args = self._arguments(positional, values)
        if self.mode == "float":
            return _blocked(self.function, args)
        fraction = self.int64(*args) if any(_int_array(a) for a in args) else None
        if fraction is not None:
            return _exact_objects(*fraction, args)
        return self.function(*args)

    def int64(self, *positional: Any, **values: Any) -> tuple[Any, Any] | None:
        """Exact mode over integer arrays: ``(N, D)`` as int64 arrays (or ints) with the value N / D
        at every element, D > 0, or None when the inputs' magnitudes do not prove int64 arithmetic
        exact (see :mod:`symbolic.numeric.intexact`; the caller then computes with Python ints)."""
        args = self._arguments(positional, values)
        if "program" not in self._lowered:
            self._lowered["program"] = _lowered(self)
        program = self._lowered["program"]
        result = program(*args) if program is not None else None
        if result is None:
            return None
        import numpy as np

        num, den = result
        if not np.all(np.asarray(den) > 0):
            return None
        return num, den


def _lowered(compiled: CompiledQuantity) -> Any:
    """The int64 program of ``compiled`` (:func:`symbolic.numeric.intexact.lower`), through the disk cache."""
    return _program(compiled.key, compiled.expr, compiled.args)


def _program(key: str, expr: sp.Expr | None, args: tuple[str, ...]) -> Any:
    from .intexact import IntProgram, lower

    path = cache_dir() / f"{key}.int64.json"
    data = _read_entry(path, key, "int64")
    if data is not None:
        try:
            return IntProgram.from_data(data)
        except (ValueError, KeyError, TypeError):
            pass
    program = lower(expr, args) if expr is not None else None
    if program is not None:
        _write_entry(path, key, "int64", program.to_data())
    return program


def int64_program(expr: sp.Expr) -> tuple[tuple[str, ...], Any]:
    """``expr``'s free symbols (in ``symbols.ORDER``) and its exact int64 program
    (:func:`symbolic.numeric.intexact.lower`; None when it has none), through the disk cache, without
    generating or compiling the Python source :func:`compile_quantity` would: a caller whose inputs
    the program proves exact never needs it. ``program(*values)`` gives ``(N, D)`` with the value
    N / D (D > 0 is for the caller to check), or None where the inputs do not prove it exact.
    """
    expr = sp.sympify(expr, strict=True)
    args = _arg_names(expr)
    return args, _program(cache_key(expr, "exact"), expr, args)


def cached_expression(parts: Sequence[str], build: Callable[[], tuple[sp.Expr, Any]]) -> tuple[sp.Expr, Any]:
    """``build()`` -- an expression and JSON data that goes with it -- through the disk cache, named by
    ``parts`` (strings saying everything it depends on besides this installation's files, which the
    key covers too).

    The entry holds the expression as a tree of SymPy class names and numbers (rebuilt by name,
    never evaluated from text) with its ``srepr`` and the data, authenticated like compiled code (an
    entry anyone else wrote is rebuilt, never read); it is used only when the rebuilt expression
    prints exactly the same ``srepr``.
    """
    from ..resultcache import package_stamp, secret

    secret_key = secret()
    if secret_key is None:
        return build()
    text = json.dumps([*parts, package_stamp(), CODEGEN_VERSION])
    key = hmac.new(secret_key, f"expression|{text}".encode(), hashlib.sha256).hexdigest()
    path = cache_dir() / f"{key}.expr.json"
    stored = _read_entry(path, key, "expression")
    if isinstance(stored, dict) and isinstance(stored.get("srepr"), str):
        with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):  # unreadable: rebuild it
            with sp.evaluate(False):  # its parts are already simplified: do not redo it (a maximum's comparisons)
                expr = _decode(stored["tree"])
            if sp.srepr(expr) == stored["srepr"]:
                return expr, stored.get("data")
    expr, data = build()
    try:
        tree = _encode(expr)
    except ValueError:
        return expr, data  # a part the decoder would not rebuild: not cached
    _write_entry(path, key, "expression", {"srepr": sp.srepr(expr), "tree": tree, "data": data})
    return expr, data


# the SymPy classes a cached expression may hold, rebuilt by name (nothing is evaluated from text)
_CLASSES: dict[str, Any] = {
    cls.__name__: cls
    for cls in (
        sp.Add,
        sp.Mul,
        sp.Pow,
        sp.Max,
        sp.Min,
        sp.ceiling,
        sp.floor,
        sp.Abs,
        sp.Piecewise,
        sp.functions.elementary.piecewise.ExprCondPair,
        sp.StrictLessThan,
        sp.LessThan,
        sp.StrictGreaterThan,
        sp.GreaterThan,
        sp.Eq,
        sp.Ne,
        sp.And,
        sp.Or,
        sp.Not,
    )
}


def _encode(e: sp.Basic) -> Any:
    """``e`` as JSON: ``["I", n]``, ``["Q", p, q]``, ``["S", name]`` (a registry symbol), ``["T"]``/``["F"]``
    (true, false) or ``[class name, *arguments]``; ValueError for anything else."""
    if e.is_Integer:
        return ["I", str(int(e))]
    if e.is_Rational:
        return ["Q", str(int(e.p)), str(int(e.q))]
    if e.is_Symbol:
        if e.name not in S.REGISTRY or S.symbol(e.name) != e:
            raise ValueError(f"not a registry symbol: {e}")
        return ["S", e.name]
    if e is sp.true or e is sp.false:
        return ["T"] if e is sp.true else ["F"]
    name = type(e).__name__
    if _CLASSES.get(name) is not type(e):
        raise ValueError(f"not cached: {name}")
    return [name, *(_encode(a) for a in e.args)]


def _decode(tree: Any) -> Any:
    tag = tree[0]
    if tag == "I":
        return sp.Integer(int(tree[1]))
    if tag == "Q":
        return sp.Rational(int(tree[1]), int(tree[2]))
    if tag == "S":
        return S.symbol(str(tree[1]))
    if tag in ("T", "F"):
        return sp.true if tag == "T" else sp.false
    return _CLASSES[tag](*(_decode(a) for a in tree[1:]))


def _int_array(x: Any) -> bool:
    import numpy as np

    return isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.ndim > 0


def _exact_objects(num: Any, den: Any, args: tuple[Any, ...]) -> Any:
    """N / D as an object array of Python ints (Fractions where not whole), shaped like the array arguments."""
    import numpy as np

    shape = np.broadcast_shapes(*(a.shape for a in args if isinstance(a, np.ndarray)))
    num = np.broadcast_to(np.asarray(num, dtype=np.int64), shape)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), shape)
    quotient, remainder = np.divmod(num, den)
    out = quotient.astype(object)
    for i in zip(*np.nonzero(remainder), strict=True):
        out[i] = Fraction(int(num[i]), int(den[i]))
    return out


def cache_dir() -> Path:
    """The directory compiled code is cached in: ``compiled`` under ``$SYMBOLIC_CACHE_DIR`` or ``~/.cache/symbolic``."""
    from ..resultcache import cache_root

    return cache_root() / "compiled"


def _arg_names(expr: sp.Expr) -> tuple[str, ...]:
    names = {str(s) for s in expr.free_symbols}
    unknown = sorted(names - set(S.ORDER))
    if unknown:
        raise SymbolicError("expression", f"symbols not in the registry: {', '.join(unknown)}")
    return tuple(n for n in S.ORDER if n in names)


_MEMO: dict[tuple[sp.Expr, str], CompiledQuantity] = {}


def cache_key(expr: sp.Expr, mode: str) -> str:
    """The hex name of ``expr``'s cache entry in ``mode``: an HMAC, under the installation's secret, of the
    expression, the mode, the code generator's version and the installation's stamp (its files and
    SymPy's release); a plain SHA-256 of the same when no secret can be kept (nothing is then cached).
    """
    from ..resultcache import package_stamp, secret

    text = f"{sp.srepr(expr)}|{mode}|codegen {CODEGEN_VERSION}|{package_stamp()}".encode()
    key = secret()
    if key is None:
        return hashlib.sha256(text).hexdigest()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def _mac(key: str, mode: str, args: tuple[str, ...], source: str) -> str | None:
    from ..resultcache import secret

    secret_key = secret()
    if secret_key is None:
        return None
    message = json.dumps([key, mode, list(args), source]).encode()
    return hmac.new(secret_key, message, hashlib.sha256).hexdigest()


def _load(path: Path, key: str, mode: str, expr: sp.Expr | None = None) -> CompiledQuantity | None:
    """The entry at ``path`` if it is authentic, whole and the one asked for; None otherwise."""
    from ..resultcache import read_regular, secure_dir

    if not secure_dir(path.parent):
        return None
    data = read_regular(path)
    if data is None:
        return None
    try:
        entry = json.loads(data)
        args, source = tuple(entry["args"]), entry["source"]
        if entry["key"] != key or entry["mode"] != mode or not all(isinstance(a, str) for a in args):
            return None
        want = _mac(key, mode, args, source)
        if want is None or not hmac.compare_digest(str(entry["mac"]), want):
            return None
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None
    return _build(source, args, mode, key, expr)  # authentic: code this installation wrote


def _build(source: str, args: tuple[str, ...], mode: str, key: str, expr: sp.Expr | None = None) -> CompiledQuantity:
    namespace = runtime()
    exec(compile(source, f"<symbolic {key[:12]}>", "exec"), namespace)
    return CompiledQuantity(args, mode, source, key, namespace["_f"], expr)


def _store(path: Path, compiled: CompiledQuantity) -> None:
    """Write the entry atomically, authenticated; skipped where the folder or the secret is not safe."""
    from ..resultcache import secure_dir, write_atomic

    mac = _mac(compiled.key, compiled.mode, compiled.args, compiled.source)
    if mac is None or not secure_dir(path.parent, create=True):
        return  # a cache others could write to, or a full disk, only costs speed
    entry = {
        "key": compiled.key,
        "mode": compiled.mode,
        "args": list(compiled.args),
        "source": compiled.source,
        "mac": mac,
    }
    write_atomic(path, json.dumps(entry).encode())


def compile_quantity(expr: sp.Expr, mode: str = "exact", *, cache: bool = True) -> CompiledQuantity:
    """Compile ``expr`` (parameters, bytes or FLOPs) to a vectorized function of its free symbols.

    ``mode="exact"`` computes with Python ints and Fractions (never wraps); ``mode="float"`` with
    float64. The generated code is cached on disk (see :func:`cache_dir`) under a key authenticated
    with the installation's secret (:func:`cache_key`); an entry that is not authentic is rebuilt.
    """
    if mode not in MODES:
        raise SymbolicError("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    expr = sp.sympify(expr, strict=True)
    memo_key = (expr, mode)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    key = cache_key(expr, mode)
    path = cache_dir() / f"{key}.json"
    compiled = _load(path, key, mode, expr) if cache else None
    if compiled is None:
        args = _arg_names(expr)
        compiled = _build(generate_source(expr, mode, args), args, mode, key, expr)
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


def clear_memo() -> None:
    """Forget the compiled functions held in memory (the disk cache stays)."""
    _MEMO.clear()
