"""The sweep's disk caches: a repeated sweep reads its forms and int64 programs back, never a forged entry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import numeric
from symbolic import symbols as S
from symbolic.numeric import cache_dir, cached_expression, compile_quantity
from symbolic.numeric.intexact import IntProgram, lower
from symbolic.registry import load_model
from symbolic.sweep import QUANTITIES, plan_sweep, run_sweep


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path / "cache"))
    numeric.clear_memo()
    yield
    numeric.clear_memo()


EXPR = sp.Max(S.d_model * S.n_layers / S.tp, S.batch * S.seq) + sp.ceiling(S.n_vocab * S.d_model / (3 * S.dp))


def test_an_expression_is_built_once_then_read_back():
    calls = []

    def build():
        calls.append(1)
        return EXPR, {"n": 1}

    first = cached_expression(["test", "a"], build)
    second = cached_expression(["test", "a"], build)
    assert len(calls) == 1
    assert sp.srepr(second[0]) == sp.srepr(first[0]) and second[1] == {"n": 1}
    values = {"d_model": 7, "n_layers": 3, "tp": 2, "batch": 5, "seq": 2, "n_vocab": 11, "dp": 4}
    assert second[0].xreplace({S.symbol(k): v for k, v in values.items()}) == numeric.evaluate(EXPR, values)


def test_a_forged_expression_entry_is_rebuilt_not_read():
    cached_expression(["test", "b"], lambda: (EXPR, None))
    (path,) = cache_dir().glob("*.expr.json")
    entry = json.loads(path.read_text())
    entry["payload"]["srepr"] = sp.srepr(S.batch)  # someone without the secret edits the entry
    path.write_text(json.dumps(entry))
    expr, _ = cached_expression(["test", "b"], lambda: (EXPR, None))
    assert expr == EXPR


def test_an_int64_program_survives_its_data():
    args = ("n_vocab", "d_model", "n_layers", "batch", "seq", "tp", "dp")
    program = lower(EXPR, args)
    again = IntProgram.from_data(json.loads(json.dumps(program.to_data())))
    columns = [np.arange(1, 9, dtype=np.int64) * k for k in range(1, 8)]
    for a, b in zip(program(*columns), again(*columns), strict=True):
        assert np.array_equal(a, b)


PIECEWISE = (
    sp.Piecewise((S.seq + 1, sp.Eq(S.batch, 1)), (S.batch * S.seq, True)) * 8
    + sp.Piecewise((S.batch * S.seq**2 / 3, (S.seq >= S.window) & sp.Ne(S.tp, 2)), (S.seq / 2, S.seq < 3), (0, True))
    + sp.ceiling(S.batch * S.seq / S.tp)
)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 40), st.integers(1, 40), st.integers(1, 4)), min_size=1, max_size=20
    )
)
def test_a_piecewise_expression_lowers_to_int64_exactly(rows):
    """Conditions on b = 1, s >= window and their and/or: the int64 program equals SymPy row by row."""
    program = lower(PIECEWISE, ("batch", "seq", "window", "tp"))
    assert program is not None
    columns = [np.array(col, dtype=np.int64) for col in zip(*rows, strict=True)]
    num, den = program(*columns)
    den = np.broadcast_to(den, num.shape)
    for (b, s, w, t), n, d in zip(rows, num, den, strict=True):
        want = PIECEWISE.xreplace({S.batch: b, S.seq: s, S.window: w, S.tp: t})
        assert sp.Rational(int(n), int(d)) == want


def test_a_repeated_sweep_builds_nothing_and_gives_the_same_rows(monkeypatch):
    model = load_model("llama2-7b")
    grid = {"dp": range(1, 65), "batch": (1, 3, 8)}

    def rows():
        plan = plan_sweep(model, "memory.peak", grid, fixed={"seq": 512}, options={"zero": 1})
        return np.concatenate([chunk["memory.peak"] for chunk in run_sweep(plan)])

    first = rows()
    numeric.clear_memo()
    spec = QUANTITIES["memory.peak"]

    def refuse(*args, **kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(type(spec), "build", property(lambda self: refuse), raising=False)
    assert np.array_equal(rows(), first)
    assert list(cache_dir().glob("*.int64.json"))  # the int64 program was stored too


def test_compiled_exact_reads_its_int64_program_back():
    compiled = compile_quantity(EXPR, "exact")
    columns = {a: np.arange(1, 6, dtype=np.int64) for a in compiled.args}
    want = compiled(**columns)
    numeric.clear_memo()
    again = compile_quantity(EXPR, "exact")
    assert list(again(**columns)) == list(want)


_SWEEP_PROBE = """
import sys
from symbolic.cli import main
code = main(sys.argv[1:])
print("sympy" in sys.modules, code, file=sys.stderr)
"""


def _sweep(tmp_path, *argv):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SYMBOLIC_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", _SWEEP_PROBE, "sweep", *argv], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout, out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ("llama2-7b", "--batch", "1,3", "--seq", "4096", "--dp", "1:64", "--zero", "1"),
        ("mistral-7b", "--batch", "2", "--seq", "512:8192:x2", "--tp", "1,2,4", "--zero", "0,3", "--format", "json"),
        ("gpt2", "--batch", "1:4", "--seq", "1024", "--dp", "1,2", "--float"),
        ("llama2-7b", "--quantity", "params.total", "--grid", "n_layers=1:40"),
    ],
)
def test_a_repeated_sweep_runs_from_the_cache_without_sympy_and_prints_the_same(tmp_path, argv):
    first, loaded_first = _sweep(tmp_path, *argv)
    second, loaded_second = _sweep(tmp_path, *argv)
    assert loaded_first == "True 0" and loaded_second == "False 0"  # planned with SymPy, then read back
    assert second == first
    assert len(list((tmp_path / "cache" / "compiled").glob("*.sweep.json"))) == 1


def test_a_cached_sweep_gives_what_planning_gives_and_a_forged_one_is_not_read(tmp_path):
    from symbolic.cli.sweep import _prepared
    from symbolic.sweepgrid import sweep_key, sweep_parts

    model = load_model("llama2-7b")
    grid = {"batch": (1, 7), "seq": range(512, 4097, 512), "dp": range(1, 33), "zero": (0, 1, 2, 3)}
    options = {"convention": "exact"}
    plan = plan_sweep(model, "memory.peak", grid, options=options)
    want = np.concatenate([c["memory.peak"] for c in run_sweep(plan)])

    def rows(prepared):
        return np.concatenate([c["memory.peak"] for c in prepared.run()])

    assert np.array_equal(rows(_prepared(model, "memory.peak", grid, options, "exact", None, False)), want)
    assert np.array_equal(rows(_prepared(model, "memory.peak", grid, options, "exact", None, False)), want)
    key = sweep_key(sweep_parts(model, "memory.peak", options, "exact", None), grid)
    (path,) = cache_dir().glob(f"{key}.sweep.json")
    entry = json.loads(path.read_text())
    entry["payload"]["fixed"] = {"seq": 1}  # someone without the secret edits the entry
    path.write_text(json.dumps(entry))
    from symbolic.sweepgrid import cached_sweep

    assert cached_sweep(key, grid, lambda combo: None) is None


def test_a_form_whose_program_declines_falls_back_to_the_compiled_function():
    from symbolic.sweepgrid import FormEvaluator

    expr = sp.ceiling(S.batch * S.seq / 3) + S.batch**3
    compiled = compile_quantity(expr, "exact")
    huge = np.asarray([2**40, 2**41], dtype=np.int64)  # batch^3 is past int64: the program declines
    columns = {"batch": huge, "seq": np.asarray([5, 7], dtype=np.int64)}
    evaluator = FormEvaluator(
        "exact", True, None, program=lambda: numeric.int64_program(expr), compiled=lambda: compiled
    )
    got = evaluator(columns, {})
    assert got.dtype == object
    assert list(got) == [-(-(b * s) // 3) + b**3 for b, s in ((2**40, 5), (2**41, 7))]
