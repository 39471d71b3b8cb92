"""Questions asked of a quantity's terms: which term dominates, how it scales, how sensitive it is,
where two terms cross, and the largest (or smallest) size that fits a budget.

Everything here works on any :class:`~symbolic.terms.Breakdown` (parameters, bytes, FLOPs) or on
a SymPy expression, and returns data (dataclasses of exact SymPy numbers and expressions);
printing is the command line's business. Values come from :func:`symbolic.numeric.evaluate`, so
they are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from . import symbols as S
from .errors import SymbolicError
from .expressions import ScalingPath
from .numeric import evaluate
from .request import SOLVABLE
from .terms import Breakdown

__all__ = [
    "Share",
    "Shares",
    "shares",
    "Leading",
    "leading",
    "order_words",
    "DominantTerms",
    "dominant",
    "derivative",
    "elasticity",
    "Sensitivity",
    "sensitivity",
    "sensitivity_table",
    "Crossover",
    "crossover",
    "FitResult",
    "fit",
    "fit_symbol",
]

Values = Mapping[str, int | float | Fraction]


def _sym(name: str | sp.Symbol, field: str = "symbol") -> sp.Symbol:
    if isinstance(name, sp.Symbol):
        return name
    try:
        return S.symbol(name)
    except KeyError:
        raise SymbolicError(field, f"unknown symbol {name!r}; known: {', '.join(S.ORDER)}") from None


def _needs(expr: sp.Expr, sym: sp.Symbol, field: str = "symbol") -> None:
    free = sorted(str(s) for s in expr.free_symbols)
    if sym not in expr.free_symbols:
        raise SymbolicError(field, f"{sym} does not appear in the quantity; it contains: {', '.join(free) or 'none'}")


# [Breakdown + values] -> shares ---------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One term's exact value (in the quantity's unit) and its share of the total (a fraction)."""

    path: str
    value: sp.Expr
    share: float
    formula: sp.Expr
    members: int = 1


@dataclass(frozen=True)
class Shares:
    """Terms ranked by value, largest first; ``rest`` groups those past ``top``."""

    unit: str
    total: sp.Expr
    rows: tuple[Share, ...]
    rest: Share | None


def shares(terms: Breakdown, values: Values, top: int | None = None) -> Shares:
    """Every term's value and share of the total at ``values``, ranked (in the quantity's unit).

    With ``top``, the terms past the first ``top`` are summed into one ``rest`` row.
    """
    if top is not None and top <= 0:
        raise SymbolicError("top", "must be a positive integer")
    valued = [(t, evaluate(t.total, values)) for t in terms]
    total = sp.Add(*(v for _, v in valued))
    denom = total if total != 0 else sp.Integer(1)
    ranked = sorted(valued, key=lambda tv: -tv[1])
    rows = tuple(Share(t.path, v, float(v / denom), t.total) for t, v in ranked)
    rest = None
    if top is not None and len(rows) > top:
        tail = rows[top:]
        value = sp.Add(*(r.value for r in tail))
        rest = Share(
            f"rest ({len(tail)} terms)", value, float(value / denom), sp.Add(*(r.formula for r in tail)), len(tail)
        )
        rows = rows[:top]
    return Shares(terms.quantity.unit, total, rows, rest)


# [expression] -> asymptotic order along a symbol or a scaling path ------------------------------

_WORDS = {0: "constant", 1: "linear", 2: "quadratic", 3: "cubic", 4: "quartic", -1: "inverse", -2: "inverse-square"}


def order_words(order: sp.Rational, sym: sp.Symbol) -> str:
    """``quadratic in sequence length`` for order 2 in ``seq``."""
    meaning = S.by_symbol(sym).meaning.split(" (")[0]
    word = _WORDS.get(int(order), f"order {order}") if order.is_Integer else f"order {order}"
    return f"{word} in {meaning}" if order != 0 else f"constant in {meaning}"


@dataclass(frozen=True)
class Leading:
    """The leading behaviour of an expression as ``symbol`` grows: ``coefficient * symbol**order``."""

    symbol: sp.Symbol
    order: sp.Rational
    coefficient: sp.Expr
    words: str

    @property
    def term(self) -> sp.Expr:
        """The leading term itself (same unit as the expression)."""
        return self.coefficient * self.symbol**self.order


