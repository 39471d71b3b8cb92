"""`symbolic memory` and `symbolic inference`: JSON shape, tables, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from symbolic.cli import main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_memory_json_shape(capsys):
    code, out, _ = run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096", "--json")
    data = json.loads(out)
    assert code == 0 and data["unit"] == "bytes" and data["model"] == "llama2-7b"
    per = data["per_device"]
    for key in ("weights", "gradients", "optimizer", "activations", "peak"):
        assert key in per
    assert per["activations"] == data["activations"]["total"] > 0  # activations and peak are computed
    # the peak is the largest point of the step's timeline (here the foreach optimizer step, CUDA's default)
    assert per["peak"] == max(p["bytes"] for p in data["timeline"]) == data["peak_point"]["bytes"]
    assert data["peak_point"]["phase"] == "optimizer" and data["settings"]["optimizer_impl"] == "foreach"
    assert per["states"] == 16 * 6_738_415_616
    states = ("weights", "gradients", "master", "optimizer")
    assert sum(t["bytes"] for t in data["terms"] if t["category"] in states) == per["states"]
    assert {t["category"] for t in data["terms"]} == {*states, "activations", "transient"}
    assert all({"path", "category", "formula", "bytes"} <= set(t) for t in data["terms"])
    assert data["settings"]["precision"] == "mixed" and data["settings"]["recompute"] == "none"


def test_memory_parallel_and_finetuning_options(capsys):
    argv = ["memory", "mixtral-8x7b", "--batch", "2", "--seq", "4096", "--json"]
    _, out, _ = run(capsys, *argv, "--dp", "8", "--tp", "2", "--pp", "4", "--ep", "8", "--zero", "3")
    data = json.loads(out)
    # stage 0 keeps 4 micro-batches in flight (1F1B): its activations outweigh the last stage's head
    assert data["settings"]["stage"] == 0 and data["per_device"]["transient"] > 0
    assert data["per_device"]["peak"] > data["per_device"]["states"] + data["per_device"]["activations"]
    _, out, _ = run(
        capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "1", "--json", "--lora-rank", "8", "--qlora", "nf4"
    )
    data = json.loads(out)
    assert data["per_device"]["gradients"] == 2 * 4_194_304  # PEFT's 4,194,304 trainable parameters, bf16 grads
    # 4.5 bits per quantized parameter; embedding and lm_head stay bf16: about 31% of the bf16 weights
    assert 0.30 < data["per_device"]["weights"] / (2 * 6_738_415_616) < 0.32
    _, out, _ = run(
        capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "1", "--json", "--precision", "custom:2,4,4,4"
    )
    assert json.loads(out)["per_device"]["states"] == 18 * 6_738_415_616


def test_memory_table_shows_gib_and_gb(capsys):
    code, out, _ = run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096", "--zero", "1", "--dp", "4")
    assert code == 0
    assert "GiB" in out and "GB" in out and "share" in out


def test_inference_json(capsys):
    code, out, _ = run(capsys, "inference", "opt-13b", "--batch", "1", "--seq", "2048", "--json")
    data = json.loads(out)
    assert code == 0 and data["unit"] == "bytes"
    assert data["kv_cache"] == 1_677_721_600 and data["kv_cache_per_token"] == 800 * 1024
    assert data["weights"] + data["kv_cache"] == data["total"]
    code, out, _ = run(capsys, "inference", "opt-13b", "--batch", "1", "--seq", "2048")
    assert code == 0 and "kv_cache" in out


@pytest.mark.parametrize(
    "argv, field",
    [
        (["memory", "llama2-7b", "--tp", "3"], "--tp"),
        (["memory", "llama2-7b", "--pp", "5"], "--pp"),
        (["memory", "mixtral-8x7b", "--ep", "3", "--dp", "3"], "--ep"),
        (["memory", "llama2-7b", "--ep", "2", "--dp", "2"], "--ep"),
        (["memory", "llama2-7b", "--precision", "fp8"], "--precision"),
        (["memory", "llama2-7b", "--precision", "custom:2,x,4,4"], "--precision"),
        (["memory", "llama2-7b", "--optimizer", "adagrad"], "--optimizer"),
        (["memory", "llama2-7b", "--lora-rank", "-4"], "--lora-rank"),
        (["memory", "llama2-7b", "--stage", "2", "--pp", "2"], "--stage"),
        (["memory", "llama2-7b", "--hybrid-shard", "3", "--dp", "8", "--zero", "3"], "--hybrid-shard"),
        (["memory", "llama2-7b", "--zero", "5"], "--zero"),
        (["memory", "llama2-7b", "--freeze", "nothing"], "freeze"),
        (["inference", "llama2-7b", "--dtype", "int3"], "--dtype"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, field):
    full = [*argv[:2], "--batch", "1", "--seq", "8", *argv[2:]]
    code, out, err = run(capsys, *full)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and field in lines[0], err
    assert "Traceback" not in err


def test_zero_with_dp_1_says_so(capsys):
    code, out, _ = run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "8", "--zero", "2", "--json")
    assert code == 0 and any("shards nothing" in n for n in json.loads(out)["notes"])
