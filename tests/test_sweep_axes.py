"""Parallel degrees and the ZeRO stage as sweep axes: one expression per class of values, exact per point."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbolic import numeric
from symbolic.cli import main
from symbolic.errors import SymbolicError
from symbolic.formulas.flops import model_flops
from symbolic.memory import Workload, memory
from symbolic.model import flops_terms
from symbolic.numeric import evaluate
from symbolic.parallel import Parallelism
from symbolic.registry import load_model
from symbolic.sweep import plan_sweep, run_sweep


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path / "cache"))
    numeric.clear_memo()


def rows(plan, chunk=5):
    out = []
    for part in run_sweep(plan, chunk=chunk):
        out.extend(zip(*(c.tolist() for c in part.values()), strict=True))
    return out


def test_a_dp_sweep_builds_one_expression():
    grid = {"dp": range(1, 4097)}
    plan = plan_sweep(
        load_model("llama2-7b"), "memory.peak", grid, fixed={"batch": 1, "seq": 4096}, options={"zero": 1}
    )
    assert len(plan.forms) == 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dp=st.lists(st.integers(1, 96), min_size=1, max_size=4, unique=True),
    tp=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=2, unique=True),
    pp=st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=2, unique=True),
    zero=st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
    batch=st.integers(1, 8),
)
def test_memory_states_over_degrees_and_zero_equal_the_memory_report(dp, tp, pp, zero, batch):
    """Every row equals memory() built for that very point (rounded up to whole bytes, as it reports)."""
    model = load_model("llama2-13b")
    grid = {"dp": dp, "tp": tp, "pp": pp, "zero": zero}
    plan = plan_sweep(model, "memory.states", grid, fixed={"batch": batch})
    got = rows(plan)
    assert len(got) == len(dp) * len(tp) * len(pp) * len(zero)
    for d, t, p, z, value in got:
        report = memory(model, Workload(batch), Parallelism(dp=d, tp=t, pp=p, zero=z))
        assert isinstance(value, int) and value == report.bytes("states")


def test_expert_parallel_sweep_equals_the_memory_report():
    model = load_model("mixtral-8x7b")
    grid = {"dp": (8, 16, 24), "ep": (1, 2, 4, 8), "zero": (1, 3)}
    for d, e, z, value in rows(plan_sweep(model, "memory.states", grid)):
        assert value == memory(model, Workload(), Parallelism(dp=d, ep=e, zero=z)).bytes("states")


def test_peak_over_dp_and_batch_equals_the_memory_report():
    model = load_model("llama2-7b")
    grid = {"dp": (1, 3, 7, 64), "batch": (1, 5)}
    plan = plan_sweep(model, "memory.peak", grid, fixed={"seq": 1024}, options={"zero": 2})
    for d, b, value in rows(plan):
        assert value == memory(model, Workload(b, 1024), Parallelism(dp=d, zero=2)).bytes("peak")


def test_float_mode_agrees_over_degrees():
    model = load_model("llama2-7b")
    grid = {"dp": range(1, 40), "tp": (1, 2, 4)}
    exact = rows(plan_sweep(model, "memory.states", grid, options={"zero": 3}), chunk=17)
    floats = rows(plan_sweep(model, "memory.states", grid, options={"zero": 3}, mode="float"), chunk=17)
    for a, b in zip(exact, floats, strict=True):
        assert a[:2] == b[:2] and b[-1] == pytest.approx(a[-1], rel=1e-12, abs=1)


@pytest.mark.parametrize(
    ("grid", "field"),
    [({"tp": (1, 2, 3)}, "tp"), ({"pp": (1, 5)}, "pp"), ({"dp": (8, 12), "ep": (8,)}, "ep")],
)
def test_an_invalid_value_anywhere_on_an_axis_is_refused(grid, field):
    model = load_model("mixtral-8x7b" if "ep" in grid else "llama2-7b")
    with pytest.raises(SymbolicError) as err:
        plan_sweep(model, "memory.states", grid)
    assert err.value.field == field


def test_exact_values_past_int64_stay_exact():
    """A grid whose values pass 2^63 falls back to Python ints, equal to SymPy's."""
    model = load_model("llama3.1-405b")
    grid = {"batch": (1, 10**6), "seq": (4096, 10**9)}
    plan = plan_sweep(model, "flops.total", grid)
    expr = model_flops(flops_terms(model)).total
    got = rows(plan)
    assert max(v for *_, v in got) > 2**63
    for batch, seq, value in got:
        assert value == evaluate(expr, {**model.sizes, "batch": batch, "seq": seq})