def _along(expr: sp.Expr, grow: sp.Symbol, path: ScalingPath | None) -> sp.Expr:
    if path is not None:
        if grow in path.resolved:
            free = ", ".join(sorted(str(s) for s in path.free)) or "none"
            raise SymbolicError("grow", f"{grow} is tied by the path; grow one of its free symbols: {free}")
        expr = path.apply(expr)
    return sp.sympify(expr, strict=True)


def _as_it_grows(expr: sp.Expr, x: sp.Symbol) -> sp.Expr:
    """``expr`` with each ``Piecewise`` replaced by the branch that holds as ``x`` grows without bound
    and the other sizes are generic (``s >= window`` holds, ``b = 1`` does not).

    >>> b, s, w = sp.symbols("batch seq window", positive=True)
    >>> _as_it_grows(sp.Piecewise((s + 1, sp.Eq(b, 1)), (b * s, True)) + sp.Piecewise((s**2, s >= w), (0, True)), s)
    batch*seq + seq**2
    """

    def branch(*args: tuple[sp.Expr, sp.Basic]) -> sp.Expr:
        for value, cond in args:
            if cond.subs(x, sp.oo) is sp.true:
                return value
        return sp.Piecewise(*args)

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: branch(*e.args))


def leading(
    expr: sp.Expr, grow: str | sp.Symbol, path: ScalingPath | None = None, values: Values | None = None
) -> Leading:
    """The leading term and order of ``expr`` as ``grow`` tends to infinity (same unit as ``expr``).

    With ``path``, tied sizes grow with it by their fixed ratios first (``d_ffn = 8/3*d_model``).
    With ``values``, a ``Piecewise`` on the other sizes takes the branch they select.
    The expression must be a ratio of polynomials in ``grow`` once the path is applied.
    """
    x = _sym(grow, "grow")
    expr = _branch_at(_along(expr, x, path), x, values)
    _needs(expr, x, "grow")
    expr = _as_it_grows(expr, x)
    if x not in expr.free_symbols:  # a branch that stops growing (a term that is 0 past a window)
        return Leading(x, sp.Integer(0), expr, order_words(sp.Integer(0), x))
    num, den = sp.together(expr).as_numer_denom()
    try:
        pn, pd = sp.Poly(sp.expand(num), x), sp.Poly(sp.expand(den), x)
    except sp.PolynomialError:
        raise SymbolicError("grow", f"the quantity is not a ratio of polynomials in {x}") from None
    order = sp.Integer(pn.degree() - pd.degree())
    coefficient = sp.factor(pn.LC() / pd.LC())
    return Leading(x, order, coefficient, order_words(order, x))


@dataclass(frozen=True)
class DominantTerms:
    """Which terms lead as ``symbol`` grows: their paths and leading terms, and the total's order."""

    symbol: sp.Symbol
    order: sp.Rational
    words: str
    leaders: tuple[tuple[str, Leading], ...]
    others: tuple[tuple[str, Leading | None], ...]


def dominant(
    terms: Breakdown, grow: str | sp.Symbol, path: ScalingPath | None = None, values: Values | None = None
) -> DominantTerms:
    """The terms of highest order as ``grow`` tends to infinity (along ``path`` if given).

    Terms of the top order are ranked by their leading coefficient at ``values`` when given.
    Terms that do not contain ``grow`` are constants (order 0).
    """
    x = _sym(grow, "grow")
    _needs(_along(terms.total, x, path), x, "grow")
    per: list[tuple[str, Leading | None]] = []
    for t in terms:
        e = _branch_at(_along(t.total, x, path), x, values)
        if x not in e.free_symbols:
            per.append((t.path, Leading(x, sp.Integer(0), e, order_words(sp.Integer(0), x))))
        else:
            per.append((t.path, leading(e, x)))
    top = max(lead.order for _, lead in per if lead is not None)
    leaders = [(p, lead) for p, lead in per if lead is not None and lead.order == top]
    if values is not None:
        rest = {k: v for k, v in values.items() if k != str(x)}
        leaders.sort(key=lambda pl: -float(_value_or_nan(pl[1].coefficient, rest)))
    others = [(p, lead) for p, lead in per if lead is None or lead.order != top]
    others.sort(key=lambda pl: -(pl[1].order if pl[1] is not None else -math.inf))
    return DominantTerms(x, top, order_words(top, x), tuple(leaders), tuple(others))


