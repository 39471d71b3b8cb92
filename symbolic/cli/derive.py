"""``symbolic derive``: a derivation document (LaTeX or Markdown) made from the engine's expressions."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ._common import add_model_argument, convention_help, positive_int, zero_stage

PDFLATEX_HINT = (
    "pdflatex not found; install it with: apt-get install -y --no-install-recommends "
    "texlive-latex-base texlive-latex-recommended texlive-fonts-recommended"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("derive", help="a derivation document (LaTeX or Markdown) from the same expressions")
    add_model_argument(p)
    p.add_argument("--format", choices=("latex", "markdown"), default="markdown", help="output format")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of standard output")
    p.add_argument("--pdf", action="store_true", help="also compile the LaTeX to FILE's .pdf with pdflatex")
    p.add_argument("--convention", default="exact", help="parameter convention: " + convention_help("parameters"))
    p.add_argument("--batch", type=positive_int("--batch"), default=1, help="micro-batch size (default 1)")
    p.add_argument(
        "--seq", type=positive_int("--seq"), help="sequence length (default 2048, or the position table's length)"
    )
    p.add_argument(
        "--recompute", choices=("none", "selective", "full"), default="none", help="activation recomputation"
    )
    for name, what in (("dp", "data"), ("tp", "tensor"), ("pp", "pipeline")):
        p.add_argument(
            f"--{name}", type=positive_int(f"--{name}"), default=1, help=f"{what}-parallel degree (default 1)"
        )
    p.add_argument("--zero", type=zero_stage, choices=(0, 1, 2, 3), default=0, help="ZeRO stage 0-3 (default 0)")
    p.add_argument("--precision", default="mixed", help="precision recipe for memory (default mixed)")
    p.add_argument("--optimizer", default="adamw", help="optimizer for memory (default adamw)")
    p.add_argument("--figure", action="append", metavar="PATH=CAPTION", help="embed a figure (a path relative to FILE)")
    p.set_defaults(run=run)


def _figures(items: list[str] | None) -> dict[str, str]:
    from ..errors import SymbolicError

    out: dict[str, str] = {}
    for item in items or ():
        path, sep, caption = item.partition("=")
        if not sep or not path.strip():
            raise SymbolicError("--figure", f"{item!r} must be PATH=CAPTION")
        out[path.strip()] = caption.strip()
    return out


def compile_pdf(tex_path: Path) -> Path:
    """Compile ``tex_path`` with pdflatex (twice, for references) next to it; returns the PDF's path."""
    from ..errors import SymbolicError
    from ..inputs import write_output

    exe = shutil.which("pdflatex")
    if exe is None:
        raise SymbolicError("--pdf", PDFLATEX_HINT)
    tex_path = tex_path.resolve()
    with tempfile.TemporaryDirectory() as work:
        for _ in range(2):
            done = subprocess.run(
                [exe, "-interaction=nonstopmode", "-halt-on-error", f"-output-directory={work}", tex_path.name],
                cwd=tex_path.parent,
                env={**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"},
                capture_output=True,
                text=True,
                errors="replace",
            )
            if done.returncode != 0:
                first = next((line for line in done.stdout.splitlines() if line.startswith("!")), "see the log")
                raise SymbolicError("--pdf", f"pdflatex failed on {tex_path.name}: {first}")
        pdf = tex_path.with_suffix(".pdf")
        write_output("--pdf", pdf, (Path(work) / tex_path.with_suffix(".pdf").name).read_bytes())
    return pdf


def run(args: argparse.Namespace) -> int:
    from ..errors import SymbolicError
    from ..inputs import output_file, write_output
    from ..registry import load_model
    from ..render import render
    from ..report import DocumentOptions, derivation_context, workload_of

    if args.pdf and (args.format != "latex" or not args.output):
        raise SymbolicError("--pdf", "needs --format latex and -o FILE.tex")
    if args.output is not None:
        output_file("--output", args.output)
    if args.pdf and shutil.which("pdflatex") is None:
        raise SymbolicError("--pdf", PDFLATEX_HINT)
    model = load_model(args.model)
    options = DocumentOptions(
        convention=args.convention,
        workload={"batch": args.batch, "seq": args.seq or workload_of(model, DocumentOptions())["seq"]},
        recompute=args.recompute,
        memory={
            "dp": args.dp,
            "tp": args.tp,
            "pp": args.pp,
            "zero": args.zero,
            "precision": args.precision,
            "optimizer": args.optimizer,
        },
        plots=_figures(args.figure),
    )
    text = render(derivation_context(model, options), args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = write_output("--output", args.output, text)
    print(f"wrote {out} ({args.format}, {len(text.encode()):,} bytes)")
    if args.pdf:
        pdf = compile_pdf(out)
        print(f"wrote {pdf} (pdf, {pdf.stat().st_size:,} bytes)")
    return 0
