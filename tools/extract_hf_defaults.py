#!/usr/bin/env python
"""Dev-time: snapshot transformers' config defaults into ``symbolic/hf_defaults.json``.

``symbolic`` reads a user's ``config.json`` *without* importing transformers.  A
config.json only lists what its author wrote; every missing field silently takes
the transformers config class's default (e.g. ``tie_word_embeddings`` is True for
gpt2/falcon/gemma/starcoder2 but False for llama), and several keys are aliases
(``n_embd`` -> ``hidden_size``) or legacy spellings that transformers rewrites
(``rotary_pct`` -> ``rope_parameters.partial_rotary_factor``).  This script
records, for each supported ``model_type``:

* every JSON-serialisable field of ``config_class().to_dict()`` (the no-argument
  defaults), at the top level of the model_type's entry;
* ``__attribute_map__``: the class's ``attribute_map`` {alias: canonical};
* ``__config_class__``: the class name;
* ``__derived__``: {field: [fields it is computed from]} -- fields whose default is
  *not* a constant but derived in ``__post_init__`` (e.g. ``head_dim`` from
  ``hidden_size // num_attention_heads``, ``num_key_value_heads`` from
  ``num_attention_heads``); found empirically by perturbing each numeric input;
* ``__kwarg_aliases__``: {legacy_key: "dotted.path"} for config.json keys that are
  not fields but are moved somewhere by the constructor (e.g. ``rope_theta`` ->
  ``rope_parameters.rope_theta``, bloom ``n_embed`` -> ``hidden_size``);
* ``__properties__``: values of class-specific read-only properties on the
  default instance (e.g. falcon ``head_dim``/``rotary``), which are computed, not stored;
* ``__dropped_by_to_dict__``: field defaults that ``to_dict`` omits but which exist
  as attributes (kept so a reader can see them), if any.

Top level also has ``__transformers_version__``.

Usage:  python tools/extract_hf_defaults.py [--check]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import pathlib
import sys
import warnings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from symbolic.hf import SUPPORTED_MODEL_TYPES  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "symbolic" / "hf_defaults.json"

MODEL_TYPES = list(SUPPORTED_MODEL_TYPES)


# Keys seen in published config.json files that may not be dataclass fields in
# this transformers version; we probe where the constructor puts them.
LEGACY_KEY_CANDIDATES = {
    "rope_theta": 12345.0,
    "rope_scaling": {"rope_type": "linear", "factor": 3.0},
    "rotary_pct": 0.375,
    "rotary_emb_base": 23456.0,
    "partial_rotary_factor": 0.375,
    "rotary_dim": 48,
    "n_embed": 1536,
    "num_kv_heads": 3,
    "n_inner": 7777,
    "ffn_hidden_size": 7777,
    "hidden_activation": "relu2",
    "hidden_act": "relu2",
    "head_dim": 48,
    "num_local_experts": 6,
    "num_experts": 6,
    "multi_query": False,
    "use_qkv_bias": True,
    "qkv_bias": True,
    "attention_bias": True,
    "use_bias": False,
    "bias": True,
    "enable_bias": False,
    "layer_norm_epsilon": 3.5e-05,
    "layer_norm_eps": 3.5e-05,
    "rms_norm_eps": 3.5e-05,
    "norm_epsilon": 3.5e-05,
}


def _jsonable(v):
    try:
        json.dumps(v, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


def _clean(v):
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return str(v)
    return v


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        p = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, p + "."))
        out[p] = v
    return out


def _quiet():
    import transformers

    transformers.logging.set_verbosity_error()
    logging.disable(logging.CRITICAL)  # probing deliberately triggers "Can't set ..." errors
    warnings.filterwarnings("ignore")


def _make(cls, **kw):
    return cls(**kw)


def derived_fields(cls, base: dict) -> dict:
    """Fields whose value changes when some *other* numeric field is changed."""
    deps: dict[str, set] = {}
    for field, val in base.items():
        if field.startswith("_") or isinstance(val, bool) or not isinstance(val, int) or val <= 0:
            continue
        if field in ("transformers_version", "pad_token_id", "bos_token_id", "eos_token_id"):
            continue
        try:
            cfg = _make(cls, **{field: val * 2})
        except Exception:
            continue
        new = cfg.to_dict()
        for k, v in new.items():
            if k == field or k.startswith("_"):
                continue
            if k in base and base[k] != v:
                deps.setdefault(k, set()).add(field)
    return {k: sorted(v) for k, v in sorted(deps.items())}


def kwarg_aliases(cls, base: dict, attribute_map: dict) -> dict:
    out = {}
    flat_base = _flatten(base)
    for key, sentinel in LEGACY_KEY_CANDIDATES.items():
        if key in base or key in attribute_map:
            continue
        try:
            cfg = _make(cls, **{key: sentinel})
        except Exception as e:  # rejected by validation / read-only property
            out[key] = f"<rejected: {type(e).__name__}>"
            continue
        flat = _flatten(cfg.to_dict())
        hits = []
        for path, v in flat.items():
            if path == key:
                continue
            if isinstance(sentinel, dict):
                if isinstance(v, dict) and v.get("factor") == sentinel["factor"] and flat_base.get(path) != v:
                    hits.append(path)
            elif v == sentinel and flat_base.get(path) != v and not isinstance(v, dict):
                hits.append(path)
        if hits:
            out[key] = hits[0] if len(hits) == 1 else hits
        # else: stored verbatim as an inert extra attribute -> not an alias, not recorded
    return dict(sorted(out.items()))


def class_properties(cls, cfg) -> dict:
    """Read-only properties a model class consults (e.g. FalconConfig.head_dim, .rotary)."""
    import transformers

    base = transformers.PreTrainedConfig
    out = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = getattr(cls, name, None)
        if not isinstance(attr, property) or isinstance(getattr(base, name, None), property):
            continue
        try:
            v = getattr(cfg, name)
        except Exception:
            continue
        if _jsonable(v):
            out[name] = v
    return out


def extract(model_type: str) -> dict:
    import transformers

    cls = transformers.CONFIG_MAPPING[model_type]
    cfg = cls()
    raw = cfg.to_dict()
    entry = {}
    for k, v in raw.items():
        if _jsonable(v):
            entry[k] = _clean(v)
    # attributes present on the instance but left out of to_dict (rare)
    dropped = {}
    if dataclasses.is_dataclass(cfg):
        for f in dataclasses.fields(cfg):
            if f.name not in raw and hasattr(cfg, f.name):
                v = getattr(cfg, f.name)
                if _jsonable(v):
                    dropped[f.name] = v
    attribute_map = dict(getattr(cls, "attribute_map", {}) or {})
    entry["__config_class__"] = cls.__name__
    entry["__attribute_map__"] = attribute_map
    entry["__derived__"] = derived_fields(cls, raw)
    entry["__kwarg_aliases__"] = kwarg_aliases(cls, raw, attribute_map)
    entry["__properties__"] = class_properties(cls, cfg)
    if dropped:
        entry["__dropped_by_to_dict__"] = dropped
    return entry


def build() -> dict:
    import transformers

    _quiet()
    transformers.logging.disable_default_handler()
    data = {"__transformers_version__": transformers.__version__}
    for mt in MODEL_TYPES:
        data[mt] = extract(mt)
    return data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = ap.parse_args(argv)
    data = build()
    text = json.dumps(data, indent=1, sort_keys=False) + "\n"
    if args.check:
        ok = OUT.exists() and OUT.read_text() == text
        print("up to date" if ok else f"{OUT} is stale; rerun tools/extract_hf_defaults.py")
        return 0 if ok else 1
    OUT.write_text(text)
    print(
        f"wrote {OUT.relative_to(ROOT)}: {len(MODEL_TYPES)} model types, transformers {data['__transformers_version__']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
