"""``symbolic dominates | sensitivity | crossover | fit``: questions asked of a quantity's terms.

The quantity is picked with ``--quantity`` (``params``, ``flops`` or ``memory``); sizes come from
the model, ``--batch``/``--seq`` and ``--set NAME=VALUE``. Symbols and scaling paths a user types
are read by :mod:`symbolic.expressions` against the symbol registry, never evaluated as Python.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..request import DEFAULT_BATCH, DEFAULT_SEQ, QUANTITIES, SOLVABLE
from ._common import add_model_argument, console, make_table, positive_int, print_json, show


def add_point_options(p: argparse.ArgumentParser, quantity: bool = True) -> None:
    """Options shared by the analysis commands: the quantity, its convention, the point."""
    if quantity:
        p.add_argument("--quantity", default="flops", help=f"what to analyse: {', '.join(QUANTITIES)} (default flops)")
    p.add_argument("--convention", default="exact", help="counting convention (see the quantity's command)")
    p.add_argument(
        "--batch", type=positive_int("--batch"), help=f"micro-batch size per device (default {DEFAULT_BATCH})"
    )
    p.add_argument(
        "--seq",
        type=positive_int("--seq"),
        help=f"sequence length (default {DEFAULT_SEQ}, or the model's learned position table when shorter)",
    )
    p.add_argument("--recompute", default="none", help="FLOPs: none, selective or full activation recomputation")
    p.add_argument("--causal", action="store_true", help="FLOPs (exact): count only the causal query-key pairs")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="set a size (repeat), e.g. --set n_layers=4"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _overrides(items: list[str]) -> dict[str, int]:
    from .. import symbols as S
    from ..errors import SymbolicError
    from ..inputs import SYMBOL_KINDS, parse_integer, shown

    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in S.REGISTRY:
            raise SymbolicError("--set", f"{shown(item)}: write NAME=VALUE with NAME one of {', '.join(S.ORDER)}")
        try:
            out[name] = parse_integer("--set", value, SYMBOL_KINDS.get(name, "width"))
        except SymbolicError as err:
            raise SymbolicError("--set", f"{name} {err.message}") from None
    return out


def point_request(args: argparse.Namespace, model, quantity: str):
    """The request the point options describe (:func:`symbolic.request.request`).

    A batch or sequence length left out takes the model's default workload, written back into
    ``args.batch``/``args.seq`` so that what is printed is what was evaluated.
    """
    from ..request import default_workload, request

    workload = default_workload(model)
    if args.batch is None:
        args.batch = workload["batch"]
    if args.seq is None:
        args.seq = workload["seq"]
    return request(
        model,
        quantity,
        convention=args.convention,
        batch=args.batch,
        seq=args.seq,
        recompute=args.recompute,
        causal=args.causal,
        sizes=_overrides(args.set),
    )


def _num(value) -> int | float | str:
    """An exact SymPy number as a JSON number: int when integral, else float."""
    import sympy as sp

    from ..numeric import as_number

    value = sp.sympify(value, strict=True)
    return as_number(value) if value.is_number and value.is_real else str(value)


def _fixed_sizes(args: argparse.Namespace, model) -> frozenset[str]:
    from ..conventions import get_convention

    return get_convention(args.convention, "parameters" if args.quantity == "params" else args.quantity).fixed_sizes(
        model
    )


def _check_varies(args: argparse.Namespace, model, name: str, option: str) -> None:
    """Refuse a size the convention holds fixed (read from the config) as the one that varies."""
    from ..conventions import get_convention

    quantity = "parameters" if args.quantity == "params" else args.quantity
    get_convention(args.convention, quantity).check_varies(model, name, option)


def _model(args: argparse.Namespace):
    from ..registry import load_model

    return load_model(args.model)


# ---- dominates ---------------------------------------------------------------------------------


def _run_dominates(args: argparse.Namespace) -> int:
    from ..analysis import dominant, leading, shares
    from ..expressions import parse_path
    from ..inputs import symbol_name

    model = _model(args)
    answer = point_request(args, model, args.quantity)
    terms, values = answer.terms, answer.values
    if args.depth is not None:
        terms = terms.grouped(args.depth)
    table = shares(terms, values, args.top)
    out: dict[str, Any] = {
        "model": model.name,
        "quantity": args.quantity,
        "unit": table.unit,
        "total": _num(table.total),
        "terms": [
            {"path": r.path, "value": _num(r.value), "share": r.share, "formula": str(r.formula)} for r in table.rows
        ],
        "rest": None
        if table.rest is None
        else {"terms": table.rest.members, "value": _num(table.rest.value), "share": table.rest.share},
    }
    if args.grow is not None:
        grow = symbol_name("--grow", args.grow)
        _check_varies(args, model, grow, "--grow")
        path = parse_path(args.path, "--path") if args.path is not None else None
        dom = dominant(terms, grow, path, values)
        out["asymptotic"] = {
            "grow": str(dom.symbol),
            "path": {str(k): str(v) for k, v in path.resolved.items()} if path else None,
            "order": _num(dom.order),
            "words": dom.words,
            "leaders": [{"path": p, "leading_term": str(lead.term)} for p, lead in dom.leaders],
            "total_leading_term": str(leading(terms.total, dom.symbol, path, values).term),
        }
    elif args.path is not None:
        from ..errors import SymbolicError

        raise SymbolicError("--path", "needs --grow SYMBOL (the free symbol that grows along it)")
    if args.json:
        print_json(out)
        return 0
    t = make_table(
        f"{out['model']}: {args.quantity} at batch={args.batch}, seq={args.seq}",
        [("term", "text"), (out["unit"], "number"), ("share", "number"), ("formula", "formula")],
    )
    for r in out["terms"]:
        t.add_row(r["path"], f"{r['value']:,}", f"{100 * r['share']:.2f}%", r["formula"])
    if out["rest"]:
        t.add_row(
            f"rest ({out['rest']['terms']} terms)",
            f"{out['rest']['value']:,}",
            f"{100 * out['rest']['share']:.2f}%",
            "",
        )
    term = console()
    for line in dominates_summary(out, args):
        term.print(line, highlight=False)
    show(t, term)
    return 0


def dominates_summary(out: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The answer first: the total in readable units and what it includes, then what leads as a size grows."""
    from ..units import GB, GIB, format_flops

    total = out["total"]
    if out["unit"] == "bytes":
        human = f"{total / GIB:,.2f} GiB ({total / GB:,.2f} GB)"
        what = "states + activations per device, without the backward transient that memory's peak adds"
    elif out["unit"] == "FLOPs":
        human, what = format_flops(total), "one training step"
    else:
        human, what = f"{total:,} {out['unit']}", "the whole model"
    lines = [f"{out['model']}, {args.quantity} at batch {args.batch}, seq {args.seq:,}: {human}", f"  ({what})"]
    if "asymptotic" in out:
        a = out["asymptotic"]
        leaders = [x["path"] for x in a["leaders"]]
        more = f" (+{len(leaders) - 5} more)" if len(leaders) > 5 else ""
        lines.append(f"as {a['grow']} grows: {a['words']}; leading: {', '.join(leaders[:5])}{more}")
    return lines


