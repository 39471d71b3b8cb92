"""Hugging Face ``config.json`` -> :class:`~symbolic.arch.Model`, one mapping per model type.

Fields a config leaves out take the defaults that transformers' config class declares
(``hf_defaults.json``, extracted from transformers by ``tools/extract_hf_defaults.py``), and
aliases (GPT-2's ``n_embd`` for ``hidden_size``) resolve the way the class's
``attribute_map`` does. Fields that transformers derives when absent (``head_dim``,
``num_key_value_heads``, ``n_inner``, ...) are derived here by the same rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any

from .arch import (
    MLP,
    Arch,
    Attention,
    AttentionKind,
    Dropout,
    LayerGroup,
    MLPKind,
    Model,
    MoE,
    Norm,
    NormKind,
    NormPlacement,
    Positions,
    QKNorm,
    Sliding,
)
from .errors import SymbolicError
from .families import FAMILY, FamilyRules
from .inputs import integer, optional_count, shown

__all__ = ["SUPPORTED_MODEL_TYPES", "from_hf_config", "hf_defaults"]


@cache
def hf_defaults() -> dict[str, Any]:
    """The declared defaults and attribute maps of transformers' config classes, by model type."""
    text = resources.files("symbolic").joinpath("hf_defaults.json").read_text(encoding="utf-8")
    return json.loads(text)


# the kind of integer (symbolic.inputs.LIMITS) each config field holds; any other size is a width
_FIELD_KINDS = {
    "vocab_size": "vocab",
    "num_hidden_layers": "layers",
    "n_layer": "layers",
    "num_attention_heads": "heads",
    "num_key_value_heads": "heads",
    "num_kv_heads": "heads",
    "max_position_embeddings": "positions",
    "num_local_experts": "experts",
    "num_experts": "experts",
    "n_routed_experts": "experts",
    "num_experts_per_tok": "experts",
    "n_shared_experts": "experts",
    "decoder_sparse_step": "layers",
    "first_k_dense_replace": "count",
    "shared_expert_intermediate_size": "width",
}


class _Config:
    """A user's config read like transformers reads it: aliases resolved, defaults applied."""

    def __init__(self, model_type: str, raw: Mapping[str, Any]) -> None:
        table = hf_defaults().get(model_type, {})
        self.model_type = model_type
        self.aliases: dict[str, str] = dict(table.get("__attribute_map__", {}))
        # constructor keywords the class renames (BLOOM's n_embed -> hidden_size); nested targets are not sizes
        for alias, target in table.get("__kwarg_aliases__", {}).items():
            if "." not in target and not target.startswith("<"):
                self.aliases.setdefault(alias, target)
        derived = table.get("__derived__", {})  # computed by the class from other fields: no fixed default
        self.defaults = {k: v for k, v in table.items() if not k.startswith("__") and k not in derived}
        self.raw = {self.aliases.get(k, k): v for k, v in raw.items()}

    def get(self, name: str, default: Any = None) -> Any:
        """The value of field ``name`` (alias resolved), else transformers' default, else ``default``."""
        name = self.aliases.get(name, name)
        # an explicit null is honoured (transformers then derives the value), not replaced by the class default
        value = self.raw[name] if name in self.raw else self.defaults.get(name)
        return default if value is None else value

    def resolved(self) -> dict[str, Any]:
        """The whole config: the class defaults overlaid with the user's values (canonical names)."""
        return {**self.defaults, **self.raw}

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise SymbolicError(name, f"must be true or false, got {value!r}")
        return value

    def size(self, name: str, default: int | None = None) -> int:
        """A positive size (an int, never a float, bool or string), bounded by its kind (see inputs)."""
        value = self.get(name, default)
        if value is None:
            raise SymbolicError(name, f"missing in the {self.model_type} config")
        return integer(name, value, _FIELD_KINDS.get(name, "width"))

    def text(self, name: str, default: str) -> str:
        """A string field (an activation's name): a JSON string, else :class:`SymbolicError`."""
        value = self.get(name, default)
        if not isinstance(value, str) or len(value) > 100:
            raise SymbolicError(name, f"must be a name such as {default!r}, got {shown(value)}")
        return value

    def count(self, name: str) -> int:
        """A count that may be absent, null or 0 (``num_experts``, ``n_shared_experts``): an int >= 0."""
        return optional_count(name, self.get(name), _FIELD_KINDS.get(name, "count"))

    def layer_list(self, name: str, n_layers: int) -> set[int]:
        """A list of layer indices (``mlp_only_layers``): ints from 0 to ``n_layers - 1``."""
        value = self.get(name, [])
        if not isinstance(value, list):
            raise SymbolicError(name, f"must be a list of layer indices 0 .. {n_layers - 1}, got {shown(value)}")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < n_layers:
                raise SymbolicError(name, f"must hold layer indices 0 .. {n_layers - 1}, got {shown(item)}")
        return set(value)

    def head_dim(self, hidden: int, heads: int, field: str = "head_dim") -> int:
        """``head_dim`` if given, else ``hidden // heads`` (which must divide exactly)."""
        if self.get(field) is not None:
            return self.size(field)
        if hidden % heads:
            raise SymbolicError("num_attention_heads", f"{heads} must divide the hidden size {hidden}")
        return hidden // heads


