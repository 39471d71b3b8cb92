"""Which of transformers' causal-LM model types trace, and why the rest do not.

For every model type in ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` this builds a tiny config (the
class defaults with the usual size fields shrunk: 2 layers, width 64, 4 heads, 128 tokens, 4
experts), traces one training step on fake tensors (SDPA, falling back to eager where a type has
no SDPA path) and, where the trace succeeds, builds the real model and compares the traced saved
bytes at b = 2, s = 9 with autograd's (``symbolic.validate.measure``). Prints one JSON line per
type and a summary; ``--markdown`` prints the table ``docs/activations.md`` quotes.

    python tools/trace_survey.py [TYPE ...] [--markdown] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMALL = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 128,
    "head_dim": 16,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "kv_lora_rank": 16,
    "q_lora_rank": 24,
    "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
    "n_group": 1,
    "topk_group": 1,
    "first_k_dense_replace": 1,
    "max_position_embeddings": 256,
}
TOKENS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def tiny_config(model_type: str) -> dict:
    """A small config dict for ``model_type``: the class defaults with the size fields shrunk."""
    from transformers import AutoConfig

    defaults = AutoConfig.for_model(model_type).to_dict()
    cfg = {"model_type": model_type}
    for key, value in SMALL.items():
        if key in defaults and isinstance(defaults[key], int) and not isinstance(defaults[key], bool):
            cfg[key] = value
    for key in TOKENS:
        if isinstance(defaults.get(key), int):
            cfg[key] = TOKENS.index(key)
    return cfg


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def survey_one(model_type: str, timeout: int) -> dict:
    """One row: ``status`` (traced / traced-at-a-point / no-tiny-config / fails) and the reason."""
    from symbolic import symbols as S
    from symbolic.errors import SymbolicError
    from symbolic.trace import TraceOptions, trace
    from symbolic.validate.measure import measure_activations

    row: dict = {"model_type": model_type}
    started = time.process_time()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        cfg = tiny_config(model_type)
        result = None
        for attention in ("sdpa", "eager"):
            try:
                result = trace(cfg, TraceOptions(attention=attention, at=(2, 9)), use_cache=False)
                break
            except SymbolicError as err:
                if err.field != "attention":
                    raise
        assert result is not None
        row["attention"] = result.options.attention
        row["status"] = "point" if result.notes else "symbolic"
        traced = int(result.activations.total.subs({S.n_layers: result.sizes["n_layers"], S.batch: 2, S.seq: 9}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            real = measure_activations(cfg, 2, 9, attn_implementation=result.options.attention)["total"]
        row["traced"], row["measured"] = traced, real
        row["agrees"] = traced == real
        if result.notes:
            row["reason"] = result.notes[0]
    except _Timeout:
        row["status"], row["reason"] = "fails", f"no answer within {timeout} s"
    except SymbolicError as err:
        row["status"] = "no-tiny-config" if err.field in ("config", "attention") else "fails"
        row["reason"] = f"{err.field}: {err.message}"[:240]
    except Exception as err:  # the real model (measurement) failed
        row["status"], row["reason"] = "fails", f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    finally:
        signal.alarm(0)
    row["cpu_seconds"] = round(time.process_time() - started, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("types", nargs="*")
    parser.add_argument("--timeout", type=int, default=120)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    types = args.types or sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    rows = []
    for model_type in types:
        row = survey_one(model_type, args.timeout)
        rows.append(row)
        print(json.dumps(row), flush=True)
    counts = Counter(r["status"] for r in rows)
    agree = sum(1 for r in rows if r.get("agrees"))
    print(json.dumps({"types": len(rows), **counts, "traced_equals_measured": agree}))
    if args.markdown:
        for r in rows:
            print(f"| {r['model_type']} | {r['status']} | {r.get('agrees', '')} | {r.get('reason', '')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
