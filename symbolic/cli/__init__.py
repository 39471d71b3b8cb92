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
    from ..precompiled import cli_answer

    quick = _quietly(cli_answer, arguments)  # generated plain-Python answers: no SymPy import
    if quick is not None:
        sys.stdout.write(quick)
        if use_cache:
            _quietly(resultcache.store, arguments, quick)
        return 0
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    capture = io.StringIO() if use_cache and _quietly(resultcache.key_for, arguments) else None
    try:
        try:
            code = _run(args, capture)
        except SymbolicError as err:
            fallback = _fallback(args, err)
            if fallback is None:
                raise
            args.convention = fallback  # no hand-written rules: the convention that reads the config answers
            if capture is not None:
                capture.seek(0)
                capture.truncate()
            try:
                code = _run(args, capture)
            except SymbolicError as again:
                if again.field == "model_type":  # not answerable that way either: say both
                    again = SymbolicError(again.field, f"{err.message}; not traceable either: {again.message}")
                raise again from None
            model_type = err.message.split(";")[0].removeprefix("unsupported ")
            sys.stderr.write(
                f"note: model type {model_type} has no hand-written rules; the {fallback} convention answered\n"
            )
        if capture is not None:
            sys.stdout.write(capture.getvalue())
            if code == 0:
                _quietly(resultcache.store, arguments, capture.getvalue())
        return code
    except SymbolicError as err:
        field = flag_for(getattr(args, "command_parser", None), err.field)
        sys.stderr.write(f"error: {field}: {err.message}\n")
        return 2
    except BrokenPipeError:
        return 0


def _run(args: argparse.Namespace, capture: io.StringIO | None) -> int:
    """Run the parsed command (its output into ``capture`` when given); a convention that reads the
    model's config also answers for model types without hand-written rules."""
    scope: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if getattr(args, "convention", None):  # only commands that take one load the table (and SymPy)
        from ..conventions import CONVENTIONS
        from ..registry import untyped_models

        conv = CONVENTIONS.get(args.convention)
        if conv is not None and conv.reads_model:
            scope = untyped_models()
    with scope, contextlib.redirect_stdout(capture) if capture is not None else contextlib.nullcontext():
        return int(args.run(args) or 0)


def _fallback(args: argparse.Namespace, err: SymbolicError) -> str | None:
    """The convention to answer with when ``err`` says the model type has no hand-written rules and the
    command left the convention at the default (None: no fallback). Without the optional install
    that convention needs, or with a hand-written convention asked for, ``err`` gains a hint (raised)."""
    from ..conventions import CONVENTIONS, for_untyped

    if err.field != "model_type" or not re.match(r"unsupported '[\w.\-]+';", err.message):
        return None
    if not hasattr(args, "convention"):
        return None
    answering = for_untyped(args.convention)
    if answering is None:
        readers = [c.name for c in CONVENTIONS.values() if c.reads_model]
        if readers and "--convention" not in err.message:
            raise SymbolicError(err.field, f"{err.message} (or --convention {readers[0]})") from None
        return None
    if answering.name == args.convention:  # already asked for: its own error stands
        return None
    from ..trace import EXTRA_HINT, available

    if not available():
        raise SymbolicError(err.field, f"{err.message}; or trace it: {EXTRA_HINT}") from None
    return answering.name


def _quietly(call: Any, *args: Any) -> Any:
    """``call(*args)`` for the answer cache, ``None`` when the file system refuses (an argument too
    long for a file name, an unreadable entry): a cache only costs speed, never an answer."""
    try:
        return call(*args)
    except (OSError, ValueError):
        return None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
