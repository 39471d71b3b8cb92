"""A model named on the command line -> its Hugging Face config dict (any model type).

A shipped name (common spellings accepted) gives its stored config; a path gives the
``config.json`` it names (or the one in the folder it names). Unlike :func:`symbolic.registry.load_model`
this does not map the config to a hand-written architecture, so any model type can be traced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SymbolicError
from ..registry import normalise_name, shipped_models

__all__ = ["load_config"]


def load_config(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """(name, HF config dict) for a shipped model name or a ``config.json`` path."""
    key = normalise_name(name_or_path)
    for name, shipped in shipped_models().items():
        spellings = (name, *shipped.aliases)
        if key in {normalise_name(s) for s in spellings} | {normalise_name(s.split("/")[-1]) for s in spellings}:
            return name, dict(shipped.config)
    path = Path(name_or_path)
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if not path.is_file():
        known = ", ".join(sorted(shipped_models()))
        raise SymbolicError(
            "model", f"{name_or_path!r} is neither a shipped model nor a config.json path; shipped: {known}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SymbolicError("config", f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from None
    except OSError as err:
        raise SymbolicError("config", f"cannot read {path}: {err.strerror}") from None
    if not isinstance(data, dict):
        raise SymbolicError("config", f"{path} does not hold a JSON object")
    if isinstance(data.get("config"), dict) and "name" in data:
        return str(data["name"]), dict(data["config"])
    name = path.parent.name if path.name == "config.json" else path.stem
    return name, data
