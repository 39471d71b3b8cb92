"""The survey of transformers' causal-LM types (``tools/trace_survey.py``): its shipped data file
covers every type of the pinned transformers, and ``docs/activations.md`` quotes its summary as the
tool computes it from that file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("trace_survey", ROOT / "tools" / "trace_survey.py")
survey = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(survey)
ROWS = survey.load(survey.DEFAULT_OUT)


def test_docs_quote_the_survey_summary():
    assert survey.summary(ROWS) in (ROOT / "docs" / "activations.md").read_text()


def test_every_row_has_an_outcome_and_a_reason_where_it_does_not_trace():
    assert ROWS
    for name, row in ROWS.items():
        assert row["outcome"] in survey.OUTCOMES, name
        if row["outcome"] != "traces":
            assert row.get("reason") and "\n" not in row["reason"], name
        else:
            assert row["traced_bytes"] > 0 and row["real_params"] > 0, name


def test_the_survey_covers_every_causal_lm_type():
    transformers = pytest.importorskip("transformers")
    if transformers.__version__ != "5.24.0":
        pytest.skip("the survey was taken with transformers 5.24.0")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    assert set(ROWS) == set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def test_small_configs_shrink_the_size_fields():
    pytest.importorskip("transformers")
    cfg = survey.small_config("gpt2")  # sizes named n_embd, n_layer, n_head
    assert (cfg["n_embd"], cfg["n_layer"], cfg["n_head"]) == (64, 2, 4)
