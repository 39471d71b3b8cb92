"""Model states per device: weights, gradients, master weights and optimizer state, as byte terms.

Every term here is derived from one parameter term (its ``expr``, ``shape``, ``copies``,
``split``, ``expert`` and ``trainable``) already cut to one device by
:meth:`symbolic.parallel.Parallelism.device_terms`: a precision :class:`Recipe` gives the bytes
per element of each state, an :class:`Optimizer` the state elements per tensor, and the ZeRO
stage which categories are sharded over the data-parallel group (``/dp``, experts ``/(dp/ep)``).
Frozen parameters carry weights only.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from ..errors import SymbolicError
from ..numeric.values import rational
from ..parallel import Parallelism
from ..terms import Breakdown, Quantity, Term
from .weights import WeightFormat, quantizable, tensor_bytes

__all__ = [
    "CATEGORIES",
    "Recipe",
    "RECIPES",
    "DEFAULT_RECIPE",
    "get_recipe",
    "custom_recipe",
    "Optimizer",
    "OPTIMIZERS",
    "DEFAULT_OPTIMIZER",
    "get_optimizer",
    "state_terms",
    "gathered_layer_terms",
]

BYTES = Quantity.BYTES
CATEGORIES = ("weights", "gradients", "master", "optimizer", "activations", "transient")


@dataclass(frozen=True)
class Recipe:
    """A precision recipe: bytes per parameter of each model state (bytes per element).

    ``weights``: the working copy the forward pass uses; ``gradients``: the gradient buffer;
    ``master``: an fp32 master copy (0 for none); ``state``: one optimizer-state element (Adam's
    moments); ``accumulation``: a separate gradient-accumulation buffer (0 for none);
    ``autocast``: the dtype ``torch.autocast`` computes in (``None``: no autocast).
    """

    name: str
    weights: Fraction
    gradients: Fraction
    master: Fraction
    state: Fraction
    accumulation: Fraction
    description: str
    source: str = ""
    autocast: str | None = None

    def per_parameter(self, optimizer_states: int = 2) -> Fraction:
        """Bytes per trainable parameter with ``optimizer_states`` full-size states (bytes)."""
        return self.weights + self.gradients + self.master + self.accumulation + optimizer_states * self.state


def _recipe(name, w, g, m, s, a, description, source="", autocast=None) -> Recipe:
    return Recipe(name, Fraction(w), Fraction(g), Fraction(m), Fraction(s), Fraction(a), description, source, autocast)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        _recipe("fp32", 4, 4, 0, 4, 0, "fp32 weights, gradients and optimizer state", "ZeRO (arXiv 1910.02054) §3.1"),
        _recipe(
            "mixed",
            2,
            2,
            4,
            4,
            0,
            "fp16/bf16 weights and gradients, fp32 master weights and optimizer state (16 bytes with Adam)",
            "ZeRO (arXiv 1910.02054) §3.1: (2 + 2 + 12) bytes per parameter",
        ),
        _recipe(
            "mixed-fp32-grads",
            2,
            4,
            4,
            4,
            0,
            "bf16 weights, fp32 gradients (main_grad), fp32 master weights and optimizer state (18 bytes with Adam)",
            "Megatron-LM distributed optimizer: 18 bytes per parameter without sharding",
        ),
        _recipe(
            "mixed-fp32-accum",
            2,
            2,
            4,
            4,
            4,
            "bf16 weights and gradients plus an fp32 gradient-accumulation buffer (20 bytes with Adam)",
            "Ultra-Scale Playbook (nanotron), memory for model states: 20N",
        ),
        _recipe("bf16", 2, 2, 0, 2, 0, "pure bf16: weights, gradients and optimizer state in bf16, no master copy"),
        _recipe("fp16", 2, 2, 0, 2, 0, "pure fp16: weights, gradients and optimizer state in fp16, no master copy"),
        _recipe(
            "amp-bf16",
            4,
            4,
            0,
            4,
            0,
            "torch.autocast to bf16: fp32 weights, gradients and optimizer state; bf16 copies of the weights "
            "made in the forward and saved for backward (activations)",
            "torch.amp autocast (PyTorch automatic mixed precision)",
            autocast="bf16",
        ),
        _recipe(
            "amp-fp16",
            4,
            4,
            0,
            4,
            0,
            "torch.autocast to fp16: fp32 weights, gradients and optimizer state; fp16 copies of the weights "
            "made in the forward and saved for backward (activations); a GradScaler's scalars are left out",
            "torch.amp autocast (PyTorch automatic mixed precision)",
            autocast="fp16",
        ),
    )
}
DEFAULT_RECIPE = "mixed"


def custom_recipe(text: str, option: str = "precision") -> Recipe:
    """A recipe from ``custom:W,G,M,S[,A]`` (bytes per element of weights, gradients, master, state, accumulation)."""
    body = text.removeprefix("custom:")
    parts = [p.strip() for p in body.split(",")]
    if len(parts) not in (4, 5):
        raise SymbolicError(option, f"custom recipe is custom:W,G,M,S[,A] in bytes per element, got {text!r}")
    from ..inputs import decimal

    what = "bytes per element from 0 to 64, like 2 or 0.5 (custom:W,G,M,S[,A])"
    values = [decimal(option, p, low=0, low_inclusive=True, high=64, what=what) for p in parts]
    values += [Fraction(0)] * (5 - len(values))
    w, g, m, st, acc = values[:5]
    return _recipe(
        "custom", w, g, m, st, acc, f"custom: {','.join(parts)} bytes (weights, gradients, master, state, accum)"
    )


def get_recipe(name: str, option: str = "precision") -> Recipe:
    """The recipe called ``name`` (or ``custom:W,G,M,S[,A]``); a clear error names the allowed ones."""
    if name.startswith("custom:"):
        return custom_recipe(name, option)
    try:
        return RECIPES[name]
    except KeyError:
        allowed = ", ".join([*RECIPES, "custom:W,G,M,S[,A]"])
        raise SymbolicError(option, f"unknown {name!r}; allowed: {allowed}") from None


@dataclass(frozen=True)
class Optimizer:
    """An optimizer: the state it keeps per parameter tensor.

    ``full_states``: state tensors the size of the parameter (Adam 2, momentum 1);
    ``factored``: Adafactor's second moment (rows + columns per matrix, full for vectors);
    ``state_bytes``: fixed bytes per state element (8-bit optimizers), else the recipe's;
    ``block``: elements per quantization block with one fp32 constant (8-bit optimizers);
    ``min_quantized``: tensors smaller than this keep 32-bit state (bitsandbytes' ``min_8bit_size``);
    ``step_bytes``: the per-tensor step counter ``torch.optim`` keeps (fp32 scalar).
    """

    name: str
    title: str
    full_states: int
    source: str = ""
    factored: bool = False
    state_bytes: Fraction | None = None
    block: int | None = None
    min_quantized: int = 0
    step_bytes: int = 0
    trains: bool = True

    def elements(self, term: Term) -> sp.Expr:
        """Optimizer-state elements of one instance of parameter term ``term`` (elements)."""
        n = self.full_states * term.expr
        if self.factored:
            if term.shape is not None and len(term.shape) >= 2:
                *_, rows, cols = term.shape
                n += term.copies * (rows + cols)
            else:
                n += term.expr
        return n

    def state(self, term: Term, recipe: Recipe) -> sp.Expr:
        """Bytes of optimizer state for one instance of ``term`` under ``recipe`` (bytes)."""
        if self.state_bytes is None:
            return rational(recipe.state) * self.elements(term)
        numel = term.expr
        quantized = self.full_states * (rational(self.state_bytes) * numel + 4 * sp.ceiling(numel / self.block))
        plain = self.full_states * 4 * numel
        if self.min_quantized:
            return sp.Piecewise((quantized, sp.Ge(numel, self.min_quantized)), (plain, True))
        return quantized


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer("adamw", "AdamW: first and second moments", 2, "Loshchilov & Hutter 2019", step_bytes=4),
        Optimizer("adam", "Adam: first and second moments", 2, "Kingma & Ba 2015", step_bytes=4),
        Optimizer("sgd", "SGD without momentum: no state", 0, "torch.optim.SGD(momentum=0)"),
        Optimizer("sgd-momentum", "SGD with momentum: one buffer", 1, "torch.optim.SGD(momentum>0)"),
        Optimizer("lion", "Lion: momentum only", 1, "Chen et al. 2023 (arXiv 2302.06675)"),
        Optimizer(
            "adafactor",
            "Adafactor: factored second moment (rows + columns per matrix, full for vectors), no first moment",
            0,
            "Shazeer & Stern 2018 (arXiv 1804.04235); torch.optim.Adafactor",
            factored=True,
            step_bytes=4,
        ),
        Optimizer(
            "adam-8bit",
            "8-bit Adam: two 8-bit moments with one fp32 constant per block of 2048",
            2,
            "Dettmers et al. 2021, 8-bit optimizers via block-wise quantization (arXiv 2110.02861)",
            state_bytes=Fraction(1),
            block=2048,
            min_quantized=4096,
        ),
        Optimizer("none", "no optimizer (inference): no gradients or optimizer state", 0, trains=False),
    )
}
DEFAULT_OPTIMIZER = "adamw"


def get_optimizer(name: str, option: str = "optimizer") -> Optimizer:
    """The optimizer called ``name``; a clear error names the allowed ones."""
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise SymbolicError(option, f"unknown {name!r}; allowed: {', '.join(OPTIMIZERS)}") from None


def _term(category: str, t: Term, expr: sp.Expr, what: str, source: str = "") -> Term:
    return Term(
        path=f"{category}.{t.path}",
        expr=expr,
        quantity=BYTES,
        description=f"{what} of {t.description}",
        count=t.count,
        source=source,
        expert=t.expert,
        trainable=t.trainable,
        tags=t.tags | {category},
    )


def state_terms(
    device_params: Breakdown,
    recipe: Recipe,
    optimizer: Optimizer,
    parallel: Parallelism | None = None,
    base_format: WeightFormat | None = None,
    step_counters: bool = False,
) -> Breakdown:
    """Weights, gradients, master weights and optimizer state one device holds, per tensor (bytes).

    ``device_params``: the parameter terms cut to one device. ``base_format``: how frozen weight
    matrices are stored (QLoRA's NF4); others use the recipe's weight bytes. ``step_counters``
    adds ``torch.optim``'s fp32 step scalar per tensor. Under ZeRO stage >= 1 the master weights
    and optimizer state are divided by the shard group, >= 2 the gradients too, 3 the weights.
    """
    parallel = parallel or Parallelism()
    zero = parallel.zero
    out: list[Term] = []
    for t in device_params:
        shard = parallel.shard_symbol(t.expert)

        def sharded(expr: sp.Expr, stage: int, shard=shard) -> sp.Expr:
            return expr / shard if zero >= stage else expr

        if not t.trainable and base_format is not None and base_format.quantized and quantizable(t):
            w, what = tensor_bytes(t, base_format), f"{base_format.name} base weights"
        else:
            w, what = rational(recipe.weights) * t.expr, f"{recipe.name} weights"
        out.append(_term("weights", t, sharded(w, 3), what))
        if not t.trainable or not optimizer.trains:
            continue
        grads = rational(recipe.gradients + recipe.accumulation) * t.expr
        what = "gradients and fp32 accumulation buffer" if recipe.accumulation else "gradients"
        out.append(_term("gradients", t, sharded(grads, 2), what))
        if recipe.master:
            out.append(_term("master", t, sharded(rational(recipe.master) * t.expr, 1), "fp32 master weights"))
        state = optimizer.state(t, recipe)
        if step_counters and optimizer.step_bytes:
            state += optimizer.step_bytes
        if state != 0:
            out.append(_term("optimizer", t, sharded(state, 1), f"{optimizer.name} state", optimizer.source))
    return Breakdown(BYTES, tuple(out))


def gathered_layer_terms(device_params: Breakdown, recipe: Recipe, parallel: Parallelism) -> Breakdown:
    """Under ZeRO stage 3, the full weights of the largest layer gathered at once (bytes, transient).

    One term per layer group: one layer's weights on this device before sharding; the largest is
    the transient peak the all-gather adds (FSDP's prefetch of the next layer is left out).
    """
    if parallel.zero < 3:
        return Breakdown(BYTES)
    groups: dict[str, list[Term]] = {}
    for t in device_params:
        segments = t.path.split(".")
        if t.count.free_symbols or t.count != 1:
            head = segments[1] if segments[0] == "lora" else segments[0]
            groups.setdefault(head, []).append(t)
    out = [
        Term(
            path=f"transient.zero3_gather.{name}",
            expr=sp.Add(*(rational(recipe.weights) * t.expr for t in ts)),
            quantity=BYTES,
            description=f"one {name} layer's weights gathered in full for its forward/backward (ZeRO-3/FSDP)",
            source="ZeRO (arXiv 1910.02054) §5.3; Transformer Math 101: ZeRO-3 live parameters",
            tags=frozenset({"transient"}),
        )
        for name, ts in groups.items()
    ]
    return Breakdown(BYTES, tuple(out))
