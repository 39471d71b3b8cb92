"""Compiled numeric functions agree with exact SymPy evaluation; the on-disk cache is never trusted blindly."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import numeric
from symbolic import symbols as S
from symbolic.errors import SymbolicError
from symbolic.model import parameters
from symbolic.numeric import cache_dir, codegen, compile_quantity, evaluate
from symbolic.registry import load_model

MODELS = ("llama2-7b", "gpt2", "mixtral-8x7b", "deepseek-v3", "falcon-7b")
TOTALS = {name: parameters(load_model(name)).total for name in MODELS}
# per-device shares, a bound and a round-up: the operations memory and FLOPs quantities are made of
PER_DEVICE = {
    name: sp.Max(total / S.tp, S.seq * S.batch) + sp.ceiling(S.n_layers / S.pp) for name, total in TOTALS.items()
}
EXPRESSIONS = {
    **{f"{k}.total": v for k, v in TOTALS.items()},
    **{f"{k}.per_device": v for k, v in PER_DEVICE.items()},
    "reciprocals": 1 / S.tp + 3 / (S.dp * S.tp) + sp.floor(S.seq / S.cp) / S.dp,
}


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Each test compiles into its own empty cache directory, with no in-process memo."""
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path / "cache"))
    numeric.clear_memo()
    yield
    numeric.clear_memo()


def exact(value: sp.Expr) -> Fraction:
    return Fraction(int(value.p), int(value.q))


sizes = st.integers(min_value=1, max_value=2**40)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(EXPRESSIONS)), data=st.data())
def test_exact_mode_equals_sympy_exactly(name, data):
    expr = EXPRESSIONS[name]
    compiled = compile_quantity(expr, "exact")
    values = {a: data.draw(sizes, label=a) for a in compiled.args}
    got = compiled(**values)
    assert Fraction(got) == exact(evaluate(expr, values))
    assert isinstance(got, int | Fraction)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(EXPRESSIONS)), data=st.data())
def test_exact_mode_arrays_stay_exact_beyond_int64(name, data):
    """int64 inputs whose products pass 2**63 (where raw int64 wraps) still give exact results."""
    expr = EXPRESSIONS[name]
    compiled = compile_quantity(expr, "exact")
    columns = {
        a: np.array(data.draw(st.lists(sizes, min_size=3, max_size=3), label=a), dtype=np.int64) for a in compiled.args
    }
    got = compiled(**columns)
    for i in range(3):
        want = evaluate(expr, {a: int(col[i]) for a, col in columns.items()})
        assert Fraction(got[i]) == exact(want)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(EXPRESSIONS)), data=st.data())
def test_float_mode_within_1e12_relative(name, data):
    expr = EXPRESSIONS[name]
    compiled = compile_quantity(expr, "float")
    values = {a: data.draw(st.integers(1, 2**24), label=a) for a in compiled.args}
    arrays = {a: np.array([v, v], dtype=np.int64) for a, v in values.items()}
    want = float(evaluate(expr, values))
    assert compiled(**values) == pytest.approx(want, rel=1e-12)
    assert compiled(**arrays) == pytest.approx([want, want], rel=1e-12)
    assert compiled(**arrays).dtype == np.float64


def test_int64_product_that_wraps_in_numpy_stays_exact():
    """Parameters x tokens for N=7e10, D=1.5e13: int64 NumPy wraps, exact mode does not."""
    model = load_model("llama2-70b")
    expr = TOTALS["llama2-7b"] * S.tokens
    compiled = compile_quantity(expr, "exact")
    values = {**model.sizes, "tokens": np.array([15 * 10**12], dtype=np.int64)}
    want = int(evaluate(expr, {**model.sizes, "tokens": 15 * 10**12}))
    assert want > 2**63
    assert compiled(**values)[0] == want
    assert compile_quantity(expr, "float")(**values)[0] == pytest.approx(want, rel=1e-12)


def test_broadcasting_and_argument_order():
    expr = PER_DEVICE["llama2-7b"]
    compiled = compile_quantity(expr, "float")
    assert compiled.args == tuple(n for n in S.ORDER if sp.Symbol(n, positive=True, integer=True) in expr.free_symbols)
    sizes = load_model("llama2-7b").sizes
    out = compiled(**sizes, batch=np.array([1, 2, 4])[:, None], seq=np.array([512, 4096])[None, :], tp=2, pp=1)
    assert out.shape == (3, 2)
    assert out[2, 1] == pytest.approx(float(evaluate(expr, {**sizes, "batch": 4, "seq": 4096, "tp": 2, "pp": 1})))
    positional = compiled(*(({**sizes, "batch": 4, "seq": 4096, "tp": 2, "pp": 1})[a] for a in compiled.args))
    assert positional == pytest.approx(out[2, 1])


