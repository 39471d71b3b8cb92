"""The conventions table: values carrying builders, looked up by name, the CLI's choices come from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import symbolic
from symbolic.cli import build_parser
from symbolic.conventions import CONVENTIONS, DEFAULT, QUANTITIES, get_convention, names_for
from symbolic.errors import SymbolicError
from symbolic.formulas.activations import ActivationOptions, Layout
from symbolic.registry import load_model
from symbolic.terms import Quantity

PACKAGE = Path(symbolic.__file__).parent
LLAMA = load_model("llama2-7b")


def test_every_quantity_has_the_default_convention() -> None:
    for quantity in QUANTITIES:
        assert DEFAULT in names_for(quantity)


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_each_builder_returns_its_quantity(name: str) -> None:
    conv = CONVENTIONS[name]
    assert conv.quantities, f"{name} covers nothing"
    if conv.extra is not None:
        pytest.importorskip("torch")
        pytest.importorskip("transformers")
    if conv.parameters is not None:
        assert conv.parameter_terms(LLAMA).quantity is Quantity.PARAMETERS
    if conv.activations is not None:
        terms = conv.activations.build(LLAMA, ActivationOptions(), Layout())
        assert terms.quantity is Quantity.BYTES and len(terms) > 0
        assert conv.transient_terms(LLAMA, ActivationOptions(), Layout()).quantity is Quantity.BYTES
    if conv.flops is not None:
        forward = conv.flops.forward(LLAMA if conv.flops.reads_model else LLAMA.arch, False)
        assert forward and all(t.quantity is Quantity.FLOPS and t.path.startswith("forward.") for t in forward)


def test_unknown_or_uncovered_names_the_field_and_the_allowed() -> None:
    with pytest.raises(SymbolicError) as err:
        get_convention("kaplan", "parameters")
    assert err.value.field == "convention"
    assert "allowed: exact, basic, basic-gated" in err.value.message
    with pytest.raises(SymbolicError):
        get_convention("nope", "flops")


def test_memory_needs_an_activation_rule() -> None:
    assert set(names_for("memory")) == {n for n, c in CONVENTIONS.items() if c.activations is not None}


def _choices(command: str) -> tuple[str, ...]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for action in sub.choices[command]._actions:
        if "--convention" in action.option_strings:
            return tuple(action.choices) if action.choices else ()
    raise AssertionError(f"{command} has no --convention")


def test_cli_choices_come_from_the_table() -> None:
    assert _choices("memory") == names_for("memory")


def test_no_branch_on_a_convention_name_outside_the_table() -> None:
    pattern = re.compile(r"convention\s*(==|!=|\bin\b|\bnot in\b)\s*[\"'(]")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "conventions.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_the_grep_finds_a_branch() -> None:
    # the pattern above catches what it is meant to catch
    pattern = re.compile(r"convention\s*(==|!=|\bin\b|\bnot in\b)\s*[\"'(]")
    assert pattern.search('if convention == "megatron":')
    assert pattern.search("share = 1 if convention in ('a', 'b') else 2")
