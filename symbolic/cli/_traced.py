"""``params``/``memory``/``flops`` through the traced convention.

Taken for ``--convention traced``, and for a model type without hand-written rules when the trace
extra is installed (the answer says ``"convention": "traced"``). Its own small parser: the options
the traced answer uses; any other option is refused in one line rather than ignored.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from ..errors import SymbolicError
from ._common import console, make_table, positive_int, print_json

__all__ = ["wants_traced", "run_traced", "fallback_allowed"]

COMMANDS = ("params", "memory", "flops")


def wants_traced(arguments: Sequence[str]) -> bool:
    """True when the command line asks a quantity with ``--convention traced``."""
    args = list(arguments)
    if not args or args[0] not in COMMANDS:
        return False
    pairs = zip(args, args[1:], strict=False)
    return any(a == "--convention" and b == "traced" for a, b in pairs) or "--convention=traced" in args


def fallback_allowed(arguments: Sequence[str], message: str) -> bool:
    """True when ``message`` says a named model type has no hand-written rules and the quantity
    command names no convention or ``exact`` (so ``traced`` may answer instead)."""
    args = list(arguments)
    if not args or args[0] not in COMMANDS or not re.match(r"unsupported '[\w.\-]+';", message):
        return False
    for a, b in zip(args, args[1:], strict=False):
        if a == "--convention" and b != "exact":
            return False
    return not any(a.startswith("--convention=") and a != "--convention=exact" for a in args)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise SymbolicError("convention", f"traced: {message}")


def _parser(command: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"symbolic {command} --convention traced", add_help=False)
    p.add_argument("command")
    p.add_argument("model")
    p.add_argument("--convention", choices=("traced", "exact"), default="traced")
    p.add_argument("--batch", type=positive_int("--batch"), default=1)
    p.add_argument("--seq", type=positive_int("--seq"), default=2048)
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="bf16" if command == "memory" else "fp32")
    p.add_argument("--attention", choices=("sdpa", "eager"), default="sdpa")
    p.add_argument("--recompute", choices=("none", "full"), default="none")
    p.add_argument("--precision", default="mixed")
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--json", action="store_true")
    return p


def run_traced(arguments: Sequence[str]) -> int:
    """Answer the command line with the traced convention; prints the answer, returns 0."""
    from ..trace import EXTRA_HINT, TraceOptions, available

    command = arguments[0]
    args, extra = _parser(command).parse_known_args(list(arguments))
    if extra:
        raise SymbolicError("convention", f"traced does not take {extra[0]} (one device, the options of a trace)")
    if not available():
        raise SymbolicError("convention", f"traced needs torch and transformers; {EXTRA_HINT}")
    from ..trace.answer import traced_answer
    from ..trace.configs import load_config

    name, config = load_config(args.model)
    options = TraceOptions(
        dtype=args.dtype, attention=args.attention, recompute=args.recompute, at=(args.batch, args.seq)
    )
    out = traced_answer(name, config, command, args.batch, args.seq, options, args.precision, args.optimizer)
    if args.json:
        print_json(out)
        return 0
    con = console()
    versions = ", ".join(f"{k} {v}" for k, v in out["versions"].items())
    con.print(f"{out['model']} ({out['model_type']}), convention traced ({versions}), b={args.batch}, s={args.seq}")
    terms = out["activations"]["terms"] if command == "memory" else out["terms"]
    table = make_table(
        f"{command}: {out['total']:,} {out['unit']}", [("path", "text"), ("count", "text"), ("value", "number")]
    )
    for row in terms:
        table.add_row(row["path"], row["count"], f"{row['value']:,}")
    con.print(table)
    if command == "memory":
        con.print(
            f"model states ({out['precision']}, {out['optimizer']}): {out['states']:,} bytes; leaves out {out['leaves_out']}"
        )
    for note in out["notes"]:
        con.print(note)
    return 0
