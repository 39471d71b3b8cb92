"""`symbolic params` and `symbolic models`: JSON shape, tables, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from symbolic.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_params_json_has_exact_integers(capsys):
    code, out, _ = run(capsys, "params", "llama2-7b", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["total"] == 6_738_415_616 and isinstance(data["total"], int)
    assert data["trainable"] + data["frozen"] == data["total"]
    assert sum(t["parameters"] for t in data["terms"]) == data["total"]


def test_params_basic_convention(capsys):
    _, out, _ = run(capsys, "params", "llama2-7b", "--convention", "basic", "--json")
    assert json.loads(out)["total"] == 5_295_308_800


def test_params_freeze_and_lora(capsys):
    _, out, _ = run(capsys, "params", "llama2-7b", "--freeze", "embedding", "--json")
    assert json.loads(out)["frozen"] == 32000 * 4096
    _, out, _ = run(capsys, "params", "llama2-7b", "--lora-rank", "8", "--json")
    data = json.loads(out)
    assert data["trainable"] == 4_194_304  # PEFT's figure for Llama-2-7B, r=8 on q_proj and v_proj
    assert data["frozen"] == 6_738_415_616


def test_params_table_shows_formulas(capsys):
    code, out, _ = run(capsys, "params", "gpt2")
    assert code == 0
    assert "d_model" in out and "124,439,808" in out


def test_models_lists_shipped(capsys):
    _, out, _ = run(capsys, "models", "--json")
    names = {m["name"] for m in json.loads(out)["models"]}
    assert {"llama2-7b", "gpt3-175b", "mixtral-8x7b", "deepseek-v3"} <= names


def test_config_path(tmp_path, capsys):
    cfg = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 32}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    code, out, _ = run(capsys, "params", str(path), "--json")
    assert code == 0 and json.loads(out)["total"] > 0


BAD_CONFIGS = {
    "missing size": ({"model_type": "llama", "hidden_size": None, "num_attention_heads": 4}, "hidden_size"),
    "negative size": ({"model_type": "llama", "hidden_size": -64, "num_attention_heads": 4}, "hidden_size"),
    "heads do not divide width": ({"model_type": "gpt2", "n_embd": 100, "n_head": 3}, "num_attention_heads"),
    "kv heads do not divide heads": (
        {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3},
        "n_kv_heads",
    ),
    "unknown model type": ({"model_type": "t5"}, "model_type"),
    "string size": ({"model_type": "llama", "hidden_size": "4096", "num_attention_heads": 4}, "hidden_size"),
    "bool flag as string": ({"model_type": "llama", "tie_word_embeddings": "yes"}, "tie_word_embeddings"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_one_line_exit_2(case, tmp_path, capsys):
    cfg, field = BAD_CONFIGS[case]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    code, out, err = run(capsys, "params", str(path))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and field in err
    assert out == ""


def test_unknown_model_type_lists_supported(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "t5"}')
    _, _, err = run(capsys, "params", str(path))
    assert "llama" in err and "deepseek_v3" in err


def test_malformed_json(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama",')
    code, _, err = run(capsys, "params", str(path))
    assert code == 2 and "not valid JSON" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["params", "no-such-model"], "model"),
        (["params", "llama2-7b", "--convention", "nope"], "convention"),
        (["params", "llama2-7b", "--freeze", "nothing"], "freeze"),
        (["params", "llama2-7b", "--lora-rank", "-4"], "--lora-rank"),
        (["params", "llama2-7b", "--lora-targets", "q_proj"], "--lora-rank"),
    ],
)
def test_bad_options_exit_2_without_traceback(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "symbolic", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr
