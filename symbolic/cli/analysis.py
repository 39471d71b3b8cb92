"""``symbolic dominates | sensitivity | crossover | fit``: questions asked of a quantity's terms.

The quantity is picked with ``--quantity`` (``params``, ``flops`` or ``memory``); sizes come from
the model, ``--batch``/``--seq`` and ``--set NAME=VALUE``. Symbols and scaling paths a user types
are read by :mod:`symbolic.expressions` against the symbol registry, never evaluated as Python.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_model_argument, console, make_table, positive_int, print_json, show

QUANTITIES = ("params", "flops", "memory")


def add_point_options(p: argparse.ArgumentParser, quantity: bool = True) -> None:
    """Options shared by the analysis commands: the quantity, its convention, the point."""
    if quantity:
        p.add_argument("--quantity", default="flops", help=f"what to analyse: {', '.join(QUANTITIES)} (default flops)")
    p.add_argument("--convention", default="exact", help="counting convention (see the quantity's command)")
    p.add_argument("--batch", type=positive_int("--batch"), default=1, help="micro-batch size per device (default 1)")
    p.add_argument("--seq", type=positive_int("--seq"), default=2048, help="sequence length (default 2048)")
    p.add_argument("--recompute", default="none", help="FLOPs: none, selective or full activation recomputation")
    p.add_argument("--causal", action="store_true", help="FLOPs (exact): count only the causal query-key pairs")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="set a size (repeat), e.g. --set n_layers=4"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _memory_cli():
    try:
        from . import memory as memory_cli
    except ImportError:
        return None
    return memory_cli


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


def quantity_terms(args: argparse.Namespace, model) -> tuple[Any, dict[str, int]]:
    """The Breakdown the options ask for and the values of its symbols (sizes, batch, seq, degrees)."""
    from ..errors import SymbolicError

    kind = getattr(args, "quantity", "flops")
    values: dict[str, int] = {**model.sizes, "batch": args.batch, "seq": args.seq}
    sets = _overrides(args.set)
    model_sizes = {k: v for k, v in sets.items() if k in model.sizes}
    if model_sizes:
        model = model.with_sizes(**model_sizes)
    values.update(sets)
    if kind == "params":
        from ..model import parameters

        return parameters(model, args.convention), values
    if kind == "flops":
        from ..formulas.flops import flops_terms

        return flops_terms(model, args.convention, args.recompute, args.causal), values
    if kind == "memory":
        from ..memory import Workload, memory
        from ..parallel import Parallelism

        degrees = {k: sets[k] for k in ("dp", "tp", "pp", "cp", "ep") if k in sets}
        report = memory(model, Workload(args.batch, args.seq), Parallelism(**degrees))
        # the states and activation terms (default recipe: mixed precision, AdamW, no ZeRO)
        return report.all_terms().where(lambda t: "transient" not in t.tags), {**report.values, **sets}
    raise SymbolicError("--quantity", f"unknown {kind!r}; allowed: {', '.join(QUANTITIES)}")


def _num(value) -> int | float | str:
    """An exact SymPy number as a JSON number: int when integral, else float."""
    import sympy as sp

    from ..numeric import as_number

    value = sp.sympify(value, strict=True)
    return as_number(value) if value.is_number and value.is_real else str(value)


def _model(args: argparse.Namespace):
    from ..registry import load_model

    return load_model(args.model)


# ---- dominates ---------------------------------------------------------------------------------


def _run_dominates(args: argparse.Namespace) -> int:
    from ..analysis import dominant, leading, shares
    from ..expressions import parse_path
    from ..inputs import symbol_name

    model = _model(args)
    terms, values = quantity_terms(args, model)
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
        path = parse_path(args.path, "--path") if args.path is not None else None
        dom = dominant(terms, grow, path, values)
        out["asymptotic"] = {
            "grow": str(dom.symbol),
            "path": {str(k): str(v) for k, v in path.resolved.items()} if path else None,
            "order": _num(dom.order),
            "words": dom.words,
            "leaders": [{"path": p, "leading_term": str(lead.term)} for p, lead in dom.leaders],
            "total_leading_term": str(leading(terms.total, dom.symbol, path).term),
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
    terms, values = quantity_terms(args, model)
    expr = terms.total if args.term is None else terms.select(args.term).total
    if args.term is not None and not terms.select(args.term).terms:
        raise SymbolicError("--term", f"{args.term!r} matches no term")
    wrt = symbol_names("--wrt", args.wrt) if args.wrt is not None else None
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
                "elasticity_value": float(r.elasticity_value),
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
    terms, values = quantity_terms(args, model)
    a = _select(terms, args.a)
    if not a.terms:
        raise SymbolicError("--a", f"{args.a!r} matches no term; terms: {', '.join(terms.grouped(3).paths)}")
    b = terms.where(lambda t: t.path not in a.paths) if args.b == "rest" else _select(terms, args.b)
    if not b.terms:
        raise SymbolicError("--b", f"{args.b!r} matches no term; terms: {', '.join(terms.grouped(3).paths)}")
    names = [symbol_name("--over", args.over)]
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

SOLVABLE = ("batch", "seq", "dp", "tp", "pp", "cp", "ep")
_DEGREES = ("dp", "tp", "pp", "cp", "ep")


def _memory_parent() -> argparse.ArgumentParser | None:
    """``symbolic memory``'s own parser, to lend its options to ``fit`` (None when it is absent)."""
    memory_cli = _memory_cli()
    if memory_cli is None:
        return None
    holder = argparse.ArgumentParser(add_help=False)
    memory_cli.register(holder.add_subparsers())
    return holder._subparsers._group_actions[0].choices["memory"]  # type: ignore[union-attr]