def test_bad_input_names_the_field():
    compiled = compile_quantity(TOTALS["gpt2"], "exact")
    with pytest.raises(SymbolicError) as err:
        compiled(d_model=768)
    assert err.value.field in compiled.args
    with pytest.raises(SymbolicError) as err:
        compiled(**{a: 2.5 if a == "d_model" else 8 for a in compiled.args})
    assert err.value.field == "d_model"
    with pytest.raises(SymbolicError) as err:
        compile_quantity(TOTALS["gpt2"], "int64")
    assert err.value.field == "mode"
    with pytest.raises(SymbolicError):
        compile_quantity(sp.sqrt(S.d_model), "exact")


def entry_path(expr, mode):
    return cache_dir() / f"{numeric.cache_key(expr, mode)}.json"


def test_warm_cache_generates_no_code(monkeypatch):
    expr = TOTALS["mixtral-8x7b"]
    first = compile_quantity(expr, "exact")
    assert entry_path(expr, "exact").exists()
    numeric.clear_memo()

    def no_codegen(*args, **kwargs):
        raise AssertionError("a warm cache must not generate code")

    monkeypatch.setattr(codegen, "source", no_codegen)
    second = compile_quantity(expr, "exact")
    sizes = load_model("mixtral-8x7b").sizes
    assert second.source == first.source
    assert second(**sizes) == int(evaluate(expr, sizes))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda text: text[: len(text) // 2],  # truncated
        lambda text: "",  # empty
        lambda text: text.replace(" + ", " - ", 1),  # edited code, checksum now stale
        lambda text: json.dumps({**json.loads(text), "key": "0" * 64}),  # someone else's entry
        lambda text: "\x00\xff garbage",
    ],
)
def test_corrupt_entry_is_rebuilt(corrupt):
    expr = TOTALS["llama2-7b"]
    sizes = load_model("llama2-7b").sizes
    want = int(evaluate(expr, sizes))
    compile_quantity(expr, "exact")
    path = entry_path(expr, "exact")
    path.write_text(corrupt(path.read_text()), errors="surrogateescape")
    numeric.clear_memo()
    assert compile_quantity(expr, "exact")(**sizes) == want
    entry = json.loads(path.read_text())  # rewritten whole
    assert entry["key"] == numeric.cache_key(expr, "exact")


def test_edited_entry_with_matching_checksum_of_other_code_is_still_rebuilt():
    """An entry edited to return something else is caught by the checksum."""
    expr = TOTALS["gpt2"]
    compile_quantity(expr, "exact")
    path = entry_path(expr, "exact")
    entry = json.loads(path.read_text())
    entry["source"] = entry["source"].rsplit("return", 1)[0] + "return 0\n"
    path.write_text(json.dumps(entry))
    numeric.clear_memo()
    sizes = load_model("gpt2").sizes
    assert compile_quantity(expr, "exact")(**sizes) == int(evaluate(expr, sizes))


def test_two_processes_fill_the_cache_at_once(tmp_path):
    """Both get the right answer; the entry left behind is whole; no temporary files remain."""
    script = textwrap.dedent(
        """
        import sys, time
        from symbolic.model import parameters
        from symbolic.numeric import compile_quantity
        from symbolic.registry import load_model
        model = load_model("deepseek-v3")
        expr = parameters(model).total
        start = float(sys.argv[1])
        while time.time() < start:
            pass
        print(compile_quantity(expr, "exact")(**model.sizes))
        """
    )
    import time

    env = {**os.environ, "SYMBOLIC_CACHE_DIR": str(tmp_path / "shared")}
    start = str(time.time() + 3.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, start], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    model = load_model("deepseek-v3")
    want = str(int(evaluate(TOTALS["deepseek-v3"], model.sizes)))
    assert outputs == [want, want]
    files = list(Path(tmp_path / "shared" / "compiled").iterdir())
    assert [f.suffix for f in files] == [".json"]
    json.loads(files[0].read_text())


def test_layers_stay_a_symbol_in_the_compiled_function():
    """A 2-layer and a 126-layer model of the same structure share one compiled function (affine in n_layers)."""
    expr = TOTALS["llama2-7b"]
    compiled = compile_quantity(expr, "exact")
    assert "n_layers" in compiled.args
    sizes = dict(load_model("llama2-7b").sizes)
    two, many = compiled(**{**sizes, "n_layers": 2}), compiled(**{**sizes, "n_layers": 126})
    one = compiled(**{**sizes, "n_layers": 1})
    assert many - two == 124 * (two - one)


