"""Write the figures of ``python benchmarks/sweep.py --json`` into docs/performance.md.

Run: python benchmarks/sweep.py --json > figures.json && python benchmarks/report.py figures.json

Replaces the text between the ``<!-- figures:begin -->`` and ``<!-- figures:end -->`` markers of
docs/performance.md with tables made from the JSON figures, each row saying what was timed and
with which caches; nothing else in the file changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def _n(value: Any) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,}"
    return f"{int(value):,}"


def _rate(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{value / 1e6:,.2f} M configurations/s" if value >= 1e6 else f"{_n(value)} configurations/s"


def tables(f: dict[str, Any]) -> str:
    """The markdown of every figure in ``f`` (the benchmark's JSON object)."""
    runs = f.get("runs", 5)
    lines = [
        f"Measured on {f['machine']}; 1-minute load average {f.get('load_1min_start')} at the start of the run "
        f"and {f.get('load_1min')} at its end (the 2 cores are shared with other jobs: absolute times are "
        "several times an idle machine's, so each figure is also a ratio to a yardstick measured in the same "
        "run, interleaved with it).",
        "",
        f"Quantity: {f['quantity']}.",
        "",
        "### In process",
        "",
        "| what was timed | value |",
        "|---|---|",
        f"| compiled float64 function, {_n(f['points'])} random configurations (model sizes, batch, seq, tp, dp), "
        f"best of {runs} | {_rate(f['compiled_float_configs_per_s'])} |",
        f"| hand-written NumPy expression of the same formula, same inputs, same run | "
        f"{_rate(f['numpy_configs_per_s'])} |",
        f"| `ratio_vs_numpy` (compiled / hand-written, same run; target >= 1.0) | {f['ratio_vs_numpy']} |",
        f"| compiled exact mode on int64 arrays, 10^5 configurations, best of {runs} after the first call "
        f"(int64 where each call's bounds prove it exact; results are Python ints) | "
        f"{_rate(f['compiled_exact_configs_per_s'])} |",
        f"| SymPy `subs` + `evalf`, one configuration at a time | {_rate(f['sympy_subs_configs_per_s'])} |",
        f"| `run_sweep`, dp 1..256 x batch 1..4096 at seq 4096 ({_n(f['dp_batch_grid_points'])} points), float, "
        f"evaluation only | {_rate(f['dp_batch_grid_float_configs_per_s'])} (plan, cold: "
        f"{f['dp_batch_grid_float_plan_s']} s) |",
        f"| the same grid, exact (int64 where proven exact) | {_rate(f['dp_batch_grid_exact_configs_per_s'])} "
        f"(plan, cold: {f['dp_batch_grid_exact_plan_s']} s) |",
        f"| llm-analysis {f['llm_analysis_version']} `train()` on Llama-2-7B, one configuration per call, same run "
        f"| {_rate(f['llm_analysis_configs_per_s'])} |",
        f"| compiled function / llm-analysis | {_n(f['ratio_vs_llm_analysis'])} x |",
        f"| dp x batch sweep (float) / llm-analysis | {_n(f['dp_batch_grid_ratio_vs_llm_analysis'])} x |",
        "",
        f"A cold plan builds the memory expression, simplifies it and compiles it (an empty cache folder, "
        f"in the benchmark's process, SymPy already imported). Building, simplifying and compiling the "
        f"memory model in a fresh interpreter: {f['build_simplify_compile_2_layers_s']} s for 2 layers, "
        f"{f['build_simplify_compile_126_layers_s']} s for 126 layers (llama3.1-405b structure).",
        "",
        f"### Command line (fresh interpreters, medians of {runs}, interleaved)",
        "",
        "Every command runs with the package's bytecode cached, as an installed package has it (a first, "
        "untimed run writes it); an empty cache folder means no answer cache and no compiled code.",
        "",
        "| command (cache state) | seconds | / `python -c pass` | / `import sympy` |",
        "|---|---|---|---|",
        f"| `python -c pass` | {f['cli_python_pass_s']} | 1 | |",
        f'| `python -c "import sympy"` | {f["cli_python_import_sympy_s"]} | | 1 |',
    ]
    rows = [
        ("help", "`symbolic --help`"),
        ("params_cold", "`symbolic params llama2-7b --json`, empty cache folder (cold; generated answer, no SymPy)"),
        (
            "memory_cold",
            "`symbolic memory llama2-7b --batch 1 --seq 4096 --json`, empty cache folder (cold; generated answer, "
            "no SymPy)",
        ),
        ("memory_no_answer_cache", "the same, `SYMBOLIC_NO_RESULT_CACHE=1` (no answer cache)"),
        ("memory_warm", "the same, an answer-cache hit"),
        (
            "memory_dp2_cold",
            "`symbolic memory llama2-7b --batch 1 --seq 4096 --dp 2 --json`, empty cache folder (cold; no generated "
            "answer: SymPy builds it)",
        ),
    ]
    for key, label in rows:
        lines.append(
            f"| {label} | {f[f'cli_{key}_s']} | {f[f'cli_{key}_vs_python_pass']} | {f[f'cli_{key}_vs_import_sympy']} |"
        )
    if "sweep_csv_1e7_exact_s" in f:
        lines += [
            "",
            f"### End-to-end sweeps to a file (fresh interpreters, medians of {max(1, runs // 2)}, interleaved with "
            f"their own yardsticks: `python -c pass` {f['sweep_python_pass_s']} s, `import sympy` "
            f"{f['sweep_python_import_sympy_s']} s)",
            "",
            "| command (cache state) | seconds | / `python -c pass` | / `import sympy` |",
            "|---|---|---|---|",
        ]
        sweeps = [
            (
                "dp_4096_cold",
                "`symbolic sweep llama2-7b --batch 1 --seq 4096 --dp 1:4096 --zero 1 -o FILE`, empty cache folder "
                "(cold: SymPy builds the expression, lowers it to int64 arithmetic, evaluates)",
            ),
            (
                "dp_4096_warm",
                "the same, repeated (warm: the planned, lowered sweep read back from the cache; no SymPy imported)",
            ),
            (
                "csv_1e7_exact",
                "`symbolic sweep llama2-7b --batch 1:2500 --seq 1:4000 --dp 8 --zero 1 --yes -o FILE` (10^7 rows of "
                "CSV), exact, repeated (warm; evaluation and writing dominate)",
            ),
            ("csv_1e7_float", "the same with `--float`, repeated (warm)"),
        ]
        for key, label in sweeps:
            lines.append(
                f"| {label} | {f[f'sweep_{key}_s']} | {f[f'sweep_{key}_vs_python_pass']} | "
                f"{f[f'sweep_{key}_vs_import_sympy']} |"
            )
    lines += ["", "### Against the targets", "", "| target | measured here | met here |", "|---|---|---|"]
    for target, value, limit, ok in _targets(f):
        lines.append(f"| {target} | {value} | {'yes' if ok else 'no'} (target {limit}) |")
    return "\n".join(lines)


def _targets(f: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    out = [
        (
            "compiled kernel / hand-written NumPy, same run",
            f"{f['ratio_vs_numpy']}",
            ">= 1.0",
            f["ratio_vs_numpy"] >= 1.0,
        ),
        (
            "dp x batch grid in process, float",
            _rate(f["dp_batch_grid_float_configs_per_s"]),
            ">= 10 M/s",
            f["dp_batch_grid_float_configs_per_s"] >= 1e7,
        ),
        (
            "dp x batch grid in process, exact",
            _rate(f["dp_batch_grid_exact_configs_per_s"]),
            ">= 10 M/s",
            f["dp_batch_grid_exact_configs_per_s"] >= 1e7,
        ),
        ("`symbolic --help`", f"{f['cli_help_s']} s", "< 0.15 s", f["cli_help_s"] < 0.15),
        (
            "first `params` answer, empty caches",
            f"{f['cli_params_cold_s']} s",
            "< 0.3 s",
            f["cli_params_cold_s"] < 0.3,
        ),
        (
            "first `memory` answer, empty caches",
            f"{f['cli_memory_cold_s']} s",
            "< 0.3 s",
            f["cli_memory_cold_s"] < 0.3,
        ),
        (
            "answer-cache hit / `python -c pass`",
            f"{f['cli_memory_warm_vs_python_pass']} x",
            "< 3 x",
            f["cli_memory_warm_vs_python_pass"] < 3,
        ),
    ]
    if "sweep_csv_1e7_exact_s" in f:
        out += [
            (
                "4,096-point dp sweep end to end, warm",
                f"{f['sweep_dp_4096_warm_s']} s",
                "< 1 s",
                f["sweep_dp_4096_warm_s"] < 1,
            ),
            (
                "4,096-point dp sweep end to end, cold",
                f"{f['sweep_dp_4096_cold_s']} s",
                "< 1 s",
                f["sweep_dp_4096_cold_s"] < 1,
            ),
            (
                "10^7 rows of CSV end to end, exact",
                f"{f['sweep_csv_1e7_exact_s']} s",
                "< 3 s",
                f["sweep_csv_1e7_exact_s"] < 3,
            ),
            (
                "10^7 rows of CSV end to end, `--float`",
                f"{f['sweep_csv_1e7_float_s']} s",
                "< 3 s",
                f["sweep_csv_1e7_float_s"] < 3,
            ),
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", help="the JSON object benchmarks/sweep.py --json printed")
    args = parser.parse_args()
    figures = json.loads(Path(args.figures).read_text(encoding="utf-8"))
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + tables(figures) + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
