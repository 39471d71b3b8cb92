"""Ground truth from outside: our exact count equals what transformers builds, for every family."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from symbolic.hf import SUPPORTED_MODEL_TYPES, from_hf_config
from symbolic.model import parameter_counts

from .hf_factories import FACTORIES, transformers_param_count

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_every_supported_type_has_a_factory():
    assert set(FACTORIES) == set(SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("model_type", sorted(FACTORIES))
def test_exact_count_matches_transformers(model_type):
    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(FACTORIES[model_type])
    def check(config):
        ours = parameter_counts(from_hf_config(config)).total
        assert ours == transformers_param_count(config), config

    check()
