"""The command line: ``symbolic <command> ...``. Thin: parse, call the API, print.

Each module in this package that defines ``register(subparsers)`` adds one or more commands;
modules import heavy libraries inside their command functions so every command starts fast.
:data:`COMMANDS` names every command, its module and its one-line help as data, so ``symbolic
--help`` imports no command module and ``symbolic CMD`` imports only CMD's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import SymbolicError

__all__ = ["main", "build_parser", "flag_for", "COMMANDS"]

# command -> (module in this package that registers it, one-line help); a test checks each module
# registers exactly these commands with exactly this help
COMMANDS: dict[str, tuple[str, str]] = {
    "dominates": ("analysis", "which terms dominate: shares at a point, leading terms as a size grows"),
    "sensitivity": ("analysis", "derivatives and elasticities of a quantity in every symbol"),
    "crossover": ("analysis", "where one term overtakes another as a size varies"),
    "fit": ("analysis", "the largest batch/seq or smallest parallel degree whose memory per device fits a budget"),
    "derive": ("derive", "a derivation document (LaTeX or Markdown) from the same expressions"),
    "flops": ("flops", "training FLOPs of one step: forward, backward, recompute, per term"),
    "inference": ("inference", "inference memory: weights and KV cache, in bytes"),
    "memory": ("memory", "bytes per device: weights, gradients, optimizer state, activations, peak"),
    "models": ("models", "list the shipped model configurations"),
    "params": ("params", "parameter counts: total, trainable, frozen, per term"),
    "plot": ("plot", "figures: memory per device (stacked bars) or scaling with dominant regions"),
    "sweep": ("sweep", "a quantity over the full product of a grid (csv, json or parquet)"),
    "timeline": (
        "timeline",
        "bytes per device through a training step (forward, loss, backward, optimizer): the peak's phase",
    ),
    "trace": (
        "trace",
        "trace one training step on fake tensors: parameters, saved activations, FLOPs (needs symbolic[trace])",
    ),
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def _chosen(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), or None."""
    for word in argv:
        if not word.startswith("-"):
            return word
        if word == "--":
            return None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser: every command in full, or with ``argv`` only the command it names in full.

    With ``argv``, the other commands get a name and help line only (from :data:`COMMANDS`), so
    building the parser imports at most one command module.
    """
    from .. import __version__

    parser = _Parser(prog="symbolic", description="Symbolic formulas for transformer LLM arithmetic.")
    parser.add_argument("--version", action="version", version=f"symbolic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    chosen = None if argv is None else _chosen(argv)
    wanted = {module for module, _ in COMMANDS.values()} if argv is None else set()
    if chosen in COMMANDS:
        wanted.add(COMMANDS[chosen][0])
    registered: set[str] = set()
    for name, (module, help_text) in COMMANDS.items():
        if module in wanted:
            if module not in registered:
                registered.add(module)
                importlib.import_module(f"{__name__}.{module}").register(sub)
        else:
            sub.add_parser(name, help=help_text)
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
        cached = _quietly(resultcache.lookup, arguments)
        if cached is not None:
            sys.stdout.write(cached)
            return 0
    from . import _traced

    if _traced.wants_traced(arguments):
        return _run_traced(arguments)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    capture = io.StringIO() if use_cache and _quietly(resultcache.key_for, arguments) else None
    try:
        if capture is None:
            return int(args.run(args) or 0)
        with contextlib.redirect_stdout(capture):
            code = int(args.run(args) or 0)
        sys.stdout.write(capture.getvalue())
        if code == 0:
            _quietly(resultcache.store, arguments, capture.getvalue())
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


def _quietly(call: Any, *args: Any) -> Any:
    """``call(*args)`` for the answer cache, ``None`` when the file system refuses (an argument too
    long for a file name, an unreadable entry): a cache only costs speed, never an answer."""
    try:
        return call(*args)
    except (OSError, ValueError):
        return None


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
