#!/usr/bin/env python
"""Print the docs/activations.md table: Llama-2-7B, b=1, s=4096, activations per convention (GiB).

Our rows are computed by the API; the peers' figures are their published/run outputs
(each cited in docs/activations.md). ``tests/test_activations_docs.py`` checks the docs hold this output.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from symbolic.formulas.activations import ActivationOptions, activation_bytes  # noqa: E402
from symbolic.model import activation_terms  # noqa: E402
from symbolic.registry import load_model  # noqa: E402

GIB = 2**30
PEERS = (
    ("llm-analysis (HEAD d841e40, flash on)", "18.24", "per-layer sums with flash attention; LN kept in fp32"),
    ("EleutherAI cookbook (no checkpointing)", "97.00", "Korthikanti sbh(34+5as/h) x L: 4h GeLU MLP, dropout masks"),
    ("Megatron theoretical_memory (tp=1)", "18.16", "sbh(10+24/t) style: assumes selective recompute / flash"),
)
ROWS = (
    ("basic", ActivationOptions(), "design note: 2 bytes/element, s^2 scores, no masks, no fp32 copies"),
    (
        "megatron",
        ActivationOptions(recompute="none"),
        "Korthikanti, no recompute: {layers} in the layers (the cookbook's "
        "figure) + {rest} outside them (embedding dropout, final norm, output layer, fp32 logits)",
    ),
    ("megatron", ActivationOptions(recompute="selective"), "Korthikanti, selective recompute (as flash does)"),
    ("exact", ActivationOptions(dtype="bf16", attention="sdpa", device="cuda"), "HF, bf16, SDPA, CUDA"),
    ("exact", ActivationOptions(dtype="bf16", attention="eager", device="cuda"), "HF, bf16, eager (fp32 softmax)"),
    ("exact", ActivationOptions(dtype="bf16", attention="sdpa", recompute="full"), "HF, bf16, SDPA, checkpointing"),
    ("exact", ActivationOptions(dtype="fp32", attention="eager", device="cpu"), "HF, fp32, eager, CPU"),
)


def table() -> str:
    """The markdown table (GiB = 2^30 bytes), ours computed here."""
    model = load_model("llama2-7b")
    lines = ["| who | convention / setting | activations (GiB) | why |", "|---|---|---|---|"]
    for who, gib, why in PEERS:
        lines.append(f"| {who} | (their figure) | {gib} | {why} |")
    for conv, opts, why in ROWS:
        terms = activation_terms(model, conv, opts)
        load = {"batch": 1, "seq": 4096, "tp": 1, "pp": 1}
        ev = activation_bytes(terms, model, load)
        layers = activation_bytes(terms.where(lambda t: t.count != 1), model, load).total
        why = why.format(layers=f"{layers / GIB:.2f}", rest=f"{(ev.total - layers) / GIB:.2f}")
        setting = f"`{conv}` {opts.dtype} {opts.attention} recompute={opts.recompute} {opts.device}"
        lines.append(f"| symbolic | {setting} | {ev.total / GIB:.2f} | {why} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
