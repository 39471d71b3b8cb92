"""Options and output helpers shared by the commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import SymbolicError

__all__ = ["add_model_argument", "convention_help", "convention_names", "positive_int", "print_json", "split_list"]


# the kind of integer (symbolic.inputs.LIMITS) each integer option holds
OPTION_KINDS = {
    "--batch": "batch",
    "--seq": "positions",
    "--dp": "degree",
    "--tp": "degree",
    "--pp": "degree",
    "--cp": "degree",
    "--ep": "degree",
    "--devices": "degree",
    "--hybrid-shard": "degree",
    "--stage": "stage",
    "--lora-rank": "rank",
    "--vocab-multiple": "multiple",
    "--top": "rows",
    "--depth": "rows",
    "--max": "search",
}


def positive_int(option: str, minimum: int = 1, kind: str | None = None):
    """An argparse type: plain decimal digits naming an integer of the option's kind (see
    :data:`OPTION_KINDS` and :data:`symbolic.inputs.LIMITS`), at least ``minimum``; else a
    one-line error naming ``option`` and the allowed range."""
    from ..inputs import parse_integer

    kind = kind or OPTION_KINDS.get(option, "width")

    def parse(text: str) -> int:
        try:
            return parse_integer(option, text, kind, low=minimum)
        except SymbolicError as err:
            raise argparse.ArgumentTypeError(err.message) from None

    return parse


def zero_stage(text: str) -> int:
    """An argparse type for ``--zero``: 0, 1, 2 or 3 in plain digits."""
    return positive_int("--zero", minimum=0, kind="zero")(text)


def split_list(option: str, values: list[str] | None) -> tuple[str, ...]:
    """Flatten repeated and comma-separated option values; empty items are an error."""
    out: list[str] = []
    for value in values or ():
        for item in value.split(","):
            item = item.strip()
            if not item:
                raise SymbolicError(option, "empty item in the list")
            out.append(item)
    return tuple(out)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """The positional MODEL_OR_CONFIG argument: a shipped name or a config.json path."""
    parser.add_argument(
        "model", metavar="MODEL_OR_CONFIG", help="shipped model name (see 'symbolic models') or path to a config.json"
    )


def _json_default(value: Any) -> Any:
    import numbers

    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Rational) and value.denominator == 1:
        return int(value.numerator)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def convention_names(quantity: str) -> tuple[str, ...]:
    """The conventions covering ``quantity``, from the one table (:mod:`symbolic.conventions`), as the
    generated index lists them (building a parser then loads no SymPy; a test keeps it current)."""
    from ..precompiled._index import CONVENTION_NAMES

    if quantity in CONVENTION_NAMES:
        return tuple(CONVENTION_NAMES[quantity])
    from ..conventions import names_for

    return names_for(quantity)


def convention_help(quantity: str) -> str:
    """``exact (default), basic or basic-gated``: the conventions covering ``quantity``, as help text."""
    from ..precompiled._index import CONVENTION as DEFAULT

    names = [f"{n} (default)" if n == DEFAULT else n for n in convention_names(quantity)]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def print_json(obj: Any) -> None:
    """Print one JSON object (integers stay exact, SymPy integers become ints) and a newline.

    The text is strict JSON: a non-finite number (``Infinity``, ``NaN``) is refused with a
    :class:`SymbolicError` before anything is printed.
    """
    try:
        text = json.dumps(obj, indent=2, allow_nan=False, default=_json_default)
    except ValueError:
        raise SymbolicError("--json", "a figure is beyond the range of a JSON number; use smaller sizes") from None
    sys.stdout.write(text + "\n")


def console():
    """A rich console as wide as ``$COLUMNS`` when set, else the terminal; 160 columns when piped."""
    import os
    import sys

    from rich.console import Console

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return Console(width=int(columns))
    return Console() if sys.stdout.isatty() else Console(width=160)


def make_table(title: str, columns: list[tuple[str, str]]):
    """A rich table whose columns are ``(header, kind)``: kind ``text`` (left, no wrap), ``number``
    (right, no wrap), ``prose`` (left, wraps between words) or ``formula`` (left, wraps only at the
    spaces around operators, never inside a name; :func:`show` drops it when the terminal is too narrow)."""
    from rich.table import Table

    table = Table(title=title)
    for header, kind in columns:
        if kind == "number":
            table.add_column(header, justify="right", no_wrap=True)
        elif kind in ("formula", "prose"):
            table.add_column(header, overflow="fold", ratio=1)
            table.columns[-1].meta = kind  # type: ignore[attr-defined]
        else:
            table.add_column(header, no_wrap=True)
    return table


def _longest_word(column: Any) -> int:
    return max((len(w) for cell in column._cells for w in str(cell).split()), default=0)


def _widest_cell(column: Any) -> int:
    return max([len(str(column.header))] + [len(str(cell)) for cell in column._cells])


def show(table: Any, term: Any = None) -> None:
    """Print ``table`` so that no formula breaks inside a name: each formula column is at least as
    wide as its longest product; when the terminal cannot hold that, the formula column is left out
    (with a line saying so) rather than broken mid-name."""
    term = term or console()
    wrapping = [c for c in table.columns if getattr(c, "meta", None) in ("formula", "prose")]
    for column in wrapping:
        column.min_width = min(_longest_word(column), 30) if column.meta == "prose" else _longest_word(column)
    fixed = sum(_widest_cell(c) for c in table.columns if c not in wrapping)
    padding = 3 * len(table.columns) + 1
    dropped = []
    while wrapping and fixed + padding + sum(c.min_width for c in wrapping) > term.width:
        formula = [c for c in wrapping if c.meta == "formula"]
        if not formula:
            break
        victim = formula[-1]
        wrapping.remove(victim)
        table.columns.remove(victim)
        padding -= 3
        dropped.append(str(victim.header))
    term.print(table)
    if dropped:
        term.print(
            f"({', '.join(dropped)} left out at {term.width} columns: widen the terminal, set COLUMNS, or use --json)"
        )


def term_json(term: Any) -> dict[str, str]:
    """The fields every ``--json`` term row shares: path, description, per-instance formula, count."""
    return {"path": term.path, "description": term.description, "formula": str(term.expr), "count": str(term.count)}
