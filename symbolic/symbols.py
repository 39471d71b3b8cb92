"""The registry of named symbols: every formula in symbolic is written in these.

Each symbol is declared once, with its meaning, unit, LaTeX form and SymPy assumptions
(positive integers). The declaration order is the argument order of every compiled function.
The registry itself imports no SymPy: a symbol's SymPy object is made when first asked for
(``symbol(name)``, ``S.n_layers``), so loading a model's structure and sizes stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sympy as sp

__all__ = ["SymbolInfo", "REGISTRY", "ORDER", "info", "symbol", "by_symbol"]


@dataclass(frozen=True)
class SymbolInfo:
    """One named symbol: the words that explain it and (:attr:`symbol`) its SymPy object."""

    name: str
    latex: str
    meaning: str
    unit: str
    group: str

    @property
    def symbol(self) -> sp.Symbol:
        """The SymPy symbol (a positive integer), made on first use."""
        return _make(self.name)


@cache
def _make(name: str) -> sp.Symbol:
    import sympy as sp

    return sp.Symbol(name, positive=True, integer=True)


REGISTRY: dict[str, SymbolInfo] = {}


def _declare(name: str, latex: str, meaning: str, unit: str, group: str) -> None:
    REGISTRY[name] = SymbolInfo(name, latex, meaning, unit, group)


def __getattr__(name: str) -> Any:
    """``S.n_layers`` and the like: the registered symbol of that name (SymPy is imported then)."""
    if name in REGISTRY:
        return _make(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# [sizes of the model]
_declare("n_vocab", "V", "vocabulary size (rows of the token embedding)", "tokens", "model")
_declare("d_model", "h", "model width (residual stream)", "features", "model")
_declare("n_layers", "L", "number of decoder layers", "layers", "model")
_declare("n_heads", "a", "attention (query) heads", "heads", "model")
_declare("n_kv_heads", "g", "key/value heads (GQA groups; 1 is MQA)", "heads", "model")
_declare("d_head", "d_h", "width of one attention head", "features", "model")
_declare("d_ffn", "f", "MLP inner width of a dense layer", "features", "model")
_declare("n_ctx", "n_{ctx}", "learned position table length", "positions", "model")
# [mixture of experts]
_declare("n_experts", "E", "routed experts per MoE layer", "experts", "moe")
_declare("top_k", "k", "experts each token is routed to", "experts", "moe")
_declare("d_expert", "f_e", "MLP inner width of one routed expert", "features", "moe")
_declare("d_shared", "f_s", "MLP inner width of the shared expert(s), all together", "features", "moe")
_declare("n_dense_layers", "L_d", "dense layers (in a model that also has MoE layers)", "layers", "moe")
_declare("n_moe_layers", "L_e", "MoE layers", "layers", "moe")
# [multi-head latent attention, DeepSeek-V2/V3]
_declare("q_lora_rank", "d_c'", "query compression width (MLA)", "features", "mla")
_declare("kv_lora_rank", "d_c", "key/value compression width (MLA)", "features", "mla")
_declare("d_rope", "d_h^R", "decoupled rotary key/query width per head (MLA)", "features", "mla")
_declare("d_nope", "d_h^N", "non-rotary query/key width per head (MLA)", "features", "mla")
_declare("d_v", "d_v", "value width per head (MLA)", "features", "mla")
# [fine-tuning]
_declare("lora_rank", "r", "LoRA adapter rank", "features", "finetune")
# [workload]
_declare("batch", "b", "micro-batch size per device", "sequences", "workload")
_declare("seq", "s", "sequence length", "tokens", "workload")
# [parallelism]
_declare("tp", "t", "tensor-parallel degree", "devices", "parallel")
_declare("pp", "p", "pipeline-parallel degree", "devices", "parallel")
_declare("dp", "N_d", "data-parallel degree", "devices", "parallel")
_declare("cp", "c", "context-parallel degree", "devices", "parallel")
_declare("ep", "e", "expert-parallel degree", "devices", "parallel")

# [memory and time] (a new topic adds its symbols above this line, one section each)
_declare("window", "w", "sliding attention window", "tokens", "workload")
_declare("n_microbatches", "m", "micro-batches per pipeline flush", "micro-batches", "parallel")
_declare("interleave", "v", "model chunks per pipeline stage (interleaved schedule)", "chunks", "parallel")
_declare("tokens", "D", "training tokens", "tokens", "workload")

ORDER: tuple[str, ...] = tuple(REGISTRY)


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
    entry = REGISTRY.get(getattr(sym, "name", ""))
    if entry is None or entry.symbol != sym:
        raise KeyError(sym)
    return entry
