"""Published KV-cache figures: vLLM's OPT-13B, DeepSeek-V2's latent cache, the Llama table; quantized weights."""

from __future__ import annotations

import pytest

from symbolic.formulas.inference import kv_cache_terms
from symbolic.inference import inference_memory
from symbolic.numeric import evaluate
from symbolic.registry import load_model

KIB = 1024


def _per_token(model, kv_bytes=2):
    return evaluate(kv_cache_terms(model, kv_bytes).total, {**model.sizes, "batch": 1, "seq": 1})


def test_vllm_opt_13b_800_kib_per_token():
    model = load_model("opt-13b")
    assert _per_token(model) == 800 * KIB  # vLLM §3: 2 x 5120 x 40 x 2 bytes
    mem = inference_memory(model, batch=1, seq=2048)
    assert mem.bytes("kv_cache") == 1_677_721_600  # "1.6 GB per request" at 2048 tokens


def test_deepseek_latent_cache_elements():
    v3 = load_model("deepseek-v3")
    v2_layers = v3.with_sizes(n_dense_layers=1, n_moe_layers=59)  # DeepSeek-V2: l = 60, same d_c and d_h^R
    assert _per_token(v2_layers, kv_bytes=1) == 34_560  # (512 + 64) x 60
    assert _per_token(v3, kv_bytes=1) == 35_136


@pytest.mark.parametrize(
    "name, per_token",
    [("llama2-7b", 524_288), ("llama2-70b", 327_680), ("llama3-8b", 131_072), ("llama3-70b", 327_680)],
)
def test_llama_kv_table(name, per_token):
    assert _per_token(load_model(name)) == per_token


def test_mqa_caches_one_head():
    model = load_model("falcon-7b")  # multi-query: one key/value head of 64
    assert _per_token(model) == 2 * 32 * 1 * 64 * 2


def test_sliding_window_caps_the_cache():
    mistral = load_model("mistral-7b")  # every layer slides over 4096 tokens
    short, long = (inference_memory(mistral, 1, s).bytes("kv_cache") for s in (4096, 32768))
    assert short == long == 4096 * 32 * 8 * 128 * 2 * 2
    gemma = load_model("gemma2-9b")  # half of the 42 layers slide
    full = inference_memory(gemma, 1, 8192).bytes("kv_cache")
    per_layer_token = 2 * 8 * 256 * 2
    assert full == per_layer_token * (21 * 8192 + 21 * 4096)


def test_weights_bytes_per_format():
    model = load_model("llama2-7b")
    n = 6_738_415_616
    bf16 = inference_memory(model, 1, 1, dtype="bf16").bytes("weights")
    assert bf16 == 2 * n
    assert inference_memory(model, 1, 1, dtype="fp32").bytes("weights") == 4 * n
    int8 = inference_memory(model, 1, 1, dtype="int8").bytes("weights")
    int4 = inference_memory(model, 1, 1, dtype="int4").bytes("weights")
    # embeddings and lm_head stay 16-bit: 2 x 32000 x 4096 parameters
    outer = 2 * 32000 * 4096
    assert n + outer < int8 < 1.01 * (n + outer)
    assert int4 < int8 < bf16
    per_param_4bit = (int4 - 2 * outer) / (n - outer)
    assert 0.5 < per_param_4bit < 0.5 + 2.5 / 128 + 0.01  # 4 bits + an fp16 scale and 4-bit zero per 128


def test_tensor_parallel_divides_the_cache():
    model = load_model("llama3-70b")
    one = inference_memory(model, 4, 1000).bytes("kv_cache")
    assert inference_memory(model, 4, 1000, tp=8).bytes("kv_cache") * 8 == one
