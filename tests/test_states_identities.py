"""Identities the per-device state terms must satisfy, for any model and degrees (hypothesis)."""

from __future__ import annotations

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbolic import symbols as S
from symbolic.errors import SymbolicError
from symbolic.formulas.states import OPTIMIZERS, RECIPES
from symbolic.hf import from_hf_config
from symbolic.memory import Workload, memory
from symbolic.model import parameters
from symbolic.numeric import evaluate
from symbolic.parallel import Parallelism
from symbolic.registry import load_model

from .hf_factories import deepseek_v3, llama_like, mixtral

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
TRAINING = sorted(set(OPTIMIZERS) - {"none"})


def _exact(report, expr):
    return evaluate(expr, report.values)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@SETTINGS
@given(
    st.sampled_from(["llama2-7b", "mixtral-8x7b", "qwen2-57b-a14b", "gpt2", "deepseek-v3"]),
    st.sampled_from([1, 2, 3, 8, 64]),
    st.sampled_from([0, 1]),
    st.sampled_from(sorted(RECIPES)),
    st.sampled_from(TRAINING),
)
def test_zero3_times_dp_equals_unsharded(name, dp, ep_pick, recipe, optimizer):
    model = load_model(name)
    ep = 1
    if model.arch.is_moe and ep_pick:
        ep = max(d for d in _divisors(model.sizes["n_experts"]) if dp % d == 0)
    sharded = memory(model, parallel=Parallelism(dp=dp, ep=ep, zero=3), precision=recipe, optimizer=optimizer)
    whole = memory(model, precision=recipe, optimizer=optimizer)
    assert _exact(sharded, sharded.states_expr) * dp == _exact(whole, whole.states_expr)


@SETTINGS
@given(
    st.sampled_from(["llama2-7b", "mixtral-8x7b", "deepseek-v3", "opt-13b"]),
    st.sampled_from([0, 1, 2, 3]),
    st.sampled_from(sorted(RECIPES)),
)
def test_degrees_of_one_reduce_to_single_device(name, zero, recipe):
    """Per-device expressions with tp, dp, ep set to 1 are the single-device expressions."""
    model = load_model(name)
    tp = 8 if model.sizes["n_heads"] % 8 == 0 and model.sizes.get("n_kv_heads", 8) % 8 == 0 else 1
    ep = 8 if model.arch.is_moe else 1
    spread = memory(model, parallel=Parallelism(dp=64, tp=tp, ep=ep, zero=zero), precision=recipe)
    single = memory(model, precision=recipe)
    ones = {S.tp: 1, S.dp: 1, S.ep: 1, S.pp: 1, S.cp: 1}
    assert sp.expand(spread.states_expr.xreplace(ones) - single.states_expr.xreplace(ones)) == 0
    # and per the recipe: every trainable parameter costs its bytes once (Adam: two states)
    r = RECIPES[recipe]
    n = sum(int(evaluate(t.total, model.sizes)) for t in parameters(model))
    assert _exact(single, single.states_expr) == sp.Rational(str(r.per_parameter(2))) * n


@st.composite
def pipelined(draw):
    config = draw(st.one_of(llama_like("llama"), mixtral(), deepseek_v3()))
    model = from_hf_config(config)
    layers = sum(model.sizes[str(g.count)] for g in model.arch.groups)
    pp = draw(st.sampled_from(_divisors(layers)))
    return model, pp


@SETTINGS
@given(pipelined(), st.sampled_from(sorted(RECIPES)))
def test_pipeline_stages_sum_to_whole_model(case, recipe):
    model, pp = case
    whole = memory(model, precision=recipe)
    total = 0
    for stage in range(pp):
        part = memory(model, parallel=Parallelism(pp=pp, stage=stage), precision=recipe)
        copies = part.terms.where(lambda t: "copy" in t.tags)
        total += _exact(part, part.states_expr - copies.total)
    assert total == _exact(whole, whole.states_expr)


