"""One validation layer for every input: what each field may hold, checked once, said in one line.

Every value a user gives (a command-line option, a ``config.json`` field, a symbol name, an
output path) passes through one of these functions before any arithmetic sees it:

- :func:`integer`: an integer is an integer -- a float (even ``2.0``), a bool or a numeric string
  in a config, or anything but plain decimal digits on the command line, is refused, never
  truncated or coerced. Each kind of size has a range bounded by what a real model could be
  (:data:`LIMITS`), so no later computation can be made arbitrarily large or slow.
- :func:`decimal`: an exact decimal such as ``0.4``, ``300e9`` or ``1/3`` within a range (the
  exponent is bounded before anything is computed).
- :func:`divides`: a parallel degree that must divide a size, checked without listing divisors.
- :func:`symbol_name`: one registry symbol, nothing else.
- :func:`output_file` and :func:`write_output`: a destination that can really be written,
  written atomically.

Each raises :class:`~symbolic.errors.SymbolicError` naming the field and what is allowed; the
command line prints it as one line and exits with status 2.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from .errors import SymbolicError

__all__ = [
    "Limit",
    "LIMITS",
    "SYMBOL_KINDS",
    "integer",
    "parse_integer",
    "optional_count",
    "decimal",
    "divides",
    "divisor_text",
    "divisors",
    "symbol_name",
    "symbol_names",
    "output_file",
    "output_stream",
    "write_output",
    "shown",
]


@dataclass(frozen=True)
class Limit:
    """The allowed range of one kind of integer (``low`` to ``high``, inclusive) and why ``high``."""

    low: int
    high: int
    why: str


LIMITS: dict[str, Limit] = {
    "width": Limit(1, 2**22, "no real model is wider than about 10^5"),
    "layers": Limit(1, 100_000, "no real model has more than about 10^3 layers"),
    "heads": Limit(1, 2**20, "no real model has more than about 10^3 heads"),
    "vocab": Limit(1, 2**24, "no real vocabulary is larger than about 10^6 tokens"),
    "experts": Limit(1, 2**20, "no real model has more than about 10^4 experts"),
    "positions": Limit(1, 2**30, "about a billion tokens, beyond any real context"),
    "batch": Limit(1, 2**24, "about 16 million sequences per device"),
    "degree": Limit(1, 2**24, "about 16 million devices"),
    "stage": Limit(0, 2**24, "a pipeline stage index"),
    "rank": Limit(1, 2**22, "a LoRA rank is at most a matrix's width"),
    "tokens": Limit(1, 10**18, "about a thousand times the largest training runs"),
    "rows": Limit(1, 10**6, "a table of at most a million rows"),
    "search": Limit(1, 2**20, "a search bound of about a million"),
    "multiple": Limit(1, 2**20, "a padding multiple"),
    "count": Limit(0, 2**30, "a count of layers, experts or steps"),
    "zero": Limit(0, 3, "the ZeRO stages"),
}

# the kind of each registry symbol (symbols.ORDER); a symbol not listed is a "width"
SYMBOL_KINDS: dict[str, str] = {
    "n_vocab": "vocab",
    "n_layers": "layers",
    "n_dense_layers": "count",
    "n_moe_layers": "count",
    "n_heads": "heads",
    "n_kv_heads": "heads",
    "n_ctx": "positions",
    "n_experts": "experts",
    "top_k": "experts",
    "lora_rank": "rank",
    "batch": "batch",
    "seq": "positions",
    "window": "positions",
    "tp": "degree",
    "pp": "degree",
    "dp": "degree",
    "cp": "degree",
    "ep": "degree",
    "n_microbatches": "batch",
    "interleave": "layers",
    "tokens": "tokens",
}

_DIGITS = re.compile(r"[0-9]+")
_MAX_DIGITS = 40  # longer than any allowed value; refused before conversion
_DECIMAL = re.compile(r"(?P<mantissa>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?P<exp>[+-]?[0-9]{1,4}))?")


def shown(value: object, width: int = 40) -> str:
    """``repr(value)`` cut to ``width`` characters, so an error line stays one short line.

    >>> shown("x" * 100, 10)
    "'xxxxxxxx…"
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _limit(kind: str) -> Limit:
    if kind not in LIMITS:
        raise KeyError(f"unknown integer kind {kind!r}")
    return LIMITS[kind]


def _range_text(limit: Limit) -> str:
    return f"an integer from {limit.low:,} to {limit.high:,} ({limit.why})"


