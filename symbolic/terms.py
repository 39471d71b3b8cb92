"""Terms and breakdowns: named SymPy expressions of one quantity, and their sums.

A :class:`Term` is one named piece of a quantity (parameters, bytes or FLOPs), written per
instance (``expr``) and repeated ``count`` times (e.g. once per layer of a group, with the
number of layers kept as a symbol). A :class:`Breakdown` is a set of terms of one quantity;
its total is their sum. Adding unlike quantities raises.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp

__all__ = ["Quantity", "Split", "Term", "Breakdown", "path_matches"]


class Quantity(enum.Enum):
    """What a term counts, with its unit."""

    PARAMETERS = "parameters"
    BYTES = "bytes"
    FLOPS = "FLOPs"

    @property
    def unit(self) -> str:
        """The unit a value of this quantity is in."""
        return self.value


class Split(enum.Enum):
    """How tensor parallelism splits a parameter tensor (Megatron's layout)."""

    NONE = "replicated"  # norms, biases of row-parallel layers, routers
    COLUMN = "column"  # output features split: q/k/v, up/gate, their biases
    ROW = "row"  # input features split: o_proj, down_proj
    VOCAB = "vocab"  # embedding rows / lm_head rows split


@dataclass(frozen=True)
class Term:
    """One named piece of a quantity.

    ``expr`` is the value of one instance; ``count`` how many instances there are (a symbol such
    as the number of layers, or 1). For parameter tensors ``shape`` is the tensor's shape and
    ``copies`` how many such tensors one instance holds (routed experts); ``split`` says how
    tensor parallelism splits it and ``expert`` whether expert parallelism does. For activation
    tensors ``shards`` names the sizes a parallel split divides (attention heads, kv heads, the MLP
    width, experts; ``seq`` for tensors of the residual stream that sequence parallelism splits):
    :meth:`symbolic.parallel.Parallelism.activation_share` replaces each by one device's share.
    """

    path: str
    expr: sp.Expr
    quantity: Quantity
    description: str
    count: sp.Expr = sp.Integer(1)
    source: str = ""
    shape: tuple[sp.Expr, ...] | None = None
    copies: sp.Expr = sp.Integer(1)
    split: Split = Split.NONE
    expert: bool = False
    trainable: bool = True
    tags: frozenset[str] = field(default_factory=frozenset)
    shards: frozenset[sp.Symbol] = field(default_factory=frozenset)

    @property
    def total(self) -> sp.Expr:
        """The whole term: ``count * expr``, in the quantity's unit."""
        return self.count * self.expr

    @property
    def component(self) -> str:
        """The path without its last segment (``block.attention.q_proj`` for its weight)."""
        return self.path.rsplit(".", 1)[0] if "." in self.path else self.path

    def with_(self, **changes: Any) -> Term:
        """Return a copy with some fields changed."""
        return replace(self, **changes)


def path_matches(pattern: str, path: str) -> bool:
    """True when ``pattern`` names ``path`` or a component of it.

    A pattern matches a whole run of dotted segments: ``attention`` and
    ``block.attention`` match ``block.attention.q_proj.weight``; ``atten`` does not.
    """
    if pattern in ("all", "*"):
        return True
    segments = path.split(".")
    wanted = pattern.split(".")
    n = len(wanted)
    return any(segments[i : i + n] == wanted for i in range(len(segments) - n + 1))


@dataclass(frozen=True)
class Breakdown:
    """Terms of one quantity. ``total`` is their sum, a SymPy expression."""

    quantity: Quantity
    terms: tuple[Term, ...] = ()

    def __post_init__(self) -> None:
        for term in self.terms:
            if term.quantity is not self.quantity:
                raise TypeError(
                    f"cannot put {term.quantity.value} term {term.path!r} into a breakdown of {self.quantity.value}"
                )
        paths = [t.path for t in self.terms]
        if len(paths) != len(set(paths)):
            dup = sorted({p for p in paths if paths.count(p) > 1})
            raise ValueError(f"duplicate term paths: {dup}")

    def __iter__(self) -> Iterator[Term]:
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def __add__(self, other: Breakdown) -> Breakdown:
        if not isinstance(other, Breakdown):
            return NotImplemented
        if other.quantity is not self.quantity:
            raise TypeError(f"cannot add {other.quantity.value} to {self.quantity.value}")
        return Breakdown(self.quantity, self.terms + other.terms)

    @property
    def total(self) -> sp.Expr:
        """Sum of all terms (count included), in the quantity's unit."""
        return sp.Add(*(t.total for t in self.terms))

    @property
    def paths(self) -> tuple[str, ...]:
        """The terms' paths, in order."""
        return tuple(t.path for t in self.terms)

    def term(self, path: str) -> Term:
        """Return the term with exactly this path (KeyError listing the paths otherwise)."""
        for t in self.terms:
            if t.path == path:
                return t
        raise KeyError(f"no term {path!r}; terms: {', '.join(self.paths)}")

    def where(self, keep: Callable[[Term], bool]) -> Breakdown:
        """The breakdown of the terms for which ``keep`` is true."""
        return Breakdown(self.quantity, tuple(t for t in self.terms if keep(t)))

    def select(self, pattern: str) -> Breakdown:
        """The terms whose path matches ``pattern`` (see :func:`path_matches`)."""
        return self.where(lambda t: path_matches(pattern, t.path))

    def trainable(self) -> Breakdown:
        """The trainable terms."""
        return self.where(lambda t: t.trainable)

    def frozen(self) -> Breakdown:
        """The frozen terms."""
        return self.where(lambda t: not t.trainable)

    def map(self, change: Callable[[Term], Term]) -> Breakdown:
        """A breakdown with ``change`` applied to each term."""
        return Breakdown(self.quantity, tuple(change(t) for t in self.terms))

    def grouped(self, depth: int = 2) -> Breakdown:
        """Merge terms whose paths share the first ``depth`` segments into one term each.

        Per-instance expressions are kept when all merged terms share one ``count``.
        """
        order: list[str] = []
        members: dict[str, list[Term]] = {}
        for t in self.terms:
            key = ".".join(t.path.split(".")[:depth])
            if key not in members:
                order.append(key)
                members[key] = []
            members[key].append(t)
        merged = []
        for key in order:
            ts = members[key]
            if len(ts) == 1 and ts[0].path == key:
                merged.append(ts[0])
                continue
            counts = {t.count for t in ts}
            if len(counts) == 1:
                expr, count = sp.Add(*(t.expr for t in ts)), ts[0].count
            else:
                expr, count = sp.Add(*(t.total for t in ts)), sp.Integer(1)
            merged.append(
                Term(
                    path=key,
                    expr=expr,
                    quantity=self.quantity,
                    description="; ".join(dict.fromkeys(t.description for t in ts)),
                    count=count,
                    trainable=all(t.trainable for t in ts),
                )
            )
        return Breakdown(self.quantity, tuple(merged))

    def view(self, how: str = "simplify") -> sp.Expr:
        """The total in a chosen form: ``simplify``, ``expand``, ``factor`` or ``collect``.

        ``collect`` gathers the expanded total by the layer-count symbols it contains.
        """
        total = self.total
        if how == "simplify":
            return sp.simplify(total)
        if how == "expand":
            return sp.expand(total)
        if how == "factor":
            return sp.factor(total)
        if how == "collect":
            counts = sorted({c for t in self.terms for c in t.count.free_symbols}, key=str)
            return sp.collect(sp.expand(total), counts) if counts else sp.expand(total)
        raise ValueError(f"view must be simplify, expand, factor or collect, not {how!r}")

    @staticmethod
    def concat(quantity: Quantity, parts: Iterable[Breakdown]) -> Breakdown:
        """One breakdown of all the given breakdowns' terms."""
        out = Breakdown(quantity)
        for part in parts:
            out = out + part
        return out
