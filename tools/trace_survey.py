"""Which of transformers' causal-LM model types trace, and why the rest do not.

For every model type in ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` this builds a tiny config (the
class defaults with the usual size fields shrunk: 2 layers, width 64, 4 heads, 128 tokens, 4
experts), runs the general traced step on fake tensors (batch and sequence symbolic; SDPA, falling back to
eager where a type has no SDPA path; a step at b = 2, s = 9 where the code fixes a size) and, where
that succeeds, builds the real model and compares the traced saved bytes at b = 2, s = 9 with autograd's (``tests/harness/measure.py``). Prints one JSON line per
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
        present = defaults.get(key)
        if key in defaults and (present is None or (isinstance(present, int) and not isinstance(present, bool))):
            cfg[key] = value
    for key in TOKENS:
        if isinstance(defaults.get(key), int):
            cfg[key] = TOKENS.index(key)
    return cfg


class _Timeout(BaseException):  # not an Exception: no handler below may turn it into an answer
    pass


def _alarm(signum, frame):
    raise _Timeout


def _general_step(cfg: dict, attention: str) -> tuple[int, str]:
    """(saved bytes at b = 2, s = 9, how) from the general symbolic step (or a step at that point)."""
    from symbolic import symbols as S
    from symbolic.errors import SymbolicError
    from symbolic.trace import api, run
    from symbolic.trace.terms import region_terms

    model_type = api._check_model_type(cfg)
    try:
        model, fake, env = run.build_fake(cfg, "fp32", attention, "none", None)
    except Exception as err:
        if "does not support an attention implementation" in str(err):
            raise SymbolicError("attention", "no such attention") from None
        raise
    layers = run.find_layers(model)
    n_layers = len(layers.signatures) if layers else 0
    if layers is not None:
        run.select_layers(model, layers, False)
    kept = {g[0] for g in layers.groups} if layers else set()
    path = layers.path if layers else None
    how = "symbolic"
    try:
        step = run.run_step(model, fake, env, path, None, run.SEQ_HINT, False)
        if step.specialised:
            raise SymbolicError("trace", "the code fixes " + ", ".join(step.specialised))
    except Exception as err:  # a size the code fixes: trace at the point instead
        message = str(err) if isinstance(err, SymbolicError) else api._step_error(model_type, err, None, 37).message
        if "tensor values" in message:
            raise SymbolicError("trace", message) from None
        step = run.run_step(model, fake, env, path, 2, 9, False, seq_fixed=True)
        how = "point: " + message[:160]
    region = region_terms(step, layers, kept, n_layers, True)
    total = sum(count * expr for count, expr, _ in region.activations.values())
    return int(total.subs({S.n_layers: n_layers, S.batch: 2, S.seq: 9})), how


def survey_one(model_type: str, timeout: int) -> dict:
    """One row: ``status`` (symbolic / point / no-tiny-config / fails), the reason, traced vs measured."""
    from symbolic.errors import SymbolicError
    from tests.harness.measure import measure_activations

    row: dict = {"model_type": model_type}
    started = time.process_time()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        cfg = tiny_config(model_type)
        try:  # the real model first: a tiny config it rejects says nothing about tracing
            attention = "sdpa"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    real = measure_activations(cfg, 2, 9, attn_implementation=attention)["total"]
                except ValueError as err:
                    if "does not support an attention implementation" not in str(err):
                        raise
                    attention = "eager"
                    real = measure_activations(cfg, 2, 9, attn_implementation=attention)["total"]
        except Exception as err:
            row["status"] = "no-tiny-config"
            row["reason"] = f"the real model: {type(err).__name__}: {' '.join(str(err).split())[:160]}"
            return row
        traced, how = _general_step(cfg, attention)
        row["attention"] = attention
        row["status"] = "symbolic" if how == "symbolic" else "point"
        if how != "symbolic":
            row["reason"] = how
        row["traced"], row["measured"] = traced, real
        row["agrees"] = traced == real
    except _Timeout:
        row["status"], row["reason"] = "fails", f"no answer within {timeout} s"
    except SymbolicError as err:
        row["status"] = "no-tiny-config" if err.field == "config" else "fails"
        row["reason"] = f"{err.field}: {err.message}"[:240]
    except Exception as err:  # the trace failed where the real model runs
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