@SETTINGS
@given(pipelined())
def test_default_stage_is_the_largest(case):
    model, pp = case

    # the stage holding the most states + activations (the first stages keep more micro-batches in flight)
    def held(report):
        return report.bytes("states") + report.bytes("activations")

    chosen = memory(model, parallel=Parallelism(pp=pp))
    sizes = [held(memory(model, parallel=Parallelism(pp=pp, stage=s))) for s in range(pp)]
    assert held(chosen) == max(sizes)


def _lora_matrices(config, targets):
    """(d_in, d_out) of every nn.Linear transformers builds whose name ends in a target."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**config))
    return [
        (m.in_features, m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.split(".")[-1] in targets
    ]


@SETTINGS
@given(
    llama_like("llama"),
    st.integers(1, 64),
    st.sampled_from([("q_proj", "v_proj"), ("o_proj",), ("gate_proj", "down_proj", "k_proj")]),
)
def test_lora_trainable_is_r_times_in_plus_out(config, rank, targets):
    matrices = _lora_matrices(config, targets)
    rank = min(rank, *(min(m) for m in matrices))  # a rank is at most the smaller side of each matrix
    expected = rank * sum(d_in + d_out for d_in, d_out in matrices)
    report = memory(from_hf_config(config), precision="fp32", optimizer="sgd", lora_rank=rank, lora_targets=targets)
    assert report.bytes("gradients") == 4 * expected  # only the adapters have gradients
    assert report.bytes("optimizer") == 0


def test_tp_splits_what_megatron_splits():
    """Column/row/vocab-parallel tensors divide by tp; norms are replicated."""
    model = load_model("llama2-7b")
    report = memory(model, parallel=Parallelism(tp=4))
    w = report.category("weights")
    assert w.term("weights.block.attention.q_proj.weight").expr.has(S.tp)
    assert w.term("weights.block.mlp.down_proj.weight").expr.has(S.tp)
    assert w.term("weights.embedding.tokens.weight").expr.has(S.tp)
    assert not w.term("weights.block.norm_attn.weight").expr.has(S.tp)


def test_vocab_padding_is_an_option():
    model = load_model("gpt2")  # n_vocab 50257 is prime to 2
    short = Workload(batch=1, seq=512)
    with pytest.raises(SymbolicError) as err:
        memory(model, short, parallel=Parallelism(tp=2))
    assert err.value.field == "tp" and "--vocab-multiple" in err.value.message
    padded = memory(model, short, parallel=Parallelism(tp=2, vocab_multiple=128))
    rows = evaluate(Parallelism(tp=2, vocab_multiple=128).padded_vocab(), {"n_vocab": 50257, "tp": 2})
    assert rows == 50432  # ceil(50257 / 256) * 256: Megatron's padding with a multiple of 128 and tp=2
    emb = padded.category("weights").term("weights.embedding.tokens.weight")
    assert evaluate(emb.total, padded.values) == 2 * 50432 * 768 // 2


def test_frozen_parameters_have_weights_only():
    model = load_model("llama2-7b")
    report = memory(model, freeze=("all",))
    assert report.bytes("gradients") == report.bytes("optimizer") == report.bytes("master") == 0
    assert report.bytes("weights") == 2 * 6_738_415_616


def test_context_parallel_changes_no_state_and_says_so():
    model = load_model("llama2-7b")
    plain, cp = memory(model), memory(model, parallel=Parallelism(cp=4))
    for category in ("weights", "gradients", "master", "optimizer", "states"):
        assert plain.bytes(category) == cp.bytes(category)
    assert any("context parallel" in note for note in cp.notes)


def test_zero_with_dp_1_is_fine_but_noted():
    report = memory(load_model("llama2-7b"), parallel=Parallelism(zero=3))
    assert report.bytes("states") == 16 * 6_738_415_616
    assert any("shards nothing" in note for note in report.notes)
