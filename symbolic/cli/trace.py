"""``symbolic trace``: the traced terms of any transformers causal LM, and their difference from ``exact``."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_model_argument, console, make_table, positive_int, print_json, term_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trace",
        help="trace one training step on fake tensors: parameters, saved activations, FLOPs (needs symbolic[trace])",
    )
    add_model_argument(p)
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="model dtype (default fp32)")
    p.add_argument(
        "--autocast",
        choices=("bf16", "fp16"),
        help="run the step under torch.autocast to this dtype over fp32 weights (the amp recipes)",
    )
    p.add_argument("--attention", choices=("sdpa", "eager"), default="sdpa", help="attention kernel (default sdpa)")
    p.add_argument("--recompute", choices=("none", "full"), default="none", help="checkpoint every decoder layer")
    p.add_argument(
        "--experts", choices=("grouped_mm", "batched_mm"), help="MoE experts path (default: transformers' default)"
    )
    p.add_argument("--batch", type=positive_int("--batch"), help="also evaluate at this batch (needs --seq)")
    p.add_argument("--seq", type=positive_int("--seq"), help="also evaluate at this sequence length (needs --batch)")
    p.add_argument(
        "--symbolic-sizes",
        action="store_true",
        help="keep the config's sizes (hidden_size, num_attention_heads, ...) as symbols too",
    )
    p.add_argument("--diff", choices=("exact",), help="print the difference from a hand-written convention")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def _trace(args: argparse.Namespace) -> tuple[str, dict[str, Any], Any]:
    from ..errors import SymbolicError
    from ..trace import EXTRA_HINT, available

    if not available():
        raise SymbolicError("trace", f"needs torch and transformers; {EXTRA_HINT}")
    from ..trace import TraceOptions, trace
    from ..trace.configs import load_config

    if (args.batch is None) != (args.seq is None):
        raise SymbolicError("--batch", "give --batch and --seq together (a point to evaluate at)")
    name, config = load_config(args.model)
    at = (args.batch, args.seq) if args.batch is not None else None
    options = TraceOptions(
        dtype=args.dtype,
        attention=args.attention,
        recompute=args.recompute,
        experts=args.experts,
        at=at,
        autocast=args.autocast,
        symbolic_sizes=args.symbolic_sizes,
    )
    return name, config, trace(config, options)


def report(args: argparse.Namespace) -> dict[str, Any]:
    """The trace answer as a plain dict (formulas as text; the totals with the layer count bound)."""
    from .. import symbols as S
    from ..trace.sizes import field_symbol

    name, config, result = _trace(args)
    bind = {S.n_layers: result.sizes["n_layers"]}
    at_config = {field_symbol(k): v for k, v in result.size_symbols.items()}
    out: dict[str, Any] = {
        "model": name,
        "model_type": result.model_type,
        "convention": "traced",
        "versions": result.versions,
        "options": result.options.key(),
        "layers": result.sizes["n_layers"],
        "layer_groups": [len(g) for g in result.layer_groups],
        "conditions": list(result.conditions),
        "notes": list(result.notes),
        "size_symbols": result.size_symbols,
        "size_conditions": [str(c) for c in result.size_conditions],
        "fixed_sizes": result.fixed_sizes,
        "seconds": round(result.seconds, 3),
        "cached": result.cached,
    }
    for quantity, breakdown in (
        ("parameters", result.parameters),
        ("activations", result.activations),
        ("flops", result.flops),
    ):
        total = breakdown.total.xreplace(bind)
        out[quantity] = {
            "unit": breakdown.quantity.unit,
            "total": str(total),
            "terms": [term_json(t) for t in breakdown],
        }
        if args.batch is not None:
            out[quantity]["value"] = int(total.subs({S.batch: args.batch, S.seq: args.seq, **at_config}))
    if args.diff:
        from ..errors import SymbolicError
        from ..trace.diff import difference

        try:
            rows = difference(config, result, args.diff)
        except SymbolicError as err:
            raise SymbolicError("--diff", f"{args.diff} has no rules for this model ({err.message})") from None
        out["diff"] = {
            "against": args.diff,
            "parts": [
                {
                    "quantity": d.quantity,
                    "part": d.part,
                    args.diff: str(d.hand_written),
                    "traced": str(d.traced),
                    "difference": str(d.difference),
                }
                for d in rows
            ],
        }
    return out


def run(args: argparse.Namespace) -> int:
    out = report(args)
    if args.json:
        print_json(out)
        return 0
    con = console()
    groups = ", ".join(str(n) for n in out["layer_groups"])
    con.print(
        f"{out['model']} ({out['model_type']}): traced with torch {out['versions']['torch']}, "
        f"transformers {out['versions']['transformers']}; {out['layers']} layers in groups of {groups}; "
        f"{out['seconds']} s{' (cached)' if out['cached'] else ''}"
    )
    for quantity in ("parameters", "activations", "flops"):
        block = out[quantity]
        value = f" = {block['value']:,} at b={args.batch}, s={args.seq}" if "value" in block else ""
        table = make_table(
            f"{quantity} ({block['unit']}): {block['total']}{value}",
            [("path", "text"), ("count", "text"), ("each", "formula")],
        )
        for row in block["terms"]:
            table.add_row(row["path"], row["count"], row["formula"])
        con.print(table)
    for note in out["notes"]:
        con.print(note)
    if out["conditions"]:
        con.print("holds where: " + "; ".join(out["conditions"]))
    if out["size_symbols"]:
        con.print("sizes as symbols: " + ", ".join(f"{k} (= {v})" for k, v in out["size_symbols"].items()))
    if out["fixed_sizes"]:
        con.print(
            "read as numbers by the code (kept at the config's value): "
            + ", ".join(f"{k} = {v}" for k, v in out["fixed_sizes"].items())
        )
    if out["size_conditions"]:
        con.print("holds for sizes where: " + "; ".join(out["size_conditions"]))
    if "diff" in out:
        parts = out["diff"]["parts"]
        if not parts:
            con.print(f"difference from {out['diff']['against']}: none (every part agrees)")
        for row in parts:
            con.print(
                f"difference {row['quantity']} {row['part']}: {out['diff']['against']} - traced = {row['difference']}"
            )
    return 0
