"""Published figures for model states, reproduced from the per-tensor terms.

Sources: ZeRO (arXiv 1910.02054) §3.1, §5 and Table 1; the
Ultra-Scale Playbook's 16N/20N table; Megatron-LM's 18 bytes per parameter; the design note's 16N
for llama2-7b; Dettmers et al.'s 8-bit Adam and QLoRA's NF4 constants.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import pytest
import sympy as sp

from symbolic.formulas.states import get_optimizer, get_recipe, state_terms
from symbolic.formulas.weights import WEIGHT_FORMATS, tensor_bytes
from symbolic.memory import memory
from symbolic.numeric import evaluate
from symbolic.parallel import Parallelism
from symbolic.registry import load_model
from symbolic.terms import Breakdown, Quantity, Term

GB, GIB = 10**9, 2**30


def _params(n: int) -> Breakdown:
    """A model of ``n`` parameters in one tensor: the papers' Psi."""
    return Breakdown(
        Quantity.PARAMETERS, (Term("all.weight", sp.Integer(n), Quantity.PARAMETERS, "Psi", shape=(sp.Integer(n),)),)
    )


def _states(n: int, recipe: str = "mixed", optimizer: str = "adam", dp: int = 1, zero: int = 0) -> sp.Rational:
    terms = state_terms(_params(n), get_recipe(recipe), get_optimizer(optimizer), Parallelism(dp=dp, zero=zero))
    return evaluate(terms.total, {"dp": dp, "ep": 1})


def _paper_roundings(x: float) -> set[float]:
    """The ways ZeRO's Table 1 rounds: 3 significant figures, 1-2 decimals, or integer truncation."""
    d = Decimal(repr(x))
    out = {float(math.trunc(x))}
    out |= {float(d.quantize(Decimal(q), ROUND_HALF_UP)) for q in ("0.1", "0.01")}
    digits = 3 - d.adjusted() - 1  # 3 significant figures
    out.add(float(d.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)))
    return out


# ZeRO Table 1: per-device GB, columns P_os, P_os+g, P_os+g+p; rows N_d
ZERO_TABLE_1 = {
    7_500_000_000: {
        1: (120, 120, 120),
        4: (52.5, 41.3, 30),
        16: (35.6, 21.6, 7.5),
        64: (31.4, 16.6, 1.88),
        256: (30.4, 15.4, 0.47),
        1024: (30.1, 15.1, 0.12),
    },
    128_000_000_000: {
        1: (2048, 2048, 2048),
        4: (896, 704, 512),
        16: (608, 368, 128),
        64: (536, 284, 32),
        256: (518, 263, 8),
        1024: (513, 257, 2),
    },
    1_000_000_000_000: {
        1: (16000, 16000, 16000),
        4: (7000, 5500, 4000),
        16: (4750, 2875, 1000),
        64: (4187, 2218, 250),
        256: (4046, 2054, 62.5),
        1024: (4011, 2013, 15.6),
    },
}


@pytest.mark.parametrize("psi", sorted(ZERO_TABLE_1))
def test_zero_table_1(psi):
    for n_d, row in ZERO_TABLE_1[psi].items():
        for stage, published in zip((1, 2, 3), row, strict=True):
            ours = float(_states(psi, dp=n_d, zero=stage)) / GB
            assert any(math.isclose(published, r, rel_tol=1e-9) for r in _paper_roundings(ours)), (
                psi,
                n_d,
                stage,
                ours,
            )


def test_zero_16_psi_and_gpt2_1_5b():
    psi = 1_500_000_000
    assert _states(psi) == 16 * psi
    weights = state_terms(_params(psi), get_recipe("mixed"), get_optimizer("adam")).select("weights")
    assert evaluate(weights.total, {}) == 3 * GB  # "3 GB of fp16 weights"
    assert _states(psi) == 24 * GB  # "at least 24 GB of model states"
    # the real GPT-2 XL (1.56B) is above that floor
    assert memory(load_model("gpt2-xl"), optimizer="adam").bytes("states") > 24 * GB


def test_zero_limits_and_derivative():
    psi, n_d = sp.Symbol("Psi", positive=True), sp.Symbol("dp", positive=True, integer=True)
    one = Breakdown(Quantity.PARAMETERS, (Term("all.weight", psi, Quantity.PARAMETERS, "Psi", shape=(psi,)),))
    for stage, limit in ((1, 4 * psi), (2, 2 * psi), (3, 0)):
        total = state_terms(one, get_recipe("mixed"), get_optimizer("adam"), Parallelism(dp=2, zero=stage)).total
        assert sp.limit(total, n_d, sp.oo) == limit
        if stage == 3:
            assert sp.simplify(sp.diff(total, n_d) + 16 * psi / n_d**2) == 0


PLAYBOOK = {1e9: (16, 20), 7e9: (112, 140), 70e9: (1120, 1400), 405e9: (6480, 8100)}


@pytest.mark.parametrize("n", sorted(PLAYBOOK))
def test_ultrascale_playbook_16n_20n(n):
    plain, accum = PLAYBOOK[n]
    assert _states(int(n), "mixed") / GB == plain
    assert _states(int(n), "fp32") / GB == plain
    assert _states(int(n), "mixed-fp32-accum") / GB == accum
    # ZeRO-2 with fp32 accumulation: the accumulation buffer is sharded too ("adds 4 Psi / N_d")
    assert _states(int(n), "mixed-fp32-accum", dp=8, zero=2) - _states(int(n), "mixed", dp=8, zero=2) == 4 * int(n) // 8


def test_megatron_18_bytes_per_parameter():
    model = load_model("llama3-8b")
    n = 8_030_261_248  # Meta's Llama-3-8B parameter count
    assert memory(model, precision="mixed-fp32-grads").bytes("states") == 18 * n


def test_design_note_16n_for_llama2_7b():
    """The note's "104G": 16 bytes x 6,738,415,616 is 107.8 GB, 100.4 GiB, neither 104."""
    n = 6_738_415_616  # the count transformers builds for Llama-2-7B
    for recipe in ("mixed", "fp32"):
        states = memory(load_model("llama2-7b"), precision=recipe).bytes("states")
        assert states == 16 * n
        assert round(states / GB, 1) == 107.8 and round(states / GIB, 1) == 100.4


def test_transformer_math_optimizer_bytes():
    """Transformer Math 101: AdamW 12, 8-bit 6, SGD momentum 8 bytes per parameter (with the fp32 copy)."""
    n = 1 << 30
    master = 4 * n
    opt = {name: _states(n, "mixed", name) - 4 * n - master for name in ("adamw", "adam-8bit", "sgd-momentum")}
    assert opt["adamw"] == 8 * n
    assert opt["sgd-momentum"] == 4 * n
    # 8-bit: 1 byte per moment, plus one fp32 constant per block of 2048 (Dettmers et al. 2021)
    assert opt["adam-8bit"] == 2 * n + 2 * 4 * n // 2048


def test_qlora_nf4_constants():
    """QLoRA §3: NF4 with 64-blocks costs 32/64 = 0.5 extra bits per parameter, 0.127 when double quantized."""
    h = 1 << 14
    matrix = Term("block.mlp.up_proj.weight", sp.Integer(h * h), Quantity.PARAMETERS, "m", shape=(h, h))
    plain = tensor_bytes(matrix, WEIGHT_FORMATS["nf4"])
    dq = tensor_bytes(matrix, WEIGHT_FORMATS["nf4-dq"])
    assert (plain * 8 / (h * h) - 4) == sp.Rational(1, 2)
    assert round(float(dq * 8 / (h * h) - 4), 3) == 0.127