def _branch_at(expr: sp.Expr, x: sp.Symbol, values: Values | None) -> sp.Expr:
    """``expr`` with each ``Piecewise`` replaced by the branch that holds as ``x`` grows without bound,
    the other sizes at ``values`` (a traced ``batch = 1`` branch, a sliding window that ``seq``
    outgrows); a condition left undecided keeps its ``Piecewise``."""
    if not expr.has(sp.Piecewise):
        return expr
    rest = {S.symbol(k): v for k, v in (values or {}).items() if k != str(x) and k in S.REGISTRY}
    far = {x: sp.Integer(10) ** 30}  # beyond every threshold a size is compared with

    def pick(*pieces: Any) -> sp.Expr:
        for value, cond in pieces:
            decided = sp.sympify(cond, strict=True).subs(rest).subs(far)
            if decided is sp.true:
                return value
            if decided is not sp.false:
                break
        return sp.Piecewise(*pieces)

    return expr.replace(sp.Piecewise, pick)


def _value_or_nan(expr: sp.Expr, values: Values) -> float:
    try:
        return float(evaluate(expr, values))
    except SymbolicError:
        return math.nan


# [expression] -> derivatives and elasticities ----------------------------------------------------


def derivative(expr: sp.Expr, wrt: str | sp.Symbol) -> sp.Expr:
    """``d expr / d wrt`` (the expression's unit per unit of ``wrt``)."""
    x = _sym(wrt)
    _needs(expr, x)
    return sp.diff(expr, x)


def elasticity(expr: sp.Expr, wrt: str | sp.Symbol) -> sp.Expr:
    """``d ln expr / d ln wrt`` (dimensionless): a 1% change of ``wrt`` changes ``expr`` by this many %."""
    x = _sym(wrt)
    _needs(expr, x)
    return sp.cancel(sp.diff(expr, x) * x / expr)


@dataclass(frozen=True)
class Sensitivity:
    """A symbol's partial derivative and elasticity, symbolic and at a point (exact)."""

    symbol: sp.Symbol
    derivative: sp.Expr
    elasticity: sp.Expr
    derivative_value: sp.Expr | None
    elasticity_value: sp.Expr | None


def sensitivity(expr: sp.Expr, wrt: str | sp.Symbol, values: Values | None = None) -> Sensitivity:
    """Derivative (unit of ``expr`` per unit of ``wrt``) and elasticity (dimensionless), at ``values`` too."""
    x = _sym(wrt)
    d = derivative(expr, x)
    el = elasticity(expr, x)
    if values is None:
        return Sensitivity(x, d, el, None, None)
    dv = evaluate(d, values)
    ev = dv * evaluate(x, values) / evaluate(expr, values)
    return Sensitivity(x, d, el, dv, ev)


def sensitivity_table(
    expr: sp.Expr, values: Values | None = None, symbols: Iterable[str | sp.Symbol] | None = None
) -> list[Sensitivity]:
    """One :class:`Sensitivity` per symbol of ``expr`` (registry order), largest |elasticity| first at a point."""
    syms = [_sym(s) for s in symbols] if symbols is not None else None
    if syms is None:
        syms = [S.symbol(n) for n in S.ORDER if S.symbol(n) in expr.free_symbols]
    rows = [sensitivity(expr, s, values) for s in syms]
    if values is not None:
        rows.sort(key=lambda r: -abs(float(r.elasticity_value if r.elasticity_value is not None else "nan")))
    return rows


# [two expressions] -> where they cross -----------------------------------------------------------


