"""``symbolic params``: parameter counts per term and in total, exact."""

from __future__ import annotations

import argparse

from ._common import (
    add_model_argument,
    console,
    convention_help,
    make_table,
    positive_int,
    print_json,
    show,
    split_list,
    term_json,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="parameter counts: total, trainable, frozen, per term")
    add_model_argument(p)
    p.add_argument("--convention", default="exact", help=convention_help("parameters"))
    p.add_argument(
        "--freeze",
        action="append",
        metavar="COMPONENT",
        help="freeze a component (repeat or comma-separate): embedding, attention, mlp, lm_head, all, ...",
    )
    p.add_argument(
        "--lora-rank",
        type=positive_int("--lora-rank"),
        metavar="R",
        help="add LoRA adapters of rank R (the base is frozen)",
    )
    p.add_argument(
        "--lora-targets", action="append", metavar="MATRIX", help="matrices to adapt (default q_proj,v_proj)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def answer(args: argparse.Namespace) -> dict:
    """The params answer as a plain dict (parameters; integers exact)."""
    import sympy as sp

    from ..model import parameter_counts, parameters
    from ..precompiled import params_object
    from ..registry import load_model

    model = load_model(args.model)
    targets = split_list("--lora-targets", args.lora_targets)
    if targets and args.lora_rank is None:
        from ..errors import SymbolicError

        raise SymbolicError("--lora-targets", "needs --lora-rank R")
    lora = (targets or ()) if args.lora_rank is not None else None
    if args.lora_rank is not None:
        from ..model import check_lora_rank

        check_lora_rank(model, args.lora_rank, targets)
    terms = parameters(model, args.convention, split_list("--freeze", args.freeze), lora)
    extra = {"lora_rank": args.lora_rank} if args.lora_rank is not None else {}
    counts = parameter_counts(model, terms, **extra)
    rows = [
        (j["path"], j["description"], j["formula"], j["count"], t.trainable) for t in terms for j in (term_json(t),)
    ]
    collected = terms.view("collect")
    per_term = [counts.per_term[t.path] for t in terms]
    return params_object(model, args.convention, str(collected), sp.latex(collected), rows, per_term, extra)


def run(args: argparse.Namespace) -> int:
    out = answer(args)
    if args.json:
        print_json(out)
        return 0
    total = out["total"] or 1
    table = make_table(
        f"{out['model']}: parameters ({out['convention']} convention)",
        [
            ("term", "text"),
            ("formula (per instance)", "formula"),
            ("count", "text"),
            ("parameters", "number"),
            ("share", "number"),
            ("trainable", "text"),
        ],
    )
    for t in out["terms"]:
        table.add_row(
            t["path"],
            t["formula"],
            t["count"],
            f"{t['parameters']:,}",
            f"{100 * t['parameters'] / total:.2f}%",
            "yes" if t["trainable"] else "no",
        )
    term = console()
    frozen = f"; {out['frozen']:,} frozen" if out["frozen"] else ""
    term.print(
        f"{out['model']}: {out['total']:,} parameters ({out['total'] / 1e9:,.2f} billion, "
        f"{out['convention']} convention){frozen}",
        highlight=False,
    )
    show(table, term)
    term.print(f"total     {out['total']:,} parameters  = {out['formula']}", highlight=False)
    term.print(f"trainable {out['trainable']:,} parameters", highlight=False)
    term.print(f"frozen    {out['frozen']:,} parameters", highlight=False)
    return 0
