"""The compile boundary: expression -> compiled function, generated once and cached on disk.

[SymPy expression] -> (codegen.source) -> [Python source] -> (exec) -> [CompiledQuantity]. The source
is stored with a checksum under the cache directory; later runs load and ``exec`` it without printing,
simplifying or lambdifying anything again. A corrupt entry is rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

from .. import symbols as S
from ..errors import SymbolicError
from . import codegen

__all__ = ["CompiledQuantity", "compile_quantity", "cached_evaluate", "cache_dir", "cache_key", "clear_memo"]


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
    from ..resultcache import cache_root

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
    text = f"{sp.srepr(expr)}|{mode}|sympy {sp.__version__}|symbolic {_PACKAGE_VERSION[0]}|codegen {codegen.CODEGEN_VERSION}"
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
    namespace = codegen.runtime()
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
    if mode not in codegen.MODES:
        raise SymbolicError("mode", f"must be one of {', '.join(codegen.MODES)}, not {mode!r}")
    expr = sp.sympify(expr, strict=True)
    memo_key = (expr, mode)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    key = cache_key(expr, mode)
    path = cache_dir() / f"{key}.json"
    compiled = _load(path, key, mode) if cache else None
    if compiled is None:
        args = _arg_names(expr)
        compiled = _build(codegen.source(expr, mode, args), args, mode, key)
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
