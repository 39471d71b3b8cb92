"""Model sizes as symbols in a trace (``TraceOptions(symbolic_sizes=True)``).

Truth from outside: the symbolic-size formulas of one config, evaluated at the sizes of another
(one size field changed, where the branches the trace took still hold), equal the count
transformers builds for that other config (parameters, meta device) and what a plain trace of it
saves (bytes) and counts (FLOPs). Against the hand-written rules: for every hand-written family
the parameter formulas agree with ``exact`` as expressions in the config's fields, and for the
drawn llama-like families so do activations and FLOPs.
"""

from __future__ import annotations

import os

import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symbolic import symbols as S

from .hf_factories import FACTORIES, llama_like, transformers_param_count

pytest.importorskip("torch")
pytest.importorskip("transformers")

from symbolic.errors import SymbolicError  # noqa: E402
from symbolic.hf import from_hf_config  # noqa: E402
from symbolic.trace import TraceOptions, trace  # noqa: E402
from symbolic.trace.diff import difference  # noqa: E402
from symbolic.trace.sizes import field_symbol  # noqa: E402

EXAMPLES = int(os.environ.get("SYMBOLIC_SIZE_EXAMPLES", "8"))
_EAGER = {"gemma2", "bloom"}  # families whose only attention path is eager in transformers 5.24


def _options(config: dict, **kw: bool) -> TraceOptions:
    return TraceOptions(attention="eager" if config["model_type"] in _EAGER else "sdpa", **kw)


def _others(config: dict, result) -> list[tuple[dict, dict]]:
    """Configs with one symbolic size field doubled that are valid and keep the trace's branches:
    (config, the field symbols' values there)."""
    out = []
    for field, value in result.size_symbols.items():
        other = {**config, field: 2 * value}
        try:
            from_hf_config(other)
        except SymbolicError:
            continue
        at = {field_symbol(k): v for k, v in {**result.fixed_sizes, **result.size_symbols}.items()}
        at[field_symbol(field)] = 2 * value
        if all(c.xreplace(at) is sp.true for c in result.size_conditions):
            out.append((other, at))
    return out


def _hand_written_rules_apply(config: dict) -> bool:
    """Whether ``exact`` answers for this config (it refuses, in one line, sizes transformers'
    forward fails on, such as an odd rotary width in StableLM)."""
    try:
        from symbolic.model import parameters

        parameters(from_hf_config(config), "exact")
        from symbolic.formulas.activations.exact import odd_rotary_fails

        return not odd_rotary_fails(from_hf_config(config))
    except SymbolicError:
        return False


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(data=st.data(), family=st.sampled_from(sorted(FACTORIES)))
def test_parameter_formulas_agree_with_exact_and_with_transformers_at_other_sizes(data, family):
    config = data.draw(FACTORIES[family])
    assume(_hand_written_rules_apply(config))
    result = trace(config, _options(config, parameters_only=True, symbolic_sizes=True), use_cache=False)
    assert result.size_symbols, "no size stayed a symbol"
    assert difference(config, result, quantities=("parameters",)) == []
    for other, at in _others(config, result):
        at[S.n_layers] = result.sizes["n_layers"]
        assert int(result.parameters.total.xreplace(at)) == transformers_param_count(other), other


def _evaluate(expr: sp.Expr, at: dict) -> list[int]:
    return [int(sp.piecewise_fold(expr.xreplace({**at, S.batch: b, S.seq: s}))) for b in (1, 3) for s in (5, 37)]


@pytest.mark.slow
@settings(
    max_examples=max(2, EXAMPLES // 3),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data(), family=st.sampled_from(["llama", "qwen2", "mistral", "qwen3"]))
def test_step_formulas_agree_with_exact_and_with_a_plain_trace_at_other_sizes(data, family):
    config = data.draw(llama_like(family))
    assume(_hand_written_rules_apply(config))
    result = trace(config, _options(config, symbolic_sizes=True), use_cache=False)
    assert difference(config, result) == []
    others = _others(config, result)
    if not others:
        return
    other, at = data.draw(st.sampled_from(others))
    plain = trace(other, _options(other), use_cache=False)
    at[S.n_layers] = result.sizes["n_layers"]
    bind = {S.n_layers: plain.sizes["n_layers"]}
    for mine, theirs in ((result.activations, plain.activations), (result.flops, plain.flops)):
        assert _evaluate(mine.total, at) == _evaluate(theirs.total, bind)


def test_symbolic_sizes_round_trip_through_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path))
    config = {
        "model_type": "llama",
        "hidden_size": 48,
        "intermediate_size": 40,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 64,
    }
    options = TraceOptions(symbolic_sizes=True, parameters_only=True)
    first = trace(config, options)
    again = trace(config, options)
    assert again.cached and not first.cached
    assert again.parameters.total == first.parameters.total
    assert (
        again.size_symbols
        == first.size_symbols
        == {
            "head_dim": 12,
            "hidden_size": 48,
            "intermediate_size": 40,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 64,
        }
    )
    assert field_symbol("hidden_size") in first.parameters.total.free_symbols
