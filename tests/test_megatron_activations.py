"""The megatron convention against Korthikanti et al. 2022: Table 2 forms and the GPT-3 figures.

Published forms (the paper's Table 2) and per-layer bytes (its GPT-3 figures) are typed here as
the paper states them; the convention's terms are built per operation, so agreement is a check.
"""

from __future__ import annotations

import pytest
import sympy as sp

from symbolic import symbols as S
from symbolic.formulas.activations import ActivationOptions, Layout
from symbolic.model import activation_terms
from symbolic.registry import load_model

s, b, h, a, t = S.seq, S.batch, S.d_model, S.n_heads, S.tp
GPT3 = {"seq": 2048, "batch": 1, "d_model": 12288, "n_heads": 96, "tp": 8}

# (sequence parallel, recompute, Table 2 form, GPT-3 bytes per layer)
TABLE2 = [
    (False, "none", s * b * h * (10 + 24 / t + 5 * a * s / (h * t)), 578_813_952),
    (True, "none", s * b * h * (34 / t + 5 * a * s / (h * t)), 358_612_992),
    (False, "selective", s * b * h * (10 + 24 / t), 327_155_712),
    (True, "selective", s * b * h * 34 / t, 106_954_752),
    (False, "full", s * b * h * 2, 50_331_648),
]


def layer_expr(sequence_parallel: bool, recompute: str) -> sp.Expr:
    model = load_model("gpt3-175b")
    terms = activation_terms(
        model, "megatron", ActivationOptions(recompute=recompute), Layout(sequence_parallel=sequence_parallel)
    )
    return sp.Add(*(t_.expr for t_ in terms if t_.count == S.n_layers))


@pytest.mark.parametrize(("sp_", "recompute", "form", "gpt3"), TABLE2)
def test_table2_forms_and_gpt3_figures(sp_, recompute, form, gpt3):
    expr = layer_expr(sp_, recompute)
    assert sp.simplify(expr - form) == 0
    assert expr.subs({S.symbol(k): v for k, v in GPT3.items()}) == gpt3


def test_no_parallelism_is_sbh_34_plus_5as_over_h():
    expr = layer_expr(False, "none").subs(t, 1)
    assert sp.expand(expr - s * b * h * (34 + 5 * a * s / h)) == 0
    assert expr.subs({S.symbol(k): v for k, v in GPT3.items()}) == 2_868_903_936


def test_selective_drops_exactly_the_5as2b_part():
    for sp_ in (False, True):
        diff = sp.simplify(layer_expr(sp_, "none") - layer_expr(sp_, "selective"))
        assert sp.simplify(diff - 5 * a * s**2 * b / t) == 0


def test_sequence_parallel_divides_the_replicated_10sbh_by_t():
    diff = sp.simplify(layer_expr(False, "none") - layer_expr(True, "none"))
    assert sp.simplify(diff - 10 * s * b * h * (1 - 1 / t)) == 0


def test_first_stage_totals_and_interleave_factor():
    """Eq.5 / Eq.6 over L=96 layers: 32.0625 GiB and 9.5625 GiB; interleaving multiplies by 1 + 7/24."""
    model = load_model("gpt3-175b")
    values = {S.symbol(k): v for k, v in GPT3.items()} | {S.n_layers: 96, S.pp: 8, S.interleave: 3}
    for recompute, gib in (("none", sp.Rational(320625, 10000)), ("selective", sp.Rational(95625, 10000))):
        plain = activation_terms(
            model, "megatron", ActivationOptions(recompute=recompute), Layout(sequence_parallel=True, pp=8)
        )
        layers = sum(t_.total for t_ in plain if t_.count == S.n_layers)
        assert layers.subs(values) == gib * 2**30
        inter = activation_terms(
            model,
            "megatron",
            ActivationOptions(recompute=recompute, interleave=3),
            Layout(sequence_parallel=True, pp=8),
        )
        layers_i = sum(t_.total for t_ in inter if t_.count == S.n_layers)
        assert layers_i.subs(values) == gib * 2**30 * (1 + sp.Rational(7, 24))
        assert not any(t_.path.startswith(("head.", "loss.")) for t_ in plain)  # output layer: last stage only
