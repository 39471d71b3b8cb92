"""The structure of a transformer stack: flags and enums, no numbers.

An :class:`Arch` says which kinds of parts a model has (attention kind, MLP kind, norms, biases,
positions, tying, MoE, layer groups); a :class:`Model` pairs it with the sizes (a mapping from
symbol names to integers). Formulas read only the Arch; numbers come in at evaluation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import symbols as S
from .errors import SymbolicError

if TYPE_CHECKING:
    import sympy as sp

__all__ = [
    "AttentionKind",
    "QKNorm",
    "NormKind",
    "NormPlacement",
    "MLPKind",
    "Positions",
    "Sliding",
    "Dropout",
    "Norm",
    "Attention",
    "MLP",
    "MoE",
    "LayerGroup",
    "Arch",
    "Model",
]


class AttentionKind(enum.Enum):
    """Standard attention (MHA, GQA and MQA through ``n_kv_heads``) or DeepSeek's latent one."""

    STANDARD = "standard"
    MLA = "mla"


class QKNorm(enum.Enum):
    """Norms on queries and keys: none, one over a head's width shared by all heads (Qwen3),
    or a separate one per head (StableLM)."""

    NONE = "none"
    HEAD = "head"
    PER_HEAD = "per_head"


class NormKind(enum.Enum):
    """LayerNorm (weight, optional bias), RMSNorm (weight) or a parameter-free LayerNorm (OLMo)."""

    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"
    NONPARAMETRIC = "nonparametric"


class NormPlacement(enum.Enum):
    """Where a sequential block's norms sit: before each sub-block, after it, or both (Gemma 2)."""

    PRE = "pre"
    POST = "post"
    SANDWICH = "sandwich"


class MLPKind(enum.Enum):
    """Two matrices (up, down) or gated three (gate, up, down: SwiGLU, GeGLU)."""

    STANDARD = "standard"
    GATED = "gated"


class Sliding(enum.Enum):
    """Which layers attend within a sliding window: none, all, every other one (Gemma 2: the even
    layers), or the ones a config's ``layer_types`` lists (``Attention.sliding_layers`` of them)."""

    NONE = "none"
    ALL = "all"
    ALTERNATE = "alternate"
    LISTED = "listed"


class Positions(enum.Enum):
    """How positions enter: a learned table, rotary, ALiBi, or none."""

    LEARNED = "learned"
    ROTARY = "rotary"
    ALIBI = "alibi"
    NONE = "none"


@dataclass(frozen=True)
class Norm:
    """A normalisation layer's kind and whether it has a bias."""

    kind: NormKind = NormKind.RMSNORM
    bias: bool = False

    def __post_init__(self) -> None:
        if self.bias and self.kind is not NormKind.LAYERNORM:
            raise SymbolicError("norm.bias", "only a LayerNorm can have a bias")


@dataclass(frozen=True)
class Attention:
    """An attention block: kind, biases, q/k norms; ``q_lora`` says whether MLA compresses q."""

    kind: AttentionKind = AttentionKind.STANDARD
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: QKNorm = QKNorm.NONE
    qk_norm_kind: Norm = field(default_factory=Norm)
    q_lora: bool = True
    softcap: bool = False  # the scores are soft-capped with tanh before the softmax (Gemma 2)
    sliding: Sliding = Sliding.NONE  # which layers attend within a window of ``window`` tokens
    sliding_layers: int = 0  # with Sliding.LISTED: how many layers the config lists as sliding
    # the keys/values keep fewer heads than the queries and the products broadcast them (Falcon's original
    # multi-query attention): SDPA has no fused kernel for that and takes its math path
    kv_broadcast: bool = False
    # q, k and v are slices (views) of one fused projection output, not copies cut out by index (Falcon's
    # original layout without multi-query; multi-query cuts the key and value out by index even with one head)
    qkv_views: bool = False


@dataclass(frozen=True)
class MLP:
    """An MLP block: two or three matrices, biases, and the activation function's name."""

    kind: MLPKind = MLPKind.GATED
    bias: bool = False
    activation: str = "silu"


@dataclass(frozen=True)
class MoE:
    """What a mixture-of-experts layer holds besides its routed experts.

    ``shared_experts``: an always-on gated MLP of width ``d_shared`` (Qwen2-MoE, DeepSeek);
    ``shared_expert_gate``: a 1-output gate on it (Qwen2-MoE); ``router_bias``: a bias on the router.
    """

    shared_experts: bool = False
    shared_expert_gate: bool = False
    router_bias: bool = False
    normalize_topk: bool = True  # the top-k routing weights are renormalized to sum to 1


