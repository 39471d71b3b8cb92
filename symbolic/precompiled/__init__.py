"""Answers before SymPy loads: plain-Python modules generated from the SymPy expressions.

For every model structure (:class:`~symbolic.arch.Arch`) among the shipped models,
:mod:`symbolic.precompiled.generate` prints the parameter terms of the default convention and every
figure of the default memory answer (per device, per term, activations, the step's timeline) as
plain Python (exact integer arithmetic) into one module of this package, with the text every answer
quotes (formulas, LaTeX, notes). The expressions stay the single source of truth: the modules are
regenerated from them (``python -m symbolic.precompiled.generate``) and a test proves the
checked-in ones are current and give the SymPy path's answers.

:func:`cli_answer` answers ``symbolic params MODEL --json`` and ``symbolic memory MODEL --batch B
--seq S --json`` (every other option at its default) from these modules for any model whose
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

__all__ = ["structure_key", "params_object", "precompiled_params", "precompiled_memory", "cli_answer"]


def structure_key(model: Model) -> str:
    """The name (hex) of ``model``'s generated module: a hash of its structure (Arch) and of the few facts
    of its sizes that pick an exact activation rule (:attr:`Model.size_cases`), not of the sizes."""
    return hashlib.sha256(repr((model.arch, model.size_cases)).encode()).hexdigest()[:16]


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
    or None when its structure has none (or ``convention`` is not the one generated, the default).

    >>> from symbolic.registry import load_model
    >>> precompiled_params(load_model("llama2-7b"))["total"]  # what transformers builds
    6738415616
    """
    from ._index import CONVENTION

    convention = CONVENTION if convention is None else convention
    module = _module(model)
    if module is None or convention != module.CONVENTION:
        return None
    return params_object(model, convention, module.FORMULA, module.LATEX, module.ROWS, module.params(model.sizes))


def _whole(x: Any) -> int:
    """An exact value rounded up to a whole number (bytes), as :func:`symbolic.numeric.ceil_int` rounds."""
    return x if isinstance(x, int) else -(-x.numerator // x.denominator)


def precompiled_memory(model: Model, batch: int, seq: int) -> dict[str, Any] | None:
    """The ``symbolic memory MODEL --batch B --seq S --json`` object (every other option at its default)
    of ``model`` from its generated module (bytes), or None when its structure has none or the
    workload is one the full command refuses (a sequence past a learned position table).

    >>> from symbolic.registry import load_model
    >>> answer = precompiled_memory(load_model("llama2-7b"), batch=1, seq=4096)
    >>> answer["per_device"]["states"]  # 16 bytes per parameter: bf16 weights and gradients, fp32 master and Adam
    107814649856
    """
    module = _module(model)
    if module is None or getattr(module, "MEMORY", None) is None:
        return None
    limit = model.sizes.get("n_ctx")
    if limit is not None and seq > limit:
        return None  # the full command says why
    plan = module.MEMORY_PLAN
    values: dict[str, Any] = {**model.sizes, **plan["parallel"], "batch": batch, "seq": seq, "interleave": 1}
    window = model.config.get("sliding_window")
    if isinstance(window, int) and not isinstance(window, bool) and window > 0:
        values["window"] = window
    try:
        exact = module.memory(values)
    except (KeyError, ZeroDivisionError):
        return None
    c = [_whole(x) for x in exact]
    out = dict(module.MEMORY)
    out["model"] = model.name
    peak: int | None = None  # the largest timeline point, where the plan has a timeline
    out["terms"] = [{**row, "bytes": c[i]} for row, i in zip(out["terms"], plan["terms"], strict=True)]
    acts = plan["activations"]
    if acts is not None:
        per_layer: dict[str, int] = {}
        for group, i in acts["per_layer"]:
            per_layer[group] = per_layer.get(group, 0) + c[i]
        terms = [{**row, "bytes": c[i]} for row, i in zip(out["activations"]["terms"], acts["terms"], strict=True)]
        out["activations"] = {
            **out["activations"],
            "total": sum(row["bytes"] for row in terms),
            "per_layer": per_layer,
            "shared": sum(c[i] for i in acts["shared"]),
            "outside_layers": sum(c[i] for i in acts["outside"]),
            "terms": terms,
        }
    if plan["timeline"] is not None:
        points = []
        for row, spec in zip(out["timeline"], plan["timeline"], strict=True):
            if spec[0] == "fixed":
                points.append({**row, "bytes": c[spec[1]], "layer": None})
                continue
            n = c[spec[1]]
            ends = [(c[spec[2]], 0), (c[spec[3]], n - 1)] if n > 1 else [(c[spec[2]], 0)]
            value, layer = max(ends)
            points.append({**row, "bytes": value, "layer": layer})
        out["timeline"] = points
        out["peak_point"] = dict(max(points, key=lambda p: p["bytes"]))
        peak = out["peak_point"]["bytes"]
    out["per_device"] = {
        k: None if i is None else peak if i == "timeline" else c[i]
        for k, i in zip(out["per_device"], plan["per_device"], strict=True)
    }
    out["settings"] = {**out["settings"], "batch": batch, "seq": seq}
    out["values"] = values
    return out


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


def _memory_argv(argv: Sequence[str]) -> tuple[str, int, int] | None:
    """``(model, batch, seq)`` when ``argv`` is ``memory MODEL --batch B --seq S --json`` (any order,
    ``--batch=B`` too), B and S valid as the full command reads them; else None."""
    if len(argv) < 5 or argv[0] != "memory":
        return None
    from ..cli._common import positive_int

    words = list(argv[1:])
    found: dict[str, int] = {}
    model = None
    seen_json = False
    i = 0
    while i < len(words):
        word = words[i]
        name, _, value = word.partition("=")
        if name in ("--batch", "--seq") and name not in found:
            if not value:
                if i + 1 >= len(words):
                    return None
                value, i = words[i + 1], i + 1
            try:
                found[name] = positive_int(name)(value)
            except Exception:  # the full command reports it in its own words
                return None
        elif word == "--json" and not seen_json:
            seen_json = True
        elif not word.startswith("-") and model is None:
            model = word
        else:
            return None
        i += 1
    if model is None or not seen_json or len(found) != 2:
        return None
    return model, found["--batch"], found["--seq"]


def cli_answer(argv: Sequence[str]) -> str | None:
    """The text ``symbolic`` prints for ``argv`` when a generated module answers it, else None.

    Answers ``params MODEL --json`` (default convention) and ``memory MODEL --batch B --seq S
    --json`` (every other option at its default) for a model whose structure has a generated
    module; anything else, including any error loading the model, is left to the full command
    line (None), which reports errors in its own words.
    """
    params, memory = _params_argv(argv), _memory_argv(argv)
    if params is None and memory is None:
        return None
    from ..errors import SymbolicError
    from ..registry import load_model

    try:
        if params is not None:
            answer = precompiled_params(load_model(params[0]), params[1])
        else:
            assert memory is not None
            answer = precompiled_memory(load_model(memory[0]), memory[1], memory[2])
    except (SymbolicError, OSError, ValueError, KeyError, TypeError):
        return None
    if answer is None:
        return None
    from ..cli._common import print_json

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_json(answer)
    return out.getvalue()
