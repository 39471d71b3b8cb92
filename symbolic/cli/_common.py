"""Options and output helpers shared by the commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import SymbolicError

__all__ = ["add_model_argument", "positive_int", "print_json", "split_list"]


def positive_int(option: str, minimum: int = 1):
    """An argparse type: an integer of at least ``minimum`` (1: positive), else a one-line error naming ``option``."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{option} must be {kind}, got {value}")
        return value

    return parse


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


def print_json(obj: Any) -> None:
    """Print one JSON object (integers stay exact) and a newline."""
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


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
