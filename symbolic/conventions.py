"""Named conventions: which formulas a figure is computed with, as values.

``exact`` (the default) counts what real implementations build; ``basic`` is the design note
literally; ``basic-gated`` is the note's formula with the gated MLP's third matrix, which is how
the note computed its llama2-7b number. Other modules add conventions for other quantities
(``megatron`` for activations, FLOPs conventions) in the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SymbolicError

__all__ = ["Convention", "CONVENTIONS", "get_convention", "DEFAULT"]


@dataclass(frozen=True)
class Convention:
    """A named way of counting: what it covers, where it comes from, what it leaves out."""

    name: str
    title: str
    source: str
    leaves_out: str
    quantities: frozenset[str]


CONVENTIONS: dict[str, Convention] = {}


def register(convention: Convention) -> Convention:
    """Add a convention to the table (names are unique) and return it."""
    if convention.name in CONVENTIONS:
        raise ValueError(f"convention {convention.name!r} is already registered")
    CONVENTIONS[convention.name] = convention
    return convention


DEFAULT = "exact"

register(
    Convention(
        "exact",
        "Exact: what the implementation builds",
        "Hugging Face transformers 5.24 modules; checked against models built on the meta device",
        "nothing: every weight, bias and norm is counted, tied tensors once",
        frozenset({"parameters", "memory", "activations"}),
    )
)
register(
    Convention(
        "basic",
        "The design note, literally",
        "design note, shared/seed/000_7932bc86fa8e8a30.txt",
        "norms, biases, learned positions, grouped-query sharing, tying, the gated MLP's third matrix",
        frozenset({"parameters", "memory", "activations"}),
    )
)
register(
    Convention(
        "basic-gated",
        "The design note's formula with the gated MLP's third matrix",
        "design note, section 1: how its llama2-7b figure 6,738,149,376 comes out",
        "norms, biases, learned positions, grouped-query sharing, tying",
        frozenset({"parameters"}),
    )
)


def get_convention(name: str, quantity: str = "parameters") -> Convention:
    """Return the convention called ``name``; a clear error names the allowed ones."""
    allowed = [c for c, conv in CONVENTIONS.items() if quantity in conv.quantities]
    if name not in allowed:
        raise SymbolicError("convention", f"unknown {name!r} for {quantity}; allowed: {', '.join(allowed)}")
    return CONVENTIONS[name]
