"""The LaTeX derivations typeset cleanly: pdflatex reports no overfull box and the PDF has a title.

Every committed document of ``tools/regenerate_docs.py`` is rendered as LaTeX (with the figures it
embeds) and compiled twice (longtable settles its widths on the second run); the log must hold no
``Overfull`` line.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from symbolic.cli import main

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("regenerate_docs", ROOT / "tools" / "regenerate_docs.py")
regen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regen)

pytestmark = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex missing (CI installs it; .ci/run)")


def compile_log(tex: Path) -> str:
    """pdflatex ``tex`` twice in its folder; the second run's log."""
    for _ in range(2):
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
            cwd=tex.parent,
            capture_output=True,
            text=True,
            errors="replace",
        )
        assert done.returncode == 0, next((ln for ln in done.stdout.splitlines() if ln.startswith("!")), "")
    return tex.with_suffix(".log").read_text(errors="replace")


def overfull(log: str) -> list[str]:
    """The log's overfull-box warnings, each with the line after it (what overflowed)."""
    lines = log.splitlines()
    return [
        f"{line} {lines[i + 1] if i + 1 < len(lines) else ''}" for i, line in enumerate(lines) if "Overfull" in line
    ]


def _latex_documents() -> dict[str, tuple[list[str], list[str]]]:
    """Each committed derivation as LaTeX: {file name: (derive arguments, figures)}."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for doc, args, figures in regen.DOCUMENTS:
        name = Path(doc).stem + ".tex"
        latex = [("latex" if a == "markdown" else a) for a in args]
        if name not in out or figures:
            out[name] = (latex, figures)
    return out


@pytest.mark.parametrize("doc", sorted(_latex_documents()))
def test_document_typesets_without_overfull_boxes(doc: str, tmp_path: Path) -> None:
    args, figures = _latex_documents()[doc]
    shutil.copytree(regen.DOCS / "figures", tmp_path / "figures")
    tex = tmp_path / doc
    assert main(regen.derive_args(doc, args, figures, tex)) == 0
    log = compile_log(tex)
    assert not overfull(log), "\n".join(overfull(log))
    assert re.search(r"pdftitle=\{Derivation: ", tex.read_text())
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(tex.with_suffix(".pdf"))], capture_output=True, text=True).stdout
        assert re.search(r"^Title:\s+Derivation: \S", info, flags=re.M), info


def test_overfull_is_detected(tmp_path: Path) -> None:
    # the check can fail: a line wider than the page is reported
    tex = tmp_path / "wide.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\noindent\\rule{2\\textwidth}{1pt}\\end{document}\n")
    assert overfull(compile_log(tex))
