"""Bytes saved for backward per rank under tensor (and sequence) parallelism: real multi-process runs.

Each case starts ``world`` CPU processes (``torch.distributed`` with the gloo backend), builds the
same small randomly initialised Hugging Face model in each, splits it, runs one training forward
(``model.train()``, ``model(ids, labels=ids, use_cache=False)``) and sums, per rank, the bytes of the
unique storages autograd saved for backward that are still alive afterwards (parameters, buffers
and the ids excluded; a ``DTensor`` counts its local shard). Splits:

* ``tp``: transformers' own tensor parallelism: the model's resolved plan (``base_model_tp_plan``
  plus the head, e.g. ``lm_head: colwise_gather_output``) applied with
  ``transformers.distributed.tensor_parallel.apply_tensor_parallelism``.
* ``tp_sp``: the same plan with sequence parallelism, written with
  ``torch.distributed.tensor.parallel.parallelize_module`` the way Megatron-LM and torchtitan lay it
  out (transformers 5.24 reserves ``enable_sequence_parallel`` but does not wire it): the norms and
  the residual stream are split along the sequence (``SequenceParallel``), the attention and MLP
  inputs are all-gathered (``PrepareModuleInput`` Shard(1) -> Replicate), the row-parallel outputs
  reduce-scattered (``RowwiseParallel(output_layouts=Shard(1))``), the first layer's input split
  from the replicated embedding output, and the head's input gathered again (the loss sees the
  whole vocabulary, as in transformers' plan).

Usage from the repository root (small sizes; each case takes about 20-90 s on two cores)::

    python tools/compare_parallel.py                      # every case, measured vs ours, a table
    python -m tests.harness.parallel --case llama-gqa --world 2 --mode tp --json out.json

``tests/test_activations_parallel.py`` compares a few cases with ``symbolic``'s per-rank terms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

# the small models measured (tiny widths; every sharded width divisible by 4)
CASES: dict[str, dict[str, Any]] = {
    "llama-gqa": dict(
        model_type="llama",
        vocab_size=96,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        intermediate_size=96,
        head_dim=8,
    ),
    "qwen2": dict(
        model_type="qwen2",
        vocab_size=80,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=72,
    ),
    "mistral": dict(
        model_type="mistral",
        vocab_size=72,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=88,
        head_dim=12,
    ),
    "gpt_neox": dict(
        model_type="gpt_neox",
        vocab_size=64,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    ),
    "mixtral": dict(
        model_type="mixtral",
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=64,  # grouped_mm needs 16-byte rows: 64/tp floats
        num_local_experts=4,
        num_experts_per_tok=2,
    ),
}
MODES = ("tp", "tp_sp", "pp")


def _local(t):
    from torch.distributed.tensor import DTensor

    return t._local_tensor if isinstance(t, DTensor) else t


def _storage_key(t) -> tuple[int, int] | None:
    storage = _local(t).untyped_storage()
    n = storage.nbytes()
    return (storage.data_ptr(), n) if n else None


def _sp_plan(model) -> dict:
    """A Megatron-style sequence-parallel plan for the llama-like decoder (torch's parallel styles)."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        PrepareModuleInput,
        RowwiseParallel,
        SequenceParallel,
    )

    styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
    plan: dict[str, Any] = {}
    for name, style in model.config.base_model_tp_plan.items():
        if style not in styles:
            raise ValueError(f"sequence parallel plan: unsupported style {style!r} at {name}")
        full = f"model.{name}"
        plan[full] = RowwiseParallel(output_layouts=Shard(1)) if style == "rowwise" else ColwiseParallel()
    seq, rep = Shard(1), Replicate()
    plan |= {
        "model.layers.0": PrepareModuleInput(input_layouts=(rep,), desired_input_layouts=(seq,), use_local_output=True),
        "model.layers.*.input_layernorm": SequenceParallel(),
        "model.layers.*.post_attention_layernorm": SequenceParallel(),
        "model.layers.*.self_attn": PrepareModuleInput(
            input_kwarg_layouts={"hidden_states": seq}, desired_input_kwarg_layouts={"hidden_states": rep}
        ),
        "model.layers.*.mlp": PrepareModuleInput(input_layouts=(seq,), desired_input_layouts=(rep,)),
        "model.norm": SequenceParallel(),
        "lm_head": ColwiseParallel(input_layouts=seq, output_layouts=rep),
    }
    return plan