def _dense_group() -> tuple[LayerGroup, ...]:
    return (LayerGroup("block", "n_layers"),)


def _common(cfg: _Config, hidden_key: str = "hidden_size") -> dict[str, int]:
    hidden = cfg.size(hidden_key)
    heads = cfg.size("num_attention_heads")
    return {
        "n_vocab": cfg.size("vocab_size"),
        "d_model": hidden,
        "n_layers": cfg.size("num_hidden_layers"),
        "n_heads": heads,
    }


def _kv_heads(cfg: _Config, heads: int, field: str = "num_key_value_heads") -> int:
    value = cfg.get(field)
    return heads if value is None else cfg.size(field)


def _llama_like(cfg: _Config, **overrides: Any) -> tuple[Arch, dict[str, int]]:
    """Llama and its close relatives: RMSNorm, gated MLP, rotary, optional biases."""
    sizes = _common(cfg)
    sizes["n_kv_heads"] = _kv_heads(cfg, sizes["n_heads"])
    sizes["d_head"] = cfg.head_dim(sizes["d_model"], sizes["n_heads"])
    sizes["d_ffn"] = cfg.size("intermediate_size")
    bias = cfg.flag("attention_bias")
    attention = overrides.pop("attention", Attention(qkv_bias=bias, out_bias=bias))
    arch = Arch(
        family=cfg.model_type,
        attention=attention,
        mlp=MLP(MLPKind.GATED, bias=cfg.flag("mlp_bias"), activation=cfg.text("hidden_act", "silu")),
        norm=Norm(NormKind.RMSNORM),
        positions=Positions.ROTARY,
        tied_embeddings=cfg.flag("tie_word_embeddings"),
        **overrides,
    )
    return arch, sizes


