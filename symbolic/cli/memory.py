"""``symbolic memory``: bytes per device of weights, gradients, master weights, optimizer state, activations."""

from __future__ import annotations

import argparse

from ..units import GB, GIB
from ._common import (
    add_model_argument,
    console,
    convention_names,
    make_table,
    positive_int,
    print_json,
    split_list,
    zero_stage,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("memory", help="bytes per device: weights, gradients, optimizer state, activations, peak")
    add_memory_options(p)
    p.add_argument("--detail", action="store_true", help="also list every category's components")
    p.set_defaults(run=run)


def add_memory_options(p: argparse.ArgumentParser, workload_required: bool = True) -> None:
    """The options of ``symbolic memory`` (``fit`` adds them too, with ``--batch``/``--seq`` optional)."""
    add_model_argument(p)
    open_note = "" if workload_required else " (not needed when solving for it)"
    p.add_argument(
        "--batch",
        type=positive_int("--batch"),
        required=workload_required,
        metavar="B",
        help="micro-batch per device" + open_note,
    )
    p.add_argument(
        "--seq",
        type=positive_int("--seq"),
        required=workload_required,
        metavar="S",
        help="sequence length (tokens)" + open_note,
    )
    p.add_argument(
        "--precision",
        default="mixed",
        metavar="RECIPE",
        help="fp32, bf16, fp16 (pure), amp-bf16, amp-fp16 (torch.autocast over fp32 weights), mixed (default, "
        "16 bytes with Adam), mixed-fp32-grads (18), mixed-fp32-accum (20), or custom:W,G,M,S[,A] (bytes per element)",
    )
    p.add_argument(
        "--optimizer",
        default="adamw",
        help="adamw (default), adam, sgd, sgd-momentum, lion, adafactor, adam-8bit, none",
    )
    p.add_argument(
        "--optimizer-impl",
        choices=("for-loop", "foreach", "fused"),
        help="torch.optim implementation (default: torch's for --device: foreach on cuda, for-loop on cpu)",
    )
    p.add_argument(
        "--zero-grad",
        choices=("set-to-none", "zero"),
        default="set-to-none",
        help="optimizer.zero_grad(set_to_none=True) (default, gradients freed) or zeroed in place (kept)",
    )
    p.add_argument(
        "--grad-accum", type=positive_int("--grad-accum"), default=1, metavar="N", help="micro-batches per step"
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
    p.add_argument("--zero", type=zero_stage, choices=(0, 1, 2, 3), default=0, help="ZeRO stage (3 = FSDP full shard)")
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
    p.add_argument(
        "--interleave",
        type=positive_int("--interleave"),
        default=1,
        metavar="M",
        help="model chunks per pipeline stage (interleaved 1F1B)",
    )
    p.add_argument("--vocab-multiple", type=positive_int("--vocab-multiple"), metavar="M", help="pad vocab to M*tp")
    p.add_argument("--step-counters", action="store_true", help="count torch.optim's fp32 step scalar per tensor")
    # activation options, passed through unchanged to symbolic.memory.device_activation_terms
    p.add_argument(
        "--dtype", choices=("fp32", "fp16", "bf16"), default="bf16", help="compute dtype (activations; autocast's)"
    )
    p.add_argument("--attention", choices=("eager", "sdpa", "flash"), default="sdpa", help="attention kernel")
    p.add_argument("--recompute", choices=("none", "selective", "full"), default="none", help="activation recompute")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cuda",
        help="where the step runs: its kernels' saved tensors and torch.optim's default implementation",
    )
    p.add_argument("--convention", choices=convention_names("memory"), default="exact", help="counting convention")
    p.add_argument("--json", action="store_true", help="print one JSON object (bytes)")


def memory_options(args: argparse.Namespace) -> dict:
    """The memory settings the options name, as the fields of :func:`symbolic.request.request` (read only)."""
    targets = split_list("--lora-targets", args.lora_targets)
    return {
        **{k: getattr(args, k) for k in ("dp", "tp", "pp", "cp", "ep", "zero", "hybrid_shard")},
        **{k: getattr(args, k) for k in ("sequence_parallel", "stage", "vocab_multiple")},
        "precision": args.precision,
        "optimizer": args.optimizer,
        "freeze": split_list("--freeze", args.freeze),
        "lora_rank": args.lora_rank,
        "lora_targets": targets or None,
        "qlora": args.qlora,
        "step_counters": args.step_counters,
        "optimizer_impl": args.optimizer_impl,
        "zero_grad": args.zero_grad,
        "accumulation": args.grad_accum,
        "dtype": args.dtype,
        "attention": args.attention,
        "recompute": args.recompute,
        "device": args.device,
        "interleave": args.interleave,
    }


def memory_answer(model, args: argparse.Namespace, **changes: int) -> dict:
    """The ``--json`` object of ``symbolic memory`` for ``model`` (bytes), with ``changes`` (e.g. ``batch=4``)
    applied to the options."""
    from ..memory import memory_json
    from ..request import request

    options = memory_options(args)
    workload = {"batch": args.batch, "seq": args.seq}
    for name, value in changes.items():
        (workload if name in workload else options)[name] = value
    answer = request(model, "memory", convention=args.convention, options=options, **workload)
    assert answer.memory is not None
    out = memory_json(answer.memory)
    return {"model": out.pop("model"), "convention": args.convention, **out}


def answer(args: argparse.Namespace) -> dict:
    """The memory answer as a plain dict (bytes; integers exact)."""
    from ..registry import load_model

    return memory_answer(load_model(args.model), args)


def _size(n: int | None) -> tuple[str, str]:
    if n is None:
        return "n/a", "n/a"
    return f"{n / GIB:,.2f}", f"{n / GB:,.2f}"


def _component(path: str, category: str) -> str:
    """``weights.block.attention.q_proj.weight`` -> ``block.attention`` (the tensor's module, two levels)."""
    parts = path.split(".")
    parts = parts[1:] if parts[0] == category else parts
    if parts and parts[-1] in ("weight", "bias"):
        parts = parts[:-1]
    return ".".join(parts[:2])


def binary_size(n: int) -> str:
    """Bytes in the largest binary unit that keeps the number at least 1: ``12.55 GiB``, ``512.0 KiB``, ``4 B``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n} B"


def summary_lines(out: dict) -> list[str]:
    """The answer first, in human units: the peak and what it adds up from (GiB = 2^30 bytes, GB = 1e9)."""
    per = out["per_device"]
    s = out["settings"]

    def both(n: int) -> str:
        return f"{n / GIB:,.2f} GiB ({n / GB:,.2f} GB)"

    where = (
        f"batch {s.get('batch')} x {s.get('seq'):,} tokens, {s['precision']} precision, {s['optimizer']}, "
        f"ZeRO {s['zero']}, dp {s['dp']} tp {s['tp']} pp {s['pp']} cp {s['cp']} ep {s['ep']}"
    )
    lines = [f"{out['model']} ({where}):"]
    states = ", ".join(f"{k} {per[k] / GIB:,.2f}" for k in ("weights", "gradients", "master", "optimizer"))
    if per.get("peak") is not None:
        point = out.get("peak_point")
        if point:
            at = point["phase"] + (f", layer {point['layer']}" if point["layer"] is not None else "")
            lines.append(f"  peak per device  {both(per['peak'])}, the step's largest point ({at})")
        else:
            lines.append(f"  peak per device  {both(per['peak'])} = weights + activations + largest transient")
    else:
        lines.append("  peak per device  not computed: no activation figure for these settings (see the notes)")
    lines.append(f"  states           {both(per['states'])}")
    lines.append(f"                   ({states} GiB)")
    if per.get("activations") is not None:
        lines.append(f"  activations      {both(per['activations'])}")
    lines.append(f"  transient        {both(per['transient'])}, the largest buffer the backward pass adds")
    return lines


def run(args: argparse.Namespace) -> int:
    out = answer(args)
    if args.json:
        print_json(out)
        return 0
    per = out["per_device"]
    whole = per.get("peak") or per["states"] or 1
    share_of = "share of peak" if per.get("peak") else "share of states"
    term = console()
    for line in summary_lines(out):
        term.print(line, highlight=False)
    summary = make_table(
        "per device, by category (GiB = 2^30 bytes, GB = 1e9 bytes)",
        [("category", "text"), ("bytes", "number"), ("GiB", "number"), ("GB", "number"), (share_of, "number")],
    )
    for key, value in per.items():
        gib, gb = _size(value)
        share = f"{100 * value / whole:.2f}%" if value is not None and key not in ("states", "peak") else "-"
        summary.add_row(key, "n/a" if value is None else f"{value:,}", gib, gb, share)
    term.print(summary)
    if args.detail:
        # one row per (category, component): the tensors of a component summed, so the table stays narrow
        rows: dict[tuple[str, str], int] = {}
        for t in out["terms"]:
            key = (t["category"], _component(t["path"], t["category"]))
            rows[key] = rows.get(key, 0) + t["bytes"]
        order = ("weights", "gradients", "master", "optimizer", "activations", "transient")
        table = make_table(
            "components",
            [("category", "text"), ("component", "text"), ("size", "number"), (share_of, "number")],
        )
        for (category, component), total in sorted(
            rows.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 99, -kv[1])
        ):
            table.add_row(category, component, binary_size(total), f"{100 * total / whole:.3f}%")
        term.print(table)
    else:
        term.print("(--detail lists each category's components; --json gives every term's formula)", highlight=False)
    for note in out["notes"]:
        term.print(f"note: {note}", highlight=False)
    return 0