def test_dask_arrays_stay_lazy():
    da = pytest.importorskip("dask.array")
    expr = PER_DEVICE["llama2-7b"]
    compiled = compile_quantity(expr, "float")
    sizes = load_model("llama2-7b").sizes
    batch = da.from_array(np.array([1, 2, 4, 8]), chunks=2)
    out = compiled(**sizes, batch=batch, seq=4096, tp=2, pp=1)
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(), compiled(**sizes, batch=np.array([1, 2, 4, 8]), seq=4096, tp=2, pp=1))


def test_a_forged_entry_is_never_executed(tmp_path):
    """Code written into the cache by someone without the installation's secret does not run."""
    expr = TOTALS["gpt2"]
    compile_quantity(expr, "exact")
    path = entry_path(expr, "exact")
    entry = json.loads(path.read_text())
    marker = tmp_path / "ran"
    entry["source"] = f"open({str(marker)!r}, 'w').close()\n" + entry["source"]
    message = json.dumps([entry["key"], entry["mode"], entry["args"], entry["source"]]).encode()
    entry["mac"] = entry["checksum"] = hashlib.sha256(message).hexdigest()  # a checksum anyone can recompute
    path.write_text(json.dumps(entry))
    numeric.clear_memo()
    sizes = load_model("gpt2").sizes
    assert compile_quantity(expr, "exact")(**sizes) == int(evaluate(expr, sizes))
    assert not marker.exists()


def test_a_cache_folder_others_can_write_is_not_used():
    expr = TOTALS["gpt2"]
    folder = cache_dir()
    folder.mkdir(parents=True, mode=0o700)
    folder.chmod(0o777)
    sizes = load_model("gpt2").sizes
    assert compile_quantity(expr, "exact")(**sizes) == int(evaluate(expr, sizes))
    assert list(folder.iterdir()) == []


def test_a_fifo_where_an_entry_should_be_is_skipped():
    expr = TOTALS["gpt2"]
    compile_quantity(expr, "exact")
    path = entry_path(expr, "exact")
    path.unlink()
    os.mkfifo(path)
    numeric.clear_memo()
    sizes = load_model("gpt2").sizes
    assert compile_quantity(expr, "exact")(**sizes) == int(evaluate(expr, sizes))  # would block on the FIFO


def test_float_evaluation_in_blocks_equals_the_whole_array():
    """Long arrays are evaluated block by block; every element equals the unblocked evaluation exactly."""
    from symbolic.numeric.cache import BLOCK

    expr = TOTALS["llama2-7b"]
    compiled = compile_quantity(expr, "float")
    sizes = load_model("llama2-7b").sizes
    n = 3 * BLOCK + 5
    rng = np.random.default_rng(1)
    values = {**sizes, "n_layers": rng.integers(1, 200, n).astype(float), "d_model": rng.integers(64, 9000, n) * 1.0}
    blocked = compiled(**values)
    whole = compiled.function(*(values[a] for a in compiled.args))
    assert blocked.shape == (n,) and np.array_equal(blocked, whole)


small = st.integers(min_value=1, max_value=2**12)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(EXPRESSIONS)), data=st.data())
def test_exact_arrays_in_int64_equal_sympy(name, data):
    """Integer arrays small enough to prove int64 exact take the int64 path (maxima, minima, ceilings,
    floors and shares included) and give exactly SymPy's values, Fractions where not whole."""
    expr = EXPRESSIONS[name]
    compiled = compile_quantity(expr, "exact")
    columns = {
        a: np.array(data.draw(st.lists(small, min_size=4, max_size=4), label=a), dtype=np.int64) for a in compiled.args
    }
    assert compiled.int64(**columns) is not None  # the fast path is the one tested
    got = compiled(**columns)
    assert got.dtype == object
    for i in range(4):
        want = exact(evaluate(expr, {a: int(col[i]) for a, col in columns.items()}))
        assert Fraction(got[i]) == want
        assert isinstance(got[i], int) == (want.denominator == 1)


def test_int64_path_declines_past_its_bound():
    expr = S.n_vocab * S.d_model * S.n_layers / S.tp
    compiled = compile_quantity(expr, "exact")
    big = np.array([2**30, 2**31], dtype=np.int64)
    assert compiled.int64(n_vocab=big, d_model=big, n_layers=big, tp=np.array([1, 3])) is None
    got = compiled(n_vocab=big, d_model=big, n_layers=big, tp=np.array([1, 3]))
    assert got[1] == Fraction(2**93, 3)
