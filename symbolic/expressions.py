"""A safe reader for expressions and scaling paths a user types.

The text is cut into tokens from a whitelist: names of symbols in the registry, integers and
decimals, ``+ - * / ^ ** ( )``, and for paths ``=`` and ``,``. Anything else (attributes,
calls, lambdas, strings, unknown names) is refused with one clear line. The SymPy objects are
built directly from the tokens by a small recursive-descent parser; nothing is ever passed to
``eval``, ``sympify`` or ``parse_expr``.

Grammar::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := ("+" | "-") unary | power
    power  := atom (("^" | "**") unary)?
    atom   := NUMBER | NAME | "(" expr ")"
    path   := NAME "=" expr ("," NAME "=" expr)*
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from . import symbols as S
from .errors import SymbolicError

__all__ = ["Token", "tokenize", "parse_expression", "ScalingPath", "parse_path"]

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d*)?|\.\d+)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>\*\*|[-+*/^(),=]))")


_MAX_EXPONENT = 16
_MAX_DIGITS = 30  # digits of a number literal
_MAX_BITS = 128  # a constant in an expression stays below 2^128 (its numerator and denominator)


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is ``number``, ``name`` or ``op``; ``pos`` its offset in the text."""

    kind: str
    text: str
    pos: int


def tokenize(text: str, field: str = "expression") -> list[Token]:
    """The tokens of ``text``; raises :class:`SymbolicError` at the first character not allowed."""
    tokens: list[Token] = []
    pos = 0
    text = str(text)
    if len(text) > 1000:
        raise SymbolicError(field, f"is {len(text):,} characters long; at most 1,000")
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            bad = text[pos:].lstrip()[:1]
            raise SymbolicError(
                field, f"character {bad!r} is not allowed; use symbol names, numbers, + - * / ^ ( ) only"
            )
        kind = match.lastgroup or "op"
        if kind == "number" and len(match.group(kind)) > _MAX_DIGITS:
            raise SymbolicError(field, f"a number of more than {_MAX_DIGITS} digits is not a size")
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    for tok in tokens:
        if tok.kind == "name" and tok.text not in S.REGISTRY:
            raise SymbolicError(field, f"unknown name {tok.text!r}; allowed symbols: {', '.join(S.ORDER)}")
    return tokens


def _bits(x: sp.Expr) -> int:
    """The bits of a rational constant's larger part (numerator or denominator), at least 1."""
    q = sp.Rational(x)
    return max(abs(int(q.p)).bit_length(), int(q.q).bit_length(), 1)


class _Parser:
    def __init__(self, tokens: list[Token], field: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.field = field

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, *ops: str) -> Token | None:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in ops:
            self.i += 1
            return tok
        return None

    def fail(self, what: str) -> SymbolicError:
        tok = self.peek()
        where = f"at {tok.text!r}" if tok is not None else "at the end"
        return SymbolicError(self.field, f"expected {what} {where}")

    def expr(self) -> sp.Expr:
        value = self.term()
        while (tok := self.take("+", "-")) is not None:
            rhs = self.term()
            value = value + rhs if tok.text == "+" else value - rhs
        return value

    def term(self) -> sp.Expr:
        value = self.unary()
        while (tok := self.take("*", "/")) is not None:
            rhs = self.unary()
            if tok.text == "/":
                if rhs == 0:
                    raise SymbolicError(self.field, "division by zero")
                value = value / rhs
            else:
                value = value * rhs
        return value

    def unary(self) -> sp.Expr:
        if self.take("-") is not None:
            return -self.unary()
        if self.take("+") is not None:
            return self.unary()
        return self.power()

    def power(self) -> sp.Expr:
        base = self.atom()
        if self.take("^", "**") is not None:
            exponent = self.unary()
            if not exponent.is_Rational or abs(exponent) > _MAX_EXPONENT:
                raise SymbolicError(
                    self.field, f"an exponent must be a number from -{_MAX_EXPONENT} to {_MAX_EXPONENT}"
                )
            if base.is_Number and base != 0 and abs(exponent) * _bits(base) > _MAX_BITS:
                raise SymbolicError(self.field, f"a constant beyond 2^{_MAX_BITS} is not a size")
            return base**exponent
        return base

    def atom(self) -> sp.Expr:
        tok = self.peek()
        if tok is None:
            raise self.fail("a number, a symbol or '('")
        if tok.kind == "number":
            self.i += 1
            return sp.Rational(Fraction(tok.text))
        if tok.kind == "name":
            self.i += 1
            return S.symbol(tok.text)
        if self.take("(") is not None:
            inner = self.expr()
            if self.take(")") is None:
                raise self.fail("')'")
            return inner
        raise self.fail("a number, a symbol or '('")


