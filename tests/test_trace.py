"""The traced convention against truth from outside: transformers' own parameter count (meta
device) and the storages autograd really saves on real tensors (``tests/harness/measure.py``).

Each case traces a small model once on fake tensors (batch and sequence symbolic, layers grouped)
and evaluates the formula at sizes the trace never ran at (b = 1 and b > 1, s on both sides of a
sliding window), then builds the real model and measures. Byte-exact is required.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("transformers")

from symbolic import symbols as S  # noqa: E402
from symbolic.errors import SymbolicError  # noqa: E402
from symbolic.trace import TraceOptions, trace  # noqa: E402
from symbolic.trace import cache as trace_cache  # noqa: E402

from .harness.measure import measure_activations  # noqa: E402
from .hf_factories import transformers_param_count  # noqa: E402
from .trace_configs import FIXES_SIZES, NEW_TYPES, POSITION_LIMIT  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "survey_activations", Path(__file__).resolve().parents[1] / "tools" / "survey_activations.py"
)
survey = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(survey)
SIZE = survey.SIZES["A"]
NO_SDPA = {"bloom", "gemma2", "gpt_oss", "openai-gpt"}  # transformers 5.24 has no SDPA path for them
HAND_WRITTEN = sorted(
    (
        "bloom deepseek_v3 falcon gemma gemma2 gpt2 gpt_bigcode gpt_neox gptj llama mistral mixtral olmo opt phi3 "
        "qwen2 qwen2_moe qwen3 stablelm starcoder2"
    ).split()
)


def family_config(fam: str, dropout: float = 0.0) -> dict:
    cfg, _ = survey.family_config(fam, SIZE, dropout)
    return cfg


def value(breakdown, result, batch: int, seq: int) -> int:
    expr = breakdown.total.subs({S.n_layers: result.sizes["n_layers"], S.batch: batch, S.seq: seq})
    return int(expr)


def measured(config: dict, batch: int, seq: int, **kw) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure_activations(config, batch, seq, **kw)["total"]


def check_activations(config: dict, points, attention: str = "sdpa", recompute: str = "none", dtype: str = "fp32"):
    opts = TraceOptions(attention=attention, recompute=recompute, dtype=dtype)
    result = trace(config, opts)
    for batch, seq in points:
        got = measured(config, batch, seq, attn_implementation=attention, recompute=recompute, dtype=dtype)
        assert value(result.activations, result, batch, seq) == got, (config["model_type"], batch, seq)
    return result


@pytest.mark.parametrize("fam", HAND_WRITTEN)
def test_hand_written_families_traced_equals_measured(fam):
    attention = "eager" if fam in NO_SDPA else "sdpa"
    check_activations(family_config(fam), [(3, 11), (1, 7)], attention=attention)


@pytest.mark.parametrize("name", sorted(NEW_TYPES))
def test_new_types_traced_equals_measured(name):
    config = NEW_TYPES[name]
    attention = "eager" if name in NO_SDPA else "sdpa"
    check_activations(config, [(3, 11), (1, 6)], attention=attention)


@pytest.mark.parametrize("name", [*HAND_WRITTEN, *sorted(NEW_TYPES)])
def test_traced_parameters_equal_transformers(name):
    config = NEW_TYPES.get(name) or family_config(name)
    attention = "eager" if name in NO_SDPA else "sdpa"
    result = trace(config, TraceOptions(attention=attention))
    assert int(result.parameters.total.subs(S.n_layers, result.sizes["n_layers"])) == transformers_param_count(config)


@pytest.mark.parametrize(
    "fam, attention, dropout",
    [("llama", "eager", 0.1), ("gpt2", "eager", 0.1), ("falcon", "eager", 0.0), ("qwen2_moe", "eager", 0.1)],
)
def test_eager_and_dropout(fam, attention, dropout):
    check_activations(family_config(fam, dropout), [(2, 9), (1, 5)], attention=attention)


@pytest.mark.parametrize("fam", ["llama", "gpt_neox"])
def test_gradient_checkpointing(fam):
    check_activations(family_config(fam), [(2, 9), (1, 5)], recompute="full")


@st.composite
def amp_steps(draw):
    """A training step under ``torch.autocast`` of a hand-written family or a type known only through its
    trace: the 16-bit dtype, kernel, dropout, recomputation and two (batch, seq) points, b = 1 and b > 1."""
    name = draw(st.sampled_from([*HAND_WRITTEN, *sorted(NEW_TYPES)]))
    dropout = draw(st.sampled_from([0.0, 0.1])) if name in HAND_WRITTEN else 0.0
    config = NEW_TYPES.get(name) or family_config(name, dropout)
    attention = "eager" if name in NO_SDPA else draw(st.sampled_from(["sdpa", "eager"]))
    amp = draw(st.sampled_from(["bf16", "fp16"]))
    recompute = draw(st.sampled_from(["none", "none", "full"]))
    points = [(1, draw(st.integers(2, 14))), (draw(st.integers(2, 4)), draw(st.integers(2, 14)))]
    return config, attention, amp, recompute, points


@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("SYMBOLIC_TRACE_AMP_EXAMPLES", "3")),  # CI's bound; the tool draws more
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(amp_steps())
def test_traced_under_autocast_equals_measured(step):
    """fp32 weights, the step under ``torch.autocast`` to bf16 or fp16 (the amp recipes): the trace's
    bytes equal the storages autograd saves on real tensors, at sizes the trace never ran at."""
    config, attention, amp, recompute, points = step
    result = trace(config, TraceOptions(attention=attention, recompute=recompute, autocast=amp))
    for batch, seq in points:
        got = measured(config, batch, seq, attn_implementation=attention, recompute=recompute, autocast=amp)
        assert value(result.activations, result, batch, seq) == got, (config["model_type"], batch, seq)


@pytest.mark.parametrize(
    "name, amp",
    [
        ("phi", "bf16"),
        pytest.param("llama", "fp16", marks=pytest.mark.slow),
        pytest.param("qwen3_moe", "bf16", marks=pytest.mark.slow),
        pytest.param("gemma3_text", "fp16", marks=pytest.mark.slow),
    ],
)
def test_traced_under_autocast_at_fixed_sizes(name, amp):
    """A hand-written family and dense, MoE and sliding-window types known only through their trace,
    under both amp dtypes: b = 1 and b > 1, s on both sides of gemma3's window of 8."""
    config = NEW_TYPES.get(name) or family_config(name)
    result = trace(config, TraceOptions(autocast=amp))
    for batch, seq in ((2, 9), (1, 5)):
        got = measured(config, batch, seq, attn_implementation="sdpa", autocast=amp)
        assert value(result.activations, result, batch, seq) == got, (name, amp, batch, seq)


