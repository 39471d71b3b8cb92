"""The registry of named symbols: every formula in symbolic is written in these.

Each symbol is declared once, with its meaning, unit, LaTeX form and SymPy assumptions
(positive integers). The declaration order is the argument order of every compiled function.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["SymbolInfo", "REGISTRY", "ORDER", "info", "symbol", "by_symbol"]


@dataclass(frozen=True)
class SymbolInfo:
    """One named symbol: its SymPy object and the words that explain it."""

    name: str
    latex: str
    meaning: str
    unit: str
    symbol: sp.Symbol
    group: str


REGISTRY: dict[str, SymbolInfo] = {}


def _declare(name: str, latex: str, meaning: str, unit: str, group: str) -> sp.Symbol:
    sym = sp.Symbol(name, positive=True, integer=True)
    REGISTRY[name] = SymbolInfo(name, latex, meaning, unit, sym, group)
    return sym


# [sizes of the model]
n_vocab = _declare("n_vocab", "V", "vocabulary size (rows of the token embedding)", "tokens", "model")
d_model = _declare("d_model", "h", "model width (residual stream)", "features", "model")
n_layers = _declare("n_layers", "L", "number of decoder layers", "layers", "model")
n_heads = _declare("n_heads", "a", "attention (query) heads", "heads", "model")
n_kv_heads = _declare("n_kv_heads", "g", "key/value heads (GQA groups; 1 is MQA)", "heads", "model")
d_head = _declare("d_head", "d_h", "width of one attention head", "features", "model")
d_ffn = _declare("d_ffn", "f", "MLP inner width of a dense layer", "features", "model")
n_ctx = _declare("n_ctx", "n_{ctx}", "learned position table length", "positions", "model")
# [mixture of experts]
n_experts = _declare("n_experts", "E", "routed experts per MoE layer", "experts", "moe")
top_k = _declare("top_k", "k", "experts each token is routed to", "experts", "moe")
d_expert = _declare("d_expert", "f_e", "MLP inner width of one routed expert", "features", "moe")
d_shared = _declare("d_shared", "f_s", "MLP inner width of the shared expert(s), all together", "features", "moe")
n_dense_layers = _declare(
    "n_dense_layers", "L_d", "dense layers (in a model that also has MoE layers)", "layers", "moe"
)
n_moe_layers = _declare("n_moe_layers", "L_e", "MoE layers", "layers", "moe")
# [multi-head latent attention, DeepSeek-V2/V3]
q_lora_rank = _declare("q_lora_rank", "d_c'", "query compression width (MLA)", "features", "mla")
kv_lora_rank = _declare("kv_lora_rank", "d_c", "key/value compression width (MLA)", "features", "mla")
d_rope = _declare("d_rope", "d_h^R", "decoupled rotary key/query width per head (MLA)", "features", "mla")
d_nope = _declare("d_nope", "d_h^N", "non-rotary query/key width per head (MLA)", "features", "mla")
d_v = _declare("d_v", "d_v", "value width per head (MLA)", "features", "mla")
# [fine-tuning]
lora_rank = _declare("lora_rank", "r", "LoRA adapter rank", "features", "finetune")
# [workload]
batch = _declare("batch", "b", "micro-batch size per device", "sequences", "workload")
seq = _declare("seq", "s", "sequence length", "tokens", "workload")
# [parallelism]
tp = _declare("tp", "t", "tensor-parallel degree", "devices", "parallel")
pp = _declare("pp", "p", "pipeline-parallel degree", "devices", "parallel")
dp = _declare("dp", "N_d", "data-parallel degree", "devices", "parallel")
cp = _declare("cp", "c", "context-parallel degree", "devices", "parallel")
ep = _declare("ep", "e", "expert-parallel degree", "devices", "parallel")

# [memory and time] (a new topic adds its symbols above this line, one section each)
window = _declare("window", "w", "sliding attention window", "tokens", "workload")
n_microbatches = _declare("n_microbatches", "m", "micro-batches per pipeline flush", "micro-batches", "parallel")
interleave = _declare("interleave", "v", "model chunks per pipeline stage (interleaved schedule)", "chunks", "parallel")
tokens = _declare("tokens", "D", "training tokens", "tokens", "workload")

ORDER: tuple[str, ...] = tuple(REGISTRY)
_BY_SYMBOL = {entry.symbol: entry for entry in REGISTRY.values()}


def info(name: str) -> SymbolInfo:
    """Return the registry entry of the symbol called ``name``; raises KeyError listing names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown symbol {name!r}; known: {', '.join(ORDER)}") from None


def symbol(name: str) -> sp.Symbol:
    """Return the SymPy symbol called ``name`` (a positive integer symbol)."""
    return info(name).symbol


def by_symbol(sym: sp.Symbol) -> SymbolInfo:
    """Return the registry entry of a SymPy symbol declared here."""
    return _BY_SYMBOL[sym]
