"""Answers before SymPy loads: plain-Python modules generated from the SymPy expressions.

For every model structure (:class:`~symbolic.arch.Arch`) among the shipped models,
:mod:`symbolic.precompiled.generate` prints the parameter terms of the default convention as plain
Python (exact integer arithmetic) into one module of this package, with the text every answer
quotes (formulas, LaTeX). The expressions stay the single source of truth: the modules are
regenerated from them (``python -m symbolic.precompiled.generate``) and a test proves the
checked-in ones are current and give the SymPy path's answers.

:func:`cli_answer` answers ``symbolic params MODEL --json`` from these modules for any model whose
structure has one -- a shipped model, or a ``config.json`` of a modelled family with the same
structure -- without importing SymPy; anything else returns ``None`` and the command line takes
the SymPy path.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..arch import Model

__all__ = ["structure_key", "params_object", "precompiled_params", "cli_answer"]


def structure_key(model: Model) -> str:
    """The name (hex) of ``model``'s generated module: a hash of its structure (Arch), not its sizes."""
    return hashlib.sha256(repr(model.arch).encode()).hexdigest()[:16]


def params_object(
    model: Model,
    convention: str,
    formula: str,
    latex: str,
    rows: Sequence[tuple[str, str, str, str, bool]],
    counts: Sequence[int],
    extra: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The ``symbolic params --json`` object (parameters): ``rows`` are each term's path, description,
    per-instance formula, count and trainable flag, ``counts`` its parameters, in the same order."""
    per_term = [int(c) for c in counts]
    total = sum(per_term)
    trainable = sum(c for c, row in zip(per_term, rows, strict=True) if row[4])
    return {
        "model": model.name,
        "convention": convention,
        "unit": "parameters",
        "total": total,
        "trainable": trainable,
        "frozen": total - trainable,
        "published_params": model.published_params,
        "sizes": {**model.sizes, **(extra or {})},
        "formula": formula,
        "terms": [
            {
                "path": path,
                "description": description,
                "formula": text,
                "count": count,
                "parameters": c,
                "trainable": flag,
            }
            for (path, description, text, count, flag), c in zip(rows, per_term, strict=True)
        ],
        "total_latex": latex,
    }


def _module(model: Model) -> Any:
    from ._index import KEYS

    key = structure_key(model)
    if key not in KEYS:
        return None
    return importlib.import_module(f"{__name__}._m{key}")


def precompiled_params(model: Model, convention: str | None = None) -> dict[str, Any] | None:
    """The ``symbolic params MODEL --json`` object of ``model`` from its generated module (parameters),
    or None when its structure has none (or ``convention`` is not the one generated, the default)."""
    from ._index import CONVENTION

    convention = CONVENTION if convention is None else convention
    module = _module(model)
    if module is None or convention != module.CONVENTION:
        return None
    return params_object(model, convention, module.FORMULA, module.LATEX, module.ROWS, module.params(model.sizes))


def _params_argv(argv: Sequence[str]) -> tuple[str, str | None] | None:
    """``(model, convention)`` when ``argv`` is ``params MODEL [--convention NAME] --json`` (any order)."""
    if len(argv) < 3 or argv[0] != "params":
        return None
    words = list(argv[1:])
    if "--json" not in words:
        return None
    words.remove("--json")
    convention = None
    for i, word in enumerate(words):
        if word.startswith("--convention="):
            convention = word.split("=", 1)[1]
            del words[i]
            break
        if word == "--convention" and i + 1 < len(words):
            convention = words[i + 1]
            del words[i : i + 2]
            break
    if len(words) != 1 or words[0].startswith("-"):
        return None
    return words[0], convention


def cli_answer(argv: Sequence[str]) -> str | None:
    """The text ``symbolic`` prints for ``argv`` when a generated module answers it, else None.

    Answers ``params MODEL --json`` (default convention) for a model whose structure has a
    generated module; anything else, including any error loading the model, is left to the full
    command line (None), which reports errors in its own words.
    """
    parsed = _params_argv(argv)
    if parsed is None:
        return None
    from ..errors import SymbolicError
    from ..registry import load_model

    try:
        model = load_model(parsed[0])
        answer = precompiled_params(model, parsed[1])
    except (SymbolicError, OSError, ValueError, KeyError, TypeError):
        return None
    if answer is None:
        return None
    from ..cli._common import print_json

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_json(answer)
    return out.getvalue()
