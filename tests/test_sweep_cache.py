"""The sweep's disk caches: a repeated sweep reads its forms and int64 programs back, never a forged entry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

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
