"""Hypothesis strategies for small, valid Hugging Face configs of every supported model type.

Used by tests that build the real model with transformers and compare it with our formulas.
Sizes stay small so that building (on the meta device or on CPU) is fast.
"""

from __future__ import annotations

from hypothesis import strategies as st

HEADS = st.sampled_from([1, 2, 4, 8])


@st.composite
def attention_sizes(draw, gqa: bool = True, free_head_dim: bool = False):
    heads = draw(HEADS)
    head_dim = draw(st.sampled_from([4, 8, 16]))
    kv = draw(st.sampled_from([d for d in (1, 2, 4, 8) if heads % d == 0])) if gqa else heads
    if free_head_dim:
        hidden = draw(st.sampled_from([16, 24, 32, 48, 64]))
    else:
        hidden = heads * head_dim
    return {"heads": heads, "kv": kv, "head_dim": head_dim, "hidden": hidden}


def _base(draw, a):
    return {
        "vocab_size": draw(st.integers(8, 300)),
        "hidden_size": a["hidden"],
        "num_hidden_layers": draw(st.integers(1, 3)),
        "num_attention_heads": a["heads"],
        "intermediate_size": draw(st.integers(4, 96)),
        "tie_word_embeddings": draw(st.booleans()),
    }


@st.composite
def llama_like(draw, model_type: str):
    a = draw(attention_sizes(free_head_dim=model_type in ("llama", "mistral", "qwen3", "gemma", "gemma2")))
    cfg = _base(draw, a) | {"model_type": model_type, "num_key_value_heads": a["kv"]}
    if model_type in ("llama", "mistral", "qwen3", "gemma", "gemma2"):
        cfg["head_dim"] = a["head_dim"]
    if model_type in ("llama", "qwen3", "olmo", "gemma", "gemma2"):
        cfg["attention_bias"] = draw(st.booleans())
    if model_type == "llama":
        cfg["mlp_bias"] = draw(st.booleans())
    if model_type == "phi3":
        cfg["pad_token_id"] = None  # the class default (32000) must lie inside the small vocabulary
    if draw(st.booleans()):
        cfg.pop("tie_word_embeddings")  # the class default applies
    return cfg


@st.composite
def mixtral(draw):
    cfg = draw(llama_like("mistral")) | {"model_type": "mixtral"}
    cfg["num_local_experts"] = draw(st.integers(2, 6))
    cfg["num_experts_per_tok"] = draw(st.integers(1, 2))
    return cfg


@st.composite
def qwen2_moe(draw):
    a = draw(attention_sizes())
    layers = draw(st.integers(1, 4))
    cfg = _base(draw, a) | {
        "model_type": "qwen2_moe",
        "num_hidden_layers": layers,
        "num_key_value_heads": a["kv"],
        "num_experts": draw(st.integers(2, 6)),
        "num_experts_per_tok": 2,
        "moe_intermediate_size": draw(st.integers(4, 32)),
        "shared_expert_intermediate_size": draw(st.sampled_from([0, 8, 24])),
        "decoder_sparse_step": draw(st.integers(1, 2)),
        "mlp_only_layers": draw(st.lists(st.integers(0, layers - 1), max_size=2, unique=True)),
        "qkv_bias": draw(st.booleans()),
    }
    return cfg


@st.composite
def deepseek_v3(draw):
    heads = draw(st.sampled_from([2, 4]))
    layers = draw(st.integers(1, 4))
    groups = draw(st.sampled_from([1, 2]))
    experts = groups * draw(st.integers(2, 4))
    return {
        "model_type": "deepseek_v3",
        "vocab_size": draw(st.integers(8, 300)),
        "hidden_size": draw(st.sampled_from([32, 48, 64])),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "intermediate_size": draw(st.integers(8, 64)),
        "moe_intermediate_size": draw(st.integers(4, 32)),
        "n_routed_experts": experts,
        "n_group": groups,
        "topk_group": 1,
        "num_experts_per_tok": draw(st.integers(1, 2)),
        "n_shared_experts": draw(st.integers(0, 2)),
        "first_k_dense_replace": draw(st.integers(0, layers)),
        "q_lora_rank": draw(st.sampled_from([None, 8, 16])),
        "kv_lora_rank": draw(st.sampled_from([8, 16])),
        "qk_rope_head_dim": draw(st.sampled_from([4, 8])),
        "qk_nope_head_dim": draw(st.sampled_from([4, 8])),
        "v_head_dim": draw(st.sampled_from([4, 8, 12])),
        "attention_bias": draw(st.booleans()),
        "tie_word_embeddings": draw(st.booleans()),
    }


