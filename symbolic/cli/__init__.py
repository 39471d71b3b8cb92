"""The command line: ``symbolic <command> ...``. Thin: parse, call the API, print.

Each module in this package that defines ``register(subparsers)`` adds one or more commands;
modules import heavy libraries inside their command functions so every command starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import pkgutil
import re
import sys
from collections.abc import Sequence

from ..errors import SymbolicError

__all__ = ["main", "build_parser", "flag_for"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command registered."""
    from .. import __version__

    parser = _Parser(prog="symbolic", description="Symbolic formulas for transformer LLM arithmetic.")
    parser.add_argument("--version", action="version", version=f"symbolic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    for command in sub.choices.values():
        command.set_defaults(command_parser=command)
    return parser


def flag_for(command: argparse.ArgumentParser | None, field: str) -> str:
    """The option of ``command`` that sets ``field`` (``lora_rank`` -> ``--lora-rank``), else ``field`` itself.

    The library names fields in its errors; the command line speaks in its flags.
    """
    if command is None or field.startswith("-"):
        return field
    option = "--" + field.replace("_", "-")
    usage = command.format_usage()
    return option if re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", usage) else field


def main(argv: Sequence[str] | None = None, use_cache: bool | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, one line on stderr).

    Answers of pure ``--json`` queries are cached (see :mod:`symbolic.resultcache`); by default
    only a real command line (``argv`` None) uses the cache.
    """
    from .. import resultcache

    arguments = list(sys.argv[1:] if argv is None else argv)
    if use_cache is None:
        use_cache = argv is None
    if use_cache:
        cached = resultcache.lookup(arguments)
        if cached is not None:
            sys.stdout.write(cached)
            return 0
    from . import _traced

    if _traced.wants_traced(arguments):
        return _run_traced(arguments)
    parser = build_parser()
    args = parser.parse_args(arguments)
    capture = io.StringIO() if use_cache and resultcache.key_for(arguments) else None
    try:
        if capture is None:
            return int(args.run(args) or 0)
        with contextlib.redirect_stdout(capture):
            code = int(args.run(args) or 0)
        sys.stdout.write(capture.getvalue())
        if code == 0:
            resultcache.store(arguments, capture.getvalue())
        return code
    except SymbolicError as err:
        if err.field == "model_type" and _traced.fallback_allowed(arguments, err.message):
            from ..trace import EXTRA_HINT, available

            if available():  # no hand-written rules: the traced convention answers
                return _run_traced(arguments, err)
            err = SymbolicError(err.field, f"{err.message}; or trace it: {EXTRA_HINT}")
        field = flag_for(getattr(args, "command_parser", None), err.field)
        sys.stderr.write(f"error: {field}: {err.message}\n")
        return 2
    except BrokenPipeError:
        return 0


def _run_traced(arguments: Sequence[str], unsupported: SymbolicError | None = None) -> int:
    """Answer with the traced convention (after ``unsupported``: no hand-written rules for the type)."""
    from . import _traced

    try:
        return _traced.run_traced(arguments)
    except SymbolicError as err:
        if unsupported is not None and err.field == "model_type":  # not traceable either: say both
            err = SymbolicError(err.field, f"{unsupported.message}; not traceable either: {err.message}")
        sys.stderr.write(f"error: {err.field}: {err.message}\n")
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
