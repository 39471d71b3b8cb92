#!/usr/bin/env python
"""Dev-time: measure exact parameter counts of the shipped configs with transformers.

For every ``symbolic/configs/*.json`` this builds the model on the meta device
(``AutoModelForCausalLM.from_config`` under ``torch.device("meta")``; no memory
is allocated and no weights are downloaded) and records
``sum(p.numel() for p in model.parameters())`` -- tied tensors are counted once,
buffers (e.g. rotary ``inv_freq``, DeepSeek's ``e_score_correction_bias``) are not
counted.  Writes ``tests/data/transformers_param_counts.json`` ({name: count})
plus, with ``--details``, a side file with buffer counts.

Usage:  python tools/count_with_transformers.py [--details] [name ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "symbolic" / "configs"
OUT = ROOT / "tests" / "data" / "transformers_param_counts.json"


def load_shipped(names=None):
    out = []
    for path in sorted(CONFIG_DIR.glob("*.json")):
        d = json.loads(path.read_text())
        if names and d["name"] not in names:
            continue
        out.append(d)
    return out


def build_config(config: dict):
    import transformers

    # Same call as tests/test_shipped_configs.py.  A quantization_config (DeepSeek-V3's fp8)
    # is kept: from_config never quantizes, it only describes the checkpoint's storage.
    return transformers.AutoConfig.for_model(**config)


def count(config: dict) -> dict:
    import torch
    import transformers

    cfg = build_config(config)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    params = sum(p.numel() for p in model.parameters())
    buffers = {n: b.numel() for n, b in model.named_buffers()}
    return {
        "params": params,
        "class": type(model).__name__,
        "buffer_numel": sum(buffers.values()),
        "buffer_names": sorted({n.split(".")[-1] for n in buffers}),
        "tied": bool(getattr(cfg, "tie_word_embeddings", False)),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--details", action="store_true", help="also print buffers / class per model")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import transformers

    transformers.logging.set_verbosity_error()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    results = {}
    existing = json.loads(OUT.read_text()) if OUT.exists() else {}
    for d in load_shipped(set(args.names) or None):
        info = count(d["config"])
        results[d["name"]] = info["params"]
        ref = d.get("params_for_comparison", d["published_params"])
        rel = info["params"] / ref - 1
        line = f"{d['name']:18s} {info['params']:>16,d}  published {d['published_params']:>16,d}  vs-ref {rel:+.2%}"
        if args.details:
            line += f"  {info['class']} tied={info['tied']} buffers={info['buffer_numel']} {info['buffer_names']}"
        print(line, flush=True)
    if not args.no_write:
        existing.update(results)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        payload = dict(sorted(existing.items()))
        OUT.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)} ({len(payload)} models, transformers {transformers.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
