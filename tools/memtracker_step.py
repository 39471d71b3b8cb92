"""The training-step peak of full-size shipped models: ``symbolic memory`` against PyTorch's MemTracker.

``torch.distributed._tools.mem_tracker.MemTracker`` follows every storage a training step creates
and frees; run on fake tensors (``FakeTensorMode``) it needs no memory, so a 7B model takes seconds
on CPU. Each case builds the shipped model's ``*ForCausalLM`` from its config under fake tensors,
runs two steps (``model(ids, labels=ids).loss``, ``backward``, ``AdamW.step``, ``zero_grad``) and
reads the second step's peak; ours is ``symbolic memory MODEL --batch B --seq S --precision R
--optimizer adamw --optimizer-impl I --dtype D --attention sdpa --device cpu``, plus the ids
(MemTracker does not see tensors made before it starts).

Fake tensors are not real kernels: CPU SDPA's meta function gives its output another layout than
the real kernel, so two more ``b*s*h`` tensors per layer stay alive under fake tensors (measured on
small models against the real allocator, where MemTracker on real tensors agrees with the allocator
to the byte apart from the ids). The table reports both numbers as they are.

    python tools/memtracker_step.py                                  # every shipped case (minutes)
    python tools/memtracker_step.py --models llama2-7b --recipes fp32
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = (
    "llama2-7b", "llama3-8b", "mistral-7b", "qwen2-7b", "gemma-7b", "gpt2-xl", "pythia-6.9b",
    "phi3-mini", "olmo-7b", "starcoder2-7b", "stablelm-2-1.6b", "mixtral-8x7b",
)  # fmt: skip
DTYPE = {"fp32": "fp32", "bf16": "bf16", "amp-bf16": "bf16"}


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
    """MemTracker's peak bytes of the second of two training steps on CPU tensors, fake by default (bytes)."""
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
        tracker = MemTracker()
        tracker.track_external(model, opt)
        with tracker:
            for step in range(2):
                with torch.autocast("cpu", dtype=dtypes[amp or "bf16"], enabled=amp is not None):
                    loss = model(ids, labels=ids, use_cache=False).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                del loss
                if step == 0:
                    tracker.reset_mod_stats()
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
    p.add_argument("--seq", type=int, default=4096)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    print(f"{'model':16s} {'recipe':8s} {'impl':8s} {'MemTracker':>16s} {'ours':>16s} {'error':>8s}  seconds")
    for name in args.models.split(","):
        cfg = hf_config(name)
        for recipe in args.recipes.split(","):
            for impl in args.impls.split(","):
                t0 = time.time()
                got = memtracker_peak(cfg, args.batch, args.seq, recipe, impl)
                mine = ours(name, args.batch, args.seq, recipe, impl)
                theirs = got + mine["ids"]
                err = 100 * (mine["peak"] / theirs - 1)
                print(
                    f"{name:16s} {recipe:8s} {impl:8s} {theirs:16,d} {mine['peak']:16,d} {err:+7.2f}%  "
                    f"{time.time() - t0:.0f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
