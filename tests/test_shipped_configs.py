"""Checks on the shipped model configs in ``symbolic/configs/*.json``.

The structural tests need only json/pathlib.  The transformers tests build every
shipped model on the meta device (no memory, no downloads) and check that its
parameter count is within 6% of the number its source publishes, and that it
equals the ground truth recorded in ``tests/data/transformers_param_counts.json``
(regenerate with ``python tools/count_with_transformers.py``).
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from symbolic import hf

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "symbolic" / "configs"
COUNTS_FILE = ROOT / "tests" / "data" / "transformers_param_counts.json"
HF_DEFAULTS = ROOT / "symbolic" / "hf_defaults.json"
COUNTS_TRANSFORMERS_VERSION = "5.24.0"  # version that produced COUNTS_FILE
TOLERANCE = 0.06

SUPPORTED_MODEL_TYPES = set(hf.SUPPORTED_MODEL_TYPES)

REQUIRED_KEYS = {"name", "aliases", "family", "published_params", "published_params_text", "source", "config"}
REQUIRED_MODELS = {
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "gpt3-175b",
    "opt-1.3b",
    "opt-6.7b",
    "opt-13b",
    "opt-66b",
    "bloom-176b",
    "bloom-7b1",
    "pythia-1.4b",
    "pythia-6.9b",
    "pythia-12b",
    "gpt-neox-20b",
    "gpt-j-6b",
    "falcon-7b",
    "falcon-40b",
    "llama2-7b",
    "llama2-13b",
    "llama2-70b",
    "llama3-8b",
    "llama3-70b",
    "llama3.1-8b",
    "llama3.1-70b",
    "llama3.1-405b",
    "mistral-7b",
    "mixtral-8x7b",
    "mixtral-8x22b",
    "qwen2-7b",
    "qwen2-72b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "qwen2-57b-a14b",
    "qwen3-8b",
    "gemma-2b",
    "gemma-7b",
    "gemma2-9b",
    "gemma2-27b",
    "phi3-mini",
    "phi3-medium",
    "deepseek-v3",
    "starcoder2-7b",
    "starcoder2-15b",
    "starcoder",
    "olmo-7b",
    "stablelm-2-1.6b",
}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")


def _load():
    out = {}
    for path in sorted(CONFIG_DIR.glob("*.json")):
        out[path] = json.loads(path.read_text())
    return out


SHIPPED = _load()
SHIPPED_BY_NAME = {d["name"]: d for d in SHIPPED.values()}
NAMES = sorted(SHIPPED_BY_NAME)


def reference_params(d: dict) -> int:
    """published_params, or the documented exception value (see published_params_note)."""
    return d.get("params_for_comparison", d["published_params"])


# --------------------------------------------------------------------------- structure


def test_at_least_30_configs_and_all_required_present():
    assert len(SHIPPED) >= 30
    missing = REQUIRED_MODELS - set(SHIPPED_BY_NAME)
    assert not missing, f"missing shipped configs: {sorted(missing)}"


@pytest.mark.parametrize("path", sorted(SHIPPED), ids=lambda p: p.stem)
def test_required_keys_and_types(path):
    d = SHIPPED[path]
    assert REQUIRED_KEYS <= set(d), f"{path.name}: missing {REQUIRED_KEYS - set(d)}"
    assert isinstance(d["name"], str) and d["name"] == d["name"].lower()
    assert NAME_RE.match(d["name"]), d["name"]
    assert path.stem == d["name"], "file must be named <name>.json"
    assert isinstance(d["aliases"], list) and all(isinstance(a, str) and a for a in d["aliases"])
    assert isinstance(d["family"], str) and d["family"]
    assert type(d["published_params"]) is int and d["published_params"] > 0
    assert isinstance(d["published_params_text"], str) and d["published_params_text"]
    assert isinstance(d["source"], str) and len(d["source"]) > 20
    assert isinstance(d["config"], dict)
    assert d["config"].get("model_type") in SUPPORTED_MODEL_TYPES
    if "params_for_comparison" in d:
        assert type(d["params_for_comparison"]) is int and d["params_for_comparison"] > 0
        assert isinstance(d.get("published_params_note"), str) and d["published_params_note"], (
            "an exception to published_params must be explained in published_params_note"
        )


def test_names_unique():
    names = [d["name"] for d in SHIPPED.values()]
    assert len(names) == len(set(names))


def test_aliases_do_not_collide():
    owner: dict[str, str] = {}
    for d in SHIPPED.values():
        owner[d["name"].lower()] = d["name"]
    for d in SHIPPED.values():
        for alias in d["aliases"]:
            key = alias.lower()
            assert owner.get(key, d["name"]) == d["name"], f"alias {alias!r} of {d['name']} collides with {owner[key]}"
            owner[key] = d["name"]


def test_every_model_type_is_covered():
    used = {d["config"]["model_type"] for d in SHIPPED.values()}
    assert used == SUPPORTED_MODEL_TYPES


def test_recorded_counts_cover_every_shipped_config():
    counts = json.loads(COUNTS_FILE.read_text())
    assert set(counts) == set(SHIPPED_BY_NAME)
    for name, n in counts.items():
        assert type(n) is int and n > 0
        d = SHIPPED_BY_NAME[name]
        ref = reference_params(d)
        assert abs(n / ref - 1) <= TOLERANCE, f"{name}: recorded {n:,} vs reference {ref:,}"


def test_hf_defaults_file_shape():
    data = json.loads(HF_DEFAULTS.read_text())
    assert isinstance(data.get("__transformers_version__"), str)
    assert SUPPORTED_MODEL_TYPES <= set(data)
    for mt in SUPPORTED_MODEL_TYPES:
        entry = data[mt]
        assert entry["model_type"] == mt
        assert isinstance(entry["__attribute_map__"], dict)
        assert "vocab_size" in entry and "tie_word_embeddings" in entry
    assert data["gpt2"]["__attribute_map__"]["hidden_size"] == "n_embd"


# --------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def hf():
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    transformers.logging.set_verbosity_error()
    return transformers, torch


def _count(hf, config: dict) -> int:
    transformers, torch = hf
    cfg = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_transformers_param_count_matches_published(hf, name):
    d = SHIPPED_BY_NAME[name]
    n = _count(hf, d["config"])
    ref = reference_params(d)
    assert abs(n / ref - 1) <= TOLERANCE, f"{name}: transformers builds {n:,} params, reference {ref:,}"
    transformers, _ = hf
    if transformers.__version__ == COUNTS_TRANSFORMERS_VERSION:
        recorded = json.loads(COUNTS_FILE.read_text())[name]
        assert n == recorded, f"{name}: {n:,} != recorded {recorded:,}; rerun tools/count_with_transformers.py"


def test_hf_defaults_match_installed_transformers(hf):
    transformers, _ = hf
    data = json.loads(HF_DEFAULTS.read_text())
    if data["__transformers_version__"] != transformers.__version__:
        pytest.skip("hf_defaults.json was extracted with a different transformers version")
    for mt in SUPPORTED_MODEL_TYPES:
        cls = transformers.CONFIG_MAPPING[mt]
        fresh = cls().to_dict()
        for key in ("vocab_size", "hidden_size", "tie_word_embeddings", "num_hidden_layers"):
            if key in fresh:
                assert data[mt][key] == fresh[key], (mt, key)
        assert data[mt]["__attribute_map__"] == dict(getattr(cls, "attribute_map", {}) or {})
