"""``symbolic inference``: bytes of weights (at a chosen precision) and of the KV cache per device."""

from __future__ import annotations

import argparse

from ..units import GB, GIB
from ._common import add_model_argument, console, make_table, positive_int, print_json


def register(sub: argparse._SubParsersAction) -> None:
    from ..formulas.inference import KV_DTYPES
    from ..formulas.weights import WEIGHT_FORMATS

    p = sub.add_parser("inference", help="inference memory: weights and KV cache, in bytes")
    add_model_argument(p)
    p.add_argument("--batch", type=positive_int("--batch"), required=True, metavar="B", help="sequences served at once")
    p.add_argument("--seq", type=positive_int("--seq"), required=True, metavar="S", help="tokens cached per sequence")
    p.add_argument("--dtype", default="bf16", choices=tuple(WEIGHT_FORMATS), help="weight storage (default bf16)")
    p.add_argument("--kv-dtype", default="bf16", choices=tuple(KV_DTYPES), help="KV cache element type")
    p.add_argument("--tp", type=positive_int("--tp"), default=1, metavar="N", help="tensor-parallel degree")
    p.add_argument("--json", action="store_true", help="print one JSON object (bytes)")
    p.set_defaults(run=run)


def answer(args: argparse.Namespace) -> dict:
    """The inference answer as a plain dict (bytes; integers exact)."""
    from .. import symbols as S
    from ..inference import inference_memory
    from ..numeric import ceil_int, evaluate
    from ..registry import load_model

    model = load_model(args.model)
    mem = inference_memory(model, args.batch, args.seq, args.dtype, args.kv_dtype, args.tp)
    ones = {S.tp: 1} if args.tp == 1 else {}
    terms = [
        {
            "path": t.path,
            "description": t.description,
            "formula": str(t.total.xreplace(ones)),
            "bytes": ceil_int(evaluate(t.total, mem.values), "bytes"),
        }
        for t in mem.weights.terms + mem.kv_cache.terms
    ]
    return {
        "model": model.name,
        "unit": "bytes",
        "weights": mem.bytes("weights"),
        "kv_cache": mem.bytes("kv_cache"),
        "total": mem.bytes("total"),
        "kv_cache_per_token": ceil_int(evaluate(mem.kv_cache.total, {**mem.values, "batch": 1, "seq": 1}), "bytes")
        if "window" not in mem.values
        else None,
        "formula": {k: str(getattr(mem, k).total.xreplace(ones)) for k in ("weights", "kv_cache")},
        "terms": terms,
        "per_device": "weights, kv_cache and total are per device (bytes)",
        "settings": {
            "batch": args.batch,
            "seq": args.seq,
            "dtype": args.dtype,
            "kv_dtype": args.kv_dtype,
            "tp": args.tp,
        },
        "notes": [
            "activations and framework workspace are not included",
            "quantized formats apply to the weight matrices inside the layers; embeddings, output layer, "
            "norms and biases stay in 16 bits",
        ],
    }


def run(args: argparse.Namespace) -> int:
    out = answer(args)
    if args.json:
        print_json(out)
        return 0
    total = out["total"] or 1
    s = out["settings"]
    table = make_table(
        f"{out['model']}: inference memory per device ({s['dtype']} weights, {s['kv_dtype']} KV cache)",
        [("figure", "text"), ("bytes", "number"), ("GiB", "number"), ("GB", "number"), ("share", "number")],
    )
    for key in ("weights", "kv_cache", "total"):
        n = out[key]
        table.add_row(key, f"{n:,}", f"{n / GIB:,.2f}", f"{n / GB:,.2f}", f"{100 * n / total:.2f}%")
    term = console()
    term.print(table)
    term.print(f"KV cache = {out['formula']['kv_cache']} bytes")
    per_token = out["kv_cache_per_token"]
    if per_token is not None:
        term.print(f"KV cache per token: {per_token:,} bytes ({per_token / 2**10:,.2f} KiB) per device")
    else:
        term.print("KV cache per token: not constant (sliding-window layers stop growing past the window)")
    for note in out["notes"]:
        term.print(f"note: {note}")
    return 0
