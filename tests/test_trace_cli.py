"""``symbolic trace``: terms, the difference from ``exact``, and one-line errors."""

from __future__ import annotations

import json

import pytest

from symbolic.cli import main

pytest.importorskip("torch")
pytest.importorskip("transformers")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_llama2_7b_json_names_versions_and_layers(capsys):
    code, out, err = run(capsys, "trace", "llama2-7b", "--json", "--batch", "1", "--seq", "4096")
    assert code == 0, err
    data = json.loads(out)
    assert data["convention"] == "traced" and data["layers"] == 32 and data["layer_groups"] == [32]
    assert set(data["versions"]) == {"torch", "transformers"}
    assert data["parameters"]["value"] == 6_738_415_616  # what transformers builds for Llama-2-7B
    assert any(t["path"].startswith("model.layers.each.self_attn") for t in data["activations"]["terms"])


def test_llama2_7b_differs_from_exact_only_where_exact_is_known_short(capsys):
    code, out, err = run(capsys, "trace", "llama2-7b", "--diff", "exact", "--json")
    assert code == 0, err
    parts = json.loads(out)["diff"]["parts"]
    # everything agrees symbolically except the padded labels at b = 1 (8 bytes exact leaves out)
    assert {(p["quantity"], p["difference"]) for p in parts} <= {
        ("activations", "Piecewise((-8, Eq(batch, 1)), (0, True))")
    }


def test_diff_against_a_type_without_rules_is_one_line(capsys, tmp_path):
    from .trace_configs import NEW_TYPES

    path = tmp_path / "config.json"
    path.write_text(json.dumps(NEW_TYPES["granite"]))
    code, out, err = run(capsys, "trace", str(path), "--diff", "exact")
    assert code == 2 and err.count("\n") == 1 and "--diff" in err


@pytest.mark.parametrize(
    "config, field",
    [
        ({"model_type": "not_a_model"}, "model_type"),
        ({"model_type": "llama", "hidden_size": 40, "num_attention_heads": 7}, "config"),
    ],
)
def test_bad_configs_are_one_line(capsys, tmp_path, config, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, out, err = run(capsys, "trace", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(f"error: {field}:")


def test_without_the_extra_one_line_names_the_install(capsys, monkeypatch):
    import symbolic.trace

    monkeypatch.setattr(symbolic.trace, "available", lambda: False)
    code, out, err = run(capsys, "trace", "llama2-7b")
    assert code == 2 and 'pip install "symbolic[trace]"' in err and err.count("\n") == 1


def test_a_type_without_rules_answers_through_traced(capsys):
    config = "tests/data/configs/qwen3-30b-a3b/config.json"
    code, out, err = run(capsys, "memory", config, "--batch", "1", "--seq", "4096", "--json")
    assert code == 0, err
    assert "qwen3_moe" in err and "traced" in err and err.count("\n") == 1  # the note: which convention answered
    data = json.loads(out)
    assert data["convention"] == "traced" and data["settings"]["convention"] == "traced"
    per = data["per_device"]
    assert per["activations"] > 0 and per["states"] > 0
    assert per["states"] == per["weights"] + per["gradients"] + per["master"] + per["optimizer"]
    assert all("torch" in t["source"] and "transformers" in t["source"] for t in data["activations"]["terms"])


def test_a_type_without_rules_and_a_hand_written_convention_is_one_line(capsys):
    config = "tests/data/configs/qwen3-30b-a3b/config.json"
    code, out, err = run(capsys, "params", config, "--convention", "basic")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: model_type: unsupported 'qwen3_moe'") and "--convention traced" in err


def test_convention_traced_on_a_hand_written_model(capsys):
    code, out, err = run(capsys, "params", "llama2-7b", "--convention", "traced", "--json")
    assert code == 0, err
    assert json.loads(out)["total"] == 6_738_415_616 and json.loads(out)["convention"] == "traced"


@pytest.mark.parametrize(
    "option, flag",
    [
        (["--pp", "2"], "--pp"),
        (["--ep", "2"], "--ep"),
        (["--cp", "2"], "--cp"),
        (["--tp", "2", "--sequence-parallel"], "--sequence-parallel"),
        (["--tp", "2", "--vocab-multiple", "64"], "--vocab-multiple"),
    ],
)
def test_convention_traced_refuses_parallel_degrees(capsys, option, flag):
    code, out, err = run(capsys, "memory", "llama2-7b", "--convention", "traced", "--batch", "1", "--seq", "8", *option)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(f"error: {flag}:")


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["memory", "llama2-7b", "--batch", "1", "--seq", "8", "--attention", "flash"], "--attention"),
        (["memory", "llama2-7b", "--batch", "1", "--seq", "8", "--recompute", "selective"], "--recompute"),
        (["flops", "llama2-7b", "--recompute", "selective"], "--recompute"),
        (["flops", "llama2-7b", "--causal"], "--causal"),
    ],
)
def test_convention_traced_refuses_what_a_trace_cannot_honour(capsys, argv, flag):
    code, out, err = run(capsys, *argv, "--convention", "traced")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(f"error: {flag}:"), err


def test_convention_traced_without_the_extra_names_the_install(capsys, monkeypatch):
    import symbolic.trace

    monkeypatch.setattr(symbolic.trace, "available", lambda: False)
    for argv in (
        ["params", "llama2-7b"],
        ["flops", "llama2-7b"],
        ["memory", "llama2-7b", "--batch", "1", "--seq", "8"],
    ):
        code, out, err = run(capsys, *argv, "--convention", "traced")
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith("error: --convention:") and 'pip install "symbolic[trace]"' in err


def test_autocast_traces_under_torch_autocast_and_agrees_with_exact(capsys, tmp_path):
    """``--autocast``: fp32 weights, the step under torch.autocast; exact under autocast (byte-exact against
    autograd: tests/test_activations_exact.py) gives the same activations in every part."""
    from .trace_configs import NEW_TYPES

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**NEW_TYPES["granite"], "model_type": "llama"}))
    code, out, err = run(capsys, "trace", str(path), "--autocast", "bf16", "--diff", "exact", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["options"]["autocast"] == "bf16" and data["options"]["dtype"] == "fp32"
    assert [p for p in data["diff"]["parts"] if p["quantity"] == "activations"] == []
    code, out, err = run(capsys, "trace", str(path), "--autocast", "bf16", "--dtype", "bf16")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: --dtype:"), err
