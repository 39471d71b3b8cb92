"""The safe expression and scaling-path reader: a whitelist of tokens, objects built directly."""

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from symbolic import symbols as S
from symbolic.errors import SymbolicError
from symbolic.expressions import parse_expression, parse_path, tokenize


def test_arithmetic_matches_sympy_objects():
    h, L, f = S.d_model, S.n_layers, S.d_ffn
    assert parse_expression("2*d_model^2 + 3/4*n_layers - (d_ffn)") == 2 * h**2 + sp.Rational(3, 4) * L - f
    assert parse_expression("d_model**2/d_ffn") == h**2 / f
    assert parse_expression("-d_model + +2") == -h + 2
    assert parse_expression("0.125*d_model") == h / 8  # decimals are exact rationals


@given(a=st.integers(1, 10**6), b=st.integers(1, 10**6), c=st.integers(-5, 5))
def test_numbers_exact(a, b, c):
    assert parse_expression(f"{a}/{b}*d_model^{c}") == sp.Rational(a, b) * S.d_model**c


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "d_model.real",
        "lambda: 1",
        "().__class__",
        "exec",
        "d_model[0]",
        "d_model; 1",
        "'d_model'",
        "foo + 1",
        "2**d_model",
        "2^1000",
        "1/0",
        "d_model +",
        "(d_model",
        "d_model d_ffn",
        "",
        "d_ffn=2",
    ],
)
def test_refused(text):
    with pytest.raises(SymbolicError) as err:
        parse_expression(text, "--expr")
    assert err.value.field == "--expr"


def test_calls_are_refused_at_the_first_bad_character():
    with pytest.raises(SymbolicError, match="unknown name '__import__'"):
        tokenize("__import__(1)")
    with pytest.raises(SymbolicError, match="character '.'"):
        tokenize("d_model.__class__")


def test_path_resolves_chains():
    p = parse_path("d_ffn=8/3*d_model, n_heads=d_model/128, n_kv_heads=n_heads/4, d_head=128")
    assert p.resolved[S.n_kv_heads] == S.d_model / 512
    assert p.resolved[S.d_ffn] == sp.Rational(8, 3) * S.d_model
    assert p.free == frozenset({S.d_model})
    assert p.apply(S.d_ffn * S.n_kv_heads) == sp.Rational(8, 3) * S.d_model**2 / 512


def test_path_from_items():
    assert parse_path(["d_ffn=4*d_model", "n_heads=d_model/64"]).rules[S.n_heads] == S.d_model / 64


@pytest.mark.parametrize(
    "text, words",
    [
        ("d_model=2*n_layers, n_layers=d_model/2", "cycle"),
        ("d_ffn=d_ffn", "cycle"),
        ("d_model=n_heads, n_heads=d_ffn, d_ffn=d_model", "cycle"),
        ("d_ffn=-4*d_model", "positive"),
        ("d_ffn=0*d_model", "positive"),
        ("d_ffn=d_model-n_heads", "positive"),
        ("d_ffn=4*d_model, d_ffn=3*d_model", "twice"),
        ("d_ffn", "NAME=EXPRESSION"),
        ("d_ffn=4*d_model,", "empty item"),
        ("x=4*d_model", "unknown name"),
        ("d_ffn=4*d_model=3", "one '='"),
    ],
)
def test_bad_paths(text, words):
    with pytest.raises(SymbolicError, match=words) as err:
        parse_path(text, "--path")
    assert err.value.field == "--path"
