"""Rendering: user text is escaped for LaTeX and Markdown, compiles, and files are written atomically."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic.cli import main
from symbolic.registry import shipped_models
from symbolic.render import escape_latex, escape_markdown, render, write_atomic
from symbolic.report import derivation_context

NASTY = r"ev\il $x% _a{b}& #1 ^2 ~t {{ name }} {% if x %} \VAR{model} \BLOCK{for} <b>|</b> [l](u) *e*"
PDFLATEX = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex missing (CI installs it; .ci/run)")


def _nasty_config(tmp_path: Path) -> Path:
    config = dict(shipped_models()["gpt2"].config)
    config["nasty_field"] = NASTY
    path = tmp_path / "nasty.json"
    path.write_text(json.dumps({"name": NASTY, "config": config, "source": NASTY}))
    return path


def _unescape_markdown(text: str) -> str:
    return re.sub(r"\\([\\`*_{}\[\]<>#|$~^&])", r"\1", text)


def test_markdown_shows_user_text_literally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["derive", str(_nasty_config(tmp_path)), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    title = out.splitlines()[0]
    assert _unescape_markdown(title) == f"# Derivation: {NASTY}"
    row = next(line for line in out.splitlines() if line.startswith("| nasty\\_field"))
    assert _unescape_markdown(row) == f"| nasty_field | {NASTY} |"
    assert not re.search(r"(?<!\\)\$x%", out)  # no math opened by the user's text


@PDFLATEX
def test_latex_with_user_specials_compiles(tmp_path: Path) -> None:
    tex = tmp_path / "nasty.tex"
    assert main(["derive", str(_nasty_config(tmp_path)), "--format", "latex", "-o", str(tex), "--pdf"]) == 0
    assert (tmp_path / "nasty.pdf").read_bytes().startswith(b"%PDF")
    assert r"\textbackslash{}VAR\{model\}" in tex.read_text()


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_escapes_leave_no_active_character(text: str) -> None:
    tex = escape_latex(text)
    # every special is preceded by a backslash or is part of a \text... command we wrote
    stripped = re.sub(r"\\(textbackslash|textasciicircum|textasciitilde|textless|textgreater|textbar)\{\}", "", tex)
    assert not re.search(r"(?<!\\)[$&#%_{}^~]", stripped)
    md = escape_markdown(text)
    assert "\n" not in md
    assert _unescape_markdown(md) == " ".join(text.splitlines())


def test_templates_hold_no_formula() -> None:
    # layout only: no SymPy-made math (symbols such as d_{model}, n_layers) is written in a template
    folder = Path(__file__).resolve().parent.parent / "templates"
    for path in folder.rglob("*.j2"):
        text = path.read_text()
        assert not re.search(r"n_(layers|vocab|heads)|d_(model|ffn|head)", text), path


def test_strict_undefined() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render({}, "markdown")


def test_write_atomic_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "doc.md"
    target.write_text("old")

    class Boom(str):
        def encode(self, *args: object, **kwargs: object) -> bytes:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, Boom("new"))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.md"]
    write_atomic(target, "new")
    assert target.read_text() == "new"


def test_context_is_plain_data() -> None:
    import sympy as sp

    from symbolic.registry import load_model

    def walk(obj: object) -> None:
        assert not isinstance(obj, sp.Basic), obj
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                walk(v)

    walk(derivation_context(load_model("llama2-7b")))


@PDFLATEX
def test_pdf_output_is_reproducible(tmp_path: Path) -> None:
    tex = tmp_path / "g.tex"
    assert main(["derive", "gpt2", "--format", "latex", "-o", str(tex), "--pdf"]) == 0
    first = (tmp_path / "g.pdf").read_bytes()
    assert main(["derive", "gpt2", "--format", "latex", "-o", str(tex), "--pdf"]) == 0
    assert (tmp_path / "g.pdf").read_bytes() == first


def test_pdf_without_pdflatex_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["derive", "gpt2", "--format", "latex", "-o", str(tmp_path / "g.tex"), "--pdf"]) == 2
    assert "apt-get install" in capsys.readouterr().err
    assert not (tmp_path / "g.tex").exists()


def test_pdflatex_is_real(tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex missing (CI installs it; .ci/run)")
    done = subprocess.run(["pdflatex", "--version"], capture_output=True, text=True)
    assert done.returncode == 0
