"""Byte budgets: parse ``80GiB`` / ``141GB`` / ``1.5TB`` / ``512MiB`` / ``1000`` into exact bytes, and back.

Decimal prefixes (kB, MB, GB, TB, PB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB, PiB)
powers of 1024; a bare number, or one ending in ``B``, is bytes. Numbers are read as exact
decimals (``1.5TB`` is 1,500,000,000,000 bytes), never as floats and never with ``eval``.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .errors import SymbolicError
from .inputs import shown

__all__ = ["UNITS", "parse_bytes", "format_bytes", "format_flops", "parse_rate", "GIB", "GB"]

MAX_BYTES = 2**60  # 1 EiB: no budget per device is larger
MAX_RATE = 10**21  # FLOP/s of one device: a thousand times today's fastest
GIB = 1024**3
GB = 1000**3

UNITS: dict[str, int] = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": GB,
    "TB": 1000**4,
    "PB": 1000**5,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": GIB,
    "TiB": 1024**4,
    "PiB": 1024**5,
}

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_bytes(text: str, field: str = "budget") -> int:
    """The number of bytes ``text`` names (an int, rounded down to whole bytes).

    Raises :class:`SymbolicError` naming ``field`` and the allowed units for anything else.
    """
    match = _PATTERN.match(str(text))
    allowed = ", ".join(UNITS)
    if not match:
        raise SymbolicError(field, f"{shown(text)} is not a positive size such as 80GiB or 141GB (units: {allowed})")
    number, unit = match.groups()
    if len(number) > 40:
        raise SymbolicError(field, f"{shown(text)} has more digits than any size needs (at most 40)")
    unit = unit or "B"
    if unit not in UNITS:
        lowered = {u.lower(): u for u in UNITS if u != "KB"}
        hint = f" (did you mean {lowered[unit.lower()]}?)" if unit.lower() in lowered else ""
        raise SymbolicError(field, f"unknown unit {unit!r}{hint}; allowed: {allowed}")
    value = int(Fraction(number) * UNITS[unit])
    if value <= 0:
        raise SymbolicError(field, f"{shown(text)} must be more than 0 bytes")
    if value > MAX_BYTES:
        raise SymbolicError(field, f"{shown(text)} is more than 1 EiB (2^60 bytes), beyond any device")
    return value


def format_bytes(n: int | float) -> str:
    """``n`` bytes written as GiB and GB, e.g. ``80.00 GiB (85.90 GB)``."""
    return f"{n / GIB:,.2f} GiB ({n / GB:,.2f} GB)"


_RATE = re.compile(
    r"^\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)\s*([kKMGTPE]?)\s*(?:FLOP/?s|flop/?s|FLOPS|flops)?\s*$"
)
_RATE_PREFIX = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def format_flops(value: object) -> str:
    """A FLOP count in a readable unit, decimal prefixes: ``188.76 TFLOP`` (``value`` in FLOPs).

    >>> format_flops(188_763_812_659_200)
    '188.76 TFLOP'
    >>> format_flops(3.14e23)
    '314,000.00 EFLOP'
    """
    number = float(value)  # type: ignore[arg-type]
    for prefix, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if number >= scale:
            return f"{number / scale:,.2f} {prefix}FLOP"
    return f"{number:,.0f} FLOP"


def parse_rate(text: str, field: str = "peak") -> Fraction:
    """FLOP/s from ``312e12``, ``312T``, ``989.5TFLOP/s`` (exact, decimal prefixes)."""
    from .inputs import decimal

    what = "a rate such as 312e12 or 312T (FLOP/s; prefixes k M G T P E)"
    match = _RATE.match(str(text))
    if not match:
        raise SymbolicError(field, f"{shown(text)} is not {what}")
    number = decimal(field, match.group(1), what=what)
    value = number * _RATE_PREFIX[match.group(2)]
    if value > MAX_RATE:
        raise SymbolicError(field, f"{shown(text)} is more than 1e21 FLOP/s, beyond any one device")
    return value
