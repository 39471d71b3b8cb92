"""The ``exact`` activation terms against what PyTorch autograd really saves (ground truth).

Each case builds a small model of a family with transformers (CPU), runs one training forward
under ``saved_tensors_hooks`` (``tests.harness.measure``) and compares the unique saved storages'
bytes with our terms: total, a typical layer and layer 0 (which also holds the once-per-forward
tensors), within 1%. Configs come from ``tools/survey_activations.py`` (all dimensions distinct).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("transformers")

from symbolic.formulas.activations import ActivationOptions, activation_bytes  # noqa: E402
from symbolic.hf import from_hf_config  # noqa: E402
from symbolic.model import activation_terms  # noqa: E402
from tests.harness.measure import measure_activations  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "survey_activations", Path(__file__).resolve().parents[1] / "tools" / "survey_activations.py"
)
survey = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(survey)
SIZE = survey.SIZES["A"]  # b=3, s=11, h=40, a=4, kv=2, f=52, V=136 ...
MOE = {"mixtral", "qwen2_moe", "deepseek_v3"}


def aligned(size: dict) -> dict:
    """``size`` with the widths grouped_mm multiplies rounded up to multiples of 8 (16-byte rows in 16-bit).

    torch's CPU grouped_mm refuses 16-bit strides that are not multiples of 16 bytes; real models are
    aligned, the survey's tiny f=52/76, fe=28 are not. A: f=56; B: f=80, fe=32 (all dims still distinct).
    """
    out = dict(size)
    for key in ("h", "f", "fe"):
        out[key] = -(-out[key] // 8) * 8
    assert out["h"] == size["h"]  # d_head = h / a unchanged
    return out


def compare(fam, dtype, attention, dropout, recompute, batch=None, seq=None, experts=None, per_layer=True, size=None):
    size = size or (aligned(SIZE) if fam in MOE and dtype != "fp32" else SIZE)
    batch, seq = batch or size["b"], seq or size["s"]
    cfg, _ = survey.family_config(fam, size, dropout)
    model = from_hf_config(cfg)
    opts = ActivationOptions(
        dtype=dtype, attention=attention, recompute=recompute, device="cpu", experts=experts or "grouped_mm"
    )
    ours = activation_bytes(activation_terms(model, "exact", opts), model, {"batch": batch, "seq": seq})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = measure_activations(
            cfg,
            batch,
            seq,
            dtype=dtype,
            attn_implementation=attention,
            recompute=recompute,
            experts_implementation=experts,
        )
    assert ours.total == pytest.approx(got["total"], rel=0.01)
    if per_layer:
        layers = list(ours.per_layer.values())
        typical = layers[-1]
        assert typical == pytest.approx(got["per_layer"][-1], rel=0.01)
        assert layers[0] + ours.shared == pytest.approx(got["per_layer"][0], rel=0.01)
    return ours, got


LLAMA = [
    (dtype, attention, dropout, recompute)
    for dtype in ("fp32", "bf16")
    for attention in ("eager", "sdpa")
    for dropout in (0.0, 0.1)
    for recompute in ("none", "full")
    if not (recompute == "full" and dropout)
]


@pytest.mark.parametrize(("dtype", "attention", "dropout", "recompute"), LLAMA)
def test_llama_every_setting(dtype, attention, dropout, recompute):
    compare("llama", dtype, attention, dropout, recompute)


@pytest.mark.parametrize(("batch", "seq"), [(1, 17), (4, 9)])
def test_llama_batch_and_sequence_sizes(batch, seq):
    compare("llama", "bf16", "eager", 0.0, "none", batch=batch, seq=seq)


FAMILIES = [f for f in survey.FAMILIES if f != "llama"]
NO_SDPA = {"gemma2", "bloom"}


@pytest.mark.parametrize("fam", FAMILIES)
def test_every_family_fp32_eager_with_dropout(fam):
    compare(fam, "fp32", "eager", 0.1, "none")


@pytest.mark.parametrize("fam", [f for f in FAMILIES if f not in NO_SDPA])
def test_every_family_bf16_sdpa(fam):
    """MoE families run at widths grouped_mm accepts in bf16 (``aligned``)."""
    compare(fam, "bf16", "sdpa", 0.0, "none")


@pytest.mark.parametrize(
    ("fam", "size", "dtype", "attention", "dropout", "recompute", "experts"),
    [
        # latent attention in bf16: SDPA's math path in fp32, the router's fp32 copies, fp32 routing weights
        ("deepseek_v3", "B", "bf16", "eager", 0.1, "none", None),
        ("deepseek_v3", "B", "bf16", "sdpa", 0.1, "none", None),
        ("deepseek_v3", "A", "bf16", "sdpa", 0.0, "full", None),
        # b = 1: P@V keeps the whole kv_b_proj output (a view), not a copy of the values
        ("deepseek_v3", "C", "fp16", "eager", 0.0, "none", None),
        ("mixtral", "B", "bf16", "eager", 0.0, "none", None),
        # per-expert loop in bf16: Qwen2-MoE casts its routing weights to the dtype, Mixtral keeps fp32
        ("qwen2_moe", "B", "bf16", "sdpa", 0.0, "none", "eager"),
        ("mixtral", "A", "bf16", "sdpa", 0.0, "none", "eager"),
    ],
)
def test_moe_and_latent_attention_16_bit(fam, size, dtype, attention, dropout, recompute, experts):
    compare(fam, dtype, attention, dropout, recompute, experts=experts, size=aligned(survey.SIZES[size]))


# sizes A, B and C all have a = 2*kv, where h = 2*kv*d_head: a size with kv != a/2 separates the
# fused-projection storage (a + 2kv heads) kept for the values from copies of width h
GQA3 = dict(b=2, s=7, h=48, a=6, kv=2, dh=8, f=60, V=100, dr=4)


@pytest.mark.parametrize("fam", ["phi3", "stablelm"])
def test_sdpa_layout_rules_where_kv_heads_are_not_half(fam):
    compare(fam, "bf16", "sdpa", 0.0, "none", size=GQA3)


@pytest.mark.parametrize(
    ("fam", "attention"),
    [
        ("gpt2", "eager"),
        ("opt", "eager"),
        ("falcon", "sdpa"),
        ("bloom", "eager"),
        ("gptj", "sdpa"),
        ("mixtral", "sdpa"),
        ("deepseek_v3", "eager"),
        ("olmo", "eager"),
    ],
)
def test_checkpointing_each_decoder_layer(fam, attention):
    compare(fam, "fp32", attention, 0.0, "full")


def test_gemma2_checkpointing_total():
    """Gemma 2 keeps its sliding and full masks (one per layer kind): the total is checked."""
    compare("gemma2", "bf16", "eager", 0.0, "full", per_layer=False)


def test_moe_per_expert_loop():
    compare("mixtral", "fp32", "sdpa", 0.0, "none", experts="eager")


@pytest.mark.slow
@pytest.mark.parametrize("fam", survey.FAMILIES)
@pytest.mark.parametrize(
    ("dtype", "attention", "dropout", "recompute"),
    [
        ("fp32", "eager", 0.0, "none"),
        ("fp32", "sdpa", 0.0, "none"),
        ("bf16", "eager", 0.0, "none"),
        ("bf16", "sdpa", 0.1, "none"),
        ("bf16", "eager", 0.1, "none"),
        ("fp32", "sdpa", 0.1, "none"),
        ("fp32", "eager", 0.0, "full"),
        ("bf16", "sdpa", 0.1, "full"),
    ],
)
def test_sweep(fam, dtype, attention, dropout, recompute):
    if attention == "sdpa" and fam in NO_SDPA:
        pytest.skip("no SDPA in transformers 5.24 for this family")
    compare(fam, dtype, attention, dropout, recompute, per_layer=fam != "gemma2" or recompute == "none")


def measured_under_autocast(cfg: dict, batch: int, seq: int) -> int:
    """Bytes autograd saves for one training forward of ``cfg``'s model in fp32 under
    ``torch.autocast("cpu", bfloat16)`` (real tensors; parameters, buffers and ids not counted)."""
    import torch

    from tests.harness.measure import _make_inputs, _prepare, measure_callable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _prepare(cfg, "fp32", "sdpa", "none", 0)
        ids = _make_inputs(cfg, batch, seq, 0)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(input_ids=ids, labels=ids, use_cache=False).loss

        got, _ = measure_callable(step, exclude=[*model.parameters(), *model.buffers(), ids])
    return got


@pytest.mark.parametrize("fam", ["llama", *(f for f in FAMILIES if f not in NO_SDPA)])
@pytest.mark.parametrize(("batch", "seq"), [(1, 13), (3, 11)])
def test_autocast_bf16_to_the_byte(fam, batch, seq):
    """fp32 weights under autocast, every family with an SDPA path: norms of the residual stream and
    rotary tables in fp32, q/k norms of a linear's 16-bit output (Qwen3), every linear's 16-bit input
    copy (a shared expert's and its gate's too), a router that casts to fp32 itself run in 16 bits
    (DeepSeek-V3); exact equals autograd's bytes (no KV cache kept, as in training)."""
    cfg, _ = survey.family_config(fam, SIZE, 0.0)
    model = from_hf_config(cfg)
    opts = ActivationOptions(dtype="bf16", attention="sdpa", device="cpu", autocast=True)
    ours = activation_bytes(activation_terms(model, "exact", opts), model, {"batch": batch, "seq": seq})
    assert ours.total == measured_under_autocast(cfg, batch, seq)


