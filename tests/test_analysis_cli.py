"""The analysis and FLOPs commands: JSON answers that agree with the other commands, clean errors."""

import json

import pytest

from symbolic.cli import main


def _json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_flops_json_total_is_forward_plus_backward(capsys):
    out = _json(capsys, "flops", "llama2-7b", "--batch", "4", "--seq", "1024")
    assert out["total"] == out["forward"] + out["backward"] == sum(t["flops"] for t in out["terms"])
    assert out["backward"] == 2 * out["forward"]
    assert out["per_token"]["model_flops"] * 4 * 1024 == out["model_flops"]


def test_flops_recompute_and_mfu(capsys):
    argv = ["flops", "gpt3-175b", "--set", "n_vocab=51200", "--batch", "64", "--seq", "2048"]
    out = _json(capsys, *argv, "--convention", "megatron", "--recompute", "selective", "--devices", "64")
    assert out["total"] == out["model_flops"] + out["recompute_flops"]
    out = _json(
        capsys, *argv, "--convention", "megatron", "--recompute", "selective", "--devices", "64", "--peak", "312T",
        "--step-time", "13.75",
    )  # fmt: skip
    assert out["utilization"]["mfu"] == pytest.approx(0.514, abs=0.003)  # Korthikanti Table 5
    assert out["utilization"]["hfu"] == pytest.approx(0.528, abs=0.003)


def test_fit_agrees_with_memory(capsys):
    common = ["--batch", "1", "--seq", "2048", "--zero", "3"]
    out = _json(capsys, "fit", "llama2-7b", "--budget", "80GiB", "--solve", "dp", *common)
    assert isinstance(out["value"], int) and out["peak"] <= out["budget"]
    mem = _json(capsys, "memory", "llama2-7b", *common, "--dp", str(out["value"]))
    per = mem["per_device"]
    expected = per["peak"] if per["peak"] is not None else per["states"] + per["transient"]
    assert out["peak"] == expected
    if out["value"] > 1:  # one degree less does not fit
        mem = _json(capsys, "memory", "llama2-7b", *common, "--dp", str(out["value"] - 1))
        per = mem["per_device"]
        assert (per["peak"] if per["peak"] is not None else per["states"] + per["transient"]) > out["budget"]


def test_fit_nothing_fits(capsys):
    # tp may exceed the 8 kv heads (replicated) up to the 64 query heads; 16 GiB is out of reach even then
    out = _json(capsys, "fit", "llama2-70b", "--budget", "16GiB", "--solve", "tp", "--batch", "1", "--seq", "2048")
    assert out["value"] is None and out["overrun"] > 0 and out["closest"] == 64


def test_dominates_and_sensitivity(capsys):
    out = _json(capsys, "dominates", "llama2-7b", "--grow", "seq", "--top", "3")
    assert out["asymptotic"]["order"] == 2 and out["asymptotic"]["words"] == "quadratic in sequence length"
    assert len(out["terms"]) == 3 and out["rest"]["terms"] > 0
    out = _json(
        capsys, "dominates", "llama2-7b", "--grow", "d_model", "--path", "d_ffn=8/3*d_model, n_heads=d_model/128"
    )
    assert out["asymptotic"]["order"] == 2
    out = _json(capsys, "sensitivity", "llama2-7b", "--quantity", "params", "--wrt", "n_layers,d_model")
    assert [r["symbol"] for r in out["rows"]] == ["d_model", "n_layers"]
    # every parameter tensor of a Llama is linear in d_model (heads and head width are their own symbols)
    assert out["rows"][0]["elasticity_value"] == 1 and 0.9 < out["rows"][1]["elasticity_value"] < 1


def test_crossover(capsys):
    out = _json(capsys, "crossover", "llama2-7b", "--a", "attention.scores", "--b", "mlp", "--over", "seq")
    assert out["method"] == "closed form" and out["value"] == 33024 and out["larger_after"] == "attention.scores"


@pytest.mark.parametrize(
    "argv, field",
    [
        (["dominates", "llama2-7b", "--quantity", "params", "--grow", "seq"], "--grow"),
        (["dominates", "llama2-7b", "--grow", "d_model", "--path", "d_model=2*n_layers, n_layers=d_model"], "--path"),
        (["dominates", "llama2-7b", "--grow", "d_model", "--path", "d_ffn=-3*d_model"], "--path"),
        (["dominates", "llama2-7b", "--grow", "d_model", "--path", "d_ffn=__import__('os')"], "--path"),
        (["sensitivity", "llama2-7b", "--wrt", "d_model.__class__"], "--wrt"),
        (["sensitivity", "llama2-7b", "--quantity", "params", "--wrt", "seq"], "--wrt"),
        (["crossover", "llama2-7b", "--a", "nothing", "--b", "mlp", "--over", "seq"], "--a"),
        (["fit", "llama2-7b", "--budget", "80XB", "--solve", "dp", "--batch", "1", "--seq", "8"], "--budget"),
        (["fit", "llama2-7b", "--budget", "80GiB", "--solve", "heads", "--batch", "1", "--seq", "8"], "--solve"),
        (["flops", "llama2-7b", "--convention", "wrong"], "--convention"),
        (["flops", "llama2-7b", "--set", "d_model=-1"], "--set"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, field):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}: ") and err.count("\n") == 1


@pytest.mark.parametrize("solve, fixed", [("batch", ["--seq", "4096"]), ("seq", ["--batch", "2"])])
def test_fit_batch_and_seq_against_memory_peak(capsys, solve, fixed):
    common = ["--zero", "3", "--dp", "8", *fixed]
    out = _json(capsys, "fit", "llama2-7b", "--budget", "80GiB", "--solve", solve, *common)
    assert out["figure"] == "peak" and isinstance(out["value"], int)
    at = _json(capsys, "memory", "llama2-7b", *common, f"--{solve}", str(out["value"]))
    assert at["per_device"]["peak"] == out["peak"] <= out["budget"]
    nxt = _json(capsys, "memory", "llama2-7b", *common, f"--{solve}", str(out["value"] + 1))
    assert nxt["per_device"]["peak"] == out["next_peak"] > out["budget"]


def test_memory_crossover_where_optimizer_state_stops_dominating(capsys):
    argv = ["crossover", "llama2-7b", "--quantity", "memory", "--batch", "1", "--a", "optimizer", "--b", "activations"]
    out = _json(capsys, *argv, "--over", "seq")
    assert out["value"] > 0 and out["larger_after"] == "activations"
    below = _json(capsys, "dominates", "llama2-7b", "--quantity", "memory", "--seq", str(int(out["value"]) - 1))
    above = _json(capsys, "dominates", "llama2-7b", "--quantity", "memory", "--seq", str(int(out["value"]) + 1))
    assert below["total"] < above["total"]