@dataclass(frozen=True)
class Crossover:
    """Where ``a`` and ``b`` are equal as ``symbol`` varies, the others held at their values.

    ``roots`` are the positive crossing points, smallest first (exact where SymPy finds them,
    else floats); ``closed_form`` the symbolic solutions when found; ``method`` says which.
    ``above`` says which side is larger just past the first root (``a`` or ``b``).
    """

    symbol: sp.Symbol
    roots: tuple[sp.Expr, ...]
    closed_form: tuple[sp.Expr, ...]
    method: str
    above: str | None

    @property
    def value(self) -> sp.Expr | None:
        """The first crossing point, or None when the two never cross for a positive value."""
        return self.roots[0] if self.roots else None


_X = sp.Symbol("x_cross", positive=True)


def _positive_real(values: Iterable[sp.Expr]) -> list[sp.Expr]:
    out = []
    for v in values:
        n = complex(sp.N(v, 30))
        if abs(n.imag) <= 1e-12 * max(1.0, abs(n.real)) and n.real > 0:
            out.append(sp.re(v) if not v.is_real else v)
    return sorted(out, key=lambda v: float(v))


def crossover(
    a: sp.Expr,
    b: sp.Expr,
    over: str | sp.Symbol,
    values: Values,
    bounds: tuple[float, float] = (1e-3, 1e15),
    max_closed_degree: int = 2,
) -> Crossover:
    """Where ``a == b`` as ``over`` varies, every other symbol at ``values`` (unit of ``over``).

    Closed form first (SymPy ``solve`` on the symbolic difference when it is a polynomial of
    degree at most ``max_closed_degree`` in ``over``), otherwise numerically: the exact real roots
    of the polynomial at ``values``, or bisection over ``bounds`` for anything else.
    """
    x = _sym(over, "over")
    a, b = sp.sympify(a, strict=True), sp.sympify(b, strict=True)
    if x not in (a - b).free_symbols:
        raise SymbolicError("over", f"the difference of the two terms does not depend on {x}: they never cross")
    diff = sp.expand(sp.together(a - b).as_numer_denom()[0]).xreplace({x: _X})
    rest = {k: v for k, v in values.items() if k != str(x)}
    closed: list[sp.Expr] = []
    method = "numeric"
    try:
        degree = sp.Poly(diff, _X).degree()
    except sp.PolynomialError:
        degree = None
    roots: list[sp.Expr] = []
    if degree is not None and 0 < degree <= max_closed_degree:
        closed = [sp.simplify(r) for r in sp.solve(diff, _X)]
        roots = _positive_real(evaluate(r, rest) for r in closed)
        closed = [r for r in closed if any(sp.simplify(evaluate(r, rest) - v) == 0 for v in roots)]
        method = "closed form"
    elif degree is not None and degree > 0:
        poly = sp.Poly(_at(diff, rest), _X)
        roots = _positive_real(poly.real_roots())
    elif degree is None:
        f = sp.lambdify(_X, _at(diff, rest))
        roots = [sp.Float(r) for r in _bisect_all(f, *bounds)]
    above = None
    if roots:
        probe = sp.Float(float(roots[0]) * 1.001 + 1e-9)
        point = {**rest, str(x): Fraction(float(probe))}
        above = "a" if evaluate(a, point) > evaluate(b, point) else "b"
    return Crossover(x, tuple(roots), tuple(closed), method, above)


def _at(expr: sp.Expr, values: Values) -> sp.Expr:
    """``expr`` with every registry symbol replaced by its exact value; only the unknown stays."""
    subs = {}
    for sym in expr.free_symbols - {_X}:
        name = str(sym)
        if name not in values:
            raise SymbolicError(name, f"needs a value ({S.info(name).meaning})")
        subs[sym] = sp.Rational(Fraction(values[name]))
    return expr.xreplace(subs)


def _bisect_all(f: Callable[[float], float], lo: float, hi: float, steps: int = 2000) -> list[float]:
    grid = [lo * (hi / lo) ** (i / steps) for i in range(steps + 1)]
    out = []
    for u, v in zip(grid, grid[1:], strict=False):
        fu, fv = f(u), f(v)
        if fu == 0:
            out.append(u)
        elif fu * fv < 0:
            for _ in range(200):
                mid = (u + v) / 2
                if f(mid) * fu > 0:
                    u, fu = mid, f(mid)
                else:
                    v = mid
            out.append((u + v) / 2)
    return out


