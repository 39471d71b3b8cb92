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
    data = json.loads(out)
    assert data["convention"] == "traced" and data["model_type"] == "qwen3_moe"
    assert data["activations"]["total"] > 0 and data["states"] > 0 and data["versions"]["transformers"]
    assert data["total"] == data["states"] + data["activations"]["total"]


def test_convention_traced_on_a_hand_written_model(capsys):
    code, out, err = run(capsys, "params", "llama2-7b", "--convention", "traced", "--json")
    assert code == 0, err
    assert json.loads(out)["total"] == 6_738_415_616 and json.loads(out)["convention"] == "traced"


def test_convention_traced_refuses_options_it_does_not_take(capsys):
    code, out, err = run(
        capsys, "memory", "llama2-7b", "--convention", "traced", "--batch", "1", "--seq", "8", "--tp", "2"
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and "--tp" in err
