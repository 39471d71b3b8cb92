"""The notebooks are committed with their outputs, as tools/regenerate_docs.py executes them.

A reader on GitHub sees every result: each code cell has run, none failed, and every cell that
draws a figure shows it. The slow test runs them again and compares the whole file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("regenerate_docs", ROOT / "tools" / "regenerate_docs.py")
regen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regen)
FIGURE_CALLS = ("scaling(", "memory_bars(", "plt.", ".plot(")


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3
    assert [p.name for p in regen.NOTEBOOKS] == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for i, cell in enumerate(code, 1):
        assert cell.execution_count == i, f"{path.name}: run tools/regenerate_docs.py (cell {i} not executed)"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{path.name}: cell {i} failed"
        if any(call in cell.source for call in FIGURE_CALLS):
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"{path.name}: cell {i} draws a figure but shows none"
    assert any(c.outputs for c in code)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_fresh(path: Path) -> None:
    assert regen.notebook_text(regen.execute_notebook(path)) == path.read_text(), (
        f"notebooks/{path.name} is stale: run python tools/regenerate_docs.py"
    )
