"""Ground truth from outside: real torch.optim optimizers after one step, and transformers' KV cache.

Small Llama-style models are built on CPU from random configs; after one training step the bytes
of every ``optimizer.state`` tensor and every ``.grad`` must equal our optimizer and gradient
terms exactly (fp32 recipe, ``torch.optim``'s per-tensor step counters included).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbolic.hf import from_hf_config
from symbolic.inference import inference_memory
from symbolic.memory import memory

from .hf_factories import llama_like

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

OPTIMIZERS = {
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-3),
    "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=1e-3),
    "adafactor": lambda ps: torch.optim.Adafactor(ps, lr=1e-3),
}


def _build(config: dict):
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = transformers.AutoConfig.for_model(**config)
    return transformers.AutoModelForCausalLM.from_config(cfg)


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


SETTINGS = settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_state_and_gradients_match_torch(name):
    @SETTINGS
    @given(llama_like("llama"), st.booleans())
    def check(config, freeze_embedding):
        model = _build(config)
        if freeze_embedding:
            model.get_input_embeddings().weight.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = OPTIMIZERS[name](params)
        ids = torch.randint(0, config["vocab_size"], (2, 5))
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        torch_state = _bytes(v for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
        torch_grads = _bytes(p.grad for p in params)

        freeze = ("embedding.tokens",) if freeze_embedding else ()
        ours = memory(from_hf_config(config), precision="fp32", optimizer=name, freeze=freeze, step_counters=True)
        assert ours.bytes("optimizer") == torch_state, config
        assert ours.bytes("gradients") == torch_grads, config
        assert ours.bytes("weights") == _bytes(model.parameters())
        assert ours.bytes("master") == 0

    check()


@pytest.mark.parametrize("model_type", ["llama", "qwen3"])
def test_kv_cache_matches_transformers(model_type):
    @SETTINGS
    @given(llama_like(model_type), st.integers(1, 3), st.integers(1, 9))
    def check(config, batch, seq):
        model = _build(config).to(torch.bfloat16)
        ids = torch.randint(0, config["vocab_size"], (batch, seq))
        with torch.no_grad():
            cache = model(input_ids=ids, use_cache=True).past_key_values
        cached = 0
        for layer in cache.layers:
            cached += _bytes([layer.keys, layer.values])
        ours = inference_memory(from_hf_config(config), batch, seq, kv_dtype="bf16")
        assert ours.bytes("kv_cache") == cached, config
        assert ours.bytes("weights") == _bytes(model.parameters())

    check()
