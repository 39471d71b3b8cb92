"""Bad, huge and impossible inputs: one error line naming the field, exit status 2, nothing written.

Each row is an input that once ended in a traceback, a hang, invalid JSON or a confident answer
to an impossible question; the exact-integer tests check ZeRO with data-parallel sizes that do
not divide the tensors, in every format.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from symbolic.cli import main

NINES = "9" * 300


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv), use_cache=False)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def assert_one_line_error(code: int, out: str, err: str, field: str) -> None:
    assert code == 2, (code, out[-300:], err[-500:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert field in lines[0], (field, lines[0])
    assert "Traceback" not in err
    assert len(lines[0]) < 1000  # a long or huge argument is not echoed whole


# ---- ZeRO 1-3 with any data-parallel size: exact integers, valid JSON, totals are sums --------------

MODELS = ("llama2-7b", "llama3-8b", "mixtral-8x7b", "gpt2-xl", "qwen2-7b", "gemma-7b", "phi3-mini", "falcon-7b")


def check_memory_json(out: dict) -> None:
    per = out["per_device"]
    for key, value in per.items():
        assert value is None or (isinstance(value, int) and value >= 0), (key, value)
    assert per["states"] == per["weights"] + per["gradients"] + per["master"] + per["optimizer"]
    assert per["states"] == sum(
        t["bytes"] for t in out["terms"] if t["category"] in ("weights", "gradients", "master", "optimizer")
    )
    if per["peak"] is not None:  # the peak is the largest point of the step's timeline
        assert per["peak"] == max(p["bytes"] for p in out["timeline"]) == out["peak_point"]["bytes"]
    assert all(isinstance(t["bytes"], int) for t in out["terms"])


def test_zero_with_indivisible_dp_text(capsys):
    code, out, err = run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096", "--dp", "3", "--zero", "1")
    assert code == 0, err
    assert "peak" in out and "Traceback" not in err


@pytest.mark.parametrize("zero", [1, 2, 3])
@pytest.mark.parametrize("dp", [3, 5, 6, 12, 24, 96])
def test_zero_with_indivisible_dp_json(capsys, dp, zero):
    for model in MODELS:
        seq = "1024" if model.startswith("gpt2") else "4096"
        code, out, err = run(capsys, "memory", model, "--batch", "1", "--seq", seq, "--dp", str(dp), "--zero", str(zero), "--json")  # fmt: skip
        assert code == 0, (model, err)
        check_memory_json(strict_json(out))


def test_zero_shards_round_up_per_tensor(capsys):
    """dp 3 splits llama2-7b's 32000 x 4096 embedding's fp32 master copy unevenly: each shard is rounded up."""
    code, out, _ = run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096", "--dp", "3", "--zero", "1", "--json")  # fmt: skip
    terms = {t["path"]: t["bytes"] for t in strict_json(out)["terms"]}
    # 4 bytes x 32000 x 4096 / 3 = 174762666.67 -> 174762667
    assert terms["master.embedding.tokens.weight"] == -(-4 * 32000 * 4096 // 3)


def test_fit_with_zero3_dp12_json(capsys):
    for model in MODELS:
        seq = "1024" if model.startswith("gpt2") else "4096"
        argv = ["fit", model, "--seq", seq, "--dp", "12", "--zero", "3", "--budget", "80GiB", "--solve", "batch"]
        code, out, err = run(capsys, *argv, "--json")
        assert code == 0, (model, err)
        answer = strict_json(out)
        assert isinstance(answer["peak"], int) and answer["peak"] <= answer["budget"] or not answer["fits"]


def test_sweep_writes_integers_matching_memory(capsys):
    code, out, err = run(capsys, "sweep", "llama2-7b", "--batch", "1", "--seq", "4096", "--dp", "3,5,12", "--zero", "3")
    assert code == 0, err
    rows = [line.split(",") for line in out.strip().splitlines()[1:]]
    for _batch, _seq, dp, peak in rows:
        assert peak.isdigit(), peak
        code, mem, _ = run(capsys, "memory", "llama2-7b", "--batch", "1", "--seq", "4096", "--dp", dp, "--zero", "3", "--json")  # fmt: skip
        assert strict_json(mem)["per_device"]["peak"] == int(peak)


@pytest.mark.parametrize(
    "argv",
    [
        ["flops", "llama2-7b", "--tokens", NINES, "--json"],
        ["memory", "x" * 300, "--batch", "1", "--seq", "8", "--json"],
        ["params", "gpt2", "--convention", "y" * 300, "--json"],
    ],
)
def test_long_argument_with_the_answer_cache(capsys, argv):
    """A 300-character argument is no file name: the answer cache steps aside, the error is one line."""
    code, out, err = run_with_cache(capsys, *argv)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def run_with_cache(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv), use_cache=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


# ---- the table of bad inputs -----------------------------------------------------------------------

LONG = "x" * 300
BAD = [
    # (argv, field named in the error)
    (["memory", LONG, "--batch", "1", "--seq", "8"], "model"),
    (["params", "gpt2", "--convention", LONG, "--json"], "convention"),
    (["flops", "llama2-7b", "--mfu", "5"], "--mfu"),
    (["flops", "llama2-7b", "--devices", "8", "--peak", "312T", "--step-time", "0.0001"], "--step-time"),
    (["inference", "gpt2", "--batch", "1", "--seq", "100000"], "--seq"),
    (["memory", "llama2-7b", "--batch", "1", "--seq", "128", "--cp", "4", "--attention", "eager"], "--attention"),
    (["memory", "llama2-7b", "--batch", "1", "--seq", "128", "--lora-rank", "100000"], "lora"),
    (["params", "llama2-7b", "--lora-rank", "100000"], "lora"),
    (["sensitivity", "gpt2", "--wrt", "1/0"], "--wrt"),
    (["sensitivity", "gpt2", "--wrt", ""], "--wrt"),
    (["crossover", "gpt2", "--a", "attention", "--b", "rest", "--over", "d_model/0"], "--over"),
    (["crossover", "gpt2", "--a", "attention", "--b", "rest", "--over", "((("], "--over"),
    (["crossover", "gpt2", "--a", "attention", "--b", "rest", "--over", "d_model**10**10"], "--over"),
    (["dominates", "gpt2", "--grow", ""], "--grow"),
    (["dominates", "gpt2", "--grow", "d_model", "--path", "d_ffn=((((((((2^16)^16)^16)^16)^16)^16)^16)^16)"], "--path"),
    (["flops", "llama2-7b", "--tokens", "1e999999999"], "--tokens"),
    (["flops", "llama2-7b", "--tokens", "1e400"], "--tokens"),
    (["flops", "llama2-7b", "--tokens", NINES, "--json"], "--tokens"),
    (["flops", "llama2-7b", "--tokens", "300e9", "--devices", "8", "--peak", "1e400"], "--peak"),
    (["memory", "llama2-7b", "--batch", "1", "--seq", "128", "--precision", "custom:1e400,2,4,8"], "--precision"),
    (["sweep", "gpt2", "--batch", "10^30"], "--batch"),
    (["sweep", "gpt2", "--batch", "1:" + NINES], "--batch"),
    (["fit", "gpt2", "--seq", "128", "--budget", "80GiB", "--solve", "batch", "--max", "10^30"], "--max"),
    (["fit", "gpt2", "--seq", "128", "--budget", "80GiB", "--solve", "batch", "--max", NINES], "--max"),
    (["derive", "gpt2", "--batch", NINES], "--batch"),
    (["memory", "gpt2", "--batch", "1.5", "--seq", "8"], "--batch"),
    (["memory", "gpt2", "--batch", "1", "--seq", "8", "--dp", "٣"], "--dp"),
    (["memory", "gpt2", "--batch", "1", "--seq", "8", "--zero", "1.0"], "--zero"),
    (["plot", "gpt2", "-o", "x.png", "--setting", "dp=٣"], "--setting"),
]


@pytest.mark.parametrize("argv,field", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, field):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, field)
    assert time.perf_counter() - start < 10
    assert list(tmp_path.iterdir()) == []  # nothing written


# ---- malformed config files ----------------------------------------------------------------------

LLAMA = {
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
}
QWEN_MOE = {
    "model_type": "qwen2_moe",
    "hidden_size": 256,
    "intermediate_size": 512,
    "moe_intermediate_size": 128,
    "shared_expert_intermediate_size": 512,
    "num_attention_heads": 4,
    "num_hidden_layers": 4,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 1000,
}
DEEPSEEK = {
    "model_type": "deepseek_v3",
    "hidden_size": 256,
    "intermediate_size": 512,
    "moe_intermediate_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 32,
    "q_lora_rank": 48,
    "qk_rope_head_dim": 16,
    "qk_nope_head_dim": 32,
    "v_head_dim": 32,
    "vocab_size": 1000,
}

CONFIGS = [
    # (file bytes, field named in the error)
    (json.dumps({**LLAMA, "model_type": ["llama"]}).encode(), "model_type"),
    (b'{"model_type": "llama", "hidden_size": 4096, "name": "\xff\xfe"}', "config"),
    (b"[" * 100_000 + b"]" * 100_000, "config"),
    (json.dumps(LLAMA).replace('"hidden_size": 256', '"hidden_size": 1' + "0" * 5000).encode(), "config"),
    (json.dumps({**QWEN_MOE, "num_experts": "abc"}).encode(), "num_experts"),
    (json.dumps({**QWEN_MOE, "mlp_only_layers": 5}).encode(), "mlp_only_layers"),
    (json.dumps({**DEEPSEEK, "first_k_dense_replace": [1]}).encode(), "first_k_dense_replace"),
    (json.dumps({**QWEN_MOE, "num_experts": -64}).encode(), "num_experts"),
    (json.dumps({**QWEN_MOE, "num_experts": 63.7}).encode(), "num_experts"),
    (json.dumps({**QWEN_MOE, "num_experts": "64"}).encode(), "num_experts"),
    (json.dumps({**QWEN_MOE, "mlp_only_layers": "0,1"}).encode(), "mlp_only_layers"),
    (json.dumps({**QWEN_MOE, "mlp_only_layers": [2.5]}).encode(), "mlp_only_layers"),
    (json.dumps({**QWEN_MOE, "num_experts": 2.5}).encode(), "num_experts"),
    (json.dumps({**DEEPSEEK, "n_shared_experts": 1.5}).encode(), "n_shared_experts"),
    (json.dumps({**DEEPSEEK, "n_shared_experts": "64"}).encode(), "n_shared_experts"),
    (json.dumps({**DEEPSEEK, "n_shared_experts": True}).encode(), "n_shared_experts"),
    (json.dumps({**QWEN_MOE, "num_hidden_layers": 1000000000}).encode(), "num_hidden_layers"),
    (json.dumps({**LLAMA, "num_attention_heads": 2**30}).encode(), "num_attention_heads"),
    (json.dumps({**LLAMA, "num_hidden_layers": 10**12}).encode(), "num_hidden_layers"),
    (json.dumps({**LLAMA, "hidden_size": 256.0}).encode(), "hidden_size"),
    (json.dumps({**LLAMA, "vocab_size": True}).encode(), "vocab_size"),
    (json.dumps({**LLAMA, "hidden_act": ["silu"]}).encode(), "hidden_act"),
    (json.dumps({**LLAMA, "model_type": "llama", "sliding_window": "4096"}).encode(), "sliding_window"),
    (json.dumps({**LLAMA, "attention_dropout": "abc"}).encode(), "attention_dropout"),
    (b"[]", "config"),
    (b"", "config"),
]


@pytest.mark.parametrize("blob,field", CONFIGS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(CONFIGS)])
@pytest.mark.parametrize("command", ["params", "memory", "fit"])
def test_malformed_config_one_line_exit_2(capsys, tmp_path, blob, field, command):
    path = tmp_path / "config.json"
    path.write_bytes(blob)
    extra = {
        "params": ["--json"],
        "memory": ["--batch", "1", "--seq", "64", "--tp", "3", "--pp", "7", "--json"],
        "fit": ["--seq", "64", "--dp", "12", "--zero", "3", "--budget", "80GiB", "--solve", "batch", "--json"],
    }[command]
    start = time.perf_counter()
    code, out, err = run(capsys, command, str(path), *extra)
    assert_one_line_error(code, out, err, field)
    assert time.perf_counter() - start < 10


def test_valid_config_counts_like_the_shipped_model(capsys, tmp_path):
    """The same config given as a file and by name gives the same counts."""
    from symbolic.registry import shipped_models

    path = tmp_path / "config.json"
    path.write_text(json.dumps(shipped_models()["llama2-7b"].config))
    _, by_file, _ = run(capsys, "params", str(path), "--json")
    _, by_name, _ = run(capsys, "params", "Llama-2-7B", "--json")
    assert strict_json(by_file)["total"] == strict_json(by_name)["total"]


# ---- output files ----------------------------------------------------------------------------------

OUTPUTS = [
    ["derive", "gpt2", "-o", "/proc/x.md"],
    ["derive", "gpt2", "-o", "{tmp}"],
    ["derive", "gpt2", "-o", "/nonexistent/dir/x.md"],
    ["plot", "gpt2", "-o", "/nonexistent/dir/x.png"],
    ["plot", "gpt2", "-o", "/proc/x.png"],
    ["sweep", "gpt2", "--batch", "1,2", "--seq", "128", "-o", "/nonexistent/dir/x.csv"],
    ["sweep", "gpt2", "--batch", "1,2", "--seq", "128", "-o", "{tmp}"],
    ["sweep", "gpt2", "--batch", "1,2", "--seq", "128", "-o", "/proc/x.csv"],
]


@pytest.mark.parametrize("argv", OUTPUTS, ids=[" ".join(a) for a in OUTPUTS])
def test_output_destination_checked(capsys, tmp_path, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, "--output")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_unwritable_folder(capsys, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, out, err = run(capsys, "derive", "gpt2", "-o", str(folder / "x.md"))
        assert_one_line_error(code, out, err, "--output")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("command", ["derive", "sweep"])
def test_full_disk_is_one_line_and_leaves_nothing(capsys, tmp_path, monkeypatch, command):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    target = tmp_path / ("x.md" if command == "derive" else "x.csv")
    argv = ["derive", "gpt2", "-o", str(target)] if command == "derive" else ["sweep", "gpt2", "--batch", "1,2", "--seq", "128", "-o", str(target)]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, "--output")
    assert "No space left" in err
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


# ---- small kindnesses ------------------------------------------------------------------------------


def test_version(capsys):
    from symbolic import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"symbolic {__version__}"


def test_derive_and_plot_say_what_they_wrote(capsys, tmp_path):
    target = tmp_path / "d.md"
    code, out, err = run(capsys, "derive", "gpt2", "-o", str(target))
    assert code == 0, err
    assert f"wrote {target}" in out and f"{target.stat().st_size:,} bytes" in out
    figure = tmp_path / "p.svg"
    code, out, err = run(capsys, "plot", "gpt2", "--seq", "128", "-o", str(figure))
    assert code == 0, err
    assert f"wrote {figure}" in out and f"{figure.stat().st_size:,} bytes" in out


def test_inference_text_prints_kv_per_token(capsys):
    code, out, _ = run(capsys, "inference", "llama2-7b", "--batch", "1", "--seq", "4096")
    _, js, _ = run(capsys, "inference", "llama2-7b", "--batch", "1", "--seq", "4096", "--json")
    per_token = strict_json(js)["kv_cache_per_token"]
    assert code == 0 and f"KV cache per token: {per_token:,} bytes" in out
    assert per_token == 2 * 2 * 32 * 4096  # K and V, 2 bytes, 32 layers, 4096 wide


def test_input_module_examples_run():
    import doctest

    import symbolic.inputs

    result = doctest.testmod(symbolic.inputs)
    assert result.attempted > 5 and result.failed == 0