def _parse_tokens(tokens: list[Token], field: str) -> sp.Expr:
    parser = _Parser(tokens, field)
    value = parser.expr()
    if parser.peek() is not None:
        raise parser.fail("an operator")
    return value


def parse_expression(text: str, field: str = "expression") -> sp.Expr:
    """The SymPy expression ``text`` writes, over registry symbols and exact rationals only."""
    tokens = tokenize(text, field)
    if not tokens:
        raise SymbolicError(field, "is empty")
    if any(t.kind == "op" and t.text in ",=" for t in tokens):
        raise SymbolicError(field, "'=' and ',' belong in a scaling path, not an expression")
    return _parse_tokens(tokens, field)


@dataclass(frozen=True)
class ScalingPath:
    """Sizes tied to others by fixed ratios, e.g. ``d_ffn = 8/3*d_model``.

    ``rules`` maps each tied symbol to an expression in the free ones; ``resolved`` is the same
    with every rule substituted through, so its right-hand sides hold free symbols only.
    """

    rules: Mapping[sp.Symbol, sp.Expr]
    resolved: Mapping[sp.Symbol, sp.Expr]

    def apply(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every tied symbol replaced by its expression in the free ones."""
        return sp.sympify(expr, strict=True).xreplace(dict(self.resolved))

    @property
    def free(self) -> frozenset[sp.Symbol]:
        """The symbols the path leaves free (those the tied ones are written in)."""
        return frozenset(s for e in self.resolved.values() for s in e.free_symbols)


def _resolve(rules: Mapping[sp.Symbol, sp.Expr], field: str) -> dict[sp.Symbol, sp.Expr]:
    resolved: dict[sp.Symbol, sp.Expr] = {}

    def visit(sym: sp.Symbol, stack: list[sp.Symbol]) -> sp.Expr:
        if sym in resolved:
            return resolved[sym]
        if sym in stack:
            cycle = " -> ".join(str(s) for s in [*stack[stack.index(sym) :], sym])
            raise SymbolicError(field, f"the path has a cycle: {cycle}")
        stack.append(sym)
        expr = rules[sym]
        expr = expr.xreplace({dep: visit(dep, stack) for dep in expr.free_symbols if dep in rules})
        stack.pop()
        resolved[sym] = expr
        return expr

    for sym in rules:
        visit(sym, [])
    return resolved


def _check_positive(sym: sp.Symbol, expr: sp.Expr, field: str) -> None:
    """A tied size must stay positive whenever its free sizes are: a positive ratio or sum of such."""
    if expr.is_Number:
        if expr <= 0:
            raise SymbolicError(field, f"{sym} = {expr}: a size must be positive")
        return
    try:
        numer = sp.together(expr).as_numer_denom()[0]
        coeffs = sp.Poly(numer, *sorted(expr.free_symbols, key=str)).coeffs()
    except sp.PolynomialError:
        coeffs = []
    if expr.is_positive is not True or any(c <= 0 for c in coeffs):
        raise SymbolicError(field, f"{sym} = {expr}: ratios must be positive (a size cannot be 0 or negative)")


def parse_path(text: str | Iterable[str], field: str = "path") -> ScalingPath:
    """A scaling path from ``"d_ffn=8/3*d_model, n_heads=d_model/128"`` (or a list of such items).

    Each item ties one registry symbol to an expression in others. A symbol tied twice, a cycle
    (``a=2*b, b=a``) or a non-positive ratio raises :class:`SymbolicError` naming ``field``.
    """
    items = [text] if isinstance(text, str) else list(text)
    rules: dict[sp.Symbol, sp.Expr] = {}
    for item in items:
        tokens = tokenize(item, field)
        start = 0
        for end in [i for i, t in enumerate(tokens) if t.kind == "op" and t.text == ","] + [len(tokens)]:
            part = tokens[start:end]
            start = end + 1
            if not part:
                raise SymbolicError(field, "empty item; write NAME=EXPRESSION items separated by commas")
            if len(part) < 3 or part[0].kind != "name" or part[1].text != "=":
                raise SymbolicError(field, "each item must read NAME=EXPRESSION, e.g. d_ffn=8/3*d_model")
            if any(t.kind == "op" and t.text == "=" for t in part[2:]):
                raise SymbolicError(field, "one '=' per item")
            sym = S.symbol(part[0].text)
            if sym in rules:
                raise SymbolicError(field, f"{sym} is tied twice")
            expr = _parse_tokens(part[2:], field)
            if sym in expr.free_symbols:
                raise SymbolicError(field, f"the path has a cycle: {sym} -> {sym}")
            rules[sym] = expr
    if not rules:
        raise SymbolicError(field, "is empty")
    resolved = _resolve(rules, field)
    for sym, expr in resolved.items():
        _check_positive(sym, expr, field)
    return ScalingPath(rules, resolved)
