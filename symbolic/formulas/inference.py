"""Inference memory: weights stored at a chosen precision or quantization, and the KV cache.

Weight formats say how many bytes one parameter tensor takes, including quantization constants
(int8 row scales, int4 group scales and zero points, NF4 block constants, optionally double
quantized). Only the weight matrices inside the layers are quantized; embeddings, the output
layer, norms and biases stay in 16 bits, as bitsandbytes, GPTQ and AWQ do.

The KV cache holds, per layer and per cached token, the keys and values of every key/value head
(MHA, GQA, MQA through ``n_kv_heads``), or DeepSeek's compressed latent and shared rotary key
(MLA); layers with a sliding window keep at most ``window`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from .. import symbols as S
from ..arch import Arch, AttentionKind, Model
from ..errors import SymbolicError
from ..terms import Breakdown, Quantity, Term

__all__ = [
    "WeightFormat",
    "WEIGHT_FORMATS",
    "KV_DTYPES",
    "get_weight_format",
    "quantizable",
    "tensor_bytes",
    "weight_terms",
    "sliding_layers",
    "kv_cache_terms",
    "InferenceMemory",
    "inference_memory",
]

B = Quantity.BYTES


@dataclass(frozen=True)
class WeightFormat:
    """How one weight is stored: ``bits`` per element, plus constants per block or group.

    ``block``: elements per block of the flattened tensor sharing ``block_bytes`` of constants
    (bitsandbytes NF4); ``group``: input features per group sharing ``group_bytes`` per output
    row (GPTQ/AWQ int4); ``row_bytes``: bytes of constants per output row (LLM.int8).
    ``second_block``: with double quantization, blocks per second-level fp32 constant.
    """

    name: str
    bits: int
    description: str
    source: str = ""
    block: int | None = None
    block_bytes: Fraction = Fraction(0)
    second_block: int | None = None
    group: int | None = None
    group_bytes: Fraction = Fraction(0)
    row_bytes: Fraction = Fraction(0)

    @property
    def quantized(self) -> bool:
        """True for a format that only applies to the weight matrices inside the layers."""
        return self.bits < 16


WEIGHT_FORMATS: dict[str, WeightFormat] = {
    f.name: f
    for f in (
        WeightFormat("fp32", 32, "32-bit floats"),
        WeightFormat("fp16", 16, "16-bit floats"),
        WeightFormat("bf16", 16, "bfloat16"),
        WeightFormat(
            "int8",
            8,
            "8-bit integers with one fp32 scale per output row",
            "Dettmers et al. 2022, LLM.int8() (arXiv 2208.07339); bitsandbytes Int8Params.SCB",
            row_bytes=Fraction(4),
        ),
        WeightFormat(
            "int4",
            4,
            "4-bit integers in groups of 128 input features, each with an fp16 scale and a 4-bit zero point",
            "Frantar et al. 2022, GPTQ (arXiv 2210.17323); Lin et al. 2023, AWQ (arXiv 2306.00978)",
            group=128,
            group_bytes=Fraction(5, 2),
        ),
        WeightFormat(
            "nf4",
            4,
            "4-bit NormalFloat in blocks of 64 with one fp32 absmax each",
            "Dettmers et al. 2023, QLoRA (arXiv 2305.14314), section 3",
            block=64,
            block_bytes=Fraction(4),
        ),
        WeightFormat(
            "nf4-dq",
            4,
            "4-bit NormalFloat, blocks of 64 with an 8-bit absmax, and one fp32 constant per 256 absmax",
            "Dettmers et al. 2023, QLoRA (arXiv 2305.14314), double quantization: 0.127 bits per parameter",
            block=64,
            block_bytes=Fraction(1),
            second_block=256,
        ),
    )
}

# bytes per cached key/value element
KV_DTYPES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


def get_weight_format(name: str, option: str = "--dtype") -> WeightFormat:
    """The weight format called ``name``; a clear error names the allowed ones."""
    try:
        return WEIGHT_FORMATS[name]
    except KeyError:
        raise SymbolicError(option, f"unknown {name!r}; allowed: {', '.join(WEIGHT_FORMATS)}") from None


def quantizable(term: Term) -> bool:
    """True for a weight matrix inside the layers (not an embedding or the output layer)."""
    head = term.path.split(".")[0]
    return (
        term.path.endswith(".weight")
        and term.shape is not None
        and len(term.shape) == 2
        and head not in ("embedding", "lm_head", "lora")
    )


def _r(x: Fraction) -> sp.Rational:
    return sp.Rational(x.numerator, x.denominator)


def tensor_bytes(term: Term, fmt: WeightFormat, fallback: WeightFormat | None = None) -> sp.Expr:
    """Bytes of one instance of parameter term ``term`` stored in ``fmt`` (bytes, constants included).

    Tensors a quantized format does not apply to (see :func:`quantizable`) are stored in
    ``fallback`` (default bf16).
    """
    if fmt.quantized and not quantizable(term):
        fmt = fallback or WEIGHT_FORMATS["bf16"]
    if not fmt.quantized:
        return sp.Rational(fmt.bits, 8) * term.expr
    assert term.shape is not None
    d_out, d_in = term.shape
    numel = d_out * d_in
    per_matrix = sp.Rational(fmt.bits, 8) * numel + _r(fmt.row_bytes) * d_out
    if fmt.block is not None:
        blocks = sp.ceiling(numel / fmt.block)
        per_matrix += _r(fmt.block_bytes) * blocks
        if fmt.second_block is not None:
            per_matrix += 4 * sp.ceiling(blocks / fmt.second_block)
    if fmt.group is not None:
        per_matrix += _r(fmt.group_bytes) * d_out * sp.ceiling(d_in / fmt.group)
    return term.copies * per_matrix


def weight_terms(device_params: Breakdown, fmt: WeightFormat, category: str = "weights") -> Breakdown:
    """Bytes of the weights one device holds, one term per parameter term (bytes).

    ``device_params`` are the parameter terms already cut to one device
    (:meth:`symbolic.parallel.Parallelism.device_terms`).
    """
    out = []
    for t in device_params:
        used = fmt if (not fmt.quantized or quantizable(t)) else WEIGHT_FORMATS["bf16"]
        out.append(
            Term(
                path=f"{category}.{t.path}",
                expr=tensor_bytes(t, fmt),
                quantity=B,
                description=f"{t.description}: {used.description}",
                count=t.count,
                source=used.source,
                expert=t.expert,
                trainable=t.trainable,
                tags=t.tags | {category},
            )
        )
    return Breakdown(B, tuple(out))


def sliding_layers(model: Model) -> sp.Expr:
    """How many layers attend within a sliding window (layers, a SymPy expression in the layer counts).

    From the config's ``layer_types`` when given; Gemma 2 alternates (the even-numbered layers
    slide); otherwise every layer slides when the config sets ``sliding_window`` (and does not
    turn ``use_sliding_window`` off), else none.
    """
    cfg = model.config
    total = sp.Add(*(g.count for g in model.arch.groups))
    if not cfg.get("sliding_window"):
        return sp.Integer(0)
    if cfg.get("layer_types"):
        return sp.Integer(sum(1 for kind in cfg["layer_types"] if kind == "sliding_attention"))
    if model.arch.family == "gemma2":
        return sp.ceiling(total / 2)
    if cfg.get("use_sliding_window") is False:
        return sp.Integer(0)
    return total


def kv_cache_terms(model: Model, kv_bytes: int | Fraction = 2, tp: bool = False) -> Breakdown:
    """The KV cache of ``model`` for ``batch`` sequences of ``seq`` tokens (bytes; per device with ``tp``).

    ``kv_bytes`` is the bytes of one cached element (1 gives elements). Standard attention caches
    a key and a value of ``n_kv_heads * d_head`` per layer and token; MLA caches its
    ``kv_lora_rank`` latent and the ``d_rope`` shared rotary key (DeepSeek-V2, section 2.1).
    With ``tp``, standard caches are split over the key/value heads (``/tp``); the MLA latent is
    replicated on every tensor-parallel device.
    """
    arch: Arch = model.arch
    size = sp.Rational(Fraction(kv_bytes).numerator, Fraction(kv_bytes).denominator)
    groups = arch.groups
    total_layers = sp.Add(*(g.count for g in groups))
    sliding = sliding_layers(model)
    out: list[Term] = []

    def add(path: str, width: sp.Expr, count: sp.Expr, tokens: sp.Expr, what: str, source: str, split: bool) -> None:
        expr = size * S.batch * tokens * width
        if split and tp:
            expr = expr / S.tp
        out.append(Term(path, expr, B, what, count=count, source=source, tags=frozenset({"kv_cache"})))

    if arch.attention.kind is AttentionKind.MLA:
        src = "DeepSeek-V2 (arXiv 2405.04434), section 2.1.2 and Table 1: (d_c + d_h^R) l elements per token"
        for g in groups:
            add(
                f"kv_cache.{g.name}.latent",
                S.kv_lora_rank + S.d_rope,
                g.count,
                S.seq,
                "compressed key/value latent and the shared rotary key",
                src,
                False,
            )
        return Breakdown(B, tuple(out))
    src = "Kwon et al. 2023, vLLM (arXiv 2309.06180), section 3: 2 x layers x key/value width x bytes per token"
    width = S.n_kv_heads * S.d_head
    window_tokens = sp.Min(S.seq, S.window)
    for g in groups:
        if sliding == 0:
            parts = [(g.name, g.count, S.seq, "")]
        elif sp.simplify(sliding - total_layers) == 0:
            parts = [(f"{g.name}.sliding", g.count, window_tokens, " (sliding window)")]
        else:
            # alternating layers: the share of this group that slides
            share = sliding / total_layers
            parts = [
                (f"{g.name}.sliding", g.count * share, window_tokens, " (sliding-window layers)"),
                (g.name, g.count * (1 - share), S.seq, " (full-attention layers)"),
            ]
        for name, count, tokens, what in parts:
            add(f"kv_cache.{name}.keys", width, count, tokens, f"cached keys{what}", src, True)
            add(f"kv_cache.{name}.values", width, count, tokens, f"cached values{what}", src, True)
    return Breakdown(B, tuple(out))


@dataclass(frozen=True)
class InferenceMemory:
    """Weights and KV cache one device holds to serve a model (bytes), with the values to evaluate at."""

    model: Model
    weights: Breakdown
    kv_cache: Breakdown
    values: dict[str, int]
    dtype: str
    kv_dtype: str
    tp: int

    def bytes(self, which: str) -> int:
        """``weights``, ``kv_cache`` or ``total`` per device, exact (bytes; fractions rounded up)."""
        from ..memory import to_int_bytes
        from ..numeric import evaluate

        exprs = {"weights": self.weights.total, "kv_cache": self.kv_cache.total}
        exprs["total"] = exprs["weights"] + exprs["kv_cache"]
        return to_int_bytes(evaluate(exprs[which], self.values))


def inference_memory(
    model: Model, batch: int, seq: int, dtype: str = "bf16", kv_dtype: str = "bf16", tp: int = 1
) -> InferenceMemory:
    """Weights stored in ``dtype`` and the KV cache of ``batch`` x ``seq`` tokens in ``kv_dtype`` (bytes per device).

    ``tp`` splits both over tensor-parallel devices (the MLA latent cache is replicated).
    """
    from ..model import parameters
    from ..parallel import Parallelism

    fmt = get_weight_format(dtype, "--dtype")
    if kv_dtype not in KV_DTYPES:
        raise SymbolicError("--kv-dtype", f"unknown {kv_dtype!r}; allowed: {', '.join(KV_DTYPES)}")
    for option, value in (("--batch", batch), ("--seq", seq)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SymbolicError(option, f"must be a positive integer, got {value!r}")
    parallel = Parallelism(tp=tp)
    parallel.check(model)
    device = parallel.device_terms(model.arch, parameters(model), 0)
    values = {**model.sizes, **parallel.values(), "batch": batch, "seq": seq}
    window = model.config.get("sliding_window")
    if isinstance(window, int) and window > 0:
        values["window"] = window
    kv = kv_cache_terms(model, KV_DTYPES[kv_dtype], tp=True)
    return InferenceMemory(model, weight_terms(device, fmt), kv, values, dtype, kv_dtype, tp)
