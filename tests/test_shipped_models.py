"""Every shipped model: our exact count equals the count transformers 5.24 builds.

The reference counts in tests/data/transformers_param_counts.json were measured with
``tools/count_with_transformers.py`` (meta device, no weights); the live check below
re-measures a few of them when transformers is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symbolic.model import parameter_counts
from symbolic.registry import load_model, shipped_models

MEASURED = json.loads((Path(__file__).parent / "data" / "transformers_param_counts.json").read_text())


def test_at_least_25_models_shipped():
    assert len(shipped_models()) >= 25


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_shipped_count_equals_transformers_measurement(name):
    assert parameter_counts(load_model(name)).total == MEASURED[name]


@pytest.mark.parametrize(
    "name", ["llama2-7b", "mixtral-8x7b", "deepseek-v3", "gemma2-9b", "falcon-40b", "qwen2-57b-a14b"]
)
def test_shipped_count_live(name):
    pytest.importorskip("transformers")
    from .hf_factories import transformers_param_count

    assert parameter_counts(load_model(name)).total == transformers_param_count(shipped_models()[name].config)


@pytest.mark.parametrize("spelling", ["llama-2-7b", "Llama-2-7B", "llama2_7b", "LLAMA2-7B"])
def test_common_spellings_resolve(spelling):
    assert load_model(spelling).name == "llama2-7b"