# ---- sensitivity -------------------------------------------------------------------------------


def _run_sensitivity(args: argparse.Namespace) -> int:
    from ..analysis import sensitivity_table
    from ..errors import SymbolicError
    from ..inputs import symbol_names
    from ..numeric import evaluate

    model = _model(args)
    answer = point_request(args, model, args.quantity)
    terms, values = answer.terms, answer.values
    expr = terms.total if args.term is None else terms.select(args.term).total
    if args.term is not None and not terms.select(args.term).terms:
        from ..errors import SymbolicError

        raise SymbolicError("--term", f"{args.term!r} matches no term")
    wrt = symbol_names("--wrt", args.wrt) if args.wrt is not None else None
    for name in wrt or ():
        _check_varies(args, model, name, "--wrt")
    fixed = _fixed_sizes(args, model)
    if wrt is None and fixed:  # sizes the convention reads from the config have no derivative
        wrt = sorted((str(s) for s in expr.free_symbols if str(s) not in fixed), key=str)
    if wrt is not None:
        used = {str(s) for s in expr.free_symbols}
        unused = [w for w in wrt if w not in used]
        if unused:
            raise SymbolicError(
                "--wrt", f"{args.quantity} does not depend on {', '.join(unused)}; it uses: {', '.join(sorted(used))}"
            )
    rows = sensitivity_table(expr, values, wrt)
    out = {
        "model": model.name,
        "quantity": args.quantity,
        "unit": terms.quantity.unit,
        "value": _num(evaluate(expr, values)),
        "rows": [
            {
                "symbol": str(r.symbol),
                "at": values.get(str(r.symbol)),
                "derivative": str(r.derivative),
                "derivative_value": _num(r.derivative_value),
                "elasticity": str(r.elasticity),
                "elasticity_value": float(r.elasticity_value if r.elasticity_value is not None else "nan"),
            }
            for r in rows
        ],
    }
    if args.json:
        print_json(out)
        return 0
    t = make_table(
        f"{out['model']}: sensitivity of {args.quantity} ({out['value']:,} {out['unit']})",
        [
            ("symbol", "text"),
            ("value", "number"),
            ("elasticity (%/%)", "number"),
            (f"d/dx ({out['unit']} per unit)", "number"),
            ("d/dx formula", "formula"),
        ],
    )
    for r in out["rows"]:
        t.add_row(
            r["symbol"], str(r["at"]), f"{r['elasticity_value']:.4f}", f"{r['derivative_value']:,}", r["derivative"]
        )
    show(t)
    return 0


