"""Throughput of compiled quantities and sweeps, against hand-written NumPy, SymPy and llm-analysis.

Run: python benchmarks/sweep.py [--points N] [--json]

Reports, for the training memory per device of a llama-style model -- model states (bf16 weights
and gradients, fp32 master weights and AdamW moments, ZeRO-1) + activations (exact convention:
bf16, SDPA, CUDA, no recompute) + the largest backward transient (the logits' gradient) -- over N
random configurations (model sizes, batch, sequence, tensor- and data-parallel
degrees):

- configurations per second of our compiled float64 function and of a hand-written NumPy
  expression of the same formula, measured in the same run, and their ratio (``ratio_vs_numpy``);
- the same for the exact mode on int64 arrays (int64 arithmetic where each call's input bounds prove
  it exact, Python ints otherwise; results are Python ints), on a sample;
- SymPy ``subs``/``evalf`` per configuration, on a sample, and the speed-up over it;
- in-process configurations per second of ``run_sweep`` over a dp x batch grid (float and exact);
- ``llm-analysis``'s ``train()`` per configuration on the same model, side by side, if it is
  installed (``pip install 'symbolic[bench]'``), and our ratio to it;
- fresh-interpreter wall times, interleaved in one run: ``python -c pass``, ``python -c "import
  sympy"``, ``symbolic --help``, and ``symbolic memory llama2-7b --batch 1 --seq 4096 --json`` cold
  (empty caches), with compiled code cached but no answer cache, and warm (an answer-cache hit);
  ``symbolic params llama2-7b --json`` cold; the memory query with ``--dp 2`` (outside the generated
  answers: the SymPy path) cold; each also as a ratio to the two yardsticks;
- end-to-end ``symbolic sweep`` to a CSV file: 10^7 points (exact and ``--float``) and the
  4,096-point ``--dp 1:4096 --zero 1`` sweep, cold and warm;
- the time to build, simplify and compile the memory model (states + activations + transient) of a
  2-layer and a 126-layer model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sympy as sp  # noqa: E402

from symbolic.memory import Workload, memory  # noqa: E402
from symbolic.numeric import compile_quantity  # noqa: E402
from symbolic.parallel import Parallelism  # noqa: E402
from symbolic.registry import load_model  # noqa: E402

MODEL = "llama2-7b"
PARALLEL = dict(
    dp=2, zero=1
)  # dp > 1 keeps dp a symbol; tp stays a symbol in the states (exact activations are tp = 1)


def quantity() -> sp.Expr:
    """The benchmarked expression: training bytes per device -- states + activations + the largest
    transient buffer -- in model sizes, batch, seq, tp, dp (the figures the step's peak is made of)."""
    report = memory(load_model(MODEL), Workload(1, 4096), Parallelism(**PARALLEL))
    assert report.activations is not None
    return report.states_expr + report.activations.total + report.transient_expr


def handwritten(n_vocab, d_model, n_layers, n_heads, n_kv_heads, d_head, d_ffn, batch, seq, tp, dp):
    """The baseline: the same formula written by hand in NumPy, as one would without this project.

    States: mixed-precision AdamW with ZeRO-1 (Rajbhandari et al. 2020): 2 bytes of bf16 weights
    and 2 of gradients per local parameter, 12 bytes of fp32 master + Adam moments sharded over dp.
    Llama layout: q,o are d_model x (n_heads d_head); k,v d_model x (n_kv_heads d_head) (split over
    tp down to one head per device, replicated past that); a gated MLP of three d_model x d_ffn matrices and the untied embedding and lm_head split over tp; two
    RMSNorm weights per layer and a final one replicated.
    Activations per layer (bf16, SDPA on CUDA): per RMSNorm an fp32 input (4h), rstd (4) and the
    normalized bf16 input (2h); q/k/v input (2h), q and output (2+2 a*d_h), k and v (4 g*d_h), fp32
    log-sum-exp (4a), MLP input (2h) and four b*s*f bf16 intermediates (8f); tensor parallelism
    splits the heads and the MLP width over tp (a key/value head is replicated when tp exceeds g).
    Once: rotary cos/sin (4 d_h s), final norm (6h + 4) and lm_head input (2h), fp32 log-softmax
    (4V), int64 labels (8), one fp32 scalar. Transient: the logits' gradient in fp32 and its bf16
    cast (6V).
    """
    sharded = n_layers * (2 * d_model * d_head * n_heads + 3 * d_model * d_ffn) + 2 * n_vocab * d_model
    kv = 2 * n_layers * d_model * d_head * np.maximum(1, n_kv_heads / tp)  # k, v: a head is never split
    states = (sharded / tp + kv + (2 * n_layers + 1) * d_model) * (4 + 12 / dp)
    split = (4 * d_head * n_heads + 4 * n_heads + 8 * d_ffn) / tp
    per_layer = 16 * d_model + 8 + split + 4 * d_head * np.maximum(1, n_kv_heads / tp)
    tokens = batch * seq
    activations = tokens * (n_layers * per_layer + 8 * d_model + 12 + 4 * n_vocab) + 4 * d_head * seq + 4
    return states + activations + 6 * tokens * n_vocab


def random_configs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_heads = rng.integers(8, 129, n)
    return {
        "n_vocab": rng.integers(32_000, 256_001, n),
        "d_model": 128 * rng.integers(4, 129, n),
        "n_layers": rng.integers(2, 127, n),
        "n_heads": n_heads,
        "n_kv_heads": np.maximum(1, n_heads // rng.choice([1, 2, 4, 8], n)),
        "d_head": rng.choice([64, 128, 256], n),
        "d_ffn": 256 * rng.integers(8, 200, n),
        "batch": rng.integers(1, 65, n),
        "seq": 2 ** rng.integers(7, 16, n),
        "tp": rng.choice([1, 2, 4, 8], n),
        "dp": 2 ** rng.integers(0, 11, n),
    }


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


CLI_MEMORY = ["memory", MODEL, "--batch", "1", "--seq", "4096", "--json"]
CLI_MEMORY_DP = ["memory", MODEL, "--batch", "1", "--seq", "4096", "--dp", "2", "--json"]  # no generated answer
CLI_PARAMS = ["params", MODEL, "--json"]
_ENTRY = "import sys; from symbolic.cli import main; sys.exit(main())"  # what the console script runs


def _env() -> dict[str, str]:
    """The environment of a timed command: this checkout first on the path, and bytecode written
    and read as an installed package's is (``PYTHONDONTWRITEBYTECODE`` dropped: a run would
    otherwise compile every module it imports from source, every time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(ROOT)}


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def cli_times(runs: int) -> dict[str, float]:
    """Fresh-interpreter wall times, interleaved so every figure sees the same machine load.

    ``python -c pass`` and ``python -c "import sympy"`` are the yardsticks; ``cold`` runs with an
    empty cache folder (no answer cache, no compiled code), ``no_answer_cache`` with compiled code
    cached but ``SYMBOLIC_NO_RESULT_CACHE=1``, ``warm`` is an answer-cache hit. ``memory`` and
    ``params`` with default options are answered by the generated modules (no SymPy);
    ``memory_dp2_cold`` (``--dp 2``, outside them) takes the SymPy path with an empty cache folder.
    """
    py = sys.executable
    base = _env()
    with tempfile.TemporaryDirectory() as tmp:
        warm_env = {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / "warm")}
        subprocess.run([py, "-c", _ENTRY, *CLI_MEMORY], env=warm_env, check=True, capture_output=True)
        commands = {
            "python_pass": ([py, "-c", "pass"], lambda i: base),
            "python_import_sympy": ([py, "-c", "import sympy"], lambda i: base),
            "help": ([py, "-c", _ENTRY, "--help"], lambda i: base),
            "memory_cold": (
                [py, "-c", _ENTRY, *CLI_MEMORY],
                lambda i: {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / f"cold{i}")},
            ),
            "memory_no_answer_cache": (
                [py, "-c", _ENTRY, *CLI_MEMORY],
                lambda i: {**warm_env, "SYMBOLIC_NO_RESULT_CACHE": "1"},
            ),
            "memory_warm": ([py, "-c", _ENTRY, *CLI_MEMORY], lambda i: warm_env),
            "params_cold": (
                [py, "-c", _ENTRY, *CLI_PARAMS],
                lambda i: {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / f"pcold{i}")},
            ),
            "memory_dp2_cold": (
                [py, "-c", _ENTRY, *CLI_MEMORY_DP],
                lambda i: {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / f"dcold{i}")},
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(runs):
            for name, (argv, env) in commands.items():
                times[name].append(_timed(argv, env(i)))
    med = {name: statistics.median(values) for name, values in times.items()}
    out = {f"cli_{name}_s": round(value, 3) for name, value in med.items()}
    for name in ("help", "memory_cold", "memory_no_answer_cache", "memory_warm", "params_cold", "memory_dp2_cold"):
        out[f"cli_{name}_vs_import_sympy"] = round(med[name] / med["python_import_sympy"], 2)
        out[f"cli_{name}_vs_python_pass"] = round(med[name] / med["python_pass"], 2)
    return out


def sweep_cli_times(runs: int) -> dict[str, float]:
    """End-to-end wall time of ``symbolic sweep`` writing CSV to a file (fresh interpreters), interleaved
    with ``python -c pass`` and ``python -c "import sympy"`` so the ratios see the same load.

    ``csv_1e7``: 10^7 points (batch 1..2500 x seq 1..4000, dp 8, ZeRO-1) in exact mode and with
    ``--float``, the sweep's plan cached (a repeated sweep); ``dp_4096``: the 4,096-point
    data-parallel sweep, with an empty cache folder (cold: SymPy builds, simplifies and lowers the
    expression) and repeated (warm: the planned, lowered sweep read back from the cache, no SymPy
    imported). Medians of ``runs``.
    """
    py = sys.executable
    base = _env()
    big = ["sweep", MODEL, "--batch", "1:2500", "--seq", "1:4000", "--dp", "8", "--zero", "1", "--yes"]
    dp = ["sweep", MODEL, "--batch", "1", "--seq", "4096", "--dp", "1:4096", "--zero", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        warm_env = {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / "warm")}
        target = str(Path(tmp) / "out.csv")
        commands = {
            "python_pass": ([py, "-c", "pass"], lambda i: base),
            "python_import_sympy": ([py, "-c", "import sympy"], lambda i: base),
            "csv_1e7_exact": ([py, "-c", _ENTRY, *big, "-o", target], lambda i: warm_env),
            "csv_1e7_float": ([py, "-c", _ENTRY, *big, "--float", "-o", target], lambda i: warm_env),
            "dp_4096_warm": ([py, "-c", _ENTRY, *dp, "-o", target], lambda i: warm_env),
            "dp_4096_cold": (
                [py, "-c", _ENTRY, *dp, "-o", target],
                lambda i: {**base, "SYMBOLIC_CACHE_DIR": str(Path(tmp) / f"cold{i}")},
            ),
        }
        for argv, env in commands.values():  # fills the compiled-code cache, bytecode, OS file cache
            subprocess.run(argv, env=env(-1), check=True, capture_output=True)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(runs):
            for name, (argv, env) in commands.items():
                times[name].append(_timed(argv, env(i)))
        with open(target, encoding="utf-8") as fh:
            rows = sum(1 for _ in fh) - 1
    med = {name: statistics.median(values) for name, values in times.items()}
    out: dict[str, float] = {f"sweep_{name}_s": round(value, 3) for name, value in med.items()}
    for name in ("csv_1e7_exact", "csv_1e7_float", "dp_4096_warm", "dp_4096_cold"):
        out[f"sweep_{name}_vs_import_sympy"] = round(med[name] / med["python_import_sympy"], 2)
        out[f"sweep_{name}_vs_python_pass"] = round(med[name] / med["python_pass"], 2)
    out["sweep_dp_4096_rows"] = rows
    return out


def grid_rates() -> dict[str, float]:
    """In-process configurations per second of ``run_sweep`` over a dp x batch grid (memory.peak, ZeRO-1).

    dp 1..256 x batch 1..4096 (1,048,576 points) at seq 4096; planning (building and compiling
    the expressions, with an empty cache folder) is timed apart from evaluation.
    """
    from symbolic.numeric import clear_memo
    from symbolic.sweep import plan_sweep, run_sweep

    model = load_model(MODEL)
    grid = {"dp": range(1, 257), "batch": range(1, 4097)}
    out: dict[str, float] = {}
    for mode in ("float", "exact"):
        os.environ["SYMBOLIC_CACHE_DIR"] = tempfile.mkdtemp(prefix="symbolic-bench-")  # a cold plan
        clear_memo()
        start = time.perf_counter()
        plan = plan_sweep(model, "memory.peak", grid, fixed={"seq": 4096}, options={"zero": 1}, mode=mode)
        next(run_sweep(plan, chunk=1))  # compile
        planned = time.perf_counter() - start
        start = time.perf_counter()
        rows = sum(len(chunk["dp"]) for chunk in run_sweep(plan, chunk=1 << 16))
        elapsed = time.perf_counter() - start
        out[f"dp_batch_grid_{mode}_configs_per_s"] = round(rows / elapsed)
        out[f"dp_batch_grid_{mode}_plan_s"] = round(planned, 3)
    out["dp_batch_grid_points"] = rows
    return out


_LAYERS_SCRIPT = """
import sys, time
import sympy as sp
start = time.perf_counter()
from symbolic.memory import Workload, memory
from symbolic.numeric import compile_quantity
from symbolic.parallel import Parallelism
from symbolic.registry import load_model
t0 = time.perf_counter()
model = load_model("llama3.1-405b").with_sizes(n_layers=int(sys.argv[1]))
report = memory(model, Workload(1, 4096), Parallelism(dp=4, zero=1))
expr = report.states_expr + report.activations.total + report.transient_expr
compiled = compile_quantity(sp.simplify(expr), "float", cache=False)
assert "n_layers" in compiled.args
compiled(**model.sizes, batch=1, seq=4096, tp=1, dp=4)
print(time.perf_counter() - t0)
"""


def layers_times() -> dict[str, float]:
    env = _env()
    out = {}
    for layers in (2, 126):
        run = subprocess.run(
            [sys.executable, "-c", _LAYERS_SCRIPT, str(layers)], env=env, check=True, capture_output=True, text=True
        )
        out[f"build_simplify_compile_{layers}_layers_s"] = round(float(run.stdout), 3)
    return out


def llm_analysis_rate(runs: int) -> dict[str, float | str] | None:
    """llm-analysis's ``train()`` on the same model and workload, configurations per second, or None.

    Each call estimates one configuration (Llama-2-7B, batch 1, seq 4096, ZeRO-1, data-parallel
    degrees 4..64 on an 80 GB A100), the per-configuration path its command line and API offer.
    Install it with the ``bench`` extra (in an environment of its own: it pins transformers < 5).
    """
    try:
        import contextlib
        import io
        import logging

        from llm_analysis import analysis
    except ImportError:
        return None
    logging.disable(logging.WARNING)
    dps = (4, 8, 16, 32, 64)

    def once() -> None:
        for dp in dps:
            with contextlib.redirect_stdout(io.StringIO()):
                analysis.train(
                    model_name="NousResearch_Llama-2-7b-hf",
                    gpu_name="a100-sxm-80gb",
                    dtype_name="w16a16e16",
                    log_level="ERROR",
                    batch_size_per_gpu=1,
                    seq_len=4096,
                    dp_size=dp,
                    ds_zero=1,
                    total_num_gpus=dp,
                    gradient_accumulation_steps=1,
                )

    once()  # imports, config files
    elapsed = best_of(runs, once)
    from importlib.metadata import version

    return {"configs_per_s": round(len(dps) / elapsed, 1), "version": version("llm-analysis")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10**6)
    parser.add_argument("--sympy-sample", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--skip-sweep-cli", action="store_true", help="skip the end-to-end sweep runs (10^7 rows)")
    args = parser.parse_args()
    load_start = round(os.getloadavg()[0], 2)

    expr = quantity()
    configs = random_configs(args.points)
    floats = {k: v.astype(np.float64) for k, v in configs.items()}
    compiled = compile_quantity(expr, "float")
    ours = compiled(**floats)
    theirs = handwritten(**floats)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)  # the baseline is the same formula

    t_ours = best_of(args.runs, lambda: compiled(**floats))
    t_numpy = best_of(args.runs, lambda: handwritten(**floats))

    sample = min(args.points, 10**5)
    exact = compile_quantity(expr, "exact")
    ints = {k: v[:sample] for k, v in configs.items()}
    exact(
        **{k: v[:10] for k, v in ints.items()}
    )  # the first call lowers the expression to int64 steps (cached on disk)
    t_exact = best_of(args.runs, lambda: exact(**ints))

    symbols = {s.name: s for s in expr.free_symbols}
    rows = [{k: int(v[i]) for k, v in configs.items()} for i in range(args.sympy_sample)]
    start = time.perf_counter()
    for i, row in enumerate(rows):
        value = expr.subs({symbols[k]: v for k, v in row.items() if k in symbols}).evalf()
        assert abs(float(value) - ours[i]) <= 1e-9 * ours[i]
    t_sympy = (time.perf_counter() - start) / len(rows)

    rate_ours = args.points / t_ours
    llm = llm_analysis_rate(args.runs)
    grid = grid_rates()
    figures = {
        "quantity": f"{MODEL}-style training memory per device: states (mixed AdamW, ZeRO-1) + activations (bf16, SDPA) + logits-gradient transient (bytes); the sweeps compute the step's peak (memory.peak)",
        "points": args.points,
        "runs": args.runs,
        "compiled_float_configs_per_s": round(rate_ours),
        "numpy_configs_per_s": round(args.points / t_numpy),
        "ratio_vs_numpy": round(t_numpy / t_ours, 3),
        "compiled_exact_configs_per_s": round(sample / t_exact),
        "sympy_subs_configs_per_s": round(1 / t_sympy, 1),
        "speedup_vs_sympy": round(rate_ours * t_sympy),
        **grid,
        "llm_analysis_configs_per_s": llm["configs_per_s"] if llm else None,
        "llm_analysis_version": llm["version"] if llm else "not installed (pip install 'symbolic[bench]')",
        "ratio_vs_llm_analysis": round(rate_ours / llm["configs_per_s"]) if llm else None,
        "dp_batch_grid_ratio_vs_llm_analysis": (
            round(grid["dp_batch_grid_float_configs_per_s"] / llm["configs_per_s"]) if llm else None
        ),
        **cli_times(args.runs),
        **({} if args.skip_sweep_cli else sweep_cli_times(max(1, args.runs // 2))),
        **layers_times(),
        "load_1min_start": load_start,
        "load_1min": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"numpy {np.__version__}, sympy {sp.__version__}",
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:45} {value}")


if __name__ == "__main__":
    main()
