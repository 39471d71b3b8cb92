"""Per-device activations under tensor, sequence, context and pipeline parallelism.

Ground truth: real multi-process runs (``tests.harness.parallel``: gloo on CPU, transformers' own
tensor-parallel plan; sequence parallelism laid out with ``parallelize_module``), bytes saved for
backward per rank. Two small cases run here; ``tools/compare_parallel.py`` runs every case (llama
with GQA, qwen2, mistral, gpt_neox, mixtral; world sizes 2 and 4). Property tests: the ranks together
hold the unsharded bytes plus exactly the replicated terms; tp = 1 is the unsharded answer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import symbols as S
from symbolic.formulas.activations import ActivationOptions, activation_bytes, in_flight
from symbolic.hf import from_hf_config
from symbolic.memory import Workload, memory
from symbolic.memory import device_activation_terms as activation_terms
from symbolic.model import activation_terms as unsharded_terms
from symbolic.numeric.values import evaluate
from symbolic.parallel import Parallelism
from symbolic.registry import load_model

from .hf_factories import llama_like

_spec = importlib.util.spec_from_file_location(
    "compare_parallel", Path(__file__).resolve().parents[1] / "tools" / "compare_parallel.py"
)


def _compare_tool():
    module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, mode, interleave", [("llama-gqa", "tp_sp", 1), ("mixtral", "tp", 1), ("llama-gqa", "pp", 2)]
)
def test_each_rank_matches_a_real_parallel_run(case, mode, interleave):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    tool = _compare_tool()
    got, ours = tool.measured(case, 2, mode, interleave), tool.ours(case, 2, mode, interleave)
    assert ours == pytest.approx(got, rel=0.01)
    assert ours == got  # to the byte, as measured with torch 2.13 / transformers 5.24


# ---- properties (no torch) ----

OPTS = {"dtype": "bf16", "attention": "sdpa", "device": "cuda"}


def _bytes(model, parallel, batch=2, seq=16, **opts):
    terms = activation_terms(model, Workload(batch, seq), parallel, "exact", **{**OPTS, **opts})
    return activation_bytes(terms, model, {"batch": batch, "seq": seq, **parallel.values()})


@st.composite
def sharded(draw):
    """A llama-like config and a tensor-parallel degree dividing its heads, kv heads and widths."""
    tp = draw(st.sampled_from([2, 4]))
    kv = tp * draw(st.integers(1, 2))
    heads = kv * draw(st.integers(1, 3))
    dh = draw(st.sampled_from([4, 8]))
    cfg = {
        "model_type": draw(st.sampled_from(["llama", "qwen2", "mistral"])),
        "vocab_size": tp * draw(st.integers(2, 40)),
        "hidden_size": heads * dh,
        "num_hidden_layers": draw(st.integers(1, 3)),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": tp * draw(st.integers(1, 24)),
        "tie_word_embeddings": draw(st.booleans()),
    }
    return cfg, tp, draw(st.booleans()), draw(st.sampled_from(["sdpa", "eager"]))


@settings(max_examples=40, deadline=None)
@given(sharded())
def test_ranks_together_hold_the_unsharded_bytes_plus_the_replicated_terms(case):
    cfg, tp, sequence_parallel, attention = case
    model = from_hf_config(cfg)
    whole = _bytes(model, Parallelism(), attention=attention)
    one = _bytes(model, Parallelism(tp=tp, sequence_parallel=sequence_parallel), attention=attention)
    # a term is replicated when no size it is split by is split in this layout
    split = {S.n_heads, S.n_kv_heads, S.d_ffn} | ({S.seq} if sequence_parallel else set())
    terms = unsharded_terms(model, "exact", ActivationOptions(**{**OPTS, "attention": attention}))
    replicated = sum(whole.per_term[t.path] for t in terms if not (t.shards & split))
    assert tp * one.total == whole.total + (tp - 1) * replicated


@settings(max_examples=20, deadline=None)
@given(llama_like("llama"), st.sampled_from([2, 4, 8]))
def test_kv_heads_are_replicated_when_tp_exceeds_them(cfg, tp):
    cfg = {**cfg, "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 4, "hidden_size": 32}
    model = from_hf_config(cfg)
    kv = activation_terms(model, Workload(2, 16), Parallelism(tp=tp), "exact", **OPTS).term("block.attention.kv")
    values = {**model.sizes, "batch": 2, "seq": 16, "tp": tp}
    # every device keeps its own copy of the one kv head: 2 (k, v) * b * s * d_head * 2 bytes
    assert evaluate(kv.expr, values) == 2 * 2 * 16 * 4 * 2


@pytest.mark.parametrize("name", ["llama2-7b", "mixtral-8x7b", "gpt2", "falcon-7b", "deepseek-v3", "phi3-mini"])
def test_tp_one_is_the_unsharded_answer(name):
    model = load_model(name)
    opts = ActivationOptions(**OPTS)
    today = activation_bytes(unsharded_terms(model, "exact", opts), model, {"batch": 1, "seq": 512})
    assert _bytes(model, Parallelism(), batch=1, seq=512).total == today.total


def test_sequence_and_context_parallelism_split_the_sequence():
    model = load_model("llama2-7b")
    base = _bytes(model, Parallelism(tp=2), seq=4096)
    sp_ = _bytes(model, Parallelism(tp=2, sequence_parallel=True), seq=4096)
    cp = _bytes(model, Parallelism(tp=2, cp=4), seq=4096)
    assert sp_.total < base.total
    # context parallelism leaves each device seq/cp tokens of every tensor (SDPA: all linear in seq)
    assert cp.total == _bytes(model, Parallelism(tp=2), seq=1024).total


def test_pipeline_stages_hold_their_layers_for_the_micro_batches_in_flight():
    model = load_model("llama2-7b")
    assert [in_flight(i, 4) for i in range(4)] == [4, 3, 2, 1]
    # Korthikanti et al. 2022, section 4.2.3: the first stage holds L(1 + (p-1)/(p m)) layers
    assert in_flight(0, 4, 2) * sp.Rational(32, 4) == 32 * (1 + sp.Rational(3, 8))

    def layers(parallel):
        got = _bytes(model, parallel)
        return sum(v for k, v in got.per_term.items() if k.startswith("block."))

    whole, first, last = layers(Parallelism()), layers(Parallelism(pp=4, stage=0)), layers(Parallelism(pp=4, stage=3))
    # stage 0: its 8 layers for 4 micro-batches = 32 layer-micro-batches; stage 3: 8 for one
    assert first == whole and last * 4 == whole


def test_the_readme_mixtral_example_prints_a_peak():
    report = memory(
        load_model("mixtral-8x7b"), Workload(1, 4096), Parallelism(dp=8, tp=2, pp=4, ep=8, zero=3), device="cuda"
    )
    per = report.per_device()
    held_at_forward_end = per["weights"] + per["master"] + per["optimizer"] + per["activations"]
    assert per["activations"] > 0 and per["peak"] >= max(per["states"], held_at_forward_end)


def test_megatron_divides_by_cp():
    model = load_model("llama2-7b")

    def acts(cp):
        return memory(model, Workload(1, 4096), Parallelism(cp=cp), convention="megatron").bytes("activations")

    assert acts(4) * 4 == pytest.approx(acts(1), rel=1e-9)
