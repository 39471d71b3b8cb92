"""A disk cache of traces, keyed by the config's bytes, the options and the library versions.

The key is a SHA-256 of the canonical config, the trace options, the torch, transformers, SymPy
and Python versions and the source of ``symbolic/trace`` itself, so a cached trace is the one a
fresh trace would give (a cache never changes an answer). Expressions are stored as JSON trees of
a fixed set of SymPy node types (nothing is parsed or evaluated on load); an entry that is not a
regular file, is truncated, or does not decode is ignored. Writes are atomic (temporary file +
``os.replace``). ``SYMBOLIC_NO_TRACE_CACHE=1`` bypasses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sympy as sp

from .. import symbols as S
from ..resultcache import cache_root
from ..terms import Breakdown, Quantity, Split, Term
from .result import Trace, TraceOptions
from .sizes import field_symbol, is_size_field

__all__ = ["key_for", "load", "save", "encode", "decode", "trace_dir"]

_FORMAT = "symbolic-trace-v1"
_HERE = Path(__file__).resolve().parent

# node name -> SymPy class; only these are ever built from a cache entry
_NODES: dict[str, Any] = {
    "Add": sp.Add,
    "Mul": sp.Mul,
    "Pow": sp.Pow,
    "Max": sp.Max,
    "Min": sp.Min,
    "floor": sp.floor,
    "ceiling": sp.ceiling,
    "Mod": sp.Mod,
    "And": sp.And,
    "Or": sp.Or,
    "Not": sp.Not,
    "Eq": sp.Eq,
    "Ne": sp.Ne,
    "Lt": sp.Lt,
    "Le": sp.Le,
    "Gt": sp.Gt,
    "Ge": sp.Ge,
}
_RELATIONAL_NAMES = {
    sp.Equality: "Eq",
    sp.Unequality: "Ne",
    sp.StrictLessThan: "Lt",
    sp.LessThan: "Le",
    sp.StrictGreaterThan: "Gt",
    sp.GreaterThan: "Ge",
}


def trace_dir() -> Path:
    """Where traces are cached: the ``traces`` folder of the symbolic cache root."""
    return cache_root() / "traces"


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def key_for(config: Mapping[str, Any], options: Mapping[str, Any], versions: Mapping[str, str]) -> str | None:
    """The cache key of a trace (None when the cache is switched off)."""
    if os.environ.get("SYMBOLIC_NO_TRACE_CACHE"):
        return None
    digest = hashlib.sha256()
    parts = (
        _FORMAT,
        sys.version,
        sp.__version__,
        _source_digest(),
        json.dumps(dict(versions), sort_keys=True),
        json.dumps(dict(options), sort_keys=True),
        json.dumps(dict(config), sort_keys=True, default=str),
    )
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def encode(expr: sp.Basic) -> Any:
    """A SymPy expression or condition as a JSON tree (integers, rationals, registered symbols)."""
    if expr is sp.true or expr is sp.false:
        return ["B", bool(expr)]
    if isinstance(expr, sp.Integer):
        return ["I", str(int(expr))]
    if isinstance(expr, sp.Rational):
        return ["Q", str(expr.p), str(expr.q)]
    if isinstance(expr, sp.Symbol) and is_size_field(expr.name) and expr == field_symbol(expr.name):
        return ["F", expr.name]
    if isinstance(expr, sp.Symbol):
        if S.info(expr.name).symbol != expr:
            raise ValueError(f"not a registered symbol: {expr}")
        return ["S", expr.name]
    if isinstance(expr, sp.Piecewise):
        return ["Piecewise", *[[encode(e), encode(c)] for e, c in expr.args]]
    name = _RELATIONAL_NAMES.get(type(expr)) or type(expr).__name__
    if name not in _NODES:
        raise ValueError(f"cannot store a {name} node")
    return [name, *[encode(a) for a in expr.args]]


def decode(tree: Any) -> sp.Basic:
    """The SymPy expression a JSON tree from :func:`encode` stands for (ValueError otherwise)."""
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], str):
        raise ValueError("malformed expression")
    head, args = tree[0], tree[1:]
    if head == "B":
        return sp.true if args[0] else sp.false
    if head == "I":
        return sp.Integer(int(args[0]))
    if head == "Q":
        return sp.Rational(int(args[0]), int(args[1]))
    if head == "S":
        return S.symbol(str(args[0]))
    if head == "F":
        if not is_size_field(str(args[0])):
            raise ValueError(f"not a size field: {args[0]!r}")
        return field_symbol(str(args[0]))
    if head == "Piecewise":
        return sp.Piecewise(*[(decode(e), decode(c)) for e, c in args])
    if head not in _NODES:
        raise ValueError(f"unknown node {head!r}")
    return _NODES[head](*[decode(a) for a in args])


def _encode_breakdown(b: Breakdown) -> dict[str, Any]:
    return {
        "quantity": b.quantity.value,
        "terms": [
            {
                "path": t.path,
                "expr": encode(t.expr),
                "count": encode(t.count),
                "description": t.description,
                "source": t.source,
                "shape": None if t.shape is None else [encode(d) for d in t.shape],
                "trainable": t.trainable,
                "shards": sorted(str(x) for x in t.shards),
                "split": t.split.value,
                "tags": sorted(t.tags),
            }
            for t in b.terms
        ],
    }


def _decode_breakdown(data: Mapping[str, Any]) -> Breakdown:
    quantity = Quantity(data["quantity"])
    terms = tuple(
        Term(
            t["path"],
            decode(t["expr"]),
            quantity,
            str(t["description"]),
            count=decode(t["count"]),
            source=str(t["source"]),
            shape=None if t["shape"] is None else tuple(decode(d) for d in t["shape"]),
            trainable=bool(t["trainable"]),
            shards=frozenset(S.symbol(str(x)) for x in t.get("shards", ())),
            split=Split(t.get("split", Split.NONE.value)),
            tags=frozenset(str(x) for x in t.get("tags", ())),
        )
        for t in data["terms"]
    )
    return Breakdown(quantity, terms)


def _options(data: Mapping[str, Any]) -> TraceOptions:
    at = data.get("at")
    return TraceOptions(**{**data, "at": None if at is None else (int(at[0]), int(at[1]))})


def save(key: str, result: Trace) -> None:
    """Store a Trace under ``key`` (atomically); a read-only or full disk only costs speed."""
    entry = {
        "format": _FORMAT,
        "key": key,
        "model_type": result.model_type,
        "parameters": _encode_breakdown(result.parameters),
        "activations": _encode_breakdown(result.activations),
        "flops": _encode_breakdown(result.flops),
        "split_copies": _encode_breakdown(result.split_copies),
        "sizes": result.sizes,
        "layer_groups": [list(g) for g in result.layer_groups],
        "conditions": list(result.conditions),
        "versions": result.versions,
        "options": result.options.key(),
        "seconds": result.seconds,
        "notes": list(result.notes),
        "size_symbols": result.size_symbols,
        "size_conditions": [encode(c) for c in result.size_conditions],
        "fixed_sizes": result.fixed_sizes,
    }
    text = json.dumps(entry)
    folder = trace_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        return


def load(key: str) -> Trace | None:
    """The cached Trace for ``key``, or None (absent, not a regular file, or not decodable)."""
    path = trace_dir() / f"{key}.json"
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("format") != _FORMAT or entry.get("key") != key:
            return None
        return Trace(
            model_type=str(entry["model_type"]),
            parameters=_decode_breakdown(entry["parameters"]),
            activations=_decode_breakdown(entry["activations"]),
            flops=_decode_breakdown(entry["flops"]),
            sizes={str(k): int(v) for k, v in entry["sizes"].items()},
            layer_groups=tuple(tuple(int(i) for i in g) for g in entry["layer_groups"]),
            conditions=tuple(str(c) for c in entry["conditions"]),
            versions={str(k): str(v) for k, v in entry["versions"].items()},
            options=_options(entry["options"]),
            seconds=float(entry["seconds"]),
            cached=True,
            notes=tuple(str(n) for n in entry["notes"]),
            split_copies=_decode_breakdown(entry["split_copies"]),
            size_symbols={str(k): int(v) for k, v in entry.get("size_symbols", {}).items()},
            size_conditions=tuple(decode(c) for c in entry.get("size_conditions", ())),
            fixed_sizes={str(k): int(v) for k, v in entry.get("fixed_sizes", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
