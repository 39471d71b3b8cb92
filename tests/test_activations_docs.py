"""docs/activations.md's Llama-2-7B table is what tools/activations_peers_table.py computes now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_table_is_generated_by_the_api():
    spec = importlib.util.spec_from_file_location("peers_table", ROOT / "tools" / "activations_peers_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.table() in (ROOT / "docs" / "activations.md").read_text()
