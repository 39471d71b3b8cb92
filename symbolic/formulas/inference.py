"""The KV cache of inference, as byte terms.

The KV cache holds, per layer and per cached token, the keys and values of every key/value head
(MHA, GQA, MQA through ``n_kv_heads``), or DeepSeek's compressed latent and shared rotary key
(MLA); layers with a sliding window keep at most ``window`` tokens. Weight formats (the other half
of inference memory) live in :mod:`symbolic.formulas.weights`; the composition in
:mod:`symbolic.inference`.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from .. import symbols as S
from ..arch import Arch, AttentionKind, Model, Sliding
from ..numeric.values import rational
from ..terms import Breakdown, Quantity, Term

__all__ = ["KV_DTYPES", "sliding_layers", "kv_cache_terms"]

BYTES = Quantity.BYTES

# bytes per cached key/value element
KV_DTYPES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


def sliding_layers(arch: Arch) -> sp.Expr:
    """How many layers attend within a sliding window (layers, a SymPy expression in the layer counts).

    From the Arch's pattern: none; all; every other one (Gemma 2: the even-numbered layers, so
    ``ceiling(n_layers/2)``); or the number a config's ``layer_types`` lists.
    """
    total = sp.Add(*(g.count for g in arch.groups))
    pattern = arch.attention.sliding
    if pattern is Sliding.ALL:
        return total
    if pattern is Sliding.ALTERNATE:
        return sp.ceiling(total / 2)
    if pattern is Sliding.LISTED:
        return sp.Integer(arch.attention.sliding_layers)
    return sp.Integer(0)


def kv_cache_terms(model: Model, kv_bytes: int | Fraction = 2, tp: bool = False) -> Breakdown:
    """The KV cache of ``model`` for ``batch`` sequences of ``seq`` tokens (bytes; per device with ``tp``).

    ``kv_bytes`` is the bytes of one cached element (1 gives elements). Standard attention caches
    a key and a value of ``n_kv_heads * d_head`` per layer and token; MLA caches its
    ``kv_lora_rank`` latent and the ``d_rope`` shared rotary key (DeepSeek-V2, section 2.1).
    With ``tp``, standard caches are split over the key/value heads (``/tp``); the MLA latent is
    replicated on every tensor-parallel device.
    """
    arch: Arch = model.arch
    size = rational(kv_bytes)
    groups = arch.groups
    total_layers = sp.Add(*(g.count for g in groups))
    sliding = sliding_layers(arch)
    out: list[Term] = []

    def add(path: str, width: sp.Expr, count: sp.Expr, tokens: sp.Expr, what: str, source: str, split: bool) -> None:
        expr = size * S.batch * tokens * width
        if split and tp:
            expr = expr / S.tp
        out.append(Term(path, expr, BYTES, what, count=count, source=source, tags=frozenset({"kv_cache"})))

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
        return Breakdown(BYTES, tuple(out))
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
    return Breakdown(BYTES, tuple(out))
