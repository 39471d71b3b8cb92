"""Every committed derivation document equals what the current engine renders (regenerate: tools/regenerate_docs.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("regenerate_docs", ROOT / "tools" / "regenerate_docs.py")
regen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regen)


@pytest.mark.parametrize("doc", [d for d, _, _ in regen.DOCUMENTS])
def test_committed_document_is_fresh(doc: str, tmp_path: Path) -> None:
    from symbolic.cli import main

    args, figures = next((a, f) for d, a, f in regen.DOCUMENTS if d == doc)
    assert main(regen.derive_args(doc, args, figures, tmp_path / doc)) == 0
    committed = regen.DOCS / doc
    assert committed.is_file(), f"docs/{doc} missing: run python tools/regenerate_docs.py"
    assert (tmp_path / doc).read_text() == committed.read_text(), (
        f"docs/{doc} is stale: run python tools/regenerate_docs.py"
    )


def test_embedded_figures_exist() -> None:
    for name, _, _ in regen.FIGURES:
        assert (regen.DOCS / name).is_file()
        assert (regen.DOCS / name.replace(".svg", ".png")).is_file()


def test_cli_reference_is_fresh() -> None:
    assert regen.cli_reference() == (regen.DOCS / "cli.md").read_text(), (
        "docs/cli.md is stale: run tools/regenerate_docs.py"
    )


@pytest.mark.parametrize("reader", regen.INDEX_FILES)
def test_document_list_is_shared_and_fresh(reader: str) -> None:
    # README and the guide hold the same one list, and every document in it exists
    text = (regen.ROOT / reader).read_text()
    assert regen.with_index(text, reader) == text, f"{reader}: run tools/regenerate_docs.py"
    for path, _ in regen.INDEX:
        assert (regen.ROOT / path).is_file(), path


def test_every_generated_document_is_listed() -> None:
    listed = {path for path, _ in regen.INDEX}
    for doc, _, _ in regen.DOCUMENTS:
        if doc.endswith(".md"):
            assert f"docs/{doc}" in listed, doc
    for nb in regen.NOTEBOOKS:
        assert f"notebooks/{nb.name}" in listed, nb.name
