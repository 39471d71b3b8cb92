"""Regenerate every committed derivation document and figure in docs/ with the symbolic CLI.

    python tools/regenerate_docs.py            # write docs/
    python tools/regenerate_docs.py --check    # exit 1 when a committed document is stale

``DOCUMENTS`` is the one list of what docs/ holds; tests/test_docs_fresh.py renders the same list.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# (figure file, symbolic plot arguments, caption)
FIGURES: list[tuple[str, list[str], str]] = [
    (
        "figures/llama2-7b-memory.svg",
        ["llama2-7b", "--kind", "memory", "--seq", "4096", "--budget", "80GiB"]
        + ["--setting", "dp=1", "--setting", "dp=8,zero=1", "--setting", "dp=8,zero=2", "--setting", "dp=8,zero=3"]
        + ["--setting", "dp=4,tp=2,zero=1"],
        "llama2-7b: bytes per device across parallel settings (mixed precision, AdamW)",
    ),
    (
        "figures/llama2-7b-flops-seq.svg",
        ["llama2-7b", "--kind", "scaling", "--quantity", "flops", "--grow", "seq", "--range", "256:262144"],
        "llama2-7b: training FLOPs per step against sequence length, dominant part shaded",
    ),
]

# (document, symbolic derive arguments, figures it embeds)
DOCUMENTS: list[tuple[str, list[str], list[str]]] = [
    ("llama2-7b.md", ["llama2-7b", "--format", "markdown", "--seq", "4096"], [f for f, _, _ in FIGURES]),
    ("llama2-7b.tex", ["llama2-7b", "--format", "latex", "--seq", "4096"], [f for f, _, _ in FIGURES]),
    ("gpt3-175b.md", ["gpt3-175b", "--format", "markdown", "--seq", "2048"], []),
    ("llama3-70b.md", ["llama3-70b", "--format", "markdown", "--seq", "8192"], []),
    ("mixtral-8x7b.md", ["mixtral-8x7b", "--format", "markdown", "--seq", "4096"], []),
]


def _figure_args(names: list[str], tex: bool) -> list[str]:
    captions = {f: c for f, _, c in FIGURES}
    out = []
    for name in names:
        path = name.replace(".svg", ".png") if tex else name  # pdflatex takes PNG, not SVG
        out += ["--figure", f"{path}={captions[name]}"]
    return out


def derive_args(doc: str, args: list[str], figures: list[str], out: Path) -> list[str]:
    """The ``symbolic derive`` argument list that writes ``doc`` to ``out``."""
    return ["derive", *args, *_figure_args(figures, doc.endswith(".tex")), "-o", str(out)]


def cli_reference() -> str:
    """docs/cli.md: every command's ``--help``, as argparse prints it at 100 columns."""
    import os

    os.environ["COLUMNS"] = "100"
    from symbolic.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    parts = [
        "# Command-line reference\n",
        "Generated from the parser by `python tools/regenerate_docs.py`; every command prints one line",
        "`error: FIELD: MESSAGE` and exits with status 2 on bad input.\n",
    ]
    for name, command in sorted(sub.choices.items()):
        parts += [f"## symbolic {name}\n", "```text", command.format_help().rstrip(), "```\n"]
    return "\n".join(parts)


def regenerate(target: Path, pdf: bool = True, figures: bool = True) -> None:
    """Write every document (and figure, and the PDF when pdflatex exists) under ``target``."""
    from symbolic.cli import main
    from symbolic.render import write_atomic

    write_atomic(target / "cli.md", cli_reference())

    (target / "figures").mkdir(parents=True, exist_ok=True)
    if figures:
        for name, args, _ in FIGURES:
            for path in (name, name.replace(".svg", ".png")):
                if main(["plot", *args, "-o", str(target / path)]) != 0:
                    raise SystemExit(f"plot {path} failed")
    for doc, args, figs in DOCUMENTS:
        extra = ["--pdf"] if pdf and doc.endswith(".tex") and shutil.which("pdflatex") else []
        if main([*derive_args(doc, args, figs, target / doc), *extra]) != 0:
            raise SystemExit(f"derive {doc} failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/ instead of writing")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if not args.check:
        regenerate(DOCS)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        regenerate(Path(tmp), pdf=False, figures=False)
        docs = [d for d, _, _ in DOCUMENTS] + ["cli.md"]
        stale = [d for d in docs if (Path(tmp) / d).read_text() != (DOCS / d).read_text()]
    for d in stale:
        print(f"stale: docs/{d}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
