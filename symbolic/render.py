"""Rendering: a template context (plain data) -> LaTeX or Markdown text, and atomic file writes.

Templates hold layout only. Every ``{{ value }}`` (Markdown) or ``\\VAR{value}`` (LaTeX) is escaped
for its format on output, unless the value is :class:`Raw` (LaTeX that :mod:`symbolic.report` made
from a SymPy expression). Values are substituted, never parsed again, so a model name holding
``{{`` or ``\\VAR{`` renders literally. Undefined names in a template raise.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

__all__ = [
    "FORMATS",
    "Raw",
    "escape_latex",
    "escape_markdown",
    "breakable_math",
    "breakable_path",
    "breakable_name",
    "with_urls",
    "environment",
    "render",
    "write_atomic",
]

FORMATS: dict[str, str] = {"latex": "derivation.tex.j2", "markdown": "derivation.md.j2"}


class Raw(str):
    """Text already in the output's markup (LaTeX math from SymPy): written as it is."""


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIALS))
# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that act mid-line
_MARKDOWN_RE = re.compile(r"([\\`*_{}\[\]<>#|$~^&])")


def escape_latex(text: object) -> str:
    """``text`` with every LaTeX special character written so that it prints literally.

    Characters pdflatex's default fonts lack (beyond Latin-1) are written as their code point.
    """
    text = _LATEX_RE.sub(lambda m: _LATEX_SPECIALS[m.group()], " ".join(str(text).splitlines()))
    return "".join(c if ord(c) < 256 and (c.isprintable() or c == " ") else f"[U+{ord(c):04X}]" for c in text)


def escape_markdown(text: object) -> str:
    """``text`` with Markdown punctuation backslash-escaped and newlines folded (one line)."""
    return _MARKDOWN_RE.sub(r"\\\1", " ".join(str(text).splitlines()))


def breakable_math(value: object) -> Raw:
    """LaTeX math that TeX may break after ``+``, ``-`` and ``=`` when it runs past the line.

    TeX breaks inline math only at the outer level, so ``\\left( ... \\right)`` (one unbreakable
    box) becomes ``\\bigl( ... \\bigr)`` where no fraction needs a taller delimiter, and a product
    ``a \\cdot b`` is kept on one line.

    >>> print(breakable_math(r"2 \\cdot 4 + L \\left(x + y\\right)"))
    2 \\cdot\\nobreak 4 + L \\bigl(x + y\\bigr)
    """
    text = str(value)
    if r"\frac" not in text:
        text = text.replace(r"\left(", r"\bigl(").replace(r"\right)", r"\bigr)")
    return Raw(text.replace(r"\cdot ", r"\cdot\nobreak "))


def breakable_path(value: object) -> Raw:
    """A dotted term path (``block.attention.q_proj``) escaped for LaTeX, breakable after each dot.

    >>> print(breakable_path("block.q_proj"))
    block.\\allowbreak{}q\\_proj
    """
    return Raw(r".\allowbreak{}".join(escape_latex(part) for part in str(value).split(".")))


def breakable_name(value: object) -> Raw:
    """An identifier (``apply_residual_connection``) escaped for LaTeX, breakable after each underscore.

    >>> print(breakable_name("a_b"))
    a\\_\\allowbreak{}b
    """
    return Raw(r"\_\allowbreak{}".join(escape_latex(part) for part in str(value).split("_")))


_URL_RE = re.compile(r"https?://[A-Za-z0-9/:._~?=-]+[A-Za-z0-9/]")


def with_urls(value: object) -> Raw:
    """Text escaped for LaTeX with each plain web address set as ``\\url`` (which breaks at slashes).

    >>> print(with_urls("see https://example.org/a_b."))
    see \\url{https://example.org/a_b}.
    """
    text = " ".join(str(value).splitlines())
    parts, last = [], 0
    for match in _URL_RE.finditer(text):
        parts += [escape_latex(text[last : match.start()]), r"\url{" + match.group() + "}"]
        last = match.end()
    return Raw("".join(parts) + escape_latex(text[last:]))


def _finalize(escape):
    def finalize(value: Any) -> str:
        if isinstance(value, Raw):
            return str(value)
        if value is None:
            return "--"
        return escape(value)

    return finalize


def _loader() -> jinja2.BaseLoader:
    """Templates from the installed ``symbolic.templates`` package, else the checkout's ``templates/``."""
    try:
        folder = resources.files("symbolic.templates")
        if folder.joinpath(FORMATS["latex"]).is_file():
            return jinja2.FunctionLoader(lambda name: _read(folder, name))
    except ModuleNotFoundError:
        pass
    return jinja2.FileSystemLoader(str(Path(__file__).resolve().parent.parent / "templates"))


def _read(folder: Any, name: str) -> str | None:
    entry = folder
    for part in name.split("/"):
        entry = entry.joinpath(part)
    return entry.read_text(encoding="utf-8") if entry.is_file() else None


@cache
def environment(fmt: str) -> jinja2.Environment:
    """The Jinja environment for ``latex`` or ``markdown``: strict, escaping on output.

    LaTeX templates use ``\\BLOCK{...}``, ``\\VAR{...}`` and ``\\#{...}`` so that braces and
    ``{%`` stay ordinary LaTeX.
    """
    common: dict[str, Any] = dict(
        loader=_loader(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    if fmt == "latex":
        env = jinja2.Environment(
            block_start_string=r"\BLOCK{",
            block_end_string="}",
            variable_start_string=r"\VAR{",
            variable_end_string="}",
            comment_start_string=r"\#{",
            comment_end_string="}",
            line_statement_prefix=None,
            finalize=_finalize(escape_latex),
            **common,
        )
    elif fmt == "markdown":
        env = jinja2.Environment(finalize=_finalize(escape_markdown), **common)
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    env.filters["raw"] = Raw
    env.filters["math"] = breakable_math if fmt == "latex" else Raw
    env.filters["path"] = breakable_path if fmt == "latex" else (lambda v: v)
    env.filters["name"] = breakable_name if fmt == "latex" else (lambda v: v)
    env.filters["urls"] = with_urls if fmt == "latex" else (lambda v: v)
    return env


def render(context: Mapping[str, Any], fmt: str) -> str:
    """The derivation document for ``context`` as LaTeX or Markdown text."""
    return environment(fmt).get_template(FORMATS[fmt]).render(**context)


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file in the same folder, then a rename.

    A failure leaves ``path`` as it was (absent or with its old content).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
