"""Derivation documents: every number in the rendered text is the number the API returns."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import sympy as sp

from symbolic.cli import main
from symbolic.memory import Workload, memory
from symbolic.model import flops_terms, parameter_counts, parameters
from symbolic.numeric import evaluate
from symbolic.parallel import Parallelism
from symbolic.registry import load_model, shipped_models
from symbolic.render import render
from symbolic.report import DocumentOptions, derivation_context

GIB, GB = 2**30, 10**9
_UNESCAPE = re.compile(r"\\([\\`*_{}\[\]<>#|$~^&])")


def _cells(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell (unescaped): {first cell: other cells}."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [_UNESCAPE.sub(r"\1", c.strip()) for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            rows.setdefault(cells[0], cells[1:])
    return rows


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.fixture(scope="module")
def llama_md() -> str:
    model = load_model("llama2-7b")
    return render(derivation_context(model, DocumentOptions(workload={"batch": 2, "seq": 4096})), "markdown")


def test_parameter_numbers_read_back(llama_md: str) -> None:
    model = load_model("llama2-7b")
    counts = parameter_counts(model)
    rows = _cells(_section(llama_md, "Parameters, term by term"))
    for path, value in counts.per_term.items():
        assert _int(rows[path][3]) == value, path
    assert f"**Total: {counts.total:,} parameters**" in llama_md


def test_memory_numbers_read_back(llama_md: str) -> None:
    report = memory(load_model("llama2-7b"), Workload(2, 4096))
    rows = _cells(_section(llama_md, "Memory per device"))
    for name, value in report.per_device().items():
        if value is None:
            assert rows[name][0] == "--"
            continue
        assert _int(rows[name][0]) == value
        assert float(rows[name][1]) == pytest.approx(value / GIB, abs=0.005)
        assert float(rows[name][2]) == pytest.approx(value / GB, abs=0.005)


def test_flops_numbers_read_back(llama_md: str) -> None:
    model = load_model("llama2-7b")
    terms = flops_terms(model)
    values = {**model.sizes, "batch": 2, "seq": 4096}
    rows = _cells(_section(llama_md, "Training FLOPs of one step"))
    for t in terms:
        assert _int(rows[t.path][3]) == int(evaluate(t.total, values)), t.path
    assert f"**Total: {int(evaluate(terms.total, values)):,} FLOPs**" in llama_md


def test_conventions_and_errata_numbers(llama_md: str) -> None:
    model = load_model("llama2-7b")
    rows = _cells(_section(llama_md, "Conventions compared"))
    for name in ("exact", "basic", "basic-gated"):
        assert _int(rows[name][1]) == parameter_counts(model, parameters(model, name)).total
    errata = _section(llama_md, "Errata")
    assert "5,295,308,800" in errata and "6,738,149,376" in errata and "6,738,415,616" in errata
    # 16 bytes per parameter (mixed-precision Adam, ZeRO's 16 Psi) of transformers' count
    states = memory(model).per_device()["states"]
    assert f"{states:,} bytes = {states / GB:.2f} GB = {states / GIB:.2f} GiB" in errata


def test_memory_options_change_the_document() -> None:
    model = load_model("llama3-70b")
    options = DocumentOptions(memory={"dp": 8, "tp": 2, "zero": 3})
    text = render(derivation_context(model, options), "markdown")
    expected = memory(model, Workload(1, 2048), Parallelism(dp=8, tp=2, zero=3)).per_device()["states"]
    assert _int(_cells(_section(text, "Memory per device"))["states"][0]) == expected


def test_total_formula_is_the_sum_of_the_parts() -> None:
    # the document's per-section subtotals add up to its total (a rendering check, any model)
    model = load_model("mixtral-8x7b")
    text = render(derivation_context(model), "markdown")
    part = _section(text, "Parameters, term by term")
    subtotals = [_int(m) for m in re.findall(r"\$ = ([\d,]+) parameters", part)]
    assert sum(subtotals) == parameter_counts(model).total


def test_cli_writes_file_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "doc.md"
    assert main(["derive", "gpt2", "-o", str(out)]) == 0
    assert out.read_text().startswith("# Derivation: gpt2")
    before = out.read_text()
    assert main(["derive", "gpt2", "--convention", "nope", "-o", str(out)]) == 2
    assert out.read_text() == before  # a failed run leaves the old file
    assert "error: --convention:" in capsys.readouterr().err
    assert main(["derive", "gpt2", "--pdf"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["derive", "gpt2", "--format", "pdf"])
    assert exc.value.code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.md"]  # no temporary files left


def _compile(name: str, folder: str) -> tuple[str, int, str]:
    tex = Path(folder) / f"{name}.tex"
    tex.write_text(render(derivation_context(load_model(name)), "latex"))
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=folder,
        capture_output=True,
        text=True,
        errors="replace",
    )
    first = next((line for line in done.stdout.splitlines() if line.startswith("!")), "")
    log = tex.with_suffix(".log").read_text(errors="replace") if tex.with_suffix(".log").exists() else ""
    overfull = [line for line in log.splitlines() if line.startswith("Overfull")]
    return name, done.returncode, first or (f"{len(overfull)} overfull boxes: {overfull[0]}" if overfull else "")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex missing (CI installs texlive; see .ci/run)")
def test_latex_compiles_for_a_shipped_model_of_each_type(tmp_path: Path) -> None:
    """One shipped model of each model type in CI (``SYMBOLIC_ALL_DOCUMENTS=1``: every shipped model)."""
    names = sorted(shipped_models())
    if not os.environ.get("SYMBOLIC_ALL_DOCUMENTS"):
        first: dict[str, str] = {}
        for name in names:
            first.setdefault(str(load_model(name).config.get("model_type")), name)
        names = sorted(first.values())
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_compile, names, [str(tmp_path)] * len(names)))
    failed = [(n, err) for n, rc, err in results if rc != 0 or err]
    assert not failed  # every shipped model compiles, and typesets without an overfull box
    assert all((tmp_path / f"{n}.pdf").stat().st_size > 10_000 for n in names)


def test_sizes_stay_symbols_in_formulas(llama_md: str) -> None:
    # layers are a symbol in every formula: the per-layer block is written once, times L
    assert "Repeated $L$ times" in llama_md
    assert sp.latex(sp.Symbol("n_layers")) not in llama_md


def test_errata_say_why_without_circles(llama_md: str) -> None:
    errata = _section(llama_md, "Errata")
    rows = [line for line in errata.splitlines() if line.startswith("| ") and not line.startswith("| topic")]
    assert len(rows) >= 5
    formula_row = next(r for r in rows if "does not give the stated number" in r)
    # the stated figure is explained by the third matrix, not restated as its own correction
    assert formula_row.count("6,738,149,376") == 1 and "gate" in formula_row and "1,442,840,576" in formula_row
    activations = next(r for r in rows if "never finished" in r)
    for reason in ("score matrix", "two-matrix MLP", "gated MLP", "norms per layer", "RMSNorm"):
        assert reason in activations, reason
    assert all(len(r.split(" | ")[-1]) > 40 for r in rows)  # every correction says something


def test_documents_cite_nothing_outside_the_repository() -> None:
    root = Path(__file__).resolve().parent.parent
    machine = re.compile("/" + "work/|" + "shared/" + "(seed|reference)")
    files = [root / "README.md", *root.glob("docs/**/*.md"), *root.glob("docs/*.tex")]
    files += [*root.glob("symbolic/**/*.py"), *root.glob("templates/**/*.j2"), *root.glob("tools/*.py")]
    offenders = [str(p.relative_to(root)) for p in files if machine.search(p.read_text(errors="replace"))]
    assert not offenders
