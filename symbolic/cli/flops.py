"""``symbolic flops``: FLOPs of one training step, per operation, with time to train and MFU."""

from __future__ import annotations

import argparse

from ._common import add_model_argument, console, make_table, positive_int, print_json, show, term_json
from .analysis import add_point_options, point_request


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="training FLOPs of one step: forward, backward, recompute, per term")
    add_model_argument(p)
    add_point_options(p, quantity=False)
    p.add_argument("--tokens", help="training tokens (e.g. 300e9) for the total training compute and time")
    p.add_argument("--devices", type=positive_int("--devices"), help="devices the step runs on")
    p.add_argument(
        "--peak", help="FLOP/s of one device, e.g. 312T (A100 bf16 peak), or an achieved rate for the time to train"
    )
    p.add_argument(
        "--mfu",
        help="assumed model FLOPs utilisation (fraction) for the time to train; without it, hardware FLOPs run at --peak",
    )
    p.add_argument("--step-time", help="measured seconds per step, for MFU and HFU")
    p.set_defaults(run=run)


def _fraction(option: str, text: str | None, high: int | None = None, what: str = "a number such as 0.4 or 300e9"):
    from ..inputs import decimal

    if text is None:
        return None
    return decimal(option, text, high=high, what=what)


def answer(args: argparse.Namespace) -> dict:
    """The flops answer as a plain dict (FLOPs; integers exact)."""
    from fractions import Fraction

    from ..errors import SymbolicError
    from ..formulas.flops import hardware_flops, model_flops, per_token, time_to_train
    from ..numeric import as_number, evaluate
    from ..registry import load_model
    from ..units import parse_rate

    model = load_model(args.model)
    answer = point_request(args, model, "flops")
    terms, values = answer.terms, answer.values

    def n(expr):
        return as_number(evaluate(expr, values))

    forward = terms.where(lambda t: t.path.startswith("forward."))
    backward = terms.where(lambda t: t.path.startswith("backward."))
    recompute = terms.where(lambda t: t.path.startswith("recompute."))
    mf, hf = n(model_flops(terms).total), n(hardware_flops(terms).total)
    out: dict = {
        "model": model.name,
        "convention": args.convention,
        "recompute": args.recompute,
        "causal": args.causal,
        "unit": "FLOPs",
        "batch": args.batch,
        "seq": args.seq,
        "tokens_per_step": args.batch * args.seq,
        "total": hf,
        "model_flops": mf,
        "hardware_flops": hf,
        "forward": n(forward.total),
        "backward": n(backward.total),
        "recompute_flops": n(recompute.total),
        "per_token": {
            "model_flops": as_number(evaluate(per_token(model_flops(terms).total), values)),
            "hardware_flops": as_number(evaluate(per_token(terms.total), values)),
        },
        "formula": str(terms.view("collect")),
        "terms": [{**term_json(t), "flops": n(t.total)} for t in terms],
    }
    peak = parse_rate(args.peak, "--peak") if args.peak else None
    tokens = _fraction("--tokens", args.tokens, 10**18, "a token count such as 300e9 (at most 1e18)")
    mfu = _fraction("--mfu", args.mfu, 1, "a fraction of the peak above 0 and at most 1, such as 0.4")
    step = _fraction("--step-time", args.step_time, 10**9, "seconds per step such as 1.5")
    if tokens is not None:
        per_model = evaluate(per_token(model_flops(terms).total), values)
        per_hw = evaluate(per_token(terms.total), values)
        out["training"] = {
            "tokens": float(tokens),
            "model_flops": float(per_model * tokens),
            "hardware_flops": float(per_hw * tokens),
        }
        if peak is not None and args.devices:
            # at an assumed MFU: model FLOPs over mfu * peak; otherwise every executed FLOP at the given rate
            if mfu is not None:
                seconds = time_to_train(float(per_model * tokens), args.devices, float(peak * mfu))
            else:
                seconds = time_to_train(float(per_hw * tokens), args.devices, float(peak))
            out["training"].update(
                {
                    "devices": args.devices,
                    "peak": float(peak),
                    "mfu": float(mfu) if mfu is not None else None,
                    "seconds": seconds,
                    "days": seconds / 86400,
                }
            )
        elif peak is not None or args.devices:
            raise SymbolicError("--tokens", "the time to train needs both --devices and --peak")
    if step is not None:
        if peak is None or not args.devices:
            raise SymbolicError("--step-time", "MFU needs --devices and --peak too")
        # exact: FLOPs over (seconds x devices x peak); above 1 the step is faster than the hardware allows
        mfu_exact = Fraction(mf) / (step * args.devices * peak)
        hfu_exact = Fraction(hf) / (step * args.devices * peak)
        if hfu_exact > 1:
            fastest = Fraction(hf) / (args.devices * peak)
            raise SymbolicError(
                "--step-time",
                f"{args.step_time} s would run {float(hfu_exact):.4g}x the peak of {args.devices} devices "
                f"(utilization above 100%); the step takes at least {float(fastest):.4g} s",
            )
        out["utilization"] = {
            "step_seconds": float(step),
            "mfu": float(mfu_exact),
            "hfu": float(hfu_exact),
        }
    return out


def summary_lines(out: dict) -> list[str]:
    """The answer first, in readable units (decimal prefixes: 1 TFLOP = 1e12 FLOPs)."""
    from ..units import format_flops

    lines = [
        f"{out['model']}: one training step of batch {out['batch']} x {out['seq']:,} tokens "
        f"({out['convention']} convention, recompute {out['recompute']}):",
        f"  {format_flops(out['total'])} per step = forward {format_flops(out['forward'])} + backward "
        f"{format_flops(out['backward'])}"
        + (f" + recompute {format_flops(out['recompute_flops'])}" if out["recompute"] != "none" else ""),
        f"  {format_flops(out['per_token']['model_flops'])} of model FLOPs per token",
        "  attention: only the query-key pairs a causal mask keeps"
        if out["causal"]
        else "  attention: all s x s query-key pairs (--causal counts only those a causal mask keeps)",
    ]
    if "training" in out:
        tr = out["training"]
        line = f"  training: {format_flops(tr['model_flops'])} of model FLOPs for {tr['tokens']:.4g} tokens"
        if "days" in tr:
            rate = f"{100 * tr['mfu']:.1f}% MFU of " if tr["mfu"] is not None else ""
            line += f" = {tr['days']:,.1f} days on {tr['devices']} devices at {rate}{format_flops(tr['peak'])}/s each"
        lines.append(line)
    if "utilization" in out:
        u = out["utilization"]
        lines.append(f"  MFU {100 * u['mfu']:.1f}%   HFU {100 * u['hfu']:.1f}%")
    return lines


def run(args: argparse.Namespace) -> int:
    out = answer(args)
    if args.json:
        print_json(out)
        return 0
    total = out["total"] or 1
    term = console()
    for line in summary_lines(out):
        term.print(line, highlight=False)
    table = make_table(
        "per operation (exact FLOPs; the backward pass is twice the forward)",
        [
            ("term", "text"),
            ("formula (per instance)", "formula"),
            ("count", "text"),
            ("FLOPs", "number"),
            ("share", "number"),
        ],
    )
    for t in out["terms"]:
        table.add_row(t["path"], t["formula"], t["count"], f"{t['flops']:,}", f"{100 * t['flops'] / total:.2f}%")
    show(table, term)
    term.print(f"total {out['total']:,} FLOPs per step", highlight=False)
    return 0
