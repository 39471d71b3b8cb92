"""Hold the hand-written ``exact`` activations to the traced truth over random configs.

For each hand-written family, draws configs with hypothesis (``tests/hf_factories.py``: every
head layout including kv = 1, tied and untied, biases; plus, where the family has them, sliding
windows shorter than the sequence and every ``hidden_act`` transformers accepts), traces each
once on fake tensors and compares ``exact`` with the traced bytes at b = 1 and b > 1, with
sequences on both sides of the window, for SDPA and eager attention with and without dropout.
Prints one JSON line per family and setting (agreeing / compared points, the first disagreement)
and a summary. The traced bytes equal autograd's (``tests/test_trace.py``), so a disagreement is
a miss of the hand-written rules.

    python tools/exact_vs_traced.py [FAMILY ...] [--examples 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POINTS = ((1, 5), (2, 5), (2, 13), (3, 11))
WINDOWED = {"mistral", "qwen2", "starcoder2", "gemma2", "phi3"}
ACTS = ("silu", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "relu")
SETTINGS = (("sdpa", 0.0), ("eager", 0.0), ("sdpa", 0.1), ("eager", 0.1))
DROPOUT_KEYS = ("attention_dropout", "attn_pdrop", "resid_pdrop", "embd_pdrop", "hidden_dropout", "dropout")


def draw_configs(family: str, examples: int) -> list[dict]:
    """``examples`` configs of ``family`` (deterministic)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.hf_factories import FACTORIES

    out: list[dict] = []

    @settings(max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(FACTORIES[family], st.integers(2, 9), st.sampled_from(ACTS), st.booleans())
    def collect(config, window, act, vary_act):
        cfg = dict(config)
        if family in WINDOWED:
            cfg["sliding_window"] = window
            if family == "qwen2":
                cfg["use_sliding_window"] = True
        if vary_act and family in ("llama", "qwen2", "mistral", "gpt2", "gpt_neox", "gptj", "opt"):
            key = "activation_function" if family in ("gpt2", "gptj") else "hidden_act"
            cfg[key] = act
        out.append(cfg)

    collect()
    return out[:examples]


def compare(family: str, examples: int) -> list[dict]:
    """Rows for ``family``: per setting, points where exact equals traced, and the first miss."""
    from symbolic import symbols as S
    from symbolic.errors import SymbolicError
    from symbolic.formulas.activations import ActivationOptions
    from symbolic.hf import from_hf_config
    from symbolic.model import activation_terms
    from symbolic.numeric import evaluate
    from symbolic.trace import TraceOptions, trace

    rows = []
    configs = draw_configs(family, examples)
    for attention, dropout in SETTINGS:
        row = {
            "family": family,
            "attention": attention,
            "dropout": dropout,
            "agree": 0,
            "within_1pct": 0,
            "points": 0,
            "errors": 0,
            "misses": {},
        }
        for config in configs:
            cfg = dict(config)
            for key in DROPOUT_KEYS:
                cfg[key] = dropout
            try:
                model = from_hf_config(cfg)
                rule = activation_terms(
                    model, "exact", ActivationOptions(dtype="fp32", attention=attention, device="cpu")
                )
                traced = trace(cfg, TraceOptions(attention=attention))
            except SymbolicError as err:
                row["errors"] += 1
                row.setdefault("first_error", f"{err.field}: {err.message}"[:200])
                continue
            for batch, seq in POINTS:
                mine = int(evaluate(rule.total, {**model.sizes, "batch": batch, "seq": seq}))
                truth = int(
                    traced.activations.total.subs({S.n_layers: traced.sizes["n_layers"], S.batch: batch, S.seq: seq})
                )
                row["points"] += 1
                row["within_1pct"] += abs(mine - truth) <= 0.01 * truth
                if mine == truth:
                    row["agree"] += 1
                    continue
                key = f"b={batch} s={seq}: exact - traced = {mine - truth}"
                row["misses"][key] = row["misses"].get(key, 0) + 1
                if "first_miss" not in row:
                    row["first_miss"] = {"config": cfg, "batch": batch, "seq": seq, "exact": mine, "traced": truth}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*")
    parser.add_argument("--examples", type=int, default=5)
    args = parser.parse_args(argv)
    from symbolic.hf import SUPPORTED_MODEL_TYPES

    warnings.simplefilter("ignore")
    agree = near = points = 0
    for family in args.families or SUPPORTED_MODEL_TYPES:
        for row in compare(family, args.examples):
            agree, near, points = agree + row["agree"], near + row["within_1pct"], points + row["points"]
            print(json.dumps(row, default=str), flush=True)
    print(json.dumps({"agree": agree, "within_1pct": near, "points": points}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
