"""The command line starts light: the command table is data, and only the chosen command is imported."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from symbolic.cli import COMMANDS, build_parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, str]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for action in sub._choices_actions:
        run = sub.choices[action.dest].get_default("run")
        out[action.dest] = (run.__module__.rsplit(".", 1)[1], action.help)
    return out


def test_the_command_table_is_what_the_modules_register():
    assert _commands(build_parser()) == COMMANDS


def test_every_command_module_is_in_the_table():
    import pkgutil

    import symbolic.cli as cli

    modules = {m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_")}
    assert modules == {module for module, _ in COMMANDS.values()}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_chosen_command_is_parsed_in_full(name):
    full = build_parser()
    lazy = build_parser([name, "--help"])
    sub = next(a for a in lazy._actions if isinstance(a, argparse._SubParsersAction))
    full_sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.choices[name].format_help() == full_sub.choices[name].format_help()


_PROBE = """
import sys
from symbolic.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("sympy", "numpy", "rich", "jinja2") if m in sys.modules)
commands = sorted(m for m in sys.modules if m.startswith("symbolic.cli.") and not m.startswith("symbolic.cli._"))
print(heavy, commands)
"""


def _loaded(*argv: str) -> str:
    env = {**os.environ, "SYMBOLIC_NO_RESULT_CACHE": "1"}
    run = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env)
    return run.stdout.strip().splitlines()[-1]


def test_help_imports_no_command_and_nothing_heavy():
    assert _loaded("--help") == "[] []"


def test_a_bad_command_imports_no_command():
    assert _loaded("no-such-command") == "[] []"


def test_a_command_imports_only_its_own_module():
    assert _loaded("models", "--help") == "[] ['symbolic.cli.models']"