def test_autocast_is_an_option_of_its_own():
    """Autocast runs over fp32 weights, to a 16-bit dtype; the cache keeps its traces apart."""
    with pytest.raises(SymbolicError, match="autocast"):
        TraceOptions(autocast="fp32")
    with pytest.raises(SymbolicError, match="dtype"):
        TraceOptions(dtype="bf16", autocast="bf16")
    keys = {str(TraceOptions(autocast=a).key()) for a in (None, "bf16", "fp16")}
    assert len(keys) == 3


def test_kv_heads_one_and_bf16():
    config = family_config("llama") | {"num_key_value_heads": 1}
    check_activations(config, [(2, 9), (1, 5)], attention="eager")
    check_activations(config, [(2, 9)], dtype="bf16")


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_sliding_window_shorter_and_longer_than_seq(attention):
    config = family_config("mistral") | {"sliding_window": 8}
    result = check_activations(config, [(2, 5), (2, 8), (2, 13), (1, 13), (1, 4)], attention=attention)
    assert any("seq" in c for c in result.conditions) or any(
        isinstance(t.expr, sp.Piecewise) for t in result.activations
    )


def test_layer_groups_counted_not_unrolled():
    config = dict(NEW_TYPES["gemma3_text"])
    config |= {"num_hidden_layers": 5, "layer_types": ["sliding_attention"] * 4 + ["full_attention"]}
    grouped = trace(config)
    unrolled = trace(config, TraceOptions(unrolled=True))
    assert [len(g) for g in grouped.layer_groups] == [4, 1]
    for b, s in [(2, 5), (2, 13), (1, 13)]:
        assert value(grouped.activations, grouped, b, s) == value(unrolled.activations, unrolled, b, s)
        assert value(grouped.flops, grouped, b, s) == value(unrolled.flops, unrolled, b, s)
    assert value(grouped.activations, grouped, 2, 13) == measured(config, 2, 13, attn_implementation="sdpa")


def test_layers_stay_a_symbol():
    result = trace(family_config("llama"))
    assert S.n_layers in result.activations.total.free_symbols
    assert S.n_layers in result.parameters.total.free_symbols


