"""Per-device activations of the ``traced`` convention under tensor parallelism.

Each traced storage is divided by ``tp`` or not as transformers' own tensor-parallel plan says
(:mod:`symbolic.trace.split`). Ground truth: real multi-process runs with that plan
(``tests.harness.parallel``: gloo on CPU), bytes saved for backward per rank, for model types
without hand-written rules; and the hand-written ``exact`` terms (themselves checked against the
real runs in ``tests/test_activations_parallel.py``) over random llama-like configs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("transformers")

from symbolic.errors import SymbolicError  # noqa: E402
from symbolic.formulas.activations import activation_bytes  # noqa: E402
from symbolic.hf import from_hf_config  # noqa: E402
from symbolic.memory import Workload  # noqa: E402
from symbolic.memory import device_activation_terms as activation_terms  # noqa: E402
from symbolic.parallel import Parallelism  # noqa: E402
from symbolic.registry import untyped_model  # noqa: E402
from symbolic.trace.split import one_dimension_to_contiguous, resolved_plan  # noqa: E402

from .harness.parallel import CASES  # noqa: E402
from .trace_configs import NEW_TYPES  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "compare_parallel", Path(__file__).resolve().parents[1] / "tools" / "compare_parallel.py"
)
OPTS = {"dtype": "fp32", "attention": "sdpa", "device": "cpu"}


def _compare_tool():
    module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(module)
    return module


def _bytes(model, convention, tp, batch, seq, attention="sdpa"):
    parallel = Parallelism(tp=tp)
    terms = activation_terms(model, Workload(batch, seq), parallel, convention, **{**OPTS, "attention": attention})
    return activation_bytes(terms, model, {"batch": batch, "seq": seq, **parallel.values()}).total


@pytest.mark.slow
@pytest.mark.parametrize("case", ["qwen3_moe", "olmo2"])
def test_traced_ranks_match_a_real_tensor_parallel_run(case):
    # qwen3_moe: split experts and per-head q/k norms; olmo2: q/k/v gathered, only the MLP split
    tool = _compare_tool()
    assert tool.ours(case, 2, "tp", convention="traced") == tool.measured(case, 2, "tp")


@st.composite
def llama_like(draw):
    """A llama-like config whose heads, kv heads, MLP width and vocabulary ``tp`` divides."""
    tp = draw(st.sampled_from([2, 4]))
    kv = tp * draw(st.integers(1, 2))
    heads = kv * draw(st.integers(1, 2))
    cfg = {
        "model_type": draw(st.sampled_from(["llama", "qwen2", "mistral"])),
        "vocab_size": tp * draw(st.integers(4, 24)),
        "hidden_size": heads * 4,
        "num_hidden_layers": draw(st.integers(1, 2)),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": tp * draw(st.integers(2, 12)),
        "head_dim": 4,
    }
    return cfg, tp, draw(st.integers(1, 3)), draw(st.integers(2, 9))


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(llama_like())
def test_traced_per_device_equals_exact(case):
    cfg, tp, batch, seq = case
    model = from_hf_config(cfg)
    assert _bytes(model, "traced", tp, batch, seq) == _bytes(model, "exact", tp, batch, seq)


@pytest.mark.slow
@pytest.mark.parametrize("case, tp", [("gpt_neox", 4), ("mixtral", 2)])
def test_traced_equals_exact_on_measured_cases(case, tp):
    # GPT-NeoX at tp = heads: its attention output's contiguous copy is a view (one head per rank)
    model = from_hf_config(CASES[case])
    assert _bytes(model, "traced", tp, 2, 8) == _bytes(model, "exact", tp, 2, 8)


def test_a_copy_is_a_view_when_one_dimension_out_of_order_is_one():
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    mode = FakeTensorMode(shape_env=ShapeEnv())

    def fake(*sizes, dynamic=2):  # the first ``dynamic`` sizes symbolic, as batch and seq in a trace
        dims = [DimDynamic.DYNAMIC] * dynamic + [DimDynamic.STATIC] * (len(sizes) - dynamic)
        return mode.from_tensor(torch.empty(*sizes), symbolic_context=StatelessSymbolicContext(dynamic_sizes=dims))

    tensors = fake(2, 5, 4, 16), fake(2, 5, 32), fake(2, 3, 4, dynamic=1)
    with mode:
        heads_out_of_order = tensors[0].transpose(1, 2)  # [b, h, s, d] of a [b, s, h, d] storage
        assert one_dimension_to_contiguous(heads_out_of_order) == 4
        assert one_dimension_to_contiguous(tensors[0]) is None  # contiguous: no copy
        assert one_dimension_to_contiguous(tensors[1][..., :16]) is None  # a slice, not a permutation
        assert one_dimension_to_contiguous(tensors[2].transpose(1, 2)) is None  # 3 or 4: not one dimension


@pytest.mark.slow
def test_refusals_name_the_field():
    no_plan = NEW_TYPES["openai-gpt"]  # transformers has no base_model_tp_plan for it
    with pytest.raises(SymbolicError, match="base_model_tp_plan"):
        _bytes(untyped_model(no_plan, "openai-gpt"), "traced", 2, 2, 8, attention="eager")
    llama = CASES["llama-gqa"]  # 4 kv heads: the plan splits whole heads, tp = 8 would split one
    with pytest.raises(SymbolicError, match="num_key_value_heads") as err:
        _bytes(from_hf_config(llama), "traced", 8, 2, 8)
    assert err.value.field == "tp"


def test_a_plan_with_a_style_not_followed_is_refused():
    config = SimpleNamespace(model_type="x", base_model_tp_plan={"layers.*.mlp.up_proj": "colwise"})
    model = SimpleNamespace(config=config, tp_plan={"model.layers.*.mlp.up_proj": "colwise_sideways"})
    assert resolved_plan(model) == ({}, "the x tensor-parallel plan uses styles not followed here: colwise_sideways")
    model.config.base_model_tp_plan = None
    assert resolved_plan(model)[1] == "transformers has no tensor-parallel plan (base_model_tp_plan) for x"
