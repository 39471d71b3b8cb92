"""The public API is small and explicit, and stays what it says (httpx style)."""

import importlib

import symbolic


def test_every_public_name_resolves():
    for name in symbolic.__all__:
        assert getattr(symbolic, name) is not None


def test_public_names_come_from_their_modules():
    assert symbolic.load_model is importlib.import_module("symbolic.registry").load_model
    assert symbolic.parameters is importlib.import_module("symbolic.model").parameters


def test_unknown_attribute_is_an_attribute_error():
    try:
        symbolic.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_quick_start_python_example():
    model = symbolic.load_model("llama2-7b")
    assert symbolic.parameter_counts(model).total == 6_738_415_616
