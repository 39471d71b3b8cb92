"""Weight formats: how many bytes one parameter tensor takes, quantization constants included.

int8 row scales (LLM.int8), int4 group scales and zero points (GPTQ/AWQ), NF4 block constants,
optionally double quantized (QLoRA). Only the weight matrices inside the layers are quantized;
embeddings, the output layer, norms and biases stay in 16 bits, as bitsandbytes, GPTQ and AWQ do.
Used by the training states (a QLoRA base) and by inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from ..errors import SymbolicError
from ..numeric.values import rational
from ..terms import Breakdown, Quantity, Term

__all__ = ["WeightFormat", "WEIGHT_FORMATS", "get_weight_format", "quantizable", "tensor_bytes", "weight_terms"]

BYTES = Quantity.BYTES


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


def get_weight_format(name: str, option: str = "dtype") -> WeightFormat:
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
    per_matrix = sp.Rational(fmt.bits, 8) * numel + rational(fmt.row_bytes) * d_out
    if fmt.block is not None:
        blocks = sp.ceiling(numel / fmt.block)
        per_matrix += rational(fmt.block_bytes) * blocks
        if fmt.second_block is not None:
            per_matrix += 4 * sp.ceiling(blocks / fmt.second_block)
    if fmt.group is not None:
        per_matrix += rational(fmt.group_bytes) * d_out * sp.ceiling(d_in / fmt.group)
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
                quantity=BYTES,
                description=f"{t.description}: {used.description}",
                count=t.count,
                source=used.source,
                expert=t.expert,
                trainable=t.trainable,
                tags=t.tags | {category},
            )
        )
    return Breakdown(BYTES, tuple(out))
