"""Shipped model configurations (``symbolic/configs/*.json``) and loading a model by name or path.

Each shipped file holds a Hugging Face ``config.json`` verbatim plus the model's published
parameter count and its source. Nothing is fetched from the network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .arch import Arch, Model
from .errors import SymbolicError
from .hf import from_hf_config

__all__ = ["ShippedModel", "shipped_models", "load_model", "normalise_name", "untyped_models", "untyped_model"]


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
        model = _typed(data["config"], str(data["name"]))
        published = data.get("published_params")
        if isinstance(published, bool) or not isinstance(published, int | None):
            raise SymbolicError("published_params", f"must be an integer or null, got {published!r}")
        return replace(model, published_params=published, source=str(data.get("source", "")))
    return _typed(data, path.parent.name if path.name == "config.json" else path.stem)


def _config_path(name_or_path: str) -> Path | None:
    """The config file ``name_or_path`` names (a file, or a folder holding config.json), else None."""
    try:
        path = Path(name_or_path)
        if path.is_dir() and (path / "config.json").is_file():
            path = path / "config.json"
        return path if path.is_file() else None
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL byte
        return None


_UNTYPED: ContextVar[bool] = ContextVar("untyped", default=False)
_SIZE_KEYS = {
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "n_vocab": ("vocab_size",),
}


@contextmanager
def untyped_models() -> Iterator[None]:
    """Inside: :func:`load_model` answers a config of a model type without hand-written rules with
    an untyped :class:`Model` (``hand_written=False``) instead of an error; only a convention that
    reads the config (``traced``) answers for such a model, every other one refuses it."""
    token = _UNTYPED.set(True)
    try:
        yield
    finally:
        _UNTYPED.reset(token)


def untyped_model(config: Mapping[str, Any], name: str) -> Model:
    """A placeholder Model for a config whose ``model_type`` has no hand-written rules: the family is
    the model type; the sizes are the ones the config names under a common key (layers, width,
    vocabulary), which the training step's timeline reads (its logits and loss buffers)."""
    sizes: dict[str, int] = {}
    for size, keys in _SIZE_KEYS.items():
        value = next((config[k] for k in keys if type(config.get(k)) is int and config[k] > 0), None)
        if value is not None:
            sizes[size] = int(value)
    family = str(config.get("model_type"))
    return Model(name, Arch(family), sizes, config=dict(config), hand_written=False)


def _typed(config: Mapping[str, Any], name: str) -> Model:
    try:
        return from_hf_config(config, name=name)
    except SymbolicError as err:
        if err.field == "model_type" and _UNTYPED.get() and isinstance(config.get("model_type"), str):
            return untyped_model(config, name)
        raise


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
