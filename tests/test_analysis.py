"""Identities the analysis must satisfy, whatever the sizes (hypothesis)."""

from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import symbols as S
from symbolic.analysis import (
    crossover,
    derivative,
    dominant,
    elasticity,
    fit,
    fit_symbol,
    leading,
    sensitivity,
    sensitivity_table,
    shares,
)
from symbolic.errors import SymbolicError
from symbolic.expressions import parse_path
from symbolic.model import flops_terms, parameters
from symbolic.numeric import compile_quantity, evaluate
from symbolic.registry import load_model

LLAMA = load_model("llama2-7b")
MIXTRAL = load_model("mixtral-8x7b")
GPT3 = load_model("gpt3-175b")
FAST = settings(max_examples=25, deadline=None)

sizes = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 64),
        "seq": st.integers(1, 2**17),
        "d_model": st.integers(64, 2**15),
        "n_layers": st.integers(1, 128),
        "n_vocab": st.integers(1000, 2**18),
        "d_ffn": st.integers(64, 2**16),
    }
)


def _values(model, draw):
    return {**model.sizes, **draw}


def _homogeneous_degree(expr, syms):
    poly = sp.Poly(sp.expand(expr), *syms)
    return poly.homogeneous_order()


@FAST
@given(point=sizes)
def test_euler_every_term(point):
    """For each term homogeneous of degree k in its symbols, the elasticities over them sum to k."""
    values = _values(LLAMA, point)
    for t in flops_terms(LLAMA, "exact", "selective"):
        syms = sorted(t.total.free_symbols, key=str)
        k = _homogeneous_degree(t.total, syms)
        assert k is not None
        assert sum(sensitivity(t.total, s, values).elasticity_value for s in syms) == k


@FAST
@given(point=sizes)
def test_euler_megatron_total(point):
    """Megatron's 72BLsh^2(1 + s/6h + V/12hL) is homogeneous of degree 3 in (s, h, V) and 1 in B."""
    total = flops_terms(GPT3, "megatron").total
    values = _values(GPT3, point)
    group = [S.seq, S.d_model, S.n_vocab]
    assert _homogeneous_degree(total, group) == 3
    assert sum(sensitivity(total, s, values).elasticity_value for s in group) == 3
    assert sensitivity(total, "batch", values).elasticity_value == 1
    # the symbolic elasticities sum to 3 as an identity too
    assert sp.simplify(sum(elasticity(total, s) for s in group) - 3) == 0


@FAST
@given(point=sizes, which=st.sampled_from(["seq", "d_model", "n_layers", "d_ffn", "n_vocab"]))
def test_derivative_matches_finite_differences_of_compiled_numbers(point, which):
    expr = flops_terms(LLAMA, "exact").total + parameters(LLAMA).total * S.batch * S.seq
    values = _values(LLAMA, point)
    f = compile_quantity(expr, "exact")
    h = Fraction(1, 10**6)
    x = values[which]
    up = f(**{**values, which: x + h})
    down = f(**{**values, which: x - h})
    numeric = (up - down) / (2 * h)
    exact = evaluate(derivative(expr, which), values)
    # central differences are exact up to the third derivative term, h^2 f'''/6
    third = evaluate(sp.diff(expr, S.symbol(which), 3), values)
    assert abs(sp.Rational(numeric) - exact) <= abs(third) * h**2 / 6 + sp.Rational(1, 10**30)


@FAST
@given(point=sizes)
def test_crossover_makes_the_terms_equal(point):
    terms = flops_terms(LLAMA, "exact")
    values = _values(LLAMA, point)
    a = terms.select("attention.scores").total
    b = terms.select("mlp").total
    c = crossover(a, b, "seq", values)
    assert c.method == "closed form" and c.value is not None
    root = sp.Rational(c.value)  # exact: the closed form at these sizes
    at = {**values, "seq": Fraction(root.p, root.q)}
    assert evaluate(a, at) == evaluate(b, at)
    assert c.above == "a"  # quadratic overtakes linear


@FAST
@given(point=sizes, cubic=st.integers(1, 50))
def test_numeric_crossover_of_a_cubic(point, cubic):
    """Degree 3: no closed form is attempted; the numeric root still makes the two sides equal."""
    a = cubic * S.seq**3
    b = S.d_model * S.seq**2 + S.n_vocab * S.seq
    c = crossover(a, b, "seq", point)
    assert c.method == "numeric" and c.value is not None
    x = float(c.value)
    lhs, rhs = cubic * x**3, point["d_model"] * x**2 + point["n_vocab"] * x
    assert abs(lhs - rhs) <= 1e-9 * max(lhs, rhs)


def test_crossover_that_never_happens():
    c = crossover(S.seq * 2, S.seq * 3 + 1, "seq", {})
    assert c.value is None and c.roots == ()
    with pytest.raises(SymbolicError, match="never cross"):
        crossover(S.d_model, S.d_model * 1, "seq", {"d_model": 1})


@FAST
@given(point=sizes, budget=st.integers(10**9, 10**19), over=st.sampled_from(["batch", "seq"]))
def test_fit_solution_fits_and_next_does_not(point, budget, over):
    expr = flops_terms(LLAMA, "exact").total
    values = _values(LLAMA, point)
    r = fit_symbol(expr, over, budget, values, bounds=(1, 2**24))
    q = lambda n: evaluate(expr, {**values, over: n})  # noqa: E731
    if r.value is None:
        assert q(1) > budget and r.overrun == q(1) - budget
    else:
        assert q(r.value) <= budget
        assert r.value == 2**24 or q(r.value + 1) > budget