_STATES = ("weights", "gradients", "master", "optimizer", "transient")


def _select(terms, pattern: str):
    """Terms whose path matches ``pattern``, else those tagged with it (memory categories:
    ``optimizer``, ``activations`` = every term that is not a model state)."""
    chosen = terms.select(pattern)
    if not chosen.terms:
        chosen = terms.where(lambda t: pattern in t.tags)
    if not chosen.terms and pattern == "activations":
        chosen = terms.where(lambda t: not any(c in t.tags for c in _STATES))
    return chosen


# ---- crossover ---------------------------------------------------------------------------------


def _run_crossover(args: argparse.Namespace) -> int:
    from ..analysis import crossover
    from ..errors import SymbolicError
    from ..inputs import symbol_name

    model = _model(args)
    answer = point_request(args, model, args.quantity)
    terms, values = answer.terms, answer.values
    a = _select(terms, args.a)
    if not a.terms:
        raise SymbolicError("--a", f"{args.a!r} matches no term; terms: {', '.join(terms.grouped(3).paths)}")
    b = terms.where(lambda t: t.path not in a.paths) if args.b == "rest" else _select(terms, args.b)
    if not b.terms:
        raise SymbolicError("--b", f"{args.b!r} matches no term; terms: {', '.join(terms.grouped(3).paths)}")
    names = [symbol_name("--over", args.over)]
    _check_varies(args, model, names[0], "--over")
    c = crossover(a.total, b.total, names[0], values)
    out = {
        "model": model.name,
        "quantity": args.quantity,
        "a": args.a,
        "b": args.b,
        "over": names[0],
        "method": c.method,
        "value": _num(c.value) if c.value is not None else None,
        "roots": [_num(r) for r in c.roots],
        "closed_form": [str(e) for e in c.closed_form],
        "larger_after": {"a": args.a, "b": args.b}.get(c.above) if c.above else None,
        "a_formula": str(a.total),
        "b_formula": str(b.total),
    }
    if args.json:
        print_json(out)
        return 0
    if c.value is None:
        print(f"{args.a} and {args.b} never cross for a positive {names[0]}")
        return 0
    print(f"{args.a} = {args.b} at {names[0]} = {float(c.value):,.6g} ({c.method})")
    for e in out["closed_form"]:
        print(f"  {names[0]} = {e}")
    print(f"  past it, {out['larger_after']} is larger")
    return 0


# ---- fit ---------------------------------------------------------------------------------------