@st.composite
def gpt2_like(draw, model_type: str):
    a = draw(attention_sizes(gqa=False))
    cfg = {
        "model_type": model_type,
        "vocab_size": draw(st.integers(8, 300)),
        "n_embd": a["hidden"],
        "n_layer": draw(st.integers(1, 3)),
        "n_head": a["heads"],
        "n_positions": draw(st.integers(8, 128)),
        "n_inner": draw(st.sampled_from([None, 12, 40])),
    }
    if model_type == "gpt_bigcode":
        cfg["multi_query"] = draw(st.booleans())
    if model_type == "gptj":
        cfg["rotary_dim"] = 2
        cfg["tie_word_embeddings"] = draw(st.booleans())
    return cfg


@st.composite
def gpt_neox(draw):
    a = draw(attention_sizes(gqa=False))
    return _base(draw, a) | {
        "model_type": "gpt_neox",
        "use_parallel_residual": draw(st.booleans()),
        "attention_bias": draw(st.booleans()),
    }


@st.composite
def falcon(draw):
    a = draw(attention_sizes())
    new = draw(st.booleans())
    cfg = {
        "model_type": "falcon",
        "vocab_size": draw(st.integers(8, 300)),
        "hidden_size": a["hidden"],
        "num_hidden_layers": draw(st.integers(1, 3)),
        "num_attention_heads": a["heads"],
        "new_decoder_architecture": new,
        "multi_query": draw(st.booleans()),
        "parallel_attn": True if new else draw(st.booleans()),
        "bias": draw(st.booleans()),
        "ffn_hidden_size": draw(st.sampled_from([None, 20, 48])),
        "tie_word_embeddings": draw(st.booleans()),
    }
    if new:
        cfg["num_kv_heads"] = a["kv"]
        cfg["num_ln_in_parallel_attn"] = draw(st.sampled_from([None, 1, 2]))
    return cfg


@st.composite
def opt(draw):
    a = draw(attention_sizes(gqa=False))
    pre = draw(st.booleans())
    return {
        "model_type": "opt",
        "vocab_size": draw(st.integers(8, 300)),
        "hidden_size": a["hidden"],
        "word_embed_proj_dim": a["hidden"],
        "num_hidden_layers": draw(st.integers(1, 3)),
        "num_attention_heads": a["heads"],
        "ffn_dim": draw(st.integers(4, 96)),
        "max_position_embeddings": draw(st.integers(8, 128)),
        "do_layer_norm_before": pre,
        "enable_bias": draw(st.booleans()),
        "layer_norm_elementwise_affine": draw(st.booleans()),
    }


@st.composite
def bloom(draw):
    a = draw(attention_sizes(gqa=False))
    return {
        "model_type": "bloom",
        "vocab_size": draw(st.integers(8, 300)),
        "hidden_size": a["hidden"],
        "n_layer": draw(st.integers(1, 3)),
        "n_head": a["heads"],
        "tie_word_embeddings": draw(st.booleans()),
    }


@st.composite
def stablelm(draw):
    a = draw(attention_sizes())
    return _base(draw, a) | {
        "model_type": "stablelm",
        "num_key_value_heads": a["kv"],
        "use_qkv_bias": draw(st.booleans()),
        "qk_layernorm": draw(st.booleans()),
        "use_parallel_residual": draw(st.booleans()),
    }


@st.composite
def starcoder2(draw):
    a = draw(attention_sizes())
    return _base(draw, a) | {
        "model_type": "starcoder2",
        "num_key_value_heads": a["kv"],
        "use_bias": draw(st.booleans()),
    }


FACTORIES = {
    "llama": llama_like("llama"),
    "mistral": llama_like("mistral"),
    "qwen2": llama_like("qwen2"),
    "qwen3": llama_like("qwen3"),
    "gemma": llama_like("gemma"),
    "gemma2": llama_like("gemma2"),
    "phi3": llama_like("phi3"),
    "olmo": llama_like("olmo"),
    "mixtral": mixtral(),
    "qwen2_moe": qwen2_moe(),
    "deepseek_v3": deepseek_v3(),
    "gpt2": gpt2_like("gpt2"),
    "gpt_bigcode": gpt2_like("gpt_bigcode"),
    "gptj": gpt2_like("gptj"),
    "gpt_neox": gpt_neox(),
    "falcon": falcon(),
    "opt": opt(),
    "bloom": bloom(),
    "stablelm": stablelm(),
    "starcoder2": starcoder2(),
}


def transformers_param_count(config: dict) -> int:
    """Parameters of the model transformers builds from ``config`` on the meta device
    (``model.parameters()`` yields tied tensors once)."""
    import logging

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    cfg = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())
