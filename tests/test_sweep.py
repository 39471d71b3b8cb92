"""Sweeps: grid parsing, the full product, agreement with the direct (SymPy) path, bad input."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import numeric
from symbolic.cli import main
from symbolic.errors import SymbolicError
from symbolic.formulas.flops import model_flops
from symbolic.model import flops_terms, parameter_counts
from symbolic.numeric import evaluate
from symbolic.registry import load_model
from symbolic.sweep import parse_grid, plan_sweep, quantities, run_sweep


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path / "cache"))
    numeric.clear_memo()


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1,2,4", (1, 2, 4)),
        ("1024:32768:x2", (1024, 2048, 4096, 8192, 16384, 32768)),
        ("1000:10000:x3", (1000, 3000, 9000)),
        ("1:8:+1", tuple(range(1, 9))),
        ("2:9:+3", (2, 5, 8)),
        ("3:5", (3, 4, 5)),
        ("7", (7,)),
        ("1,2,2,8:32:x2", (1, 2, 8, 16, 32)),
    ],
)
def test_parse_grid(text, want):
    assert tuple(parse_grid("--x", text)) == want


@pytest.mark.parametrize(
    "text", ["", ",", "1,,2", "a", "1.5", "-1", "0", "8:1", "8:1:x2", "1:8:x1", "1:8:+0", "1:8:/2", "1:2:3:4", "1e3"]
)
def test_parse_grid_rejects(text):
    with pytest.raises(SymbolicError) as err:
        parse_grid("--seq", text)
    assert err.value.field == "--seq"


@settings(max_examples=30, deadline=None)
@given(start=st.integers(1, 10**6), count=st.integers(1, 20), step=st.integers(1, 1000))
def test_arithmetic_range_has_the_expected_ends(start, count, step):
    stop = start + (count - 1) * step
    values = parse_grid("--x", f"{start}:{stop}:+{step}")
    assert len(values) == count and values[0] == start and values[-1] == stop


def collect(plan):
    rows = []
    for chunk in run_sweep(plan, chunk=7):  # a chunk size that does not divide the grid
        rows.extend(zip(*(c.tolist() for c in chunk.values()), strict=True))
    return rows


def test_params_sweep_is_the_full_product_and_matches_evaluation():
    model = load_model("mixtral-8x7b")
    grid = {"n_layers": (2, 32, 126), "n_experts": (8, 16), "top_k": (1, 2)}
    rows = collect(plan_sweep(model, "params.total", grid))
    assert [r[:3] for r in rows] == list(itertools.product(*grid.values()))
    for n_layers, n_experts, top_k, value in rows:
        changed = model.with_sizes(n_layers=n_layers, n_experts=n_experts, top_k=top_k)
        assert value == parameter_counts(changed).total


def test_flops_sweep_matches_evaluation():
    model = load_model("llama2-7b")
    rows = collect(plan_sweep(model, "flops.total", {"batch": (1, 3), "seq": parse_grid("s", "512:4096:x2")}))
    expr = model_flops(flops_terms(model)).total
    assert len(rows) == 8
    for batch, seq, value in rows:
        assert value == evaluate(expr, {**model.sizes, "batch": batch, "seq": seq})


def test_float_mode_agrees_with_exact():
    model = load_model("llama2-7b")
    grid = {"batch": (1, 8), "seq": (1024, 32768)}
    exact = collect(plan_sweep(model, "flops.total", grid))
    floats = collect(plan_sweep(model, "flops.total", grid, mode="float"))
    for a, b in zip(exact, floats, strict=True):
        assert b[-1] == pytest.approx(float(a[-1]), rel=1e-12)


needs_memory = pytest.mark.skipif("memory.states" not in quantities(), reason="symbolic.memory not present")


@needs_memory
def test_memory_sweep_matches_the_memory_report_per_point():
    """The compiled sweep (one expression per tp/pp/dp combination) equals memory()'s own evaluation."""
    from symbolic.memory import Workload, memory
    from symbolic.parallel import Parallelism

    model = load_model("llama2-13b")
    grid = {"tp": (1, 2, 4), "pp": (1, 2, 4), "dp": (1, 8)}
    rows = collect(plan_sweep(model, "memory.states", grid, options={"zero": 1}))
    assert len(rows) == 18
    for tp, pp, dp, value in rows:
        report = memory(model, Workload(), Parallelism(tp=tp, pp=pp, dp=dp, zero=1))
        assert report.bytes("states") == -(-value // 1)  # the report rounds up to whole bytes


@needs_memory
def test_fits_keeps_exactly_the_rows_within_budget():
    model = load_model("llama2-7b")
    grid = {"tp": (1, 2, 4, 8), "dp": (1, 2, 4, 8)}
    everything = collect(plan_sweep(model, "memory.states", grid, options={"zero": 3}))
    budget = 20 * 1024**3
    kept = collect(plan_sweep(model, "memory.states", grid, options={"zero": 3}, fits=budget))
    assert kept == [r for r in everything if r[-1] <= budget]
    assert 0 < len(kept) < len(everything)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_csv_and_json(capsys):
    code, out, _ = run_cli(capsys, "sweep", "gpt2", "--quantity", "params.total", "--grid", "n_layers=1:4")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["n_layers", "params.total"] and len(rows) == 5
    per_layer = int(rows[2][1]) - int(rows[1][1])
    assert all(int(b[1]) - int(a[1]) == per_layer for a, b in itertools.pairwise(rows[1:]))
    code, out, _ = run_cli(
        capsys, "sweep", "llama2-7b", "--quantity", "flops.total", "--batch", "1,2", "--seq", "1024", "--format", "json"
    )
    data = json.loads(out)
    assert code == 0 and data["columns"] == ["batch", "seq", "flops.total"] and data["kept"] == 2
    assert data["rows"][1][2] == 2 * data["rows"][0][2]  # FLOPs of a step are linear in the batch


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--seq", "4096:1024"], "--seq"),
        (["--seq", "abc"], "--seq"),
        (["--batch", "1:1000000", "--seq", "1:1000000"], "--grid"),
        (["--quantity", "memory.nonsense"], "--quantity"),
        (["--quantity", "params.total", "--fits", "80GiB"], "--fits"),
        (["--fits", "80 gigs"], "--fits"),
        (["--format", "xlsx"], "--format"),
        (["--grid", "banana=1,2"], "--grid"),
        (["--quantity", "flops.total"], "--batch"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(capsys, argv, field):
    code, out, err = run_cli(capsys, "sweep", "llama2-7b", *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {field}:")
    assert "Traceback" not in err


def test_cli_parquet_without_pyarrow_is_a_clear_error(capsys, tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        code, _, err = run_cli(capsys, "sweep", "gpt2", "--format", "parquet", "-o", str(tmp_path / "x.parquet"))
        assert code == 2 and "pyarrow" in err
        return
    import pyarrow.parquet as pq

    code, _, _ = run_cli(
        capsys,
        "sweep",
        "gpt2",
        "--quantity",
        "params.total",
        "--grid",
        "n_layers=1:3",
        "--format",
        "parquet",
        "-o",
        str(tmp_path / "x.parquet"),
    )
    assert code == 0 and pq.read_table(tmp_path / "x.parquet").num_rows == 3


@needs_memory
def test_memory_peak_sweep_matches_the_memory_report():
    """Peak memory over batch and seq (activations symbolic in both) equals memory()'s evaluation per point."""
    from symbolic.memory import Workload, memory

    model = load_model("llama2-7b")
    rows = collect(plan_sweep(model, "memory.peak", {"batch": (1, 2), "seq": (1024, 4096)}))
    for batch, seq, value in rows:
        assert memory(model, Workload(batch, seq)).bytes("peak") == -(-value // 1)