def test_flops_match_torch_flop_counter_on_real_tensors():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .harness.measure import build_model

    config = family_config("llama")
    result = trace(config, TraceOptions(attention="eager"))
    model = build_model(config, attn_implementation="eager")
    model.train()
    ids = torch.randint(0, config["vocab_size"], (2, 9))
    with FlopCounterMode(display=False) as counter:
        model(ids, labels=ids, use_cache=False).loss.backward()
    assert value(result.flops, result, 2, 9) == counter.get_total_flops()


def test_cache_answers_the_same_and_skips_what_is_not_a_regular_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path))
    config = family_config("gpt2")
    fresh = trace(config)
    again = trace(config)
    assert again.cached and not fresh.cached
    for a, b in ((fresh.activations, again.activations), (fresh.parameters, again.parameters)):
        assert a.paths == b.paths and sp.simplify(a.total - b.total) == 0
    key = trace_cache.key_for(config, TraceOptions().key(), fresh.versions)
    entry = trace_cache.trace_dir() / f"{key}.json"
    entry.write_text("{not json")
    assert not trace(config).cached  # a corrupt entry is ignored and rewritten
    assert trace(config).cached
    entry.unlink()
    os.mkfifo(entry) if hasattr(os, "mkfifo") else entry.mkdir()
    assert not trace(config).cached  # a FIFO is never opened


def test_cache_expressions_are_data_not_code():
    expr = sp.Piecewise((8 * S.seq + 8, sp.Eq(S.batch, 1)), (8 * S.batch * S.seq, True))
    assert trace_cache.decode(json.loads(json.dumps(trace_cache.encode(expr)))) == expr
    with pytest.raises(ValueError):
        trace_cache.decode(["__import__", ["S", "os"]])


def test_unknown_and_rejected_configs_are_one_line_errors():
    with pytest.raises(SymbolicError, match="model_type"):
        trace({"model_type": "not_a_model"})
    with pytest.raises(SymbolicError, match="config"):
        trace(family_config("llama") | {"num_attention_heads": 7})  # hidden 40 is not a multiple of 7
    with pytest.raises(SymbolicError, match="attention"):
        trace(family_config("bloom"), TraceOptions(attention="sdpa"))
    with pytest.raises(SymbolicError, match="experts"):
        TraceOptions(experts="eager")


def test_sizes_the_code_fixes_name_a_concrete_size():
    with pytest.raises(SymbolicError, match=r"--batch 1 --seq 2048"):
        trace(FIXES_SIZES["bamba"])


def test_a_position_table_limits_the_formula():
    config = POSITION_LIMIT["bert"]
    result = check_activations(config, [(3, 11), (1, 256)])
    assert "seq <= 256" in result.conditions
    assert any(n.startswith("no formula past seq = 256") for n in result.notes)


def test_a_trace_at_a_point_equals_measured():
    config = FIXES_SIZES["bamba"]
    result = trace(config, TraceOptions(at=(2, 9)))
    assert result.notes and result.notes[0].startswith("traced at batch = 2, seq = 9 only")
    assert value(result.activations, result, 2, 9) == measured(config, 2, 9, attn_implementation="sdpa")


@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_new", "gelu_fast", "quick_gelu", "gelu_pytorch_tanh", "relu"])
def test_exact_mlp_rule_per_activation_equals_traced(act):
    from symbolic.formulas.activations import ActivationOptions
    from symbolic.hf import from_hf_config
    from symbolic.model import activation_terms
    from symbolic.numeric import evaluate

    config = family_config("llama") | {"hidden_act": act}
    result = trace(config)
    model = from_hf_config(config)
    rule = activation_terms(model, "exact", ActivationOptions(dtype="fp32", attention="sdpa", device="cpu"))
    assert int(evaluate(rule.total, {**model.sizes, "batch": 2, "seq": 7})) == value(result.activations, result, 2, 7)


def test_exact_refuses_an_activation_it_has_no_rule_for():
    from symbolic.formulas.activations import ActivationOptions
    from symbolic.hf import from_hf_config
    from symbolic.model import activation_terms

    with pytest.raises(SymbolicError, match="hidden_act"):
        activation_terms(
            from_hf_config(family_config("llama") | {"hidden_act": "swishy"}), "exact", ActivationOptions()
        )


def test_thresholds_behind_floor_divisions_are_found_by_bisection():
    from symbolic.trace.api import _first_outside

    s = S.seq
    assert _first_outside(sp.Eq((s + 255) // 256, 1)) == 257  # chunks of 256: one chunk up to s = 256
    assert _first_outside(sp.Lt(s, 100)) == 100
    assert _first_outside(sp.Ge(s, 2)) is None  # holds everywhere: no other side
