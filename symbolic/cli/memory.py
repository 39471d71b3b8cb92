"""``symbolic memory``: bytes per device of weights, gradients, master weights, optimizer state, activations."""

from __future__ import annotations

import argparse

from ..units import GB, GIB
from ._common import add_model_argument, console, make_table, positive_int, print_json, split_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("memory", help="bytes per device: weights, gradients, optimizer state, activations, peak")
    add_model_argument(p)
    p.add_argument("--batch", type=positive_int("--batch"), required=True, metavar="B", help="micro-batch per device")
    p.add_argument("--seq", type=positive_int("--seq"), required=True, metavar="S", help="sequence length (tokens)")
    p.add_argument(
        "--precision",
        default="mixed",
        metavar="RECIPE",
        help="fp32, mixed (default, 16 bytes with Adam), mixed-fp32-grads (18), mixed-fp32-accum (20), bf16, "
        "or custom:W,G,M,S[,A] (bytes per element)",
    )
    p.add_argument(
        "--optimizer",
        default="adamw",
        help="adamw (default), adam, sgd, sgd-momentum, lion, adafactor, adam-8bit, none",
    )
    p.add_argument(
        "--freeze", action="append", metavar="COMPONENT", help="freeze a component (repeat or comma-separate)"
    )
    p.add_argument(
        "--lora-rank", type=positive_int("--lora-rank"), metavar="R", help="LoRA adapters of rank R; the base is frozen"
    )
    p.add_argument(
        "--lora-targets", action="append", metavar="MATRIX", help="matrices to adapt (default q_proj,v_proj)"
    )
    p.add_argument("--qlora", choices=("nf4", "nf4-dq"), help="store the frozen base matrices in NF4 (QLoRA)")
    p.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=0, help="ZeRO stage (3 = FSDP full shard)")
    p.add_argument("--hybrid-shard", type=positive_int("--hybrid-shard"), metavar="N", help="FSDP hybrid shard group")
    for name, what in (("dp", "data"), ("tp", "tensor"), ("pp", "pipeline"), ("cp", "context"), ("ep", "expert")):
        p.add_argument(
            f"--{name}", type=positive_int(f"--{name}"), default=1, metavar="N", help=f"{what}-parallel degree"
        )
    p.add_argument("--sequence-parallel", action="store_true", help="Megatron sequence parallelism (with --tp)")
    p.add_argument(
        "--stage",
        type=positive_int("--stage", minimum=0),
        help="pipeline stage to report (default: the one holding the most)",
    )
    p.add_argument("--vocab-multiple", type=positive_int("--vocab-multiple"), metavar="M", help="pad vocab to M*tp")
    p.add_argument("--step-counters", action="store_true", help="count torch.optim's fp32 step scalar per tensor")
    # activation options, passed through unchanged to symbolic.memory.activation_terms
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="bf16", help="activation dtype")
    p.add_argument("--attention", choices=("eager", "sdpa", "flash"), default="sdpa", help="attention kernel")
    p.add_argument("--recompute", choices=("none", "selective", "full"), default="none", help="activation recompute")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda", help="where activations live")
    p.add_argument("--convention", choices=("exact", "basic", "megatron"), default="exact", help="counting convention")
    p.add_argument("--json", action="store_true", help="print one JSON object (bytes)")
    p.set_defaults(run=run)


def report(args: argparse.Namespace) -> dict:
    """The memory answer as a plain dict (bytes; integers exact)."""
    from ..memory import Workload, memory, report_dict
    from ..parallel import Parallelism
    from ..registry import load_model

    model = load_model(args.model)
    parallel = Parallelism(
        dp=args.dp,
        tp=args.tp,
        pp=args.pp,
        cp=args.cp,
        ep=args.ep,
        zero=args.zero,
        hybrid_shard=args.hybrid_shard,
        sequence_parallel=args.sequence_parallel,
        stage=args.stage,
        vocab_multiple=args.vocab_multiple,
    )
    targets = split_list("--lora-targets", args.lora_targets)
    result = memory(
        model,
        Workload(args.batch, args.seq),
        parallel,
        precision=args.precision,
        optimizer=args.optimizer,
        freeze=split_list("--freeze", args.freeze),
        lora_rank=args.lora_rank,
        lora_targets=targets or None,
        qlora=args.qlora,
        convention=args.convention,
        step_counters=args.step_counters,
        dtype=args.dtype,
        attention=args.attention,
        recompute=args.recompute,
        device=args.device,
    )
    return report_dict(result)


def _size(n: int | None) -> tuple[str, str]:
    if n is None:
        return "n/a", "n/a"
    return f"{n / GIB:,.2f}", f"{n / GB:,.2f}"


def run(args: argparse.Namespace) -> int:
    out = report(args)
    if args.json:
        print_json(out)
        return 0
    per = out["per_device"]
    states = per["states"] or 1
    s = out["settings"]
    title = (
        f"{out['model']}: bytes per device ({s['precision']}, {s['optimizer']}, ZeRO {s['zero']}, "
        f"dp {s['dp']} tp {s['tp']} pp {s['pp']} (stage {s['stage']}) cp {s['cp']} ep {s['ep']})"
    )
    # one row per (category, component): the tensors of a component summed, so the table stays narrow
    rows: dict[tuple[str, str], int] = {}
    for t in out["terms"]:
        parts = t["path"].split(".")
        parts = parts[1:] if parts[0] == t["category"] else parts
        component = ".".join(parts[:2])
        key = (t["category"], component)
        rows[key] = rows.get(key, 0) + t["bytes"]
    whole = per.get("peak") or states
    order = ("weights", "gradients", "master", "optimizer", "activations", "transient")
    share_of = "share of peak" if per.get("peak") else "share of states"
    table = make_table(
        title, [("category", "text"), ("component", "text"), ("GiB", "number"), ("GB", "number"), (share_of, "number")]
    )
    for (category, component), total in sorted(
        rows.items(), key=lambda kv: order.index(kv[0][0]) if kv[0][0] in order else 99
    ):
        gib, gb = _size(total)
        table.add_row(category, component, gib, gb, f"{100 * total / whole:.2f}%")
    term = console()
    term.print(table)
    summary = make_table(
        "per device (bytes; GiB = 2^30 bytes, GB = 1e9 bytes)",
        [("figure", "text"), ("bytes", "number"), ("GiB", "number"), ("GB", "number"), ("share of states", "number")],
    )
    for key, value in per.items():
        gib, gb = _size(value)
        share = f"{100 * value / states:.2f}%" if value is not None and key not in ("transient", "peak") else "-"
        summary.add_row(key, "n/a" if value is None else f"{value:,}", gib, gb, share)
    term.print(summary)
    for note in out["notes"]:
        term.print(f"note: {note}")
    return 0