@st.composite
def falcon_original_layout(draw):
    """A Falcon config of the original layout (rotary, no new decoder architecture): one to four
    heads, multi-query or not, serial or parallel block; and a dtype, a kernel, b and s."""
    heads = draw(st.sampled_from([1, 1, 2, 4]))
    cfg = {
        "model_type": "falcon",
        "vocab_size": draw(st.integers(20, 200)),
        "hidden_size": heads * draw(st.sampled_from([4, 8])),
        "num_hidden_layers": draw(st.integers(1, 2)),
        "num_attention_heads": heads,
        "new_decoder_architecture": False,
        "multi_query": draw(st.booleans()),
        "parallel_attn": draw(st.booleans()),
        "bias": draw(st.booleans()),
        "ffn_hidden_size": draw(st.sampled_from([12, 20])),
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
    }
    setting = (draw(st.sampled_from(["fp32", "bf16", "fp16"])), draw(st.sampled_from(["sdpa", "eager"])))
    return cfg, setting, draw(st.integers(1, 3)), draw(st.integers(2, 17))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(falcon_original_layout())
def test_falcon_original_layout_to_the_byte(case):
    """Multi-query cuts the key and value out by index even with one head (two int64 index tensors a
    layer); without multi-query the values are a view of the fused q/k/v output, which SDPA keeps whole,
    and so does eager attention at every b when there is one head."""
    cfg, (dtype, attention), batch, seq = case
    model = from_hf_config(cfg)
    opts = ActivationOptions(dtype=dtype, attention=attention, device="cpu")
    ours = activation_bytes(activation_terms(model, "exact", opts), model, {"batch": batch, "seq": seq})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours.total == measure_activations(cfg, batch, seq, dtype, attention)["total"]