def integer(field: str, value: object, kind: str = "width", *, low: int | None = None) -> int:
    """``value`` as an int of ``kind`` (see :data:`LIMITS`), else :class:`SymbolicError` naming ``field``.

    ``value`` must already be an ``int`` (not a bool, float or string: a config's ``"64"``,
    ``64.0`` and ``true`` are refused). ``low`` overrides the kind's lowest value.

    >>> integer("num_experts", 64, "experts")
    64
    >>> integer("num_experts", 63.7, "experts")
    Traceback (most recent call last):
    ...
    symbolic.errors.SymbolicError: num_experts: must be an integer from 1 to 1,048,576 (no real model has more than about 10^4 experts), got 63.7 (a float)
    """
    limit = _limit(kind)
    if low is not None:
        limit = Limit(low, limit.high, limit.why)
    if isinstance(value, bool) or not isinstance(value, int):
        what = type(value).__name__
        what = {"str": "a string", "float": "a float", "bool": "a bool", "NoneType": "null"}.get(what, f"a {what}")
        raise SymbolicError(field, f"must be {_range_text(limit)}, got {shown(value)} ({what})")
    if not limit.low <= value <= limit.high:
        raise SymbolicError(field, f"must be {_range_text(limit)}, got {shown(value)}")
    return value


def parse_integer(field: str, text: str, kind: str = "width", *, low: int | None = None) -> int:
    """The int that ``text`` writes in plain decimal digits, of ``kind``; anything else is refused.

    Signs, decimal points, exponents, underscores, other scripts' digits and more than 40 digits
    are refused without converting anything.

    >>> parse_integer("--batch", "8", "batch")
    8
    >>> parse_integer("--batch", "8.0", "batch")
    Traceback (most recent call last):
    ...
    symbolic.errors.SymbolicError: --batch: must be an integer from 1 to 16,777,216 (about 16 million sequences per device), got '8.0'
    """
    limit = _limit(kind)
    if low is not None:
        limit = Limit(low, limit.high, limit.why)
    raw = str(text).strip()
    if not raw.isascii() or not _DIGITS.fullmatch(raw):
        sign = raw[:1] == "-" and _DIGITS.fullmatch(raw[1:] or "x")
        got = shown(text) if not sign or len(raw) > _MAX_DIGITS else raw
        raise SymbolicError(field, f"must be {_range_text(limit)}, got {got}")
    if len(raw.lstrip("0")) > _MAX_DIGITS:
        raise SymbolicError(field, f"must be {_range_text(limit)}, got a number of {len(raw)} digits")
    return integer(field, int(raw), kind, low=low)


def optional_count(field: str, value: object, kind: str = "count", default: int = 0) -> int:
    """A config count that may be absent (``None``: ``default``) or 0, else as :func:`integer`."""
    if value is None:
        return default
    return integer(field, value, kind, low=0)


def decimal(
    field: str,
    text: str,
    *,
    low: Fraction | int = 0,
    high: Fraction | int | None = None,
    low_inclusive: bool = False,
    what: str = "a number such as 0.4 or 300e9",
) -> Fraction:
    """The exact value of ``text`` (``0.4``, ``300e9``, ``1.5E-3``; a fraction ``1/3``) within a range.

    The exponent is bounded (four digits) and the value checked against ``low``/``high`` before
    any large number is built, so no input can make this slow.

    >>> decimal("--mfu", "0.4", high=1)
    Fraction(2, 5)
    """
    raw = str(text).strip()
    numerator, slash, denominator = raw.partition("/")
    parts = [numerator.strip(), denominator.strip()] if slash else [raw]
    values: list[Fraction] = []
    for part in parts:
        match = _DECIMAL.fullmatch(part) if part.isascii() else None
        if not match:
            raise SymbolicError(field, f"must be {what}, got {shown(text)}")
        if len(match.group("mantissa")) > 60:
            raise SymbolicError(field, f"must be {what} of at most 60 digits, got {shown(text)}")
        exp = int(match.group("exp") or 0)
        mantissa = Fraction(match.group("mantissa"))
        # the order of magnitude is known before 10**exp is built: refuse beyond 10^+-60
        if mantissa and abs(exp) > 60 + len(match.group("mantissa")):
            raise SymbolicError(field, f"must be {what}, got {shown(text)} (out of range)")
        values.append(mantissa * Fraction(10) ** exp)
    value = values[0] if len(values) == 1 else _divide(field, values, text, what)
    bound_low = Fraction(low)
    if value < bound_low or (value == bound_low and not low_inclusive):
        relation = "at least" if low_inclusive else "more than"
        raise SymbolicError(field, f"must be {relation} {_fraction_text(bound_low)}, got {shown(text)}")
    if high is not None and value > Fraction(high):
        raise SymbolicError(field, f"must be at most {_fraction_text(Fraction(high))}, got {shown(text)}")
    return value


def _divide(field: str, values: list[Fraction], text: str, what: str) -> Fraction:
    if values[1] == 0:
        raise SymbolicError(field, f"must be {what}, got {shown(text)} (division by zero)")
    return values[0] / values[1]


