"""The training-step peak of full-size shipped models: ``symbolic memory`` against PyTorch's MemTracker.

``torch.distributed._tools.mem_tracker.MemTracker`` follows every storage a training step creates
and frees; run on fake tensors (``FakeTensorMode``) it needs no memory, so a 7B model takes about a
minute of one CPU core. Each case builds the shipped model's ``*ForCausalLM`` from its config under
fake tensors, makes the optimizer's state (one step on zero gradients), then tracks one whole step
(``model(ids, labels=ids).loss``, ``backward``, ``AdamW.step``, ``zero_grad``) and reads its peak;
ours is ``symbolic memory MODEL --batch B --seq S --precision R --optimizer adamw
--optimizer-impl I --dtype D --attention sdpa --device cpu``, less the ids (MemTracker does not
see tensors made before it starts).

Where fake tensors would take another path than real ones: transformers looks for packed
sequences in the position ids and, unable to read a fake tensor, assumes they may be packed; it
then materialises a ``b*s*s`` causal mask and, given a mask, repeats keys and values to every head
before SDPA (more memory than the real run). The tool tells it the answer a real run reads off
the ids (nothing packed), so the fake step takes the real path; on small models MemTracker over
fake tensors then equals MemTracker over real tensors to the byte, which equals the CPU allocator
less the ids (``tests/test_step_peak.py``).

    python tools/memtracker_step.py --impls for-loop                 # every case (an hour or more)
    python tools/memtracker_step.py --models llama2-7b --recipes fp32 --impls for-loop
    python tools/memtracker_step.py --measured rows.jsonl --markdown table.md   # table from saved runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = (
    "llama2-7b", "llama3-8b", "mistral-7b", "qwen2-7b", "gemma-7b", "gpt2-xl", "pythia-6.9b",
    "phi3-mini", "olmo-7b", "starcoder2-7b", "stablelm-2-1.6b", "mixtral-8x7b",
)  # fmt: skip
DTYPE = {"fp32": "fp32", "bf16": "bf16", "amp-bf16": "bf16", "amp-fp16": "fp16"}


@contextlib.contextmanager
def _real_mask_path(fake: bool):
    """Under fake tensors, make transformers build the attention mask as it does for real ones.

    transformers looks for packed sequences in the position ids and, unable to read a fake
    tensor's values, assumes they may be packed: it then materialises a ``b*s*s`` causal mask and,
    with a mask, repeats the keys and values to every head for SDPA. A real run reads the ids
    (one ``arange`` per row: nothing packed), passes ``is_causal`` and no mask, and lets SDPA handle
    grouped keys and values. With real ids the answer is known, so the fake run is told it.
    """
    if not fake:
        yield
        return
    from unittest import mock

    import transformers.masking_utils as masking

    with mock.patch.object(masking, "find_packed_sequence_indices", lambda position_ids: None):
        yield


def memtracker_peak(config: dict, batch: int, seq: int, recipe: str, impl: str, fake: bool = True) -> int:
    """MemTracker's peak bytes of one training step (after the optimizer's state exists) on CPU
    tensors, fake by default (bytes)."""
    import torch
    import transformers
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from tests.harness.step import RECIPES

    param, amp = RECIPES[recipe]
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    cfg = dict(config)
    hf = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with FakeTensorMode() if fake else contextlib.nullcontext(), _real_mask_path(fake):
        model = transformers.AutoModelForCausalLM.from_config(hf, dtype=dtypes[param], attn_implementation="sdpa")
        model.train()
        kw = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, **kw)
        ids = torch.randint(0, hf.vocab_size, (batch, seq))
        # the optimizer's state exists from the first step on: make it with one step on zero
        # gradients (no forward pass needed), then track one whole step
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tracker = MemTracker()
        tracker.track_external(model, opt)
        with tracker:
            with torch.autocast("cpu", dtype=dtypes[amp or "bf16"], enabled=amp is not None):
                loss = model(ids, labels=ids, use_cache=False).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            del loss
        snapshot = tracker.get_tracker_snapshot("peak")
    return next(iter(snapshot.values()))["Total"]


def ours(name: str, batch: int, seq: int, recipe: str, impl: str) -> dict:
    """Our peak for the case (bytes), and the ids MemTracker cannot see."""
    from symbolic.memory import Workload, memory
    from symbolic.registry import load_model

    model = load_model(name)
    report = memory(
        model, Workload(batch, seq), precision=recipe, optimizer="adamw", optimizer_impl=impl,
        dtype=DTYPE[recipe], attention="sdpa", device="cpu",
    )  # fmt: skip
    return {"peak": report.bytes("peak"), "ids": 8 * batch * seq, "phase": report.peak_point()["phase"]}


def positions(name: str) -> int:
    """The longest sequence the shipped model takes: its learned position table, else unbounded."""
    from symbolic.registry import load_model

    n_ctx = load_model(name).sizes.get("n_ctx")
    return int(n_ctx) if n_ctx else 1 << 62


def hf_config(name: str) -> dict:
    """The shipped model's HF config dict (``model_type`` and its fields)."""
    from symbolic.registry import load_model

    return dict(load_model(name).config)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--recipes", default="fp32,bf16,amp-bf16")
    p.add_argument("--impls", default="for-loop,foreach")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=4096, help="capped at a learned position table's length")
    p.add_argument("--save", metavar="PATH", help="append each MemTracker measurement to this JSON-lines file")
    p.add_argument("--measured", metavar="PATH", help="take MemTracker's figures from a --save file instead")
    p.add_argument("--markdown", metavar="PATH", help="write the rows as a Markdown table")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    if args.measured:
        saved = [json.loads(line) for line in Path(args.measured).read_text().splitlines() if line.strip()]
        cases = [(r["model"], r["recipe"], r["impl"], r["batch"], r["seq"], r["memtracker"]) for r in saved]
    else:
        cases = [
            (name, recipe, impl, args.batch, args.seq, None)
            for name in args.models.split(",")
            for recipe in args.recipes.split(",")
            for impl in args.impls.split(",")
        ]
    print(f"{'model':16s} {'recipe':8s} {'impl':8s} {'MemTracker':>18s} {'ours - ids':>18s} {'error':>8s}  seconds")
    rows = []
    for name, recipe, impl, b, s, got in cases:
        t0 = time.time()
        s = min(s, positions(name))
        if got is None:
            got = memtracker_peak(hf_config(name), b, s, recipe, impl)
            if args.save:
                row = dict(model=name, recipe=recipe, impl=impl, batch=b, seq=s, memtracker=got)
                with open(args.save, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
        mine = ours(name, b, s, recipe, impl)
        seen = mine["peak"] - mine["ids"]
        err = 100 * (seen / got - 1)
        rows.append((name, recipe, impl, b, s, got, seen, err, mine["phase"]))
        print(
            f"{name:16s} {recipe:8s} {impl:8s} {got:18,d} {seen:18,d} {err:+7.3f}%  {time.time() - t0:.0f}",
            flush=True,
        )
    if rows:
        print(f"{len(rows)} cases, largest |error| {max(abs(r[7]) for r in rows):.3f}%")
    if args.markdown:
        lines = ["| model | recipe | impl | b | s | MemTracker (bytes) | ours − ids (bytes) | error | our peak in |"]
        lines.append("|---|---|---|---:|---:|---:|---:|---:|---|")
        lines += [
            f"| {n} | {r} | {i} | {b} | {s} | {g:,} | {o:,} | {e:+.4f}% | {ph} |" for n, r, i, b, s, g, o, e, ph in rows
        ]
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
