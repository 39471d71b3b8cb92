"""Sweep grids and their evaluation with NumPy alone: no SymPy is imported here.

:mod:`symbolic.sweep` plans a sweep (SymPy expressions, one per combination of structural
classes) and lowers each form to integer polynomials (:class:`IntForm`), an int64 program
(:class:`symbolic.numeric.intexact.IntProgram`) or compiled Python source; this module parses
grids, evaluates those forms chunk by chunk over the grid's product (:func:`evaluate_grid`), and
keeps a planned and lowered sweep in the disk cache (:func:`cached_sweep`), so a repeated sweep
runs without loading SymPy at all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import SymbolicError

__all__ = [
    "MAX_POINTS",
    "MAX_AXIS",
    "parse_grid",
    "IntPoly",
    "IntForm",
    "FormEvaluator",
    "evaluate_grid",
    "Prepared",
    "sweep_key",
    "sweep_parts",
    "load_prepared",
    "cached_sweep",
    "store_sweep",
]

MAX_POINTS = 10**7  # more grid points than this needs an explicit yes
MAX_AXIS = 10**8  # no single axis may hold more values than this, yes or not
SWEEP_CACHE_VERSION = "1"  # bump when a cached sweep's payload changes meaning

Columns = Mapping[str, np.ndarray]


def _int(option: str, text: str, kind: str = "width") -> int:
    from .inputs import parse_integer

    return parse_integer(option, text, kind)


def _range(option: str, text: str, kind: str = "width") -> Sequence[int]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SymbolicError(option, f"{text!r}: a range is START:STOP, START:STOP:+STEP or START:STOP:xFACTOR")
    start, stop = _int(option, parts[0], kind), _int(option, parts[1], kind)
    step = parts[2].strip() if len(parts) == 3 else "+1"
    if start > stop:
        raise SymbolicError(option, f"{text!r} is an empty range (START {start} is above STOP {stop})")
    if step[:1] in ("x", "*"):
        factor = _int(option, step[1:], "search")
        if factor < 2:
            raise SymbolicError(option, f"{text!r}: a geometric step must be x2 or more")
        out = [start]
        while out[-1] * factor <= stop:
            out.append(out[-1] * factor)
        return out
    if step[:1] == "+" or step[:1].isdigit():
        increment = _int(option, step.removeprefix("+"), kind)
        count = (stop - start) // increment + 1
        if count > MAX_AXIS:
            raise SymbolicError(option, f"{text!r} has {count:,} values; at most {MAX_AXIS:,} per axis")
        return range(start, stop + 1, increment)
    raise SymbolicError(option, f"{text!r}: the step must be +N (arithmetic) or xN (geometric), not {step!r}")


def parse_grid(option: str, text: str, kind: str = "width") -> tuple[int, ...] | range:
    """The values ``text`` names, in order, duplicates dropped (positive integers).

    ``1,2,4`` lists values; ``1024:32768:x2`` is 1024, 2048, ..., 32768; ``1:8:+1`` (or ``1:8``)
    is 1..8. Items may be mixed: ``1,2,8:64:x2``. Anything else raises :class:`SymbolicError`
    naming ``option``. Each value is an integer of ``kind`` (see :data:`symbolic.inputs.LIMITS`).
    """
    items = [item.strip() for item in str(text).split(",")]
    if not text.strip() or any(not item for item in items):
        raise SymbolicError(option, f"empty value in {text!r} (a grid is 1,2,4 or 1024:32768:x2 or 1:8:+1)")
    if len(items) == 1 and ":" in items[0]:
        values = _range(option, items[0], kind)
        return values if isinstance(values, range) else tuple(values)
    out: dict[int, None] = {}
    for item in items:
        if ":" in item:
            part = _range(option, item, kind)
            if len(part) + len(out) > MAX_AXIS:
                raise SymbolicError(option, f"more than {MAX_AXIS:,} values")
            out.update(dict.fromkeys(part))
        else:
            out[_int(option, item, kind)] = None
    return tuple(out)


INT64_SAFE = 2**62  # |value| bound under which int64 ring arithmetic is exact (with margin)


@dataclass(frozen=True)
class IntPoly:
    """A polynomial with integer coefficients, evaluated over int64 arrays: ``terms`` are
    (coefficient, exponent of each of ``names``)."""

    names: tuple[str, ...]
    terms: tuple[tuple[int, tuple[int, ...]], ...]

    def __call__(self, values: Mapping[str, np.ndarray], n: int) -> Any:
        """The value at every row (an int64 array; a Python int when the polynomial is a constant)."""
        if all(not any(exps) for _, exps in self.terms):
            return sum(c for c, _ in self.terms)
        out = np.zeros(n, dtype=np.int64)
        powers: dict[tuple[str, int], np.ndarray] = {}
        with np.errstate(over="ignore"):  # wrapping intermediates are exact modulo 2^64; the bound covers the result
            for coefficient, exponents in self.terms:
                term: Any = np.int64(coefficient)
                for name, e in zip(self.names, exponents, strict=True):
                    if e:
                        if (name, e) not in powers:
                            base = np.asarray(values[name], dtype=np.int64)
                            power = base
                            for _ in range(e - 1):
                                power = power * base
                            powers[name, e] = power
                        term = term * powers[name, e]
                out += term
        return out

    def bound(self, top: Mapping[str, int]) -> int:
        """An upper bound of |value| when each variable lies in 1..top[name] (exact integer)."""
        return sum(
            abs(c) * math.prod(top[n] ** e for n, e in zip(self.names, exps, strict=True)) for c, exps in self.terms
        )


@dataclass(frozen=True)
class IntForm:
    """A form as N / D over int64, exact over the grid: ``atoms`` (ceilings and floors of N_k / D_k) are
    computed first, then the outer N and D in the swept symbols and the atoms."""

    args: tuple[str, ...]
    atoms: tuple[tuple[str, bool, IntPoly, IntPoly], ...]  # (name, is ceiling, N_k, D_k)
    numerator: IntPoly
    denominator: IntPoly
    tables: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict, compare=False)

    def __call__(
        self, columns: Mapping[str, np.ndarray], index: Mapping[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """N and D at the rows of ``columns`` (``index``: each axis's position of those rows, for tables)."""
        n = len(next(iter(columns.values()))) if columns else 1
        values = {a: columns[a] for a in self.args}
        for name, ceiling, num, den in self.atoms:
            if index is not None and name in self.tables:
                axis, table = self.tables[name]
                values[name] = table[index[axis]]
                continue
            top, bottom = num(values, n), den(values, n)
            values[name] = -((-top) // bottom) if ceiling else top // bottom
        return self.numerator(values, n), self.denominator(values, n)

    def with_tables(self, axes: Mapping[str, Sequence[int]], limit: int = 10**6) -> IntForm:
        """The same form with each atom of one swept symbol precomputed over that axis (a lookup per row)."""
        tables: dict[str, tuple[str, np.ndarray]] = {}
        for name, ceiling, num, den in self.atoms:
            used = {v for poly in (num, den) for v, e in zip(poly.names, _used(poly), strict=True) if e}
            if len(used) == 1 and len(axes[next(iter(used))]) <= limit:
                axis = next(iter(used))
                values = {axis: np.asarray(axes[axis], dtype=np.int64)}
                top, bottom = num(values, len(values[axis])), den(values, len(values[axis]))
                tables[name] = (axis, -((-top) // bottom) if ceiling else top // bottom)
        return IntForm(self.args, self.atoms, self.numerator, self.denominator, tables)


def _used(poly: IntPoly) -> list[int]:
    """For each of ``poly.names``, its largest exponent in ``poly`` (0: unused)."""
    return [max((exps[i] for _, exps in poly.terms), default=0) for i in range(len(poly.names))]


def _exact_array(values: Sequence[Any], ceil: bool) -> np.ndarray:
    """Exact values as an array: int64 when every one is a whole number within int64, else objects."""
    out = [
        (-(-v // 1) if ceil else (int(v) if v.denominator == 1 else v)) if isinstance(v, Fraction) else v
        for v in values
    ]
    if all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in out):
        return np.asarray(out, dtype=np.int64).reshape(len(out))
    array = np.empty(len(out), dtype=object)
    array[:] = out
    return array


def _poly_data(p: IntPoly) -> list[Any]:
    return [list(p.names), [[c, list(e)] for c, e in p.terms]]


def _poly_from(d: Sequence[Any]) -> IntPoly:
    return IntPoly(tuple(str(n) for n in d[0]), tuple((int(c), tuple(int(x) for x in e)) for c, e in d[1]))


def form_data(form: IntForm) -> dict[str, Any]:
    """``form`` as JSON data (its tables are rebuilt from the grid: see :func:`form_from_data`)."""
    return {
        "args": list(form.args),
        "atoms": [[name, ceiling, _poly_data(n), _poly_data(d)] for name, ceiling, n, d in form.atoms],
        "numerator": _poly_data(form.numerator),
        "denominator": _poly_data(form.denominator),
    }


def form_from_data(data: Mapping[str, Any], axes: Mapping[str, Sequence[int]]) -> IntForm:
    """The form :func:`form_data` gave, with its tables over ``axes``."""
    atoms = tuple((str(a), bool(c), _poly_from(n), _poly_from(d)) for a, c, n, d in data["atoms"])
    form = IntForm(tuple(data["args"]), atoms, _poly_from(data["numerator"]), _poly_from(data["denominator"]))
    return form.with_tables(axes)


Evaluate = Callable[[Columns, Columns], np.ndarray]


@dataclass
class FormEvaluator:
    """One form's values over a chunk of rows (bytes are rounded up to whole bytes when ``ceil``).

    Exact mode tries, in order: ``fast`` (the form as integer polynomials over the grid), the
    form's int64 program (``program()``: its argument names and the program, or None), then the
    compiled function ``compiled()`` (Python ints), each obtained only when a chunk needs it.
    Float mode calls ``compiled()``'s function and rounds to whole units (bytes up, counts to the
    nearest). ``compiled()`` returns an object with ``args``, ``mode`` and a call taking the
    arguments by name (:class:`symbolic.numeric.CompiledQuantity` or :class:`CompiledSource`).
    """

    mode: str
    ceil: bool
    fast: IntForm | None = None
    program: Callable[[], tuple[tuple[str, ...], Any]] | None = None
    compiled: Callable[[], Any] | None = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def _get(self, name: str) -> Any:
        if name not in self._memo:
            make = getattr(self, name)
            self._memo[name] = make() if make is not None else None
        return self._memo[name]

    def __call__(self, columns: Columns, positions: Columns) -> np.ndarray:
        if self.fast is not None:
            num, den = self.fast(columns, positions)
            return self._divide(num, den, columns)
        if self.mode == "exact" and self.program is not None:
            args, lowered = self._get("program")
            fraction = lowered(*(columns[n] for n in args)) if args and lowered is not None else None
            if fraction is not None and np.all(np.asarray(fraction[1]) > 0):
                num, den = fraction  # int64 proven exact over this chunk (maxima, minima and all)
                return self._divide(num, den, columns)
        compiled = self._get("compiled")
        result = compiled(**{n: columns[n] for n in compiled.args}) if compiled.args else compiled()
        result = _broadcast(result, columns)
        if compiled.mode == "exact":
            return _exact_array(result.tolist(), self.ceil)
        return np.ceil(result) if self.ceil else np.rint(result)  # whole units, as exact mode gives

    def _divide(self, num: Any, den: Any, columns: Columns) -> np.ndarray:
        num = _broadcast(num, columns)
        if isinstance(den, int) and den == 1:
            return num
        if np.all(np.asarray(den) > 0):
            if self.ceil:
                return -((-num) // den)
            quotient, remainder = np.divmod(num, den)
            if not remainder.any():
                return quotient
        den = _broadcast(den, columns)
        exact = [Fraction(int(a), int(b)) for a, b in zip(num.tolist(), den.tolist(), strict=True)]
        return _exact_array(exact, self.ceil)


def _broadcast(result: Any, like: Columns) -> np.ndarray:
    n = len(next(iter(like.values()))) if like else 1
    array = np.asarray(result) if not isinstance(result, np.ndarray) else result
    if array.shape != (n,):
        out = np.empty(n, dtype=array.dtype if array.dtype != object else object)
        out[...] = result
        return out
    return array


@dataclass(frozen=True)
class CompiledSource:
    """Compiled code from an authenticated cache entry, run in :func:`symbolic.numeric.runtime.runtime`:
    ``function(*args)`` in ``mode`` (exact: Python ints; float: float64, evaluated in blocks)."""

    args: tuple[str, ...]
    mode: str
    function: Callable[..., Any] = field(repr=False)

    @classmethod
    def from_source(cls, args: Sequence[str], mode: str, source: str) -> CompiledSource:
        """Execute ``source`` (code this installation wrote: an authenticated entry) defining ``_f``."""
        from .numeric.runtime import runtime

        namespace = runtime()
        exec(compile(source, "<symbolic sweep>", "exec"), namespace)
        return cls(tuple(args), mode, namespace["_f"])

    def __call__(self, **values: Any) -> Any:
        from .numeric.runtime import _blocked

        args = tuple(values[a] for a in self.args)
        return _blocked(self.function, args) if self.mode == "float" else self.function(*args)


def evaluate_grid(
    axes: Mapping[str, Sequence[int]],
    structural: Sequence[str],
    classes: Mapping[str, Sequence[int]],
    forms: Sequence[tuple[int, ...]],
    evaluators: Sequence[Evaluate],
    name: str,
    fits: int | None = None,
    chunk: int = 1 << 16,
    progress: Callable[[int], None] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Evaluate ``evaluators`` (one per combination of structural classes in ``forms``) over the
    product of ``axes``, ``chunk`` points at a time; see :func:`symbolic.sweep.run_sweep`.

    Yields column dicts: each axis's values (int64) and the values under ``name`` (only rows at
    most ``fits`` when it is given).
    """
    names = list(axes)
    grid = [np.asarray(axes[n], dtype=np.int64) for n in names]
    shape = tuple(len(a) for a in grid)
    total = math.prod(shape)
    # the form of each row: a mixed-radix number over the structural axes' classes
    position = {n: i for i, n in enumerate(names)}
    class_ids = []
    for axis in structural:
        values = sorted(set(classes[axis]))
        class_ids.append((position[axis], np.asarray([values.index(c) for c in classes[axis]]), values))
    form_index = {}
    for i, combo in enumerate(forms):
        code: Any = 0
        for (_, _, values), cls in zip(class_ids, combo, strict=True):
            code = code * len(values) + values.index(cls)
        form_index[code] = i
    for start in range(0, total, chunk):
        flat = np.arange(start, min(start + chunk, total), dtype=np.int64)
        index = np.unravel_index(flat, shape) if shape else ()
        columns = {n: axis[i] for n, axis, i in zip(names, grid, index, strict=True)}
        positions = dict(zip(names, index, strict=True))
        if len(forms) == 1:
            value = evaluators[0](columns, positions)
        else:
            code = np.zeros(flat.shape, dtype=np.int64)
            for axis_position, ids, values in class_ids:
                code = code * len(values) + ids[index[axis_position]]
            present = np.unique(code)
            if len(present) == 1:
                value = evaluators[form_index[int(present[0])]](columns, positions)
            else:
                parts = [(code == c, evaluators[form_index[int(c)]]) for c in present]
                results = [
                    (
                        rows,
                        evaluate({n: v[rows] for n, v in columns.items()}, {n: i[rows] for n, i in positions.items()}),
                    )
                    for rows, evaluate in parts
                ]
                dtype = np.result_type(*(r.dtype for _, r in results))
                value = np.empty(flat.shape, dtype=dtype)
                for rows, result in results:
                    value[rows] = result
        columns[name] = value
        if fits is not None:
            fit = np.asarray(value <= fits, dtype=bool)
            columns = {k: v[fit] for k, v in columns.items()}
        if progress is not None:
            progress(min(start + chunk, total))
        yield columns


@dataclass
class Prepared:
    """A planned sweep ready to evaluate without SymPy: what :class:`symbolic.sweep.SweepPlan` says
    about it (``model`` is the model's name, ``unit`` the quantity's unit, ``fixed`` the values put
    in for the symbols not swept) and one :class:`FormEvaluator` per combination of classes."""

    model: str
    quantity: str
    unit: str
    mode: str
    fixed: dict[str, int]
    axes: dict[str, Sequence[int]]
    structural: tuple[str, ...]
    classes: dict[str, tuple[int, ...]]
    forms: list[tuple[int, ...]]
    evaluators: list[FormEvaluator]
    fits: int | None

    @property
    def points(self) -> int:
        """The number of configurations in the full product of the grid."""
        return math.prod(len(v) for v in self.axes.values())

    def run(
        self, chunk: int = 1 << 16, progress: Callable[[int], None] | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """The sweep's chunks of columns (see :func:`evaluate_grid`)."""
        return evaluate_grid(
            self.axes,
            self.structural,
            self.classes,
            self.forms,
            self.evaluators,
            self.quantity,
            self.fits,
            chunk,
            progress,
        )


def sweep_parts(model: Any, quantity: str, options: Mapping[str, Any], mode: str, fits: int | None) -> list[str]:
    """Everything besides the grid a sweep's plan depends on, as text (the key of a cached sweep,
    with the grid: :func:`symbolic.sweepgrid.sweep_key`)."""
    return [
        quantity,
        model.name,
        json.dumps(dict(model.config), sort_keys=True, default=repr),  # a convention may read any field
        repr(model.arch),
        repr(sorted(model.sizes.items())),
        repr(sorted((k, repr(v)) for k, v in options.items())),
        mode,
        repr(fits),
    ]


def _axis_text(axis: Sequence[int]) -> str:
    return repr(axis) if isinstance(axis, range) else repr(tuple(int(v) for v in axis))


def sweep_key(parts: Sequence[str], grid: Mapping[str, Sequence[int]]) -> str | None:
    """The cache name of a sweep (hex): an HMAC under the installation's secret of ``parts``
    (everything planning depends on), every axis's values and the installation's stamp; None
    when no secret can be kept (nothing is then cached)."""
    from .resultcache import package_stamp, secret

    secret_key = secret()
    if secret_key is None:
        return None
    grid_text = [[name, _axis_text(axis)] for name, axis in grid.items()]
    text = json.dumps([SWEEP_CACHE_VERSION, *parts, grid_text, package_stamp()])
    return hmac.new(secret_key, f"sweep|{text}".encode(), hashlib.sha256).hexdigest()


def _path(key: str) -> Any:
    from .resultcache import cache_root

    return cache_root() / "compiled" / f"{key}.sweep.json"  # beside the compiled code (numeric.cache_dir)


def store_sweep(key: str, payload: Mapping[str, Any]) -> None:
    """Keep a planned and lowered sweep (JSON ``payload``, see :func:`cached_sweep`) under ``key``."""
    from .numeric.entries import write_entry

    write_entry(_path(key), key, "sweep", dict(payload))


def cached_sweep(
    key: str, grid: Mapping[str, Sequence[int]], fallback: Callable[[tuple[int, ...]], Any]
) -> Prepared | None:
    """The sweep stored under ``key`` (by :func:`store_sweep`, the same inputs planned and checked
    then), ready to run over ``grid``; None when there is no authentic entry.

    A form whose stored lowering does not cover a chunk (an int64 program declining) is computed
    with ``fallback(combo)``: the compiled function of that form, planned again with SymPy.
    """
    from .numeric.entries import read_entry

    payload = read_entry(_path(key), key, "sweep")
    if not isinstance(payload, dict):
        return None
    try:
        return load_prepared(payload, grid, fallback)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def load_prepared(
    payload: Mapping[str, Any], grid: Mapping[str, Sequence[int]], fallback: Callable[[tuple[int, ...]], Any]
) -> Prepared:
    from .numeric.intexact import IntProgram

    mode, ceil = str(payload["mode"]), bool(payload["ceil"])
    forms: list[tuple[int, ...]] = []
    evaluators: list[FormEvaluator] = []
    for entry in payload["forms"]:
        combo = tuple(int(c) for c in entry["combo"])
        forms.append(combo)
        fast = form_from_data(entry["fast"], grid) if entry.get("fast") is not None else None
        program = None
        if entry.get("program") is not None:
            data = entry["program"]
            program = _constant((tuple(data["args"]), IntProgram.from_data(data)))
        compiled: Callable[[], Any] = _later(fallback, combo)
        if entry.get("source") is not None:
            args, source = entry["source"]
            compiled = _constant(CompiledSource.from_source(args, mode, source))
        evaluators.append(FormEvaluator(mode, ceil, fast, program, compiled))
    return Prepared(
        model=str(payload["model"]),
        quantity=str(payload["quantity"]),
        unit=str(payload["unit"]),
        mode=mode,
        fixed={str(k): int(v) for k, v in payload["fixed"].items()},
        axes=dict(grid),
        structural=tuple(payload["structural"]),
        classes={str(k): tuple(int(c) for c in v) for k, v in payload["classes"].items()},
        forms=forms,
        evaluators=evaluators,
        fits=None if payload["fits"] is None else int(payload["fits"]),
    )


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _later(fallback: Callable[[tuple[int, ...]], Any], combo: tuple[int, ...]) -> Callable[[], Any]:
    return lambda: fallback(combo)
