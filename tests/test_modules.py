"""Module tests that specify: terms, arch, parallel and hf, each against a fact stated outside the code."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import symbols as S
from symbolic.arch import Arch, LayerGroup, Model, MoE
from symbolic.errors import SymbolicError
from symbolic.hf import from_hf_config
from symbolic.model import parameter_counts, parameters
from symbolic.numeric import evaluate
from symbolic.parallel import Parallelism
from symbolic.registry import load_model
from symbolic.terms import Breakdown, Quantity, Split, Term, path_matches

LLAMA = load_model("llama2-7b")

# ---- terms ---------------------------------------------------------------------------------------


def test_adding_unlike_quantities_raises() -> None:
    params = Breakdown(Quantity.PARAMETERS, (Term("a", S.d_model, Quantity.PARAMETERS, "a"),))
    nbytes = Breakdown(Quantity.BYTES, (Term("b", S.d_model, Quantity.BYTES, "b"),))
    with pytest.raises(TypeError):
        params + nbytes


def test_a_term_in_the_wrong_breakdown_raises() -> None:
    with pytest.raises(TypeError):
        Breakdown(Quantity.PARAMETERS, (Term("b", S.d_model, Quantity.BYTES, "b"),))


def test_duplicate_paths_raise() -> None:
    t = Term("a", S.d_model, Quantity.PARAMETERS, "a")
    with pytest.raises(ValueError):
        Breakdown(Quantity.PARAMETERS, (t, t))


@pytest.mark.parametrize(
    "pattern, path, matches",
    [
        ("attention", "block.attention.q_proj.weight", True),
        ("block.attention", "block.attention.q_proj.weight", True),
        ("atten", "block.attention.q_proj.weight", False),
        ("q_proj", "block.attention.q_proj.weight", True),
        ("attention.weight", "block.attention.q_proj.weight", False),
        ("all", "anything.at.all", True),
    ],
)
def test_path_patterns_match_whole_segments(pattern: str, path: str, matches: bool) -> None:
    assert path_matches(pattern, path) is matches


def test_grouping_keeps_the_transformers_count() -> None:
    # 6,738,415,616: what transformers builds for Llama-2-7B (model card and meta-device count)
    grouped = parameters(LLAMA).grouped(2)
    assert evaluate(grouped.total, LLAMA.sizes) == 6_738_415_616
    assert all(p.count(".") <= 1 for p in grouped.paths)


# ---- arch ----------------------------------------------------------------------------------------


def test_arch_refuses_what_no_model_has() -> None:
    with pytest.raises(SymbolicError):
        Arch("llama", groups=())
    with pytest.raises(SymbolicError):
        Arch("llama", groups=(LayerGroup("block", S.n_layers, moe=True),))  # MoE layers need the MoE
    with pytest.raises(SymbolicError):
        Arch("llama", rotary_fraction=Fraction(3, 2))
    Arch("mixtral", moe=MoE(), groups=(LayerGroup("block", S.n_layers, moe=True),))


def test_model_validates_its_sizes() -> None:
    with pytest.raises(SymbolicError) as err:
        Model("x", LLAMA.arch, {**LLAMA.sizes, "n_kv_heads": 3})
    assert err.value.field == "n_kv_heads"
    with pytest.raises(SymbolicError) as err:
        Model("x", LLAMA.arch, {k: v for k, v in LLAMA.sizes.items() if k != "d_ffn"})
    assert err.value.field == "d_ffn"


# ---- parallel ------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8, 16, 32]), pp=st.sampled_from([1, 2, 4, 8, 16, 32]))
def test_sharded_parameters_add_up_to_the_model(tp: int, pp: int) -> None:
    # the devices of every stage hold each split tensor once across tp, and each replicated one (norms)
    # once per stage: together, the whole model (untied Llama 2, so no copy of the embedding)
    parallel = Parallelism(tp=tp, pp=pp)
    values = {**LLAMA.sizes, **parallel.values()}
    held = 0
    for stage in range(pp):
        for t in parallel.device_terms(LLAMA.arch, parameters(LLAMA), stage):
            held += evaluate(t.total, values) * (tp if t.split is not Split.NONE else 1)
    assert held == 6_738_415_616


def test_tied_pipeline_keeps_a_copy_on_the_last_stage() -> None:
    gpt2 = load_model("gpt2")
    parallel = Parallelism(pp=2)
    last = parallel.device_terms(gpt2.arch, parameters(gpt2), 1)
    assert "lm_head.tied_copy.weight" in last.paths
    assert "lm_head.tied_copy.weight" not in parallel.device_terms(gpt2.arch, parameters(gpt2), 0).paths


def test_parallel_names_the_field_it_refuses() -> None:
    with pytest.raises(SymbolicError) as err:
        Parallelism(tp=3).check(LLAMA)
    assert err.value.field == "tp" and "allowed" in err.value.message
    with pytest.raises(SymbolicError) as err:
        Parallelism(zero=5)
    assert err.value.field == "zero"


# ---- hf ------------------------------------------------------------------------------------------


def test_hf_reads_aliases_and_defaults() -> None:
    # GPT-2's config says n_embd / n_layer / n_head; transformers maps them to hidden_size & co.
    model = from_hf_config({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 10})
    assert model.sizes["d_model"] == 64 and model.sizes["n_layers"] == 2 and model.sizes["n_heads"] == 4
    assert model.sizes["n_ctx"] == 1024  # GPT2Config's default n_positions


def test_hf_errors_name_the_config_field() -> None:
    with pytest.raises(SymbolicError) as err:
        from_hf_config({"model_type": "nope"})
    assert err.value.field == "model_type"
    with pytest.raises(SymbolicError) as err:
        from_hf_config({"model_type": "llama", "hidden_size": -64})
    assert err.value.field == "hidden_size"


def test_counts_follow_the_model_cards() -> None:
    # published totals from the model cards: Mistral 7B v0.1 7,241,732,096; GPT-2 small 124,439,808
    assert parameter_counts(load_model("mistral-7b")).total == 7_241_732_096
    assert parameter_counts(load_model("gpt2")).total == 124_439_808
