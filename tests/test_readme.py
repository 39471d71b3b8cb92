"""The README stays true: every command it shows runs and exits 0 (outputs go to a temp folder)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from symbolic.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("symbolic ")]


def test_readme_shows_the_two_quick_start_commands():
    assert "pip install . && symbolic params llama2-7b" in README
    assert 'pip install ".[test]" && python -m pytest' in README
    assert "python -m pytest" in (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", _commands())
def test_readme_command_runs(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command)[1:]
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out or list(tmp_path.iterdir())


@pytest.mark.parametrize("command", [c for c in _commands() if c.startswith("symbolic memory ")])
def test_readme_memory_commands_print_a_peak(command, capsys):
    argv = shlex.split(command)[1:]
    argv += [] if "--json" in argv else ["--json"]
    assert main(argv) == 0
    per_device = json.loads(capsys.readouterr().out)["per_device"]
    assert per_device["activations"] > 0 and per_device["peak"] > per_device["states"]
