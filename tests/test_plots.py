"""Figures: files are real PNG/SVG, regions mark the largest curve, bad options are one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symbolic.cli import main
from symbolic.model import flops_terms
from symbolic.numeric import evaluate
from symbolic.plots import dominant_regions, sample_points
from symbolic.registry import load_model


def test_memory_bars_png_and_svg(tmp_path: Path) -> None:
    png, svg = tmp_path / "m.png", tmp_path / "m.svg"
    args = ["plot", "llama2-7b", "--kind", "memory", "--setting", "dp=1", "--setting", "dp=8,zero=3"]
    assert main([*args, "--budget", "80GiB", "-o", str(png)]) == 0
    assert main([*args, "-o", str(svg)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in svg.read_bytes()[:500]


def test_scaling_plot(tmp_path: Path) -> None:
    out = tmp_path / "f.svg"
    assert main(["plot", "gpt2", "--kind", "scaling", "--quantity", "flops", "--grow", "seq", "-o", str(out)]) == 0
    text = out.read_text()
    # below ~the MLP/attention crossover the MLP leads; at long sequences attention does
    assert "block.mlp" in text and "block.attention" in text


def test_region_boundary_is_the_exact_crossover(tmp_path: Path) -> None:
    # the shaded regions change where the two parts are equal, evaluated from the engine's terms there
    out = tmp_path / "f.svg"
    args = ["plot", "llama2-7b", "--quantity", "flops", "--grow", "seq", "--range", "256:262144", "-o", str(out)]
    assert main(args) == 0
    text = out.read_text()
    labels = re.findall(r"seq = ([\d,]+)", text)
    assert len(labels) == 1, labels
    x = int(labels[0].replace(",", ""))
    model = load_model("llama2-7b")
    terms = flops_terms(model)

    def part(name: str, seq: int) -> int:
        return int(
            evaluate(terms.where(lambda t: f".{name}." in t.path).total, {**model.sizes, "batch": 1, "seq": seq})
        )

    assert part("mlp", x - 1) > part("attention", x - 1)
    assert part("attention", x + 1) > part("mlp", x + 1)
    assert abs(part("attention", x) - part("mlp", x)) <= abs(part("attention", x + 1) - part("mlp", x + 1))
    assert "block.mlp leads" in text and "block.attention leads" in text


def test_readme_plot_command_draws_memory_against_seq(tmp_path: Path) -> None:
    out = tmp_path / "memory-vs-seq.svg"
    args = ["plot", "llama2-7b", "--quantity", "memory", "--grow", "seq", "--range", "512:65536", "-o", str(out)]
    assert main(args) == 0
    text = out.read_text()
    for name in ("weights", "gradients", "master", "optimizer", "activations", "GiB per device", "sequence length"):
        assert name in text, name
    assert "total_weight" not in text  # categories, not the 26 tensors
    ticks = re.findall(r"\$\\mathdefault\{2\^\{(\d+)\}\}\$|2\^\{?(\d+)", text)
    assert ticks  # a log2 axis over the range


def test_samples_are_dense_and_cover_the_range() -> None:
    xs = sample_points(256, 262144)
    assert xs[0] == 256 and xs[-1] == 262144 and xs == sorted(set(xs))
    assert len(xs) >= 16 * 10  # 16 per doubling: no visible kinks


@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1e6)), min_size=1, max_size=30))
def test_regions_cover_every_point_with_its_largest_curve(points: list[tuple[float, float]]) -> None:
    xs = list(range(1, len(points) + 1))
    curves = {"a": [p[0] for p in points], "b": [p[1] for p in points]}
    regions = dominant_regions(xs, curves)
    assert regions[0][0] == xs[0] and regions[-1][1] == xs[-1]
    for start, end, name in regions:
        for x in range(start, end + 1):
            assert curves[name][x - 1] == max(curves["a"][x - 1], curves["b"][x - 1])
    assert all(r1[2] != r2[2] for r1, r2 in zip(regions, regions[1:], strict=False))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--kind", "memory", "--setting", "dq=8"], "--setting"),
        (["--kind", "scaling", "--range", "9:3"], "--range"),
        (["--kind", "scaling", "--grow", "window"], "--grow"),
        (["--kind", "memory", "--budget", "80 parsecs"], "--budget"),
        # an option the kind does not use is refused, not ignored
        (["--kind", "memory", "--grow", "seq"], "--grow"),
        (["--kind", "memory", "--quantity", "flops"], "--quantity"),
        (["--kind", "scaling", "--setting", "dp=8"], "--setting"),
        (["--quantity", "flops", "--budget", "80GiB"], "--budget"),
        (["--quantity", "params", "--precision", "fp32"], "--precision"),
    ],
)
def test_bad_options(args: list[str], field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "llama2-7b", *args, "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}:") and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_bad_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "gpt2", "-o", str(tmp_path / "x.pdf")]) == 2
    assert "error: --output:" in capsys.readouterr().err
