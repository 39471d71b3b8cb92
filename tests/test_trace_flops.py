"""Traced FLOPs of MoE experts (``_grouped_mm``, a kernel torch's flop counter does not know).

Identity: a matrix product's backward is two products of the forward's size (input and weight
gradients), so each expert module's backward FLOPs are twice its forward FLOPs, for any expert
count and top-k; the weight gradient's grouped product splits the tokens among the experts and
must not count each token once per expert.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("transformers")

from symbolic.trace import TraceOptions, trace  # noqa: E402


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(experts=st.integers(2, 6), top_k=st.integers(1, 2), model_type=st.sampled_from(["mixtral", "qwen3_moe"]))
def test_expert_backward_is_twice_the_forward(experts, top_k, model_type):
    config = {
        "model_type": model_type,
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 24,
        "moe_intermediate_size": 24,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "num_local_experts": experts,
        "num_experts": experts,
        "num_experts_per_tok": top_k,
    }
    flops = {t.path: t.expr for t in trace(config, TraceOptions(), use_cache=False).flops}
    forward = {p.removeprefix("forward."): e for p, e in flops.items() if p.startswith("forward.") and "experts" in p}
    assert forward, "no expert products traced"
    for path, expr in forward.items():
        assert (flops[f"backward.{path}"] - 2 * expr).expand() == 0, path
