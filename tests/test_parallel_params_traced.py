"""Parameters per device of the ``traced`` convention under tensor parallelism.

Each traced parameter carries the split transformers' own tensor-parallel plan gives it
(:func:`symbolic.trace.split.parameter_splits`). Ground truth: real multi-process splits
(``tests.harness.parallel_params``: gloo on CPU, transformers' ``apply_tensor_parallelism``, each
rank's local shards counted), and the hand-written ``exact`` convention's states where its layout
is transformers' plan.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from symbolic.hf import from_hf_config  # noqa: E402
from symbolic.memory import Workload, memory  # noqa: E402
from symbolic.parallel import Parallelism  # noqa: E402
from symbolic.terms import Split  # noqa: E402
from symbolic.trace.split import parameter_splits  # noqa: E402
from tests.harness.parallel import CASES  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "compare_parallel", Path(__file__).resolve().parents[1] / "tools" / "compare_parallel.py"
)
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

STATES = ("weights", "gradients", "master", "optimizer")
# CI runs one case of each real split and comparison; SYMBOLIC_ALL_PARALLEL_CASES=1 runs them all
ALL_CASES = os.environ.get("SYMBOLIC_ALL_PARALLEL_CASES") == "1"


def test_each_style_splits_the_parameters_as_transformers_shards_them():
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.up = torch.nn.Linear(4, 8)
            self.down = torch.nn.Linear(8, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.experts = torch.nn.Module()
            self.experts.gate_up_proj = torch.nn.Parameter(torch.empty(3, 16, 4))
            self.experts.down_proj = torch.nn.Parameter(torch.empty(3, 4, 8))

    plan = {
        "embed": "embedding_rowwise",
        "up": "colwise",
        "down": "rowwise",
        "norm": "replicated_with_grad_allreduce",
        "experts": "moe_tp_experts",
        "experts.gate_up_proj": "packed_colwise",
        "experts.down_proj": "rowwise",
    }
    got = parameter_splits(Block(), plan)
    assert got == {
        "embed.weight": Split.VOCAB,
        "up.weight": Split.COLUMN,
        "up.bias": Split.COLUMN,  # colwise: Shard(0) of the bias too
        "down.weight": Split.ROW,
        "down.bias": Split.NONE,  # rowwise: the bias is added after the reduction, whole
        "experts.gate_up_proj": Split.COLUMN,
        "experts.down_proj": Split.ROW,
    }  # the norm's style and the experts module's own style shard nothing


@pytest.mark.slow
@pytest.mark.parametrize("case, tp", [("qwen3_moe", 2), *([("llama-gqa", 2), ("mixtral", 2)] if ALL_CASES else [])])
def test_traced_parameters_per_rank_match_a_real_split(case, tp):
    measured = tool.measured_parameters(case, tp)
    assert len(set(measured)) == 1
    assert tool.ours_parameters(case, tp, "traced") == measured[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["mixtral", *(["llama-gqa", "gpt_neox"] if ALL_CASES else [])])
def test_traced_states_equal_exact_under_tensor_parallelism(case):
    model = from_hf_config(CASES[case])
    opts = {"dtype": "fp32", "attention": "sdpa", "device": "cpu"}
    for tp in (2, 4):
        reports = [
            memory(model, Workload(2, 8), Parallelism(tp=tp, dp=2, zero=1), convention=c, **opts)
            for c in ("exact", "traced")
        ]
        exact, traced = ({k: r.per_device()[k] for k in STATES} for r in reports)
        assert traced == exact, (tp, traced, exact)
