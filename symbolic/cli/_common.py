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
    """A rich console; when output is not a terminal it is 160 columns wide, so formulas stay readable."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def make_table(title: str, columns: list[tuple[str, str]]):
    """A rich table whose columns are ``(header, kind)``: kind ``text`` (left, no wrap), ``number``
    (right, no wrap) or ``formula`` (left, wraps at operator boundaries)."""
    from rich.table import Table

    table = Table(title=title)
    for header, kind in columns:
        if kind == "number":
            table.add_column(header, justify="right", no_wrap=True)
        elif kind == "formula":
            table.add_column(header, overflow="fold", ratio=1)
        else:
            table.add_column(header, no_wrap=True)
    return table


def term_json(term: Any) -> dict[str, str]:
    """The fields every ``--json`` term row shares: path, description, per-instance formula, count."""
    return {"path": term.path, "description": term.description, "formula": str(term.expr), "count": str(term.count)}
