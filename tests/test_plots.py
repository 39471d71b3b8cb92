"""Figures: files are real PNG/SVG, regions mark the largest curve, bad options are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symbolic.cli import main
from symbolic.plots import dominant_regions


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
