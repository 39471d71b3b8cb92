"""Identities the parameter formulas must satisfy, for any sizes (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import symbols as S
from symbolic.arch import (
    MLP,
    Arch,
    Attention,
    LayerGroup,
    MLPKind,
    MoE,
    Norm,
    NormKind,
    NormPlacement,
    Positions,
    QKNorm,
)
from symbolic.formulas.params import parameter_terms
from symbolic.hf import from_hf_config
from symbolic.model import parameter_counts, parameters
from symbolic.numeric import evaluate
from symbolic.registry import load_model

WIDTHS = (S.d_model, S.d_ffn, S.d_head, S.d_expert, S.d_shared)


@st.composite
def archs(draw):
    """Random dense or MoE architectures built from every flag the Arch has."""
    norm_kind = draw(st.sampled_from(list(NormKind)))
    moe = draw(st.booleans())
    parallel = draw(st.booleans())
    return Arch(
        family="test",
        attention=Attention(
            qkv_bias=draw(st.booleans()),
            out_bias=draw(st.booleans()),
            qk_norm=draw(st.sampled_from(list(QKNorm))),
        ),
        mlp=MLP(draw(st.sampled_from(list(MLPKind))), bias=draw(st.booleans())),
        moe=MoE(shared_experts=draw(st.booleans()), shared_expert_gate=draw(st.booleans())) if moe else None,
        norm=Norm(norm_kind, bias=norm_kind is NormKind.LAYERNORM and draw(st.booleans())),
        norm_placement=draw(st.sampled_from(list(NormPlacement))),
        parallel_block=parallel,
        parallel_norms=draw(st.sampled_from([1, 2])),
        final_norm=draw(st.booleans()),
        embedding_norm=draw(st.booleans()),
        positions=draw(st.sampled_from(list(Positions))),
        tied_embeddings=draw(st.booleans()),
        lm_head_bias=draw(st.booleans()),
        groups=(LayerGroup("block", S.n_layers, moe=moe),),
    )


@settings(max_examples=60, deadline=None)
@given(archs())
def test_tied_equals_untied_minus_one_embedding(arch):
    untied = parameter_terms(replace(arch, tied_embeddings=False)).total
    tied = parameter_terms(replace(arch, tied_embeddings=True)).total
    assert sp.expand(untied - tied) == S.n_vocab * S.d_model


@settings(max_examples=60, deadline=None)
@given(archs())
def test_every_weight_matrix_scales_with_the_square_of_the_widths(arch):
    k = sp.Symbol("k", positive=True)
    counts = {S.n_heads, S.n_kv_heads}
    checked = 0
    for term in parameter_terms(arch):
        if term.shape is None or len(term.shape) != 2:
            continue
        # a matrix between two widths (heads may multiply a width; vocab, experts' router, gates do not count)
        if all(d.free_symbols & set(WIDTHS) and not d.free_symbols - set(WIDTHS) - counts for d in term.shape):
            scaled = term.expr.xreplace({w: k * w for w in WIDTHS})
            assert sp.simplify(scaled / term.expr) == k**2, term.path
            checked += 1
    assert checked >= 4  # q, k, v, o at least


@settings(max_examples=40, deadline=None)
@given(archs())
def test_each_weight_term_is_its_shape(arch):
    # two descriptions of one tensor, written apart: the formula and the module's shape must agree
    shaped = [t for t in parameter_terms(arch) if t.shape is not None]
    assert shaped
    for t in shaped:
        assert sp.expand(t.expr - t.copies * sp.Mul(*t.shape)) == 0, t.path


@settings(max_examples=40, deadline=None)
@given(archs())
def test_total_does_not_depend_on_how_a_uniform_stack_is_grouped(arch):
    if arch.is_moe:
        return
    split = replace(arch, groups=(LayerGroup("first", S.n_dense_layers), LayerGroup("second", S.n_moe_layers)))
    whole = parameter_terms(arch).total.xreplace({S.n_layers: S.n_dense_layers + S.n_moe_layers})
    assert sp.expand(parameter_terms(split).total - whole) == 0


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 64).map(lambda x: 2 * x),
    st.integers(1, 8),
    st.sampled_from([4, 8, 16]),
    st.integers(1, 512),
    st.integers(1, 3),
)
def test_gqa_with_as_many_kv_heads_as_heads_equals_mha(vocab, heads, head_dim, ffn, layers):
    base = {
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": heads * head_dim,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
    }
    mha = from_hf_config(base)  # no num_key_value_heads: multi-head attention
    gqa = from_hf_config(base | {"num_key_value_heads": heads})
    assert parameter_counts(mha).total == parameter_counts(gqa).total
    symbolic_gqa = parameters(gqa).total.xreplace({S.n_kv_heads: S.n_heads})
    assert evaluate(symbolic_gqa, mha.sizes) == parameter_counts(mha).total


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 10**5),
    st.integers(1, 10**4),
    st.integers(1, 128),
    st.integers(1, 256),
    st.integers(1, 10**5),
    st.integers(1, 200),
)
def test_basic_equals_the_notes_closed_form(n_vocab, d_model, n_head, d_head, d_ffn, n_blocks):
    # The design note, section 1, as printed:
    # N(model) = n_vocab*d_model + n_blocks*(4(d_model*d_head*n_head) + 2(d_model*d_ffn)) + d_model*n_vocab
    note = n_vocab * d_model + n_blocks * (4 * (d_model * d_head * n_head) + 2 * (d_model * d_ffn)) + d_model * n_vocab
    model = from_hf_config(
        {
            "model_type": "llama",
            "vocab_size": n_vocab,
            "hidden_size": d_model,
            "num_attention_heads": n_head,
            "head_dim": d_head,
            "intermediate_size": d_ffn,
            "num_hidden_layers": n_blocks,
        }
    )
    assert parameter_counts(model, parameters(model, "basic")).total == note


def test_llama2_7b_in_all_three_conventions():
    model = load_model("llama2-7b")
    assert parameter_counts(model, parameters(model, "basic")).total == 5_295_308_800
    assert parameter_counts(model, parameters(model, "basic-gated")).total == 6_738_149_376
    assert parameter_counts(model).total == 6_738_415_616


def test_convention_difference_is_a_visible_term_that_sums_to_the_gap():
    from symbolic.model import convention_difference

    model = load_model("llama2-7b")
    diff = convention_difference(model, "exact", "basic")
    gap = parameter_counts(model).total - parameter_counts(model, parameters(model, "basic")).total
    assert evaluate(diff.total, model.sizes) == gap
    assert "block.mlp" in diff.paths  # the third matrix
    assert "final_norm.weight" in diff.paths  # norms the note leaves out


def test_a_126_layer_model_builds_the_same_terms_as_a_2_layer_one():
    big = load_model("llama3.1-405b")
    small = big.with_sizes(n_layers=2)
    assert parameters(big).terms == parameters(small).terms  # layers stay a symbol: nothing unrolled
    per_layer = sum(v for p, v in parameter_counts(small).per_term.items() if p.startswith("block.")) // 2
    assert parameter_counts(big).total - parameter_counts(small).total == 124 * per_layer


def test_frozen_and_trainable_partition_the_total():
    model = load_model("llama2-7b")
    counts = parameter_counts(model, parameters(model, freeze=["embedding"]))
    assert counts.frozen == 32000 * 4096
    assert counts.trainable + counts.frozen == counts.total == 6_738_415_616


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 64), st.sampled_from([["q_proj"], ["q_proj", "v_proj"], ["mlp"], ["all"]]))
def test_lora_trainable_count_is_rank_times_in_plus_out(rank, targets):
    model = load_model("mistral-7b")
    terms = parameters(model, lora_targets=targets)
    counts = parameter_counts(model, terms, lora_rank=rank)
    base = parameter_counts(model)
    from symbolic.terms import path_matches

    expected = 0
    for t in parameters(model):
        if t.shape is not None and len(t.shape) == 2 and any(path_matches(p, t.path) for p in targets):
            d_out, d_in = (int(evaluate(d, model.sizes)) for d in t.shape)
            expected += int(evaluate(t.count * t.copies, model.sizes)) * rank * (d_in + d_out)
    assert counts.trainable == expected
    assert counts.frozen == base.total