def _split(model, mode: str, mesh) -> None:
    if mode == "tp":
        from transformers.distributed.configuration_utils import DistributedConfig
        from transformers.distributed.tensor_parallel import apply_tensor_parallelism

        plan, _, _ = model._resolve_parallel_plans(DistributedConfig(tp_size=mesh.size()))
        apply_tensor_parallelism(model, mesh, plan)
    elif mode == "tp_sp":
        from torch.distributed.tensor.parallel import parallelize_module

        parallelize_module(model, mesh, _sp_plan(model))
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


class _Chunk:
    """Builds one pipeline chunk of a llama-like ``*ForCausalLM``: layers ``lo:hi``, the embedding on
    the first chunk, the final norm and lm_head on the last (torch.distributed.pipelining runs it)."""

    @staticmethod
    def build(model, lo: int, hi: int, first: bool, last: bool):
        import torch

        class Chunk(torch.nn.Module):
            def __init__(self):
                super().__init__()
                inner = model.model
                self.embed = inner.embed_tokens if first else None
                self.layers = torch.nn.ModuleList(inner.layers[lo:hi])
                self.rotary = inner.rotary_emb
                self.norm = inner.norm if last else None
                self.lm_head = model.lm_head if last else None

            def forward(self, x):
                h = self.embed(x) if self.embed is not None else x
                positions = torch.arange(h.shape[1]).unsqueeze(0)
                cos_sin = self.rotary(h, positions)
                for layer in self.layers:  # SDPA without a mask: is_causal
                    h = layer(h, attention_mask=None, position_ids=positions, position_embeddings=cos_sin)
                if self.norm is not None:
                    h = self.lm_head(self.norm(h))
                return h

        return Chunk()


def _pipeline(model, job: dict, ids, rank: int, world: int, hooks: tuple, alive_now) -> int:
    """Run one training step of ``job["micro"]`` micro-batches with torch's 1F1B or interleaved 1F1B
    schedule; return the most bytes saved for backward alive at once on this rank (bytes)."""
    import torch
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleInterleaved1F1B

    chunks = job.get("interleave", 1)
    n_layers = model.config.num_hidden_layers
    total = world * chunks
    per = n_layers // total
    peak = [0]

    def watch(*_):
        peak[0] = max(peak[0], alive_now())

    stages = []
    for c in range(chunks):
        index = rank + c * world
        sub = _Chunk.build(model, index * per, (index + 1) * per, index == 0, index == total - 1)
        sub.register_forward_hook(watch)
        stages.append(PipelineStage(sub, index, total, torch.device("cpu")))
    vocab = model.config.vocab_size

    def loss_fn(logits, target):  # the model's own loss (shifted labels, fp32 log-softmax)
        loss = model.loss_function(logits=logits, labels=target, vocab_size=vocab)
        watch()
        return loss

    if chunks == 1:
        schedule = Schedule1F1B(stages[0], job["micro"], loss_fn=loss_fn)
    else:
        schedule = ScheduleInterleaved1F1B(stages, job["micro"], loss_fn=loss_fn)
    with torch.autograd.graph.saved_tensors_hooks(*hooks):
        if rank == 0:
            schedule.step(ids, target=ids if world == 1 else None)
        elif rank == world - 1 or chunks > 1:
            schedule.step(target=ids)
        else:
            schedule.step()
    return peak[0]