def _fraction_text(x: Fraction) -> str:
    if x.denominator == 1:
        return f"{x.numerator:,}" if abs(x.numerator) < 10**6 else f"{float(x):.4g}"
    return f"{float(x):.6g}"


def divides(field: str, degree: int, size_name: str, size: int) -> None:
    """Refuse ``degree`` unless it divides ``size`` (field ``size_name``); the error names a few that do.

    Divisibility is one remainder; the message's divisors are found up to the square root (sizes
    are bounded, so that is at most about 10^6 steps).

    >>> divides("--tp", 3, "n_heads", 32)
    Traceback (most recent call last):
    ...
    symbolic.errors.SymbolicError: --tp: 3 must divide n_heads (32); allowed: 1, 2, 4, 8, 16, 32
    """
    if size % degree == 0:
        return
    raise SymbolicError(field, f"{degree} must divide {size_name} ({size:,}); allowed: {divisor_text(size)}")


def divisors(n: int) -> list[int]:
    """The divisors of ``n`` in increasing order, found by trial up to the square root of ``n``.

    >>> divisors(12)
    [1, 2, 3, 4, 6, 12]
    """
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def divisor_text(n: int, most: int = 16) -> str:
    """The divisors of ``n`` in words, at most ``most`` of them; for ``n`` beyond 2^40 only "a divisor".

    >>> divisor_text(12)
    '1, 2, 3, 4, 6, 12'
    """
    if n > 2**40:
        return f"a divisor of {n:,}"
    found = divisors(n)
    text = ", ".join(str(x) for x in found[:most])
    return text + (f", ... ({len(found)} in all)" if len(found) > most else "")


def symbol_name(field: str, text: str) -> str:
    """``text`` as the name of one registry symbol (whitespace trimmed); anything else is refused.

    >>> symbol_name("--over", " seq ")
    'seq'
    """
    from . import symbols as S

    name = str(text).strip()
    if name not in S.REGISTRY:
        raise SymbolicError(field, f"must name one symbol ({', '.join(S.ORDER)}), got {shown(text)}")
    return name


def symbol_names(field: str, items: Iterable[str]) -> list[str]:
    """Registry symbol names from repeated and comma-separated items; empty or unknown ones are refused."""
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            name = symbol_name(field, part)
            if name not in out:
                out.append(name)
    return out


_SYSTEM = ("/proc", "/sys", "/dev")


def output_file(field: str, text: str, suffixes: tuple[str, ...] = ()) -> Path:
    """The file ``text`` names, checked to be writable: its folder exists and can be written, it is
    not a folder itself nor under /proc, /sys or /dev, and it ends in one of ``suffixes`` (if given).
    """
    raw = str(text)
    if not raw.strip():
        raise SymbolicError(field, "needs a file name")
    if "\0" in raw or len(raw) > 4096 or any(len(part) > 255 for part in Path(raw).parts):
        raise SymbolicError(field, f"{shown(raw)} is not a usable file name")
    path = Path(raw)
    if suffixes and not raw.lower().endswith(suffixes):
        raise SymbolicError(field, f"{shown(raw)} must end in {' or '.join(suffixes)}")
    resolved = Path(os.path.realpath(path))
    if any(str(resolved) == top or str(resolved).startswith(top + "/") for top in _SYSTEM):
        raise SymbolicError(field, f"{shown(raw)} is a system location; choose a file in an ordinary folder")
    folder = resolved.parent
    if path.is_dir() or raw.endswith(("/", os.sep)):
        raise SymbolicError(field, f"{shown(raw)} is a folder; give a file name")
    if not folder.is_dir():
        raise SymbolicError(field, f"folder {shown(str(path.parent))} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SymbolicError(field, f"folder {shown(str(path.parent))} is not writable")
    if path.exists() and not path.is_file():
        raise SymbolicError(field, f"{shown(raw)} exists and is not a regular file")
    return path


@contextlib.contextmanager
def output_stream(field: str, path: str | os.PathLike[str], binary: bool = False) -> Iterator[IO[Any]]:
    """A file to stream ``path``'s content into, put in place atomically when the block ends.

    The data goes to a temporary file in the same folder, renamed over ``path`` only when the
    block finishes without an error; an OS failure (full disk, permissions) is one
    :class:`SymbolicError` naming ``field``, and ``path`` is left as it was.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise SymbolicError(field, f"cannot write {shown(str(target))}: {err.strerror or err}") from None
    try:
        handle: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with handle:
            yield handle
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise SymbolicError(field, f"cannot write {shown(str(target))}: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(field: str, path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, then rename); an OS failure (full disk,
    permissions) is one :class:`SymbolicError` naming ``field``, and ``path`` is left as it was."""
    with output_stream(field, path, binary=True) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)
