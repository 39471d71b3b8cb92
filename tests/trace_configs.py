"""Small configs of causal-LM types that have no hand-written rules, for tracing tests.

All dimensions are distinct and small; MoE widths are multiples of 8 (torch's CPU grouped_mm
wants 16-byte rows in 16-bit). Token ids sit inside the small vocabulary.
"""

from __future__ import annotations

_TOK = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "vocab_size": 136, "tie_word_embeddings": False}
_BASE = {
    "hidden_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 56,
    "max_position_embeddings": 256,
    **_TOK,
}
_MOE = {"moe_intermediate_size": 24, "num_experts_per_tok": 2}

NEW_TYPES: dict[str, dict] = {
    "phi": {"model_type": "phi", **_BASE, "partial_rotary_factor": 0.5},
    "olmo2": {"model_type": "olmo2", **_BASE},
    "qwen3_moe": {"model_type": "qwen3_moe", **_BASE, **_MOE, "num_experts": 6, "head_dim": 16},
    "olmoe": {"model_type": "olmoe", **_BASE, "num_experts": 6, "num_experts_per_tok": 2},
    "gpt_oss": {
        "model_type": "gpt_oss",
        **_BASE,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "head_dim": 16,
        "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention"],
    },
    "deepseek_v2": {
        "model_type": "deepseek_v2",
        **_BASE,
        **_MOE,
        "n_routed_experts": 6,
        "n_shared_experts": 1,
        "first_k_dense_replace": 1,
        "kv_lora_rank": 16,
        "q_lora_rank": 24,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 8,
        "v_head_dim": 16,
        "n_group": 1,
        "topk_group": 1,
    },
    "gemma3_text": {
        "model_type": "gemma3_text",
        **_BASE,
        "head_dim": 16,
        "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention"],
    },
    "granite": {"model_type": "granite", **_BASE},
    "cohere": {"model_type": "cohere", **_BASE},
    "glm4": {"model_type": "glm4", **_BASE, "head_dim": 16},
    # one activation module object in every layer: each layer's saved tensors stay in its layer
    "openai-gpt": {"model_type": "openai-gpt", "n_embd": 48, "n_layer": 2, "n_head": 4, "n_positions": 256, **_TOK},
}

# a type whose code reads the sequence length as a number (the Mamba-2 mixer's chunked scan), so
# a formula in b and s does not come out and the trace is taken at one point
FIXES_SIZES: dict[str, dict] = {
    "bamba": {
        "model_type": "bamba",
        **_BASE,
        "mamba_n_heads": 6,
        "mamba_d_head": 16,
        "mamba_d_state": 8,
        "mamba_chunk_size": 8,
        "attn_layer_indices": [1],
    },
}

# a type that cannot run past its position table (absolute position ids, a buffer of 256)
POSITION_LIMIT: dict[str, dict] = {
    "bert": {"model_type": "bert", **_BASE, "is_decoder": True, "type_vocab_size": 2},
}