@dataclass(frozen=True)
class Dropout:
    """Dropout probabilities the implementation applies in training (from the config): on the attention
    probabilities, on the residual branches, on the embeddings."""

    attention: float = 0.0
    residual: float = 0.0
    embedding: float = 0.0


_NO_COUNT: Any = object()  # the count a layer group is made without (refused)


class _Count:
    """The ``count`` of a :class:`LayerGroup`: a registered symbol is kept by name (``spec``), so a
    model's structure is built and compared without importing SymPy; the symbol is made when read."""

    def __get__(self, group: Any, owner: Any = None) -> Any:
        if group is None:
            return _NO_COUNT
        spec = group.__dict__["spec"]
        return S.symbol(spec) if isinstance(spec, str) else spec

    def __set__(self, group: Any, value: Any) -> None:
        if getattr(value, "is_Symbol", False) and str(value) in S.REGISTRY and S.symbol(str(value)) == value:
            value = str(value)
        if value is _NO_COUNT or value is None or (isinstance(value, str) and value not in S.REGISTRY):
            raise SymbolicError("groups", f"a layer group's count must be a registered symbol, got {value!r}")
        group.__dict__["spec"] = value


@dataclass(frozen=True)
class LayerGroup:
    """Layers of one kind, ``count`` of them (a symbol): ``moe`` says whether their MLP is MoE.

    ``count`` may be given as a registered symbol or its name (``"n_layers"``), or any SymPy
    expression; reading it gives the SymPy object.
    """

    name: str
    count: sp.Expr = _Count()
    moe: bool = False

    @property
    def spec(self) -> Any:
        """The count as given: a registered symbol's name, or a SymPy expression."""
        return self.__dict__["spec"]

    def __repr__(self) -> str:
        return f"LayerGroup(name={self.name!r}, count={self.spec!r}, moe={self.moe!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayerGroup):
            return NotImplemented
        return (self.name, self.spec, self.moe) == (other.name, other.spec, other.moe)

    def __hash__(self) -> int:
        return hash((self.name, self.spec, self.moe))


@dataclass(frozen=True)
class Arch:
    """The structure of a decoder (or encoder) stack. No sizes: those live in :class:`Model`."""

    family: str
    attention: Attention = field(default_factory=Attention)
    mlp: MLP = field(default_factory=MLP)
    moe: MoE | None = None
    norm: Norm = field(default_factory=Norm)
    norm_placement: NormPlacement = NormPlacement.PRE
    parallel_block: bool = False
    parallel_norms: int = 1
    final_norm: bool = True
    embedding_norm: bool = False
    positions: Positions = Positions.ROTARY
    position_offset: int = 0
    tied_embeddings: bool = False
    lm_head: bool = True
    lm_head_bias: bool = False
    groups: tuple[LayerGroup, ...] = (LayerGroup("block", "n_layers"),)
    rotary_fraction: Fraction = Fraction(1)  # the share of each head's width that rotary positions rotate
    final_softcap: bool = False  # the logits are soft-capped with tanh (Gemma 2)
    dropout: Dropout = field(default_factory=Dropout)

    def __post_init__(self) -> None:
        if not self.groups:
            raise SymbolicError("groups", "a stack needs at least one layer group")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise SymbolicError("groups", f"layer group names must differ: {names}")
        if any(g.moe for g in self.groups) and self.moe is None:
            raise SymbolicError("moe", "a MoE layer group needs the MoE description")
        if self.parallel_block and self.parallel_norms not in (1, 2):
            raise SymbolicError("parallel_norms", "a parallel block has 1 or 2 norms")
        if self.position_offset < 0:
            raise SymbolicError("position_offset", "must be 0 or more")
        if not 0 < self.rotary_fraction <= 1:
            raise SymbolicError("rotary_fraction", f"must be in (0, 1], got {self.rotary_fraction}")

    @property
    def is_moe(self) -> bool:
        """True when some layer group routes tokens to experts."""
        return any(g.moe for g in self.groups)


def required_sizes(arch: Arch) -> tuple[str, ...]:
    """Names of the sizes the parameter formulas of ``arch`` need."""
    need = ["n_vocab", "d_model", "n_heads"]
    need += [g.spec if isinstance(g.spec, str) else str(g.count) for g in arch.groups]
    if arch.attention.kind is AttentionKind.MLA:
        need += ["kv_lora_rank", "d_rope", "d_nope", "d_v"]
        if arch.attention.q_lora:
            need.append("q_lora_rank")
    else:
        need += ["n_kv_heads", "d_head"]
    if any(not g.moe for g in arch.groups):
        need.append("d_ffn")
    if arch.is_moe:
        need += ["n_experts", "top_k", "d_expert"]
        if arch.moe is not None and arch.moe.shared_experts:
            need.append("d_shared")
    if arch.positions is Positions.LEARNED:
        need.append("n_ctx")
    return tuple(dict.fromkeys(need))