def _worker(rank: int, world: int, job: dict, out_dir: str) -> None:
    import gc
    import warnings
    import weakref

    import torch
    import torch.distributed as dist

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    # rendezvous through a file in this run's own directory: no TCP store and no port picked ahead of
    # time that another run on the machine could take in between
    store = os.path.join(out_dir, "rendezvous")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        import transformers
        from torch.distributed.device_mesh import init_device_mesh

        cfg = dict(job["config"])
        hf_config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        torch.manual_seed(0)
        dtype = getattr(torch, job["dtype"])
        model = transformers.AutoModelForCausalLM.from_config(
            hf_config, dtype=dtype, attn_implementation=job["attention"]
        )
        model.to(dtype)
        if job["mode"] != "pp":
            _split(model, job["mode"], init_device_mesh("cpu", (world,)))
        model.train()
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(0, job["config"]["vocab_size"], (job["batch"], job["seq"]), generator=gen)
        excluded = {_storage_key(t)[0] for t in (*model.parameters(), *model.buffers(), ids)}
        records: list[tuple] = []

        def pack(t):
            key = _storage_key(t)
            if key is None or key[0] in excluded:
                return t
            alias = t.detach()
            records.append((key, weakref.ref(alias), list(_local(t).shape), str(t.dtype).replace("torch.", "")))
            return alias

        if job["mode"] == "pp":

            def alive_now() -> int:
                return sum(key[1] for key in {key for key, ref, *_ in records if ref() is not None})

            rows = job["batch"] * job["micro"]  # one step: micro-batches of ``batch`` sequences
            ids = torch.randint(0, job["config"]["vocab_size"], (rows, job["seq"]), generator=gen)
            excluded.add(_storage_key(ids)[0])
            peak = _pipeline(model, job, ids, rank, world, (pack, lambda x: x), alive_now)
            result = {"rank": rank, "total": peak, "tensors": []}
            with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
                json.dump(result, fh)
            dist.barrier()
            return
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            out = model(ids, labels=ids, use_cache=False)
        loss = out.loss
        del out
        gc.collect()
        alive: dict[tuple, dict] = {}
        for key, ref, shape, dt in records:
            if ref() is not None and key not in alive:
                alive[key] = {"bytes": key[1], "shape": shape, "dtype": dt}
        result = {
            "rank": rank,
            "total": sum(k[1] for k in alive),
            "tensors": list(alive.values()),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        loss.backward()  # the graph must be usable: a split that breaks backward is not a measurement
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(result, fh)
        # leave the group only once every rank is done with it: the barrier waits for all work queued
        # before it, so no rank closes its connections while a peer still reads from them
        dist.barrier()
    finally:  # after an error no barrier: the rank exits and the spawner stops the others
        dist.destroy_process_group()


def _spawn(job: dict, world: int) -> list[dict]:
    """One run: ``world`` fresh processes in a fresh directory; each rank's result (a list by rank)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(world, job, out_dir), nprocs=world, join=True)
        ranks = []
        for rank in range(world):
            with open(os.path.join(out_dir, f"rank{rank}.json")) as fh:
                ranks.append(json.load(fh))
    return ranks


def measure_parallel(
    config: dict,
    batch: int,
    seq: int,
    world: int,
    mode: str = "tp",
    dtype: str = "float32",
    attention: str = "sdpa",
    micro: int = 4,
    interleave: int = 1,
) -> list[dict]:
    """Per-rank bytes saved for backward (a list indexed by rank: ``total`` in bytes and ``tensors``).

    Starts ``world`` gloo processes on the CPU; ``mode`` is ``tp``, ``tp_sp`` or ``pp``. A run in which
    a worker is killed by a signal (a native abort in the communication layer, not a Python error) is
    started again once, from scratch, with a note on stderr; a worker that raises, a second signal
    death, or any number the run returns is never retried.
    """
    from torch.multiprocessing import ProcessExitedException

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    job = dict(
        config=config,
        batch=batch,
        seq=seq,
        mode=mode,
        dtype=dtype,
        attention=attention,
        micro=micro,
        interleave=interleave,
    )
    try:
        return _spawn(job, world)
    except ProcessExitedException as error:
        if error.signal_name is None:  # an exit status, not a signal: a real failure
            raise
        print(f"parallel run: {error}; running it again once", file=sys.stderr, flush=True)
    return _spawn(job, world)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: every case")
    parser.add_argument("--world", type=int, action="append", help="ranks (default: 2 and 4)")
    parser.add_argument("--mode", action="append", choices=MODES, help="default: tp and tp_sp")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=8)
    parser.add_argument("--json", help="write every result to this file")
    args = parser.parse_args(argv)
    rows = []
    for case in args.case or sorted(CASES):
        for world in args.world or (2, 4):
            for mode in args.mode or MODES:
                ranks = measure_parallel(CASES[case], args.batch, args.seq, world, mode)
                rows.append(
                    {
                        "case": case,
                        "world": world,
                        "mode": mode,
                        "batch": args.batch,
                        "seq": args.seq,
                        "per_rank": [r["total"] for r in ranks],
                        "ranks": ranks,
                    }
                )
                print(f"{case:10} world={world} {mode:6} per rank: {[r['total'] for r in ranks]}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