@pytest.mark.parametrize(
    "cfg",
    [
        {"model_type": "deepseek_v3", "n_shared_experts": 0, "n_group": 2, "topk_group": 1, "n_routed_experts": 4},
        {"model_type": "qwen2_moe", "shared_expert_intermediate_size": 0, "num_experts": 3},
    ],
    ids=["deepseek_v3", "qwen2_moe"],
)
def test_zero_width_shared_expert_under_autocast(cfg):
    """transformers builds the shared expert's MLP at width 0 too: under autocast its input linears keep
    their 16-bit copies of the input."""
    common = {
        "vocab_size": 60,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "intermediate_size": 24,
        "moe_intermediate_size": 16,
        "num_experts_per_tok": 2,
    }
    if cfg["model_type"] == "deepseek_v3":
        common |= {"first_k_dense_replace": 0, "q_lora_rank": None, "kv_lora_rank": 16}
        common |= {"qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 8}
    cfg = {**common, **cfg}
    model = from_hf_config(cfg)
    opts = ActivationOptions(dtype="bf16", attention="sdpa", device="cpu", autocast=True)
    for batch, seq in [(1, 5), (3, 7)]:
        ours = activation_bytes(activation_terms(model, "exact", opts), model, {"batch": batch, "seq": seq})
        assert ours.total == measured_under_autocast(cfg, batch, seq)