@FAST
@given(need=st.integers(1, 10**6), budget=st.integers(1, 10**6))
def test_fit_decreasing_and_candidates(need, budget):
    """Smallest degree n with need/n <= budget, over all integers and over powers of two."""
    r = fit(lambda n: sp.Rational(need, n), budget, (1, 4096), increasing=False)
    assert r.value == (-(-need // budget) if need <= budget * 4096 else None)
    powers = [2**i for i in range(13)]
    r = fit(lambda n: sp.Rational(need, n), budget, increasing=False, candidates=powers)
    ok = [p for p in powers if sp.Rational(need, p) <= budget]
    assert r.value == (min(ok) if ok else None)
    if r.value is None:
        assert r.overrun == sp.Rational(need, 4096) - budget


def test_fit_nothing_fits_reports_smallest_overrun():
    r = fit(lambda n: 100 + n, 50)
    assert r.value is None and r.overrun == 51


@st.composite
def polynomials(draw):
    x = draw(st.sampled_from([S.seq, S.d_model, S.n_layers, S.batch, S.n_experts]))
    others = [S.n_vocab, S.d_head, S.tp]
    terms = draw(st.lists(st.tuples(st.integers(1, 100), st.integers(0, 5), st.sampled_from(others)), min_size=1))
    expr = sp.Add(*(c * x**k * o for c, k, o in terms))
    return x, expr


@FAST
@given(case=polynomials())
def test_leading_order_is_the_polynomial_degree(case):
    x, expr = case
    if x not in expr.free_symbols:
        return
    lead = leading(expr, x)
    assert lead.order == sp.Poly(expr, x).degree()
    assert sp.expand(lead.term - sp.LT(sp.Poly(expr, x)).as_expr()) == 0 or lead.coefficient == sp.factor(
        sp.Poly(expr, x).LC()
    )


def test_leading_of_ratio_and_words():
    lead = leading((S.seq**3 + S.d_model) / (S.tp * S.seq), "seq")
    assert lead.order == 2 and lead.words == "quadratic in sequence length"
    assert lead.coefficient == 1 / S.tp
    assert leading(S.d_model / S.dp + S.d_model, "dp").order == 0


def test_dominant_orders_of_flops():
    terms = flops_terms(LLAMA, "exact")
    values = {**LLAMA.sizes, "batch": 1, "seq": 4096}
    d = dominant(terms, "seq", values=values)
    assert d.order == 2 and {p.rsplit(".", 1)[-1] for p, _ in d.leaders} == {"scores", "values"}
    assert dominant(terms, "n_layers").order == 1
    assert dominant(terms, "batch").order == 1
    path = parse_path("d_ffn=8/3*d_model, n_heads=d_model/128, n_kv_heads=n_heads, d_head=128")
    d = dominant(terms, "d_model", path, values)
    assert d.order == 2 and d.words == "quadratic in model width"
    assert d.leaders[0][0] == "backward.block.mlp.gate_proj"  # the MLP is 8/3 times wider than attention
    moe = flops_terms(MIXTRAL, "exact")
    d = dominant(moe, "n_experts", values={**MIXTRAL.sizes, "batch": 1, "seq": 4096})
    assert d.order == 1 and all("router" in p for p, _ in d.leaders)


def test_dominant_refuses_a_symbol_the_quantity_lacks_and_a_tied_grower():
    with pytest.raises(SymbolicError, match="does not appear"):
        dominant(parameters(LLAMA), "seq")
    path = parse_path("d_ffn=4*d_model")
    with pytest.raises(SymbolicError, match="tied by the path"):
        dominant(parameters(LLAMA), "d_ffn", path)


def test_shares_sum_to_one_and_rest_groups():
    values = {**LLAMA.sizes, "batch": 2, "seq": 1024}
    terms = flops_terms(LLAMA, "exact")
    s = shares(terms, values, top=4)
    assert len(s.rows) == 4 and s.rest is not None and s.rest.members == len(terms) - 4
    assert sum(r.value for r in s.rows) + s.rest.value == evaluate(terms.total, values)
    assert abs(sum(r.share for r in s.rows) + s.rest.share - 1) < 1e-12
    assert [r.value for r in s.rows] == sorted((r.value for r in s.rows), reverse=True)


def test_sensitivity_table_and_bad_symbol():
    total = parameters(LLAMA).total
    rows = sensitivity_table(total, LLAMA.sizes)
    assert {str(r.symbol) for r in rows} == {str(s) for s in total.free_symbols}
    assert abs(rows[0].elasticity_value) >= abs(rows[-1].elasticity_value)
    # parameters grow linearly in the layer count, up to the embeddings: elasticity just under 1
    layers = next(r for r in rows if str(r.symbol) == "n_layers")
    assert 0.9 < layers.elasticity_value < 1
    with pytest.raises(SymbolicError, match="does not appear"):
        sensitivity(total, "seq", LLAMA.sizes)
    with pytest.raises(SymbolicError, match="unknown symbol"):
        sensitivity(total, "width")