def _llama(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    return _llama_like(cfg)


def _qwen2(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    # Qwen2: q, k and v carry biases, the output projection none (fixed in the module)
    return _llama_like(cfg, attention=Attention(qkv_bias=True, out_bias=False))


def _qwen3(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    bias = cfg.flag("attention_bias")
    att = Attention(qkv_bias=bias, out_bias=bias, qk_norm=QKNorm.HEAD, qk_norm_kind=Norm(NormKind.RMSNORM))
    return _llama_like(cfg, attention=att)


def _gemma(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    # Gemma's MLP reads hidden_act; its config class turns the legacy "gelu" into the tanh approximation
    arch, sizes = _llama_like(cfg)
    act = cfg.text("hidden_act", "gelu_pytorch_tanh")
    act = "gelu_pytorch_tanh" if act == "gelu" else act
    return _replace(arch, mlp=MLP(MLPKind.GATED, activation=act)), sizes


def _gemma2(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    # Gemma 2's MLP reads hidden_activation (its config has no hidden_act)
    arch, sizes = _llama_like(cfg)
    act = cfg.text("hidden_activation", "gelu_pytorch_tanh")
    mlp = MLP(MLPKind.GATED, activation=act)
    return _replace(arch, mlp=mlp, norm_placement=NormPlacement.SANDWICH), sizes


def _olmo(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    arch, sizes = _llama_like(cfg)
    return _replace(arch, norm=Norm(NormKind.NONPARAMETRIC)), sizes


def _phi3(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    # fused qkv_proj and gate_up_proj hold exactly the parameters of their parts
    return _llama_like(cfg)


def _mixtral(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    arch, sizes = _llama_like(cfg)
    sizes.pop("d_ffn")
    sizes["n_experts"] = cfg.size("num_local_experts")
    sizes["top_k"] = cfg.size("num_experts_per_tok")
    sizes["d_expert"] = cfg.size("intermediate_size")
    arch = _replace(arch, moe=MoE(), groups=(LayerGroup("block", "n_layers", moe=True),))
    return arch, sizes


def _layer_groups(n_dense: int, n_moe: int, sizes: dict[str, int]) -> tuple[LayerGroup, ...]:
    """Group a stack of dense and MoE layers; record each group's layer count in ``sizes``."""
    if n_moe == 0:
        sizes["n_layers"] = n_dense
        return (LayerGroup("block", "n_layers"),)
    if n_dense == 0:
        sizes["n_layers"] = n_moe
        return (LayerGroup("block", "n_layers", moe=True),)
    sizes["n_dense_layers"], sizes["n_moe_layers"] = n_dense, n_moe
    return (LayerGroup("dense_block", "n_dense_layers"), LayerGroup("moe_block", "n_moe_layers", moe=True))


def _qwen2_moe(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    arch, sizes = _llama_like(cfg, attention=Attention(qkv_bias=cfg.flag("qkv_bias", True), out_bias=False))
    n_layers = sizes.pop("n_layers")
    experts = cfg.count("num_experts")
    step = cfg.size("decoder_sparse_step", 1)
    dense_only = cfg.layer_list("mlp_only_layers", n_layers)
    # layer i is sparse when it is not listed dense and (i + 1) is a multiple of the step
    n_moe = 0 if experts == 0 else n_layers // step - sum(1 for i in dense_only if (i + 1) % step == 0)
    groups = _layer_groups(n_layers - n_moe, n_moe, sizes)
    if not n_moe:
        return arch, sizes
    shared = cfg.count("shared_expert_intermediate_size")
    sizes.update(n_experts=experts, top_k=cfg.size("num_experts_per_tok"), d_expert=cfg.size("moe_intermediate_size"))
    if shared:
        sizes["d_shared"] = shared
    if n_moe == n_layers:
        sizes.pop("d_ffn")
    moe = MoE(shared_experts=bool(shared), shared_expert_gate=True)
    return _replace(arch, moe=moe, groups=groups), sizes


def _deepseek_v3(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _common(cfg)
    n_layers = sizes.pop("n_layers")
    n_dense = min(cfg.count("first_k_dense_replace"), n_layers)
    q_rank = cfg.get("q_lora_rank")
    bias = cfg.flag("attention_bias")
    sizes.update(
        kv_lora_rank=cfg.size("kv_lora_rank"),
        d_rope=cfg.size("qk_rope_head_dim"),
        d_nope=cfg.size("qk_nope_head_dim"),
        d_v=cfg.size("v_head_dim"),
        n_experts=cfg.size("n_routed_experts"),
        top_k=cfg.size("num_experts_per_tok"),
        d_expert=cfg.size("moe_intermediate_size"),
    )
    if q_rank is not None:
        sizes["q_lora_rank"] = cfg.size("q_lora_rank")
    shared = cfg.count("n_shared_experts")
    if shared:
        sizes["d_shared"] = shared * sizes["d_expert"]
    if n_dense:
        sizes["d_ffn"] = cfg.size("intermediate_size")
    groups = _layer_groups(n_dense, n_layers - n_dense, sizes)
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(AttentionKind.MLA, qkv_bias=bias, out_bias=bias, q_lora=q_rank is not None),
        mlp=MLP(MLPKind.GATED, activation=cfg.text("hidden_act", "silu")),
        moe=MoE(shared_experts=bool(shared)),
        norm=Norm(NormKind.RMSNORM),
        positions=Positions.ROTARY,
        tied_embeddings=cfg.flag("tie_word_embeddings"),
        groups=groups,
    )
    return arch, sizes


def _derived_heads(cfg: _Config, d_ffn: int | None = None, n_kv_heads: int | None = None) -> dict[str, int]:
    """Sizes of a family whose head width is ``hidden // heads`` (checked) and whose K/V heads are
    ``n_kv_heads`` (all heads when None); ``d_ffn`` defaults to ``4 * hidden``."""
    sizes = _common(cfg)
    sizes["n_kv_heads"] = sizes["n_heads"] if n_kv_heads is None else n_kv_heads
    sizes["d_head"] = cfg.head_dim(sizes["d_model"], sizes["n_heads"], field="__none__")
    sizes["d_ffn"] = 4 * sizes["d_model"] if d_ffn is None else d_ffn
    return sizes


def _gpt2(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _derived_heads(cfg, cfg.size("n_inner", 4 * cfg.size("hidden_size")))
    sizes["n_ctx"] = cfg.size("max_position_embeddings")
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(qkv_bias=True, out_bias=True),
        mlp=MLP(MLPKind.STANDARD, bias=True, activation=cfg.text("activation_function", "gelu_new")),
        norm=Norm(NormKind.LAYERNORM, bias=True),
        positions=Positions.LEARNED,
        tied_embeddings=cfg.flag("tie_word_embeddings", True),
    )
    return arch, sizes


def _gpt_bigcode(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    arch, sizes = _gpt2(cfg)
    sizes["n_kv_heads"] = 1 if cfg.flag("multi_query", True) else sizes["n_heads"]
    return arch, sizes


def _gptj(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _derived_heads(cfg, cfg.size("n_inner", 4 * cfg.size("hidden_size")))
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(qkv_bias=False, out_bias=False),
        mlp=MLP(MLPKind.STANDARD, bias=True, activation=cfg.text("activation_function", "gelu_new")),
        norm=Norm(NormKind.LAYERNORM, bias=True),
        parallel_block=True,
        parallel_norms=1,
        positions=Positions.ROTARY,
        tied_embeddings=cfg.flag("tie_word_embeddings"),
        lm_head_bias=True,
    )
    return arch, sizes


def _gpt_neox(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _derived_heads(cfg, cfg.size("intermediate_size"))
    bias = cfg.flag("attention_bias", True)
    parallel = cfg.flag("use_parallel_residual", True)
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(qkv_bias=bias, out_bias=bias),
        mlp=MLP(MLPKind.STANDARD, bias=True, activation=cfg.text("hidden_act", "gelu")),
        norm=Norm(NormKind.LAYERNORM, bias=True),
        parallel_block=parallel,
        parallel_norms=2,
        positions=Positions.ROTARY,
        tied_embeddings=cfg.flag("tie_word_embeddings"),
    )
    return arch, sizes


def _falcon(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    heads = cfg.size("num_attention_heads")
    new_arch = cfg.flag("new_decoder_architecture")
    multi_query = not new_arch and cfg.flag("multi_query", True)
    if new_arch:
        kv = _kv_heads(cfg, heads, "num_kv_heads")
    else:
        kv = 1 if multi_query else heads
    sizes = _derived_heads(cfg, cfg.size("ffn_hidden_size", 4 * cfg.size("hidden_size")), kv)
    bias = cfg.flag("bias")
    parallel = cfg.flag("parallel_attn", True)
    n_ln = cfg.get("num_ln_in_parallel_attn")
    if n_ln is None:
        n_ln = 2 if new_arch else 1
    broadcast = not new_arch and kv < heads  # the original multi-query layout: one key/value head, not expanded
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(
            # multi-query cuts the key and value out by index even with one head (``[-2]``, ``[-1]``)
            qkv_bias=bias,
            out_bias=bias,
            kv_broadcast=broadcast,
            qkv_views=not new_arch and not multi_query,
        ),
        mlp=MLP(MLPKind.STANDARD, bias=bias, activation=cfg.text("activation", "gelu")),
        norm=Norm(NormKind.LAYERNORM, bias=True),
        parallel_block=parallel,
        parallel_norms=2 if (new_arch and n_ln == 2) else 1,
        positions=Positions.ALIBI if cfg.flag("alibi") else Positions.ROTARY,
        tied_embeddings=cfg.flag("tie_word_embeddings", True),
    )
    return arch, sizes


def _opt(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _derived_heads(cfg, cfg.size("ffn_dim"))
    if cfg.get("word_embed_proj_dim", sizes["d_model"]) != sizes["d_model"]:
        raise SymbolicError("word_embed_proj_dim", "an OPT embedding projection (OPT-350m) is not supported")
    sizes["n_ctx"] = cfg.size("max_position_embeddings")
    bias = cfg.flag("enable_bias", True)
    affine = cfg.flag("layer_norm_elementwise_affine", True)
    pre = cfg.flag("do_layer_norm_before", True)
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(qkv_bias=bias, out_bias=bias),
        mlp=MLP(MLPKind.STANDARD, bias=bias, activation=cfg.text("activation_function", "relu")),
        norm=Norm(NormKind.LAYERNORM, bias=True) if affine else Norm(NormKind.NONPARAMETRIC),
        norm_placement=NormPlacement.PRE if pre else NormPlacement.POST,
        final_norm=pre and not cfg.flag("_remove_final_layer_norm"),
        positions=Positions.LEARNED,
        position_offset=2,  # OPT's learned positions keep two extra rows
        tied_embeddings=cfg.flag("tie_word_embeddings", True),
    )
    return arch, sizes


def _bloom(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _derived_heads(cfg)  # BloomMLP's width is fixed at 4 * hidden
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(qkv_bias=True, out_bias=True),
        mlp=MLP(MLPKind.STANDARD, bias=True, activation="gelu"),
        norm=Norm(NormKind.LAYERNORM, bias=True),
        embedding_norm=True,
        positions=Positions.ALIBI,
        tied_embeddings=cfg.flag("tie_word_embeddings", True),
    )
    return arch, sizes


def _stablelm(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _derived_heads(cfg, cfg.size("intermediate_size"), _kv_heads(cfg, cfg.size("num_attention_heads")))
    qk = QKNorm.PER_HEAD if cfg.flag("qk_layernorm") else QKNorm.NONE
    parallel = cfg.flag("use_parallel_residual")
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(
            qkv_bias=cfg.flag("use_qkv_bias"),
            out_bias=False,
            qk_norm=qk,
            qk_norm_kind=Norm(NormKind.LAYERNORM, bias=False),
        ),
        mlp=MLP(MLPKind.GATED, activation=cfg.text("hidden_act", "silu")),
        norm=Norm(NormKind.LAYERNORM, bias=True),
        parallel_block=parallel,
        parallel_norms=1,
        positions=Positions.ROTARY,
        tied_embeddings=cfg.flag("tie_word_embeddings"),
    )
    return arch, sizes


def _starcoder2(cfg: _Config) -> tuple[Arch, dict[str, int]]:
    sizes = _derived_heads(cfg, cfg.size("intermediate_size"), _kv_heads(cfg, cfg.size("num_attention_heads")))
    bias = cfg.flag("use_bias", True)
    arch = Arch(
        family=cfg.model_type,
        attention=Attention(qkv_bias=bias, out_bias=bias),
        mlp=MLP(MLPKind.STANDARD, bias=bias, activation=cfg.text("hidden_act", "gelu_pytorch_tanh")),
        norm=Norm(NormKind.LAYERNORM, bias=True),
        positions=Positions.ROTARY,
        tied_embeddings=cfg.flag("tie_word_embeddings", True),
    )
    return arch, sizes


def _sliding(cfg: _Config, rules: FamilyRules) -> tuple[Sliding, int]:
    """Which layers slide: none without a window; those ``layer_types`` lists; every other one where
    the family alternates; none when ``use_sliding_window`` is off; else all."""
    if not cfg.get("sliding_window"):
        return Sliding.NONE, 0
    types = cfg.get("layer_types")
    if types:
        if not isinstance(types, list) or not all(isinstance(kind, str) for kind in types):
            raise SymbolicError("layer_types", f"must be a list of layer kinds, got {shown(types)}")
        return Sliding.LISTED, sum(1 for kind in types if kind == "sliding_attention")
    if rules.alternating_sliding:
        return Sliding.ALTERNATE, 0
    if cfg.get("use_sliding_window") is False:
        return Sliding.NONE, 0
    if rules.sliding_layers == "all":
        return Sliding.ALL, 0
    # the layer_types the config class derives (transformers 5.24's Qwen2/Qwen3 and Qwen2-MoE rules)
    n_layers = cfg.size("num_hidden_layers")
    below = cfg.get("max_window_layers")
    below = n_layers if below is None else integer("max_window_layers", below, "layers", low=0)
    if rules.sliding_layers == "from_max_window":
        listed = max(0, n_layers - below)
    elif rules.sliding_layers == "even_below_max_window":
        listed = sum(1 for i in range(min(n_layers, below)) if i % 2 == 0)
    else:
        raise SymbolicError("sliding_window", f"no rule for the sliding layers of {cfg.model_type}")
    return (Sliding.ALL, 0) if listed == n_layers else (Sliding.LISTED, listed)


def _rotary_fraction(cfg: _Config, sizes: Mapping[str, int]) -> Fraction:
    """The share of a head's width rotary positions rotate: ``rotary_dim / d_head`` (GPT-J), else
    ``rotary_pct`` or ``partial_rotary_factor``, else all of it."""
    if "d_head" not in sizes:
        return Fraction(1)
    if cfg.get("rotary_dim"):
        return Fraction(cfg.size("rotary_dim"), sizes["d_head"])
    # transformers 5 keeps the fraction in rope_parameters (GPT-NeoX's class default there: 0.25)
    rope = cfg.get("rope_parameters") or {}
    if not isinstance(rope, Mapping):
        raise SymbolicError("rope_parameters", f"must be an object, got {shown(rope)}")
    field = "rotary_pct" if cfg.get("rotary_pct") is not None else "partial_rotary_factor"
    pct = cfg.get(field, rope.get("partial_rotary_factor", 1.0)) or 1.0
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct <= 1:
        raise SymbolicError(field, f"must be a fraction from 0 (excluded) to 1, got {shown(pct)}")
    return Fraction(int(sizes["d_head"] * float(pct)), sizes["d_head"])


def _run_time_facts(cfg: _Config, arch: Arch, sizes: Mapping[str, int]) -> Arch:
    """What the implementation does in a training step that the activation formulas need, read from
    the config: dropout probabilities, partial rotary, the sliding-window pattern, soft-capping and
    top-k normalisation (:mod:`symbolic.families` names the family's config fields)."""
    rules = FAMILY.get(cfg.model_type, FamilyRules())

    def probability(name: str | None) -> float:
        return 0.0 if name is None else float(cfg.get(name) or 0.0)

    dropout = Dropout(
        probability(rules.attn_dropout), probability(rules.resid_dropout), probability(rules.embd_dropout)
    )
    sliding, listed = _sliding(cfg, rules)
    attention = _replace(
        arch.attention, softcap=bool(cfg.get("attn_logit_softcapping")), sliding=sliding, sliding_layers=listed
    )
    moe = arch.moe
    if moe is not None:
        # read only where the config class declares it (Mixtral's router always renormalizes)
        declared = "norm_topk_prob" in cfg.defaults
        moe = _replace(moe, normalize_topk=bool(cfg.get("norm_topk_prob")) if declared else True)
    return _replace(
        arch,
        attention=attention,
        moe=moe,
        dropout=dropout,
        rotary_fraction=_rotary_fraction(cfg, sizes),
        final_softcap=bool(cfg.get("final_logit_softcapping")),
    )


def _replace(arch: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(arch, **changes)


_MAPPERS: dict[str, Callable[[_Config], tuple[Arch, dict[str, int]]]] = {
    "llama": _llama,
    "mistral": _llama,
    "mixtral": _mixtral,
    "qwen2": _qwen2,
    "qwen2_moe": _qwen2_moe,
    "qwen3": _qwen3,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "phi3": _phi3,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "gptj": _gptj,
    "falcon": _falcon,
    "opt": _opt,
    "bloom": _bloom,
    "gpt_bigcode": _gpt_bigcode,
    "olmo": _olmo,
    "stablelm": _stablelm,
    "starcoder2": _starcoder2,
    "deepseek_v3": _deepseek_v3,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_MAPPERS))


def from_hf_config(config: Mapping[str, Any], name: str | None = None) -> Model:
    """Read a Hugging Face ``config.json`` (as a dict) into a :class:`Model`.

    Raises :class:`SymbolicError` naming the field for an unsupported ``model_type`` (listing
    the supported ones), a missing size or a value of the wrong kind.
    """
    if not isinstance(config, Mapping):
        raise SymbolicError("config", "must be a JSON object")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in _MAPPERS:
        raise SymbolicError(
            "model_type",
            f"unsupported {shown(model_type)}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}",
        )
    cfg = _Config(model_type, config)
    arch, sizes = _MAPPERS[model_type](cfg)
    for key, value in cfg.resolved().items():  # dropout rates the activation rules read
        if (key.endswith(("dropout", "_pdrop", "dropout_prob"))) and value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise SymbolicError(key, f"must be a probability from 0 to 1, got {shown(value)}")
    window = cfg.get("sliding_window")
    if window is not None and window is not False:
        integer("sliding_window", window, "positions", low=0)  # 0: no window, as transformers reads it
    arch = _run_time_facts(cfg, arch, sizes)
    if arch.attention.sliding is not Sliding.NONE:  # the sliding layers' window bounds what they keep
        sizes["window"] = integer("sliding_window", window, "positions")
    label = name or str(config.get("_name_or_path") or model_type)
    return Model(label, arch, sizes, config=cfg.resolved())
