"""Shipped model configurations (``symbolic/configs/*.json``) and loading a model by name or path.

Each shipped file holds a Hugging Face ``config.json`` verbatim plus the model's published
parameter count and its source. Nothing is fetched from the network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .arch import Model
from .errors import SymbolicError
from .hf import from_hf_config

__all__ = ["ShippedModel", "shipped_models", "load_model", "normalise_name"]


@dataclass(frozen=True)
class ShippedModel:
    """One shipped configuration: its names, published count and source, and the HF config."""

    name: str
    aliases: tuple[str, ...]
    family: str
    published_params: int | None
    published_params_text: str
    source: str
    config: dict[str, Any]


def normalise_name(name: str) -> str:
    """Lower-case a model name and drop separators, so ``Llama-2-7B`` finds ``llama2-7b``."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


@cache
def shipped_models() -> dict[str, ShippedModel]:
    """All shipped configurations by canonical name, sorted by name."""
    folder = resources.files("symbolic").joinpath("configs")
    out: dict[str, ShippedModel] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        data = json.loads(entry.read_text(encoding="utf-8"))
        out[data["name"]] = ShippedModel(
            name=data["name"],
            aliases=tuple(data.get("aliases", ())),
            family=data.get("family", ""),
            published_params=data.get("published_params"),
            published_params_text=str(data.get("published_params_text", "")),
            source=data.get("source", ""),
            config=data["config"],
        )
    return out


@cache
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for name, shipped in shipped_models().items():
        for key in (name, *shipped.aliases):
            index.setdefault(normalise_name(key), name)
            index.setdefault(normalise_name(key.split("/")[-1]), name)
    return index


MAX_CONFIG_BYTES = 10 * 2**20  # a real config.json is a few kilobytes


def _read_config(path: Path) -> Any:
    """The JSON value in ``path``; every way it can be unreadable is one :class:`SymbolicError`."""
    from .inputs import shown

    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise SymbolicError("config", f"{shown(str(path))} is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
        blob = path.read_bytes()
    except OSError as err:
        raise SymbolicError("config", f"cannot read {shown(str(path))}: {err.strerror or err}") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SymbolicError("config", f"{shown(str(path))} is not UTF-8 text (byte {err.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SymbolicError("config", f"{shown(str(path))} is not valid JSON (line {err.lineno}: {err.msg})") from None
    except RecursionError:
        raise SymbolicError("config", f"{shown(str(path))} nests JSON too deeply to be a config") from None
    except ValueError as err:  # an integer of thousands of digits
        raise SymbolicError("config", f"{shown(str(path))} holds a number no config needs ({err})") from None


def _from_file(path: Path) -> Model:
    data = _read_config(path)
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and "name" in data:
        model = from_hf_config(data["config"], name=str(data["name"]))
        published = data.get("published_params")
        if isinstance(published, bool) or not isinstance(published, int | None):
            raise SymbolicError("published_params", f"must be an integer or null, got {published!r}")
        return replace(model, published_params=published, source=str(data.get("source", "")))
    return from_hf_config(data, name=path.parent.name if path.name == "config.json" else path.stem)


def _config_path(name_or_path: str) -> Path | None:
    """The config file ``name_or_path`` names (a file, or a folder holding config.json), else None."""
    try:
        path = Path(name_or_path)
        if path.is_dir() and (path / "config.json").is_file():
            path = path / "config.json"
        return path if path.is_file() else None
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL byte
        return None


def load_model(name_or_path: str) -> Model:
    """A shipped model by name (common spellings accepted) or a ``config.json`` path -> Model."""
    from .inputs import shown

    key = normalise_name(name_or_path)
    name = _index().get(key)
    if name is not None:
        shipped = shipped_models()[name]
        model = from_hf_config(shipped.config, name=name)
        return replace(model, published_params=shipped.published_params, source=shipped.source)
    path = _config_path(name_or_path)
    if path is not None:
        return _from_file(path)
    known = ", ".join(sorted(shipped_models()))
    raise SymbolicError(
        "model", f"{shown(name_or_path)} is neither a shipped model nor a config.json path; shipped: {known}"
    )