def _run_fit(args: argparse.Namespace) -> int:
    from ..analysis import budget_figure, fit_memory
    from ..errors import SymbolicError
    from ..registry import load_model
    from ..units import format_bytes, parse_bytes
    from .memory import memory_answer, memory_options

    budget = parse_bytes(args.budget, "--budget")
    workload = {"batch": args.batch, "seq": args.seq}
    for name, value in workload.items():
        if value is None:
            if args.solve != name:
                raise SymbolicError(f"--{name}", f"needs a value (only --solve {name} leaves it open)")
            workload[name] = 1
    model = load_model(args.model)
    if args.solve in ("tp", "pp", "cp", "ep"):
        from ..conventions import get_convention

        splits = get_convention(args.convention, "memory").parallel
        if args.solve not in splits:
            allowed = ", ".join(["batch", "seq", "dp", *(d for d in ("tp", "pp", "cp", "ep") if d in splits)])
            raise SymbolicError(
                "--solve",
                f"{args.solve}: the {args.convention} convention does not split its terms by it; allowed: {allowed}",
            )
    fixed = {k: v for k, v in memory_options(args).items() if k in ("dp", "tp", "pp", "cp", "ep", "zero")}
    fixed.update(hybrid_shard=args.hybrid_shard, vocab_multiple=args.vocab_multiple)
    fixed.update(sequence_parallel=args.sequence_parallel)

    def answer_at(n: int) -> dict:
        return memory_answer(model, args, **{**workload, args.solve: n})

    found = fit_memory(model, args.solve, budget, answer_at, fixed, workload["seq"], args.max)
    result, final = found.result, found.answer
    ranked = sorted(final["terms"], key=lambda t: -t["bytes"])
    peak = budget_figure(final["per_device"])[0]
    out = {
        "model": model.name,
        "solve": args.solve,
        "budget": budget,
        "unit": "bytes",
        "figure": found.figure,
        "value": result.value,
        "fits": result.value is not None,
        "peak": peak,
        "overrun": int(result.overrun),
        "closest": None if result.value is not None else found.at,
        "next": result.next_value if result.value is not None else None,
        "next_peak": int(result.next_quantity)
        if result.value is not None and result.next_quantity is not None
        else None,
        "per_device": final["per_device"],
        "terms": [{"path": t["path"], "bytes": t["bytes"]} for t in ranked[: args.top]],
        "notes": final["notes"],
    }
    if args.json:
        print_json(out)
        return 0
    figure, at = found.figure, found.at
    if result.value is None:
        print(
            f"nothing fits: at {args.solve}={at} the {figure} is {format_bytes(out['peak'])}, "
            f"{format_bytes(out['overrun'])} over the budget of {format_bytes(budget)}"
        )
    else:
        print(f"{args.solve} = {result.value}: {figure} {format_bytes(out['peak'])} within {format_bytes(budget)}")
        if out["next"] is not None:
            print(f"  {args.solve} = {out['next']} would need {format_bytes(out['next_peak'])}")
    where = f"{args.solve} = {at}"
    print(f"largest terms per device at {where} (of {len(final['terms'])}; --top N lists more):")
    for t in out["terms"]:
        print(f"  {t['path']:<56} {format_bytes(t['bytes'])}")
    for note in out["notes"]:
        print(f"note: {note}")
    return 0


def _register_fit(sub: argparse._SubParsersAction) -> None:
    from .memory import add_memory_options

    help_text = "the largest batch/seq or smallest parallel degree whose memory per device fits a budget"
    p = sub.add_parser("fit", help=help_text)
    add_memory_options(p, workload_required=False)
    p.add_argument("--budget", required=True, help="memory per device, e.g. 80GiB, 141GB, 512MiB")
    p.add_argument("--solve", required=True, help=f"what to solve for: {', '.join(SOLVABLE)}")
    p.add_argument("--max", type=positive_int("--max"), default=2**16, help="search bound (default 65536)")
    p.add_argument("--top", type=positive_int("--top"), default=8, help="largest terms to list at the answer")
    p.set_defaults(run=_run_fit)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dominates", help="which terms dominate: shares at a point, leading terms as a size grows")
    add_model_argument(p)
    add_point_options(p)
    p.add_argument("--top", type=positive_int("--top"), default=10, help="rows to show; the rest are grouped")
    p.add_argument("--depth", type=positive_int("--depth"), help="group terms by the first DEPTH path segments")
    p.add_argument("--grow", metavar="SYMBOL", help="the size that grows (seq, d_model, n_layers, batch, n_experts)")
    p.add_argument("--path", metavar="RULES", help="scaling path, e.g. 'd_ffn=8/3*d_model, n_heads=d_model/128'")
    p.set_defaults(run=_run_dominates)

    p = sub.add_parser("sensitivity", help="derivatives and elasticities of a quantity in every symbol")
    add_model_argument(p)
    add_point_options(p)
    p.add_argument("--wrt", action="append", metavar="SYMBOL", help="only these symbols (repeat or comma-separate)")
    p.add_argument("--term", metavar="PATTERN", help="analyse only the terms matching PATTERN")
    p.set_defaults(run=_run_sensitivity)

    p = sub.add_parser("crossover", help="where one term overtakes another as a size varies")
    add_model_argument(p)
    add_point_options(p)
    p.add_argument("--a", required=True, metavar="PATTERN", help="first term(s), e.g. attention.scores")
    p.add_argument("--b", required=True, metavar="PATTERN", help="second term(s), or 'rest' for all the others")
    p.add_argument("--over", required=True, metavar="SYMBOL", help="the size that varies, e.g. seq")
    p.set_defaults(run=_run_crossover)

    _register_fit(sub)
