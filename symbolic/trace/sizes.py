"""Model sizes as symbols in a trace: the config's size fields become SymPy symbols too.

A trace normally runs the config's sizes as numbers, so its terms are numbers times polynomials in
batch and sequence. With sizes symbolic, every integer size field of the config (``hidden_size``,
``num_attention_heads``, ``intermediate_size``, ``vocab_size``, ``head_dim``, expert counts and
widths, ...) is handed to the model as a size of the fake tensors' shape environment, with the
config's value as its example; the model is built and run once, and each parameter's shape, each
saved storage's bytes and each FLOP count comes back as an expression in those fields. A field the
code reads as a plain number (a ``range`` over the experts, a float scale) is fixed at its value
and stays a number; the trace says which. The branches the code took on the sizes (``kv < heads``,
an even head size) come back as conditions on the fields, so a formula says where it holds.

Symbols are named after the config's own fields (``hidden_size``), positive integers. Torch's
integer functions in the sizes (``FloorDiv``, ``CleanDiv``, ``Mod``, ``Max``) are written as
SymPy's (``floor``, division, ``Mod``, ``Max``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

__all__ = [
    "SizeSymbols",
    "symbolise_sizes",
    "size_fields",
    "field_symbol",
    "to_sympy",
    "is_size_field",
    "size_conditions",
]

# size fields by name: widths, head counts, vocabulary, expert counts and widths, latent ranks
_NAMED = frozenset(
    {
        "hidden_size",
        "intermediate_size",
        "vocab_size",
        "num_attention_heads",
        "num_key_value_heads",
        "num_kv_heads",
        "head_dim",
        "n_embd",
        "n_embed",
        "n_head",
        "n_inner",
        "ffn_dim",
        "d_model",
        "ffn_hidden_size",
        "kv_channels",
        "multi_query_group_num",
        "rotary_dim",
        "moe_intermediate_size",
        "shared_expert_intermediate_size",
        "num_experts",
        "num_local_experts",
        "n_routed_experts",
        "num_experts_per_tok",
        "n_shared_experts",
        "kv_lora_rank",
        "q_lora_rank",
        "qk_rope_head_dim",
        "qk_nope_head_dim",
        "v_head_dim",
    }
)
_PATTERN = re.compile(r"^[a-z_]*(_intermediate_size|_head_dim|_heads|_hidden_size)$")
_NOT_SIZES = re.compile(r"layer|window|position|bucket|chunk|token|seed|cache|conv|kernel|_id$")


def is_size_field(name: str) -> bool:
    """Whether a config field of this name holds a model size that a trace may keep symbolic."""
    return name in _NAMED or (bool(_PATTERN.match(name)) and not _NOT_SIZES.search(name))


def field_symbol(name: str) -> sp.Symbol:
    """The SymPy symbol (a positive integer) of config field ``name``."""
    return sp.Symbol(name, integer=True, positive=True)


def size_fields(config: Any) -> dict[str, int]:
    """The size fields of a transformers config object that can be symbols: name -> value (ints above 1;
    a size of 1 is a case of its own in torch, which specialises it)."""
    out: dict[str, int] = {}
    for name, value in vars(config).items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 1 or not is_size_field(name):
            continue
        out[name] = value
    return out


@dataclass(frozen=True)
class SizeSymbols:
    """The sizes a trace keeps symbolic: shape-env symbol -> (field symbol, the config's value)."""

    symbols: Mapping[sp.Symbol, tuple[sp.Symbol, int]]
    numeric: Mapping[str, int] = field(default_factory=dict)  # size fields left numbers on purpose

    def rename(self) -> dict[sp.Symbol, sp.Symbol]:
        """Shape-env symbol -> the field's symbol."""
        return {env: field for env, (field, _) in self.symbols.items()}

    def fields_named_in(self, text: str) -> set[str]:
        """The size fields whose shape-env symbols (``s82``) appear in ``text`` (an error message)."""
        names = set(re.findall(r"\bs\d+\b", text))
        return {field.name for env, (field, _) in self.symbols.items() if str(env) in names}

    def hints(self) -> dict[sp.Symbol, sp.Integer]:
        """Shape-env symbol -> the config's value."""
        return {env: sp.Integer(value) for env, (_, value) in self.symbols.items()}

    def fixed(self, shape_env: Any) -> dict[str, int]:
        """The fields the code read as numbers (the shape env replaced their symbol by a value),
        and those left numbers because a symbol there stopped the step (``numeric``)."""
        out: dict[str, int] = dict(self.numeric)
        for env, (name, value) in self.symbols.items():
            if not shape_env.replace(env).free_symbols:
                out[name.name] = value
        return out


def symbolise_sizes(config: Any, shape_env: Any, numeric: frozenset[str] = frozenset()) -> SizeSymbols:
    """Give the size fields of a transformers ``config`` object symbolic values of ``shape_env``,
    but those named in ``numeric``.

    Returns the :class:`SizeSymbols` made (the config is changed in place). The config class
    validates its fields as ints on assignment, so the values are set past that check.
    """
    from torch._dynamo.source import ConstantSource
    from torch.fx.experimental.symbolic_shapes import DimDynamic

    made: dict[sp.Symbol, tuple[sp.Symbol, int]] = {}
    kept: dict[str, int] = {}
    for name, value in size_fields(config).items():
        if name in numeric:
            kept[name] = value
            continue
        source = ConstantSource(f"config.{name}")
        env_symbol = shape_env.create_symbol(value, source, dynamic_dim=DimDynamic.DYNAMIC)
        node = shape_env.create_symintnode(env_symbol, hint=value, source=source)
        object.__setattr__(config, name, node)
        made[env_symbol] = (field_symbol(name), value)
    return SizeSymbols(made, kept)


def _torch_functions() -> dict[str, Any]:
    def floor_div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return sp.floor(a / b)

    def ceil_div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return sp.ceiling(a / b)

    def true_div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return a / b

    return {
        "FloorDiv": floor_div,
        "CeilDiv": ceil_div,
        "CleanDiv": true_div,
        "IntTrueDiv": true_div,
        "Mod": sp.Mod,
        "PythonMod": sp.Mod,
        "Max": sp.Max,
        "Min": sp.Min,
        "Identity": lambda a: a,
        "FloorToInt": sp.floor,
        "CeilToInt": sp.ceiling,
        "TruncToInt": sp.floor,  # of a positive size
        "RoundToInt": sp.floor,
        "ToFloat": lambda a: a,
    }


def to_sympy(expr: sp.Basic) -> sp.Basic:
    """``expr`` with torch's integer functions written as SymPy's (the same values)."""
    table = _torch_functions()

    def torch_function(node: sp.Basic) -> bool:
        return type(node).__module__.startswith("torch.") and type(node).__name__ in table

    def as_sympy(node: sp.Basic) -> sp.Basic:
        return table[type(node).__name__](*node.args)

    return expr.replace(torch_function, as_sympy)


def has_float_function(expr: sp.Basic) -> bool:
    """Whether ``expr`` is a guard on a float scale (``head_dim ** -0.5``), not on a size: it holds
    torch's float functions and no conversion of a float back to a size (``int(0.25 * head_dim)``,
    which fixes a size and is kept as a condition)."""
    names = {type(node).__name__ for node in sp.preorder_traversal(expr) if type(node).__module__.startswith("torch.")}
    to_size = {"TruncToInt", "FloorToInt", "CeilToInt", "RoundToInt"}
    floats = any("Float" in n or n.startswith("OpaqueUnaryFn") for n in names)
    return floats and not names & to_size


def size_conditions(shape_env: Any, sizes: SizeSymbols) -> tuple[sp.Basic, ...]:
    """The branches the code took on the model sizes alone: the shape env's guards in the fields'
    symbols (SymPy booleans), those that hold for every size and those on float scales left out."""
    rename = sizes.rename()
    out: list[sp.Basic] = []
    for guard in shape_env.guards:
        expr = sp.sympify(guard.expr, strict=True)
        if not expr.free_symbols or not expr.free_symbols <= set(rename) or has_float_function(expr):
            continue
        cond = to_sympy(expr.xreplace(rename))
        try:
            cond = sp.simplify(cond)
        except (TypeError, ValueError):  # a condition SymPy cannot simplify is kept as it is
            pass
        if cond is sp.true or cond is sp.false or _holds_everywhere(cond):
            continue
        if cond not in out:
            out.append(cond)
    return tuple(sorted(out, key=str))


def _holds_everywhere(cond: sp.Basic, limit: int = 48) -> bool:
    """Whether a condition on one or two sizes holds at every size from 1 to ``limit`` (a guard
    that restricts nothing there, such as ``head_dim >= floor(head_dim/2)``, is not reported)."""
    import itertools

    free = sorted(cond.free_symbols, key=str)
    if len(free) > 2:
        return False
    check = sp.lambdify(free, cond, modules=[{"floor": math.floor, "ceiling": math.ceil, "Mod": operator.mod}, "math"])
    try:
        return all(check(*values) for values in itertools.product(range(1, limit + 1), repeat=len(free)))
    except (TypeError, ZeroDivisionError, NameError):
        return False
