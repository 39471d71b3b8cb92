"""Terminal output leads with the answer in human units, and tables never break a name in two."""

from __future__ import annotations

import json

import pytest

from symbolic.cli import main
from symbolic.memory import Workload, memory
from symbolic.registry import load_model
from symbolic.units import GB, GIB


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", ["100", "160"])
def test_memory_leads_with_the_peak(columns: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    out = _run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096")
    peak = memory(load_model("llama2-7b"), Workload(1, 4096)).per_device()["peak"]
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["peak", "per", "device"]
    assert f"{peak / GIB:,.2f} GiB ({peak / GB:,.2f} GB)" in lines[1]
    assert "the step's largest point (optimizer)" in lines[1]  # the foreach step, CUDA's default
    assert all(len(line) <= int(columns) for line in lines)
    assert "share of peak" in out and "share of states" not in out
    assert "0.00 | 0.00" not in out and "│ 0.00 │ 0.00 │" not in out  # no empty component rows by default


def test_memory_detail_names_components_alike(capsys) -> None:
    out = _run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096", "--detail")
    assert "final_norm.weight" not in out and "embedding.tokens.weight" not in out
    assert "final_norm" in out and "4 B" in out  # small terms in a unit that shows them


COMMANDS = {"flops": ["flops", "llama2-7b", "--batch", "1", "--seq", "4096"], "params": ["params", "llama2-7b"]}


def _formula_tokens(capsys, command: str) -> set[str]:
    data = json.loads(_run(capsys, *COMMANDS[command], "--json"))
    return {word for t in data["terms"] for word in t["formula"].split()}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("columns", ["80", "100", "120", "160", "200"])
def test_formulas_never_break_inside_a_name(command: str, columns: str, capsys, monkeypatch) -> None:
    tokens = _formula_tokens(capsys, command)
    monkeypatch.setenv("COLUMNS", columns)
    out = _run(capsys, *COMMANDS[command])
    table = out.split("total ")[0]  # the rows, not the closing total line (a sum that wraps at its + signs)
    shown = [w for line in table.splitlines() for w in line.replace("│", " ").split() if "*" in w]
    assert all(w in tokens for w in shown), [w for w in shown if w not in tokens]
    assert shown or "formula (per instance) left out at" in out  # shown whole, or left out and said so
    assert all(len(line) <= int(columns) for line in table.splitlines())


def test_flops_summary_in_readable_units(capsys) -> None:
    out = _run(capsys, "flops", "llama2-7b", "--batch", "1", "--seq", "4096")
    first = out.splitlines()[:4]
    assert "188.76 TFLOP per step" in first[1]
    assert "all s x s query-key pairs" in "\n".join(first)
    out = _run(
        capsys,
        *("flops", "llama2-7b", "--batch", "1", "--seq", "4096", "--tokens", "2e12"),
        *("--devices", "1024", "--peak", "312T", "--mfu", "0.5"),
    )
    assert "days on 1024 devices" in out.splitlines()[4]


def test_models_source_column_is_readable(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = _run(capsys, "models")
    assert "bigscience/bloom model card" in out
    assert all(len(line) <= 100 for line in out.splitlines())


def test_dominates_total_in_gib_says_what_it_includes(capsys) -> None:
    out = _run(
        capsys, "dominates", "llama2-7b", "--quantity", "memory", "--batch", "1", "--seq", "4096", "--grow", "seq"
    )
    report = memory(load_model("llama2-7b"), Workload(1, 4096))
    total = report.per_device()["states"] + report.per_device()["activations"]
    head = "\n".join(out.splitlines()[:3])
    assert f"{total / GIB:,.2f} GiB" in head and "without the backward transient" in head
    assert "(+15 more)" in head or head.count(",") < 12  # a few leaders, not twenty


def test_fit_terms_have_a_heading(capsys) -> None:
    out = _run(
        capsys, "fit", "llama2-7b", "--budget", "80GiB", "--solve", "batch", "--seq", "4096", "--zero", "3", "--dp", "8"
    )
    assert "largest terms per device at batch = " in out
