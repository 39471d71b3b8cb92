"""Parameters per rank under transformers' own tensor parallelism: real multi-process splits.

Each run starts ``world`` CPU processes (``torch.distributed`` with the gloo backend), builds the
same small Hugging Face model in each, splits it with transformers' resolved plan exactly as
:mod:`tests.harness.parallel` does (``apply_tensor_parallelism``), and counts, per rank, the
elements of each parameter this rank holds (a ``DTensor``'s local shard; each parameter object
once). No step is run: the split of the parameters is all that is read.

Usage from the repository root (a few seconds per case)::

    python -m tests.harness.parallel_params --case llama-gqa --world 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

from .parallel import CASES, _local, _split


def _worker(rank: int, world: int, config: dict, out_dir: str) -> None:
    import warnings

    import torch
    import torch.distributed as dist

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    store = os.path.join(out_dir, "rendezvous")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        import transformers
        from torch.distributed.device_mesh import init_device_mesh

        cfg = dict(config)
        hf_config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
        _split(model, "tp", init_device_mesh("cpu", (world,)))
        params = {name: list(_local(p).shape) for name, p in model.named_parameters()}
        local = sum(_local(p).numel() for p in model.parameters())
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump({"rank": rank, "numel": local, "shapes": params}, fh)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def measure_parameters(config: dict, world: int) -> list[dict[str, Any]]:
    """Per rank (a list indexed by rank): ``numel``, the parameter elements it holds (parameters), and
    ``shapes``, each parameter's local shape by name."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(world, config, out_dir), nprocs=world, join=True)
        ranks = []
        for rank in range(world):
            with open(os.path.join(out_dir, f"rank{rank}.json")) as fh:
                ranks.append(json.load(fh))
    return ranks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", required=True, help="a case of tests.harness.parallel or of tests/trace_configs.py")
    parser.add_argument("--world", type=int, default=2)
    args = parser.parse_args(argv)
    from tests.trace_configs import NEW_TYPES

    config = CASES.get(args.case) or NEW_TYPES[args.case]
    for r in measure_parameters(config, args.world):
        print(f"rank {r['rank']}: {r['numel']} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