# [quantity(n)] -> the largest or smallest n within a budget ---------------------------------------


@dataclass(frozen=True)
class FitResult:
    """The answer of :func:`fit`.

    ``value`` is the integer found (None when nothing fits); ``quantity`` the quantity there (or,
    when nothing fits, at the size closest to fitting); ``overrun`` how far that is above the
    budget (0 when it fits); ``next_value``/``next_quantity`` the next size past the answer,
    which does not fit (None at the search bound).
    """

    value: int | None
    quantity: sp.Expr
    budget: sp.Expr
    overrun: sp.Expr
    next_value: int | None
    next_quantity: sp.Expr | None
    increasing: bool
    tried: int


def fit(
    quantity: Callable[[int], sp.Expr | int],
    budget: int | sp.Expr,
    bounds: tuple[int, int] = (1, 2**30),
    increasing: bool = True,
    candidates: Sequence[int] | None = None,
) -> FitResult:
    """The largest n (``increasing`` quantity) or smallest n (decreasing) with ``quantity(n) <= budget``.

    ``quantity`` maps an integer to an exact value (e.g. bytes per device); it must be monotone
    over the search range. Search is exponential then binary over ``bounds`` (inclusive), or over
    ``candidates`` (sorted, e.g. the divisors of the head count). ``quantity`` is called O(log n) times.
    """
    pool = sorted(set(candidates)) if candidates is not None else None
    lo, hi = (0, len(pool) - 1) if pool is not None else bounds
    if pool is not None and not pool:
        raise SymbolicError("candidates", "nothing to search")
    if lo > hi or (pool is None and lo < 1):
        raise SymbolicError("bounds", f"need 1 <= low <= high, got {bounds}")
    budget = sp.sympify(budget, strict=True)
    calls = 0
    cache: dict[int, sp.Expr] = {}

    def q(i: int) -> sp.Expr:
        nonlocal calls
        if i not in cache:
            calls += 1
            cache[i] = sp.sympify(quantity(pool[i] if pool is not None else i), strict=True)
        return cache[i]

    def n_of(i: int | None) -> int | None:
        return None if i is None else (pool[i] if pool is not None else i)

    def ok(i: int) -> bool:
        return bool(q(i) <= budget)

    if increasing:
        if not ok(lo):
            return FitResult(None, q(lo), budget, q(lo) - budget, n_of(lo), q(lo), True, calls)
        good, step = lo, 1
        bad = None
        while bad is None:  # exponential search for a size that does not fit
            probe = min(lo + step, hi)
            if ok(probe):
                good = probe
                if probe == hi:
                    break
                step *= 2
            else:
                bad = probe
        if bad is not None:
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if ok(mid) else (good, mid)
        nxt = good + 1 if good < hi else None
        return FitResult(
            n_of(good), q(good), budget, sp.Integer(0), n_of(nxt), q(nxt) if nxt is not None else None, True, calls
        )
    if not ok(hi):
        return FitResult(None, q(hi), budget, q(hi) - budget, n_of(hi), q(hi), False, calls)
    good = hi
    if ok(lo):
        good = lo
    else:
        bad = lo
        while good - bad > 1:
            mid = (good + bad) // 2
            bad, good = (bad, mid) if ok(mid) else (mid, good)
    prev = good - 1 if good > lo else None
    return FitResult(
        n_of(good), q(good), budget, sp.Integer(0), n_of(prev), q(prev) if prev is not None else None, False, calls
    )


