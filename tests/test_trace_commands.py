"""Every command that takes ``--convention`` answers with ``traced`` through the normal request path.

Small configs: a llama (hand-written rules exist) and a phi (no hand-written rules: the traced
convention answers by itself). The figures are held to truth from outside where there is one
(transformers' own parameter count, the storages real autograd saves, torch's FLOP counter on real
tensors) and otherwise to the commands' own separate evaluations at other points (a derivative
against a finite difference, a crossover against the values on both sides of it, a fit against
the memory one step beyond it).
"""

from __future__ import annotations

import json
import warnings

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from symbolic.cli import main  # noqa: E402

from .harness.measure import measure_activations  # noqa: E402
from .hf_factories import transformers_param_count  # noqa: E402
from .trace_configs import NEW_TYPES  # noqa: E402

LLAMA = {**NEW_TYPES["granite"], "model_type": "llama"}
PHI = NEW_TYPES["phi"]
CPU = ("--device", "cpu", "--dtype", "fp32")


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("configs")
    out = {}
    for name, config in (("llama", LLAMA), ("phi", PHI)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config))
        out[name] = str(path)
    return out


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def answer(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def measured(config: dict, batch: int, seq: int) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure_activations(config, batch, seq, attn_implementation="sdpa", dtype="fp32")["total"]


@pytest.mark.parametrize("name", ["llama", "phi"])
def test_params(capsys, configs, name):
    data = answer(capsys, "params", configs[name], "--convention", "traced")
    assert data["convention"] == "traced"
    assert data["total"] == transformers_param_count(LLAMA if name == "llama" else PHI)


@pytest.mark.parametrize("name", ["llama", "phi"])
def test_memory_activations_equal_real_autograd(capsys, configs, name):
    data = answer(capsys, "memory", configs[name], "--convention", "traced", "--batch", 3, "--seq", 11, *CPU)
    assert data["convention"] == "traced"
    assert data["per_device"]["activations"] == measured(LLAMA if name == "llama" else PHI, 3, 11)
    # mixed precision, AdamW: 16 bytes per parameter, of transformers' count
    assert data["per_device"]["states"] == 16 * transformers_param_count(LLAMA if name == "llama" else PHI)


@pytest.mark.parametrize("precision, dtype", [("amp-bf16", "bf16"), ("amp-fp16", "fp16")])
def test_memory_under_amp_equals_real_autograd_under_autocast(capsys, configs, precision, dtype):
    """A type known only through its trace, under an amp recipe: the step traced under torch.autocast over
    fp32 weights; its activations are autograd's saved bytes of the real step, its weights fp32."""
    argv = ("memory", configs["phi"], "--batch", 3, "--seq", 11, "--device", "cpu", "--precision", precision)
    data = answer(capsys, *argv, "--dtype", dtype)
    assert data["convention"] == "traced" and data["settings"]["autocast"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = measure_activations(PHI, 3, 11, attn_implementation="sdpa", dtype="fp32", autocast=dtype)["total"]
    assert data["per_device"]["activations"] == truth
    assert data["per_device"]["weights"] == 4 * transformers_param_count(PHI)


def test_phi_answers_without_naming_a_convention(capsys, configs):
    code, out, err = run(capsys, "memory", configs["phi"], "--batch", 1, "--seq", 7, *CPU, "--json")
    assert code == 0, err
    assert "'phi' has no hand-written rules; the traced convention answered" in err
    data = json.loads(out)
    assert data["convention"] == "traced" and data["per_device"]["activations"] == measured(PHI, 1, 7)


def test_flops_forward_and_backward_equal_torch_flop_counter(capsys, configs):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .harness.measure import build_model

    data = answer(capsys, "flops", configs["llama"], "--convention", "traced", "--batch", 2, "--seq", 9)
    # torch's counter has no entry for the CPU SDPA kernel: the real run takes eager attention, whose two
    # batched products are the ones the trace counts for SDPA
    model = build_model(LLAMA, attn_implementation="eager")
    model.train()
    ids = torch.randint(0, LLAMA["vocab_size"], (2, 9))
    with FlopCounterMode(display=False) as forward:
        loss = model(ids, labels=ids, use_cache=False).loss
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    assert data["convention"] == "traced"
    assert data["forward"] == forward.get_total_flops() and data["backward"] == backward.get_total_flops()


def test_flops_full_recompute_adds_the_layers_forward(capsys, configs):
    plain = answer(capsys, "flops", configs["llama"], "--convention", "traced", "--batch", 2, "--seq", 9)
    full = answer(
        capsys, "flops", configs["llama"], "--convention", "traced", "--batch", 2, "--seq", 9, "--recompute", "full"
    )
    layers = sum(t["flops"] for t in plain["terms"] if t["path"].startswith("forward.model.layers."))
    assert layers > 0 and full["recompute_flops"] == layers and full["total"] == plain["total"] + layers


def test_dominates_shares_add_up_to_the_memory_answer(capsys, configs):
    point = ("--batch", 2, "--seq", 16)
    dom = answer(capsys, "dominates", configs["phi"], "--quantity", "memory", "--convention", "traced", *point)
    mem = answer(capsys, "memory", configs["phi"], "--convention", "traced", *point)
    per = mem["per_device"]
    assert dom["total"] == per["states"] + per["activations"]
    grow = answer(
        capsys, "dominates", configs["phi"], "--quantity", "flops", "--convention", "traced", *point, "--grow", "seq"
    )
    assert grow["asymptotic"]["order"] == 2  # attention's s x s products lead


def test_sensitivity_is_the_derivative_of_the_flops(capsys, configs):
    base = (configs["llama"], "--convention", "traced", "--batch", 2)
    sens = answer(capsys, "sensitivity", *base, "--seq", 16, "--quantity", "flops", "--wrt", "seq")
    lo = answer(capsys, "flops", configs["llama"], "--convention", "traced", "--batch", 2, "--seq", 15)["total"]
    hi = answer(capsys, "flops", configs["llama"], "--convention", "traced", "--batch", 2, "--seq", 17)["total"]
    (row,) = sens["rows"]
    assert row["derivative_value"] == (hi - lo) / 2  # exact for a quadratic in seq


def test_crossover_lies_between_the_points_where_the_order_flips(capsys, configs):
    data = answer(
        capsys, "crossover", configs["phi"], "--quantity", "memory", "--convention", "traced",
        "--batch", 1, "--seq", 16, "--a", "activations", "--b", "weights", "--over", "seq",
    )  # fmt: skip
    at = float(data["value"])
    assert data["larger_after"] == "activations"

    def acts_minus_weights(seq: int) -> int:
        per = answer(capsys, "memory", configs["phi"], "--convention", "traced", "--batch", 1, "--seq", seq)
        return per["per_device"]["activations"] - per["per_device"]["weights"]

    below, above = int(at), int(at) + 1
    assert acts_minus_weights(below) < 0 < acts_minus_weights(above)


def test_fit_finds_the_largest_batch_within_the_budget(capsys, configs):
    data = answer(
        capsys, "fit", configs["phi"], "--convention", "traced", "--seq", 16, "--solve", "batch", "--budget", "2MB"
    )
    batch = data["value"]
    assert batch is not None and batch >= 1
    inside = answer(capsys, "memory", configs["phi"], "--convention", "traced", "--batch", batch, "--seq", 16)
    beyond = answer(capsys, "memory", configs["phi"], "--convention", "traced", "--batch", batch + 1, "--seq", 16)
    assert inside["per_device"]["peak"] <= 2_000_000 < beyond["per_device"]["peak"]


def test_fit_refuses_to_solve_for_a_degree(capsys, configs):
    code, out, err = run(
        capsys, "fit", configs["phi"], "--convention", "traced", "--seq", 16, "--batch", 1, "--solve", "pp",
        "--budget", "2MB",
    )  # fmt: skip
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: --solve:")


def test_sweep_rows_equal_the_memory_answers(capsys, configs):
    code, out, err = run(capsys, "sweep", configs["llama"], "--convention", "traced", "--batch", "1,3", "--seq", "7,11")
    assert code == 0, err
    rows = [line.split(",") for line in out.strip().splitlines()[1:]]
    assert len(rows) == 4
    for batch, seq, peak in rows:
        mem = answer(capsys, "memory", configs["llama"], "--convention", "traced", "--batch", batch, "--seq", seq)
        assert int(peak) == mem["per_device"]["peak"]
    flops = run(capsys, "sweep", configs["llama"], "--convention", "traced", "--quantity", "flops.total",
                "--batch", "2", "--seq", "9")  # fmt: skip
    assert flops[0] == 0 and flops[1].strip().splitlines()[1].split(",")[-1] == str(
        answer(capsys, "flops", configs["llama"], "--convention", "traced", "--batch", 2, "--seq", 9)["total"]
    )


@pytest.mark.parametrize("grid", ["d_model=48,64", "n_vocab=136,200"])
def test_sweep_refuses_a_size_the_trace_reads_from_the_config(capsys, configs, grid):
    code, out, err = run(
        capsys, "sweep", configs["llama"], "--convention", "traced", "--batch", "1", "--seq", "8", "--grid", grid
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and "config" in err


def test_derive_counts_in_the_traced_convention(capsys, configs, tmp_path):
    path = tmp_path / "phi.md"
    code, out, err = run(capsys, "derive", configs["phi"], "--format", "markdown", "-o", path, "--batch", 2, "--seq", 9)
    assert code == 0, err
    text = path.read_text()
    assert "Parameter convention: traced" in text and "traced convention, recomputation" in text
    assert f"{transformers_param_count(PHI):,}" in text


def test_plot_memory_and_scaling(capsys, configs, tmp_path):
    for argv in (
        ["--batch", 2, "--seq", 16],
        ["--kind", "scaling", "--quantity", "flops", "--grow", "seq", "--range", "8:64"],
    ):
        path = tmp_path / "figure.svg"
        code, out, err = run(capsys, "plot", configs["llama"], "--convention", "traced", "-o", path, *argv)
        assert code == 0, err
        assert path.stat().st_size > 0
        path.unlink()
    code, out, err = run(
        capsys, "plot", configs["llama"], "--convention", "traced", "-o", tmp_path / "f.svg", "--setting", "pp=2"
    )
    assert code == 2 and err.count("\n") == 1 and "pp" in err


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["sensitivity", "--quantity", "flops", "--wrt", "d_model"], "--wrt"),
        (["dominates", "--quantity", "flops", "--grow", "d_model"], "--grow"),
        (["crossover", "--quantity", "flops", "--a", "forward", "--b", "backward", "--over", "d_ffn"], "--over"),
        (["dominates", "--quantity", "flops", "--set", "d_model=64"], "d_model"),
    ],
)
def test_sizes_the_trace_reads_from_the_config_cannot_vary(capsys, configs, argv, flag):
    code, out, err = run(capsys, argv[0], configs["llama"], *argv[1:], "--convention", "traced")
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(f"error: {flag}:"), err


def test_cuda_is_labelled_assumed(capsys, configs):
    point = ("memory", configs["llama"], "--convention", "traced", "--batch", 1, "--seq", 8)
    cuda = answer(capsys, *point)["activations"]["terms"]
    cpu = answer(capsys, *point, "--device", "cpu")["activations"]["terms"]
    assert all("assumed" in t["source"] and "not measured" in t["source"] for t in cuda)
    assert not any("assumed" in t["source"] for t in cpu)
    assert [t["bytes"] for t in cuda] == [t["bytes"] for t in cpu]