def _figure(out: dict) -> tuple[int, str]:
    """The per-device figure fit compares with the budget: the peak, or states + transient until
    the memory module computes activations (bytes)."""
    per = out["per_device"]
    if per.get("peak") is not None:
        return per["peak"], "peak"
    return per["states"] + per["transient"], "states+transient"


def _degree_candidates(args: argparse.Namespace, model, name: str, high: int) -> list[int]:
    """Degrees of ``name`` from 1 to ``high`` that the parallel layout accepts for ``model``."""
    from ..errors import SymbolicError
    from ..inputs import divisors
    from ..parallel import Parallelism

    fixed = {k: getattr(args, k) for k in _DEGREES}
    fixed.update(zero=args.zero, hybrid_shard=args.hybrid_shard, vocab_multiple=args.vocab_multiple)
    fixed.update(sequence_parallel=args.sequence_parallel)
    sizes = model.sizes
    limit = {"tp": sizes["n_heads"], "pp": sum(sizes[str(g.count)] for g in model.arch.groups)}
    limit["ep"] = sizes.get("n_experts", 1)
    if name == "cp":  # any degree up to the sequence length
        return list(range(1, min(high, args.seq) + 1))
    # a degree must divide its size: try only the divisors (found up to the square root)
    out = []
    for n in divisors(limit[name]):
        if n > high:
            break
        try:
            Parallelism(**{**fixed, name: n}).check(model)
        except SymbolicError:
            continue
        out.append(n)
    return out


def _run_fit(args: argparse.Namespace) -> int:
    import copy

    from ..analysis import fit
    from ..errors import SymbolicError
    from ..registry import load_model
    from ..units import format_bytes, parse_bytes

    memory_cli = _memory_cli()
    budget = parse_bytes(args.budget, "--budget")
    if args.solve not in SOLVABLE:
        raise SymbolicError("--solve", f"unknown {args.solve!r}; allowed: {', '.join(SOLVABLE)}")
    for name in ("batch", "seq"):
        if getattr(args, name) is None:
            if args.solve != name:
                raise SymbolicError(f"--{name}", f"needs a value (only --solve {name} leaves it open)")
            setattr(args, name, 1)
    model = load_model(args.model)
    increasing = args.solve in ("batch", "seq")
    reports: dict[int, dict] = {}

    def report_at(n: int) -> dict:
        if n not in reports:
            ns = copy.copy(args)
            setattr(ns, args.solve, n)
            reports[n] = memory_cli.report(ns)
        return reports[n]

    if increasing:
        candidates = None
    elif args.solve == "dp":
        from math import lcm

        step = lcm(args.ep, args.hybrid_shard or 1)
        candidates = list(range(step, args.max + 1, step))
    else:
        candidates = _degree_candidates(args, model, args.solve, args.max)
        if not candidates:
            raise SymbolicError("--solve", f"no {args.solve} degree up to {args.max} suits {model.name}")
    first = report_at(candidates[0] if candidates else 1)
    figure = _figure(first)[1]
    probe = candidates[-1] if candidates else args.max
    if _figure(report_at(probe))[0] == _figure(first)[0]:
        raise SymbolicError("--solve", f"the per-device {figure} does not depend on {args.solve} with these options")
    result = fit(lambda n: _figure(report_at(n))[0], budget, (1, args.max), increasing, candidates)
    at = result.value if result.value is not None else result.next_value
    final = report_at(at)
    ranked = sorted(final["terms"], key=lambda t: -t["bytes"])
    out = {
        "model": model.name,
        "solve": args.solve,
        "budget": budget,
        "unit": "bytes",
        "figure": figure,
        "value": result.value,
        "fits": result.value is not None,
        "peak": _figure(final)[0],
        "overrun": int(result.overrun),
        "closest": None if result.value is not None else at,
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
    parent = _memory_parent()
    help_text = "the largest batch/seq or smallest parallel degree whose memory per device fits a budget"
    if parent is None:
        return
    p = sub.add_parser("fit", parents=[parent], conflict_handler="resolve", help=help_text)
    for action in p._actions:
        if action.dest in ("batch", "seq"):
            action.required = False
            action.default = None
            action.help = f"{action.help} (not needed when solving for it)"
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