def fit_symbol(
    expr: sp.Expr,
    solve_for: str | sp.Symbol,
    budget: int | sp.Expr,
    values: Values,
    bounds: tuple[int, int] = (1, 2**30),
    candidates: Sequence[int] | None = None,
) -> FitResult:
    """:func:`fit` for one symbol of ``expr`` (unit of ``expr``, e.g. bytes), the rest at ``values``.

    The direction (largest batch that fits, smallest parallel degree that fits) is read from the
    expression's values at the two ends of the search range.
    """
    x = _sym(solve_for, "solve")
    _needs(expr, x, "solve")
    rest = {k: v for k, v in values.items() if k != str(x)}

    def q(n: int) -> sp.Expr:
        return evaluate(expr, {**rest, str(x): n})

    ends = (candidates[0], candidates[-1]) if candidates else bounds
    increasing = bool(q(ends[1]) >= q(ends[0]))
    return fit(q, budget, bounds, increasing, candidates)


# ---- fitting a memory budget -------------------------------------------------------------------


def budget_figure(per_device: Mapping[str, int | None]) -> tuple[int, str]:
    """The per-device figure a budget is compared with (bytes) and its name: the peak (states +
    activations + the largest transient; every layout has one)."""
    peak = per_device.get("peak")
    if peak is None:
        raise SymbolicError("budget", "the peak per device is not known, so no verdict can include every category")
    return peak, "peak"


def degree_candidates(model: Any, name: str, high: int, fixed: Mapping[str, Any], seq: int) -> list[int]:
    """Degrees of ``name`` from 1 to ``high`` that the parallel layout ``fixed`` accepts for ``model``."""
    from .inputs import divisors
    from .parallel import Parallelism

    sizes = model.sizes
    limit = {"tp": sizes["n_heads"], "pp": sum(sizes[str(g.count)] for g in model.arch.groups)}
    limit["ep"] = sizes.get("n_experts", 1)
    if name == "cp":  # any degree up to the sequence length
        return list(range(1, min(high, seq) + 1))
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


@dataclass(frozen=True)
class MemoryFit:
    """The answer of :func:`fit_memory`: ``result`` of the search, the ``figure`` compared (``peak`` or
    ``states+transient``), ``at`` (the answer, else the closest value tried) and the memory answer
    (``symbolic memory --json``'s object, bytes) there."""

    result: FitResult
    figure: str
    at: int
    answer: Mapping[str, Any]


def fit_memory(
    model: Any,
    solve: str,
    budget: int,
    answer_at: Callable[[int], Mapping[str, Any]],
    parallel: Mapping[str, Any],
    seq: int,
    maximum: int = 2**16,
) -> MemoryFit:
    """The largest ``batch``/``seq``, or smallest parallel degree, whose memory per device fits ``budget`` (bytes).

    ``answer_at(n)`` gives the memory answer (``per_device`` in bytes) with ``solve`` set to ``n``;
    ``parallel`` holds the fixed layout (degrees, ``zero``, ``hybrid_shard``...) that decides which
    degrees are valid; ``seq`` bounds the context-parallel degree.
    """
    from math import lcm

    if solve not in SOLVABLE:
        raise SymbolicError("solve", f"unknown {solve!r}; allowed: {', '.join(SOLVABLE)}")
    increasing = solve in ("batch", "seq")
    answers: dict[int, Mapping[str, Any]] = {}

    def at(n: int) -> Mapping[str, Any]:
        if n not in answers:
            answers[n] = answer_at(n)
        return answers[n]

    def figure_at(n: int) -> int:
        return budget_figure(at(n)["per_device"])[0]

    candidates: list[int] | None
    if increasing:
        candidates = None
    elif solve == "dp":
        step = lcm(parallel.get("ep") or 1, parallel.get("hybrid_shard") or 1)
        candidates = list(range(step, maximum + 1, step))
    else:
        candidates = degree_candidates(model, solve, maximum, parallel, seq)
        if not candidates:
            raise SymbolicError("solve", f"no {solve} degree up to {maximum} suits {model.name}")
    first = candidates[0] if candidates else 1
    figure = budget_figure(at(first)["per_device"])[1]
    probe = candidates[-1] if candidates else maximum
    if figure_at(probe) == figure_at(first):
        raise SymbolicError("solve", f"the per-device {figure} does not depend on {solve} with these options")
    result = fit(figure_at, budget, (1, maximum), increasing, candidates)
    value = result.value if result.value is not None else result.next_value
    assert value is not None
    return MemoryFit(result, figure, value, at(value))