def test_exact_sweeps_give_int64_when_the_bounds_allow():
    grid = {"dp": range(1, 9)}
    plan = plan_sweep(
        load_model("llama2-7b"), "memory.peak", grid, fixed={"batch": 1, "seq": 4096}, options={"zero": 1}
    )
    (part,) = run_sweep(plan)
    assert part["memory.peak"].dtype == np.int64


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_zero_sweep_has_a_zero_column(capsys):
    code, out, err = cli(
        capsys, "sweep", "llama2-7b", "--batch", "1", "--seq", "512", "--dp", "2,3", "--zero", "0,1,2,3"
    )
    assert code == 0, err
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == ["batch", "seq", "dp", "zero", "memory.peak"]
    assert len(table) == 1 + 8
    model = load_model("llama2-7b")
    for _, _, dp, zero, value in table[1:]:
        report = memory(model, Workload(1, 512), Parallelism(dp=int(dp), zero=int(zero)))
        assert int(value) == report.bytes("peak")


@pytest.mark.parametrize("text", ["4", "0,5", "a", "3:1", "", "1.0", "-1"])
def test_cli_bad_zero_is_one_line(capsys, text):
    code, out, err = cli(capsys, "sweep", "llama2-7b", "--batch", "1", "--seq", "512", "--zero", text)
    assert code == 2 and out == "" and err.count("\n") == 1 and "--zero" in err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    coeffs=st.lists(st.tuples(st.integers(-(10**12), 10**12), st.integers(1, 97)), min_size=1, max_size=5),
    powers=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=5, max_size=5),
    den=st.sampled_from([0, 1, 2, 3]),
    rounding=st.sampled_from([None, "ceiling", "floor"]),
    top=st.tuples(st.integers(1, 10**6), st.integers(1, 10**6)),
)
def test_int64_evaluation_is_exact_or_declined(coeffs, powers, den, top, rounding):
    """Random rational functions (with rounded shares): the int64 path, when it accepts a grid, gives exactly SymPy's values."""
    import sympy as sp

    from symbolic import symbols as S
    from symbolic.sweep import _int64_form

    b, s = S.symbol("batch"), S.symbol("seq")
    num = sum(sp.Rational(c, q) * b**i * s**j for (c, q), (i, j) in zip(coeffs, powers, strict=False))
    expr = num / (sp.Integer(1), b, s * b, 2 * s + 3)[den]
    if rounding is not None:  # a whole-byte share per device plus a remainder, as memory writes them
        expr = 3 * getattr(sp, rounding)(expr) + b * s - 7
    axes = {"batch": np.array([1, top[0]]), "seq": np.array([1, max(1, top[1] // 2), top[1]])}
    form = _int64_form(expr, axes)
    if form is None or not form.args:
        return
    grid = np.array(np.meshgrid(axes["batch"], axes["seq"])).reshape(2, -1)
    columns = {"batch": grid[0], "seq": grid[1]}
    n, d = form(columns)
    for i in range(grid.shape[1]):
        want = expr.xreplace({b: int(grid[0, i]), s: int(grid[1, i])})
        got = sp.Rational(int(np.broadcast_to(n, grid[0].shape)[i]), int(np.broadcast_to(d, grid[0].shape)[i]))
        assert got == want


def test_int64_form_accepts_within_the_bound_and_declines_past_it():
    import sympy as sp

    from symbolic import symbols as S
    from symbolic.sweep import _int64_form

    b, s = S.symbol("batch"), S.symbol("seq")
    expr = (3 * b * s**2 + sp.Rational(7, 3) * b - 5) / (2 * s)
    assert _int64_form(expr, {"batch": (1, 10**3), "seq": (1, 10**4)}) is not None
    assert _int64_form(expr, {"batch": (1, 10**9), "seq": (1, 10**5)}) is None  # 3e9 * 1e10 * 6 > 2^62
