"""Identities the activation terms must satisfy (hypothesis), and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic import symbols as S
from symbolic.cli import main
from symbolic.formulas.activations import ActivationOptions
from symbolic.hf import from_hf_config
from symbolic.model import activation_terms
from symbolic.numeric import evaluate
from symbolic.registry import load_model

OPTIONS = st.builds(
    ActivationOptions,
    dtype=st.sampled_from(["fp32", "fp16", "bf16"]),
    attention=st.sampled_from(["eager", "sdpa"]),
    recompute=st.sampled_from(["none", "full"]),
    device=st.sampled_from(["cpu", "cuda"]),
    dropout=st.sampled_from([None, 0.0, 0.1]),
)
MODELS = st.sampled_from(["llama2-7b", "mixtral-8x7b", "gpt2", "qwen3-8b", "deepseek-v3", "falcon-7b", "opt-1.3b"])


@settings(max_examples=30, deadline=None)
@given(MODELS, OPTIONS, st.sampled_from(["exact", "megatron", "basic"]))
def test_activations_are_linear_in_batch(name, options, convention):
    model = load_model(name)
    if convention == "basic" and (options.recompute != "none" or model.arch.is_moe or name == "deepseek-v3"):
        return
    if options.attention == "sdpa" and name in ("gemma2-9b", "bloom-7b1"):
        return
    total = activation_terms(model, convention, options).total.subs(S.seq, 512)
    # affine: the batch-free part is what is kept once (rotary tables, the loss's scalar)
    assert sp.expand(sp.diff(total, S.batch, 2)) == 0
    assert sp.expand(sp.diff(total, S.batch)) != 0


@settings(max_examples=20, deadline=None)
@given(OPTIONS)
def test_gqa_with_all_kv_heads_is_mha(options):
    """Llama 3 8B shares 8 key/value heads among 32; its terms with n_kv_heads set to n_heads give the
    bytes of the same model built from a config with as many key/value heads as heads (MHA)."""
    gqa = load_model("llama3-8b")
    assert gqa.sizes["n_kv_heads"] < gqa.sizes["n_heads"]
    mha = from_hf_config({**gqa.config, "num_key_value_heads": gqa.config["num_attention_heads"]})
    values = {**mha.sizes, "batch": 2, "seq": 128}
    as_mha = activation_terms(gqa, "exact", options).total.subs(S.n_kv_heads, S.n_heads)
    assert evaluate(as_mha, values) == evaluate(activation_terms(mha, "exact", options).total, values)
    own = activation_terms(gqa, "exact", options).total
    # SDPA keeps the shared heads (eager repeats them to all heads; with b = 1 it keeps one head's views)
    if S.n_kv_heads in own.subs(S.batch, 2).free_symbols:
        assert evaluate(as_mha, values) != evaluate(own, {**gqa.sizes, "batch": 2, "seq": 128})


def test_shared_rotary_is_counted_once_not_per_layer():
    model = load_model("llama2-7b")
    terms = activation_terms(model, "exact", ActivationOptions())
    assert terms.term("shared.rotary").count == 1 and S.n_layers not in terms.term("shared.rotary").total.free_symbols


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["gpt2", "--batch", "1", "--seq", "2048"], "--seq"),  # past GPT-2's 1024 learned positions
        (["gemma2-9b", "--batch", "1", "--seq", "64", "--attention", "sdpa"], "--attention"),
        (["llama2-7b", "--batch", "1", "--seq", "64", "--attention", "flash", "--device", "cpu"], "--attention"),
        (["llama2-7b", "--batch", "1", "--seq", "64", "--recompute", "selective"], "--recompute"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, field):
    code, _, err = run(capsys, "memory", *argv)
    assert code == 2 and err.strip().startswith(f"error: {field}:") and len(err.strip().splitlines()) == 1


def test_batch_zero_is_refused(capsys):
    code, _, err = run(capsys, "memory", "llama2-7b", "--batch", "0", "--seq", "64")
    assert code == 2 and "--batch" in err and "Traceback" not in err


def test_json_activations_object(capsys):
    code, out, _ = run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096", "--json", "--recompute", "full")
    data = json.loads(out)
    act = data["activations"]
    assert code == 0 and act["total"] == data["per_device"]["activations"]
    assert act["total"] == sum(t["bytes"] for t in act["terms"])
    assert act["per_layer"]["block"] == 2 * 4096 * 4096  # the checkpointed layer input, bf16
    transients = {t["path"]: t["bytes"] for t in data["terms"] if t["category"] == "transient"}
    assert data["per_device"]["transient"] == max(transients.values())
    assert "transient.recompute.block" in transients