@dataclass(frozen=True)
class Model:
    """A named model: its structure and its sizes (symbol name -> positive integer).

    ``config`` is the Hugging Face config it was read from, with transformers' defaults applied
    (dropout probabilities, position limits, sliding windows and such live there).
    ``hand_written`` is False for a model type without hand-written rules: its Arch is a placeholder
    (the family is the ``model_type``) and only a convention that reads the config answers for it.
    """

    name: str
    arch: Arch
    sizes: Mapping[str, int]
    published_params: int | None = None
    source: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    hand_written: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        clean: dict[str, int] = {}
        for key, value in self.sizes.items():
            if key not in S.REGISTRY:
                raise SymbolicError(key, f"unknown size; known: {', '.join(S.ORDER)}")
            if isinstance(value, bool) or not isinstance(value, int):
                raise SymbolicError(key, f"must be a positive integer, got {value!r}")
            if value <= 0:
                raise SymbolicError(key, f"must be a positive integer, got {value}")
            clean[key] = value
        missing = [n for n in required_sizes(self.arch) if n not in clean] if self.hand_written else []
        if missing:
            raise SymbolicError(missing[0], f"missing size (needed: {', '.join(missing)})")
        object.__setattr__(self, "sizes", MappingProxyType(clean))
        if self.hand_written:
            _check_shapes(self.arch, clean)

    def with_sizes(self, **changes: int) -> Model:
        """A copy with some sizes changed (validated again)."""
        return replace(self, sizes={**self.sizes, **changes})

    @property
    def size_cases(self) -> tuple[bool, bool, bool, bool]:
        """The facts of the sizes that pick which exact activation rule applies, read at the model's own
        sizes rather than kept as symbols: one kv head; as many kv heads as heads; an odd rotary width;
        a rotary width below the head width.

        >>> from symbolic.registry import load_model
        >>> load_model("llama2-7b").size_cases  # 32 kv heads of 32, rotating all 128 dims of each
        (False, True, False, False)
        """
        kv, heads, d_head = self.sizes.get("n_kv_heads"), self.sizes.get("n_heads"), self.sizes.get("d_head")
        rotated = self.rotated_width
        return (kv == 1, kv == heads, bool(rotated % 2), d_head is not None and rotated < d_head)

    @property
    def rotated_width(self) -> Fraction:
        """The dims of each head rotary positions rotate (elements): ``d_head`` times the rotary
        fraction, 0 without a head width.

        >>> from symbolic.registry import load_model
        >>> load_model("pythia-6.9b").rotated_width  # a quarter of 128
        Fraction(32, 1)
        """
        d_head = self.sizes.get("d_head")
        return d_head * self.arch.rotary_fraction if d_head else Fraction(0)

    @property
    def rotary_table_fraction(self) -> Fraction:
        """The share of ``d_head`` rotary cos/sin tables cover: ``arange(0, r, 2)`` frequencies, each twice, so
        an odd rotated width ``r`` gives tables ``r + 1`` wide (``inv_freq`` holds half of that).

        >>> from symbolic.registry import load_model
        >>> m = load_model("pythia-6.9b")  # rotates 32 of 128 dims; at a head width of 12, 3 dims: tables 4 wide
        >>> m.rotary_table_fraction, m.with_sizes(d_head=12).rotary_table_fraction
        (Fraction(1, 4), Fraction(1, 3))
        """
        fraction, d_head = self.arch.rotary_fraction, self.sizes.get("d_head")
        if d_head and self.rotated_width % 2 == 1:
            return fraction + Fraction(1, d_head)
        return fraction

    @property
    def substitutions(self) -> dict[sp.Symbol, sp.Integer]:
        """The sizes as a SymPy substitution map."""
        import sympy as sp

        return {S.symbol(k): sp.Integer(v) for k, v in self.sizes.items()}


def _check_shapes(arch: Arch, sizes: Mapping[str, int]) -> None:
    if arch.attention.kind is AttentionKind.STANDARD:
        heads, kv = sizes["n_heads"], sizes["n_kv_heads"]
        if kv > heads or heads % kv:
            raise SymbolicError("n_kv_heads", f"{kv} must divide the number of attention heads ({heads})")
    if arch.is_moe and sizes["top_k"] > sizes["n_experts"]:
        raise SymbolicError("top_k", f"{sizes['top_k']} exceeds n_experts ({sizes['n_experts']})")
