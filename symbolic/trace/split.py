"""Which saved storages tensor parallelism divides, read off transformers' own tensor-parallel plan.

A model's ``tp_plan`` (its config's ``base_model_tp_plan`` plus the head's entries, e.g.
``model.layers.*.self_attn.q_proj: colwise``, ``lm_head: colwise_gather_output``) names, per module
or parameter, a style of ``transformers.distributed.tensor_parallel``. Each style says what it does
to sizes, and nothing else is needed:

* a module whose output is this rank's slice of its features (``colwise``, ``packed_colwise``)
  makes its output divided by ``tp``; a module whose output is reduced or gathered to the whole
  (``rowwise``, ``colwise_gather_output``, ``embedding_rowwise``, ``moe_tp_experts``, ...) makes it
  whole; a row-parallel module that splits a whole input itself (``rowwise_split_input``) saves a
  new ``1/tp`` slice of it (:meth:`StorageSplit.split_input`), and the whole input stays where
  something else saved it too;
* a parameter split along its output features (``colwise``, ``packed_colwise``: MoE experts'
  ``gate_up_proj``) makes what it is multiplied into divided; one split along its input features
  (``rowwise``: the experts' ``down_proj``) makes the (partial, then summed) product whole.

The parameters themselves are split as each style's ``shard_param`` splits them
(:func:`parameter_splits`, :data:`PARAM_SHARDING`): weights, their gradients and optimizer states
then follow the same :class:`~symbolic.terms.Split` the hand-written terms carry.

Between those points the property is followed through the step op by op (a dispatch mode): an
op's output is divided when one of its inputs is. A divided storage made by copying a permuted
view into a contiguous one (``transpose(1, 2).contiguous()`` of an attention output) is a view
when one rank's share of the permuted dimension is 1: if only one dimension, of fixed size ``n``,
puts the view's dimensions out of their storage order, the copy has no storage of its own at
``tp = n`` (:meth:`StorageSplit.view_at`). Each storage autograd saves is then divided or
whole (:meth:`StorageSplit.divided`): one rank holds ``1/tp`` of a divided storage of the
unsharded step and all of a whole one. A plan with a style not listed here is not followed (the
traced terms then say nothing about tensor parallelism, which is refused). torch is imported only
when a tracker is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..terms import Split

__all__ = [
    "OUTPUT_DIVIDED",
    "OUTPUT_WHOLE",
    "INPUT_DIVIDED",
    "PASSING",
    "one_dimension_to_contiguous",
    "resolved_plan",
    "parameter_splits",
    "StorageSplit",
]

OUTPUT_DIVIDED = frozenset({"colwise", "packed_colwise"})
OUTPUT_WHOLE = frozenset(
    {
        "rowwise",
        "rowwise_split_input",
        "rowwise_rep",
        "colwise_gather_output",
        "colwise_rep",
        "embedding_rowwise",
        "embedding_colwise",
        "all_reduce",
        "moe_tp_experts",
    }
)
INPUT_DIVIDED = frozenset({"rowwise_split_input", "rowwise_rep"})
# styles that change no size: replicated modules (gradients all-reduced), local parameters
PASSING = frozenset(
    {"replicated_with_grad_allreduce", "replicate", "local_params", "mla_kv_a_proj", "moe_identity_expert"}
)
# parameter styles: split along the output features (a product with it is divided) or the input features (whole)
PARAM_OUT = frozenset({"colwise", "packed_colwise"})
PARAM_IN = frozenset({"rowwise", "packed_rowwise", "embedding_rowwise"})
# what transformers' ``shard_param`` does to a parameter whose own entry or whose module's entry has a
# style: (the split of a matrix, the split of a vector). Column styles shard the output features,
# bias too (``Shard(ndim - 2)``); row styles the input features (``Shard(-1)``), the bias (a vector)
# stays whole; the embedding styles shard the vocabulary rows (``Shard(0)``) or the hidden columns.
# Every other style has no ``shard_param``: its parameters stay whole.
PARAM_SHARDING: dict[str, tuple[Split, Split]] = {
    **{s: (Split.COLUMN, Split.COLUMN) for s in ("colwise", "colwise_gather_output", "colwise_rep", "packed_colwise")},
    **{s: (Split.ROW, Split.NONE) for s in ("rowwise", "rowwise_split_input", "rowwise_rep", "packed_rowwise")},
    "embedding_rowwise": (Split.VOCAB, Split.VOCAB),
    "embedding_colwise": (Split.COLUMN, Split.COLUMN),
}


def _pattern(name: str) -> re.Pattern[str]:
    """A plan key as a regular expression: ``*`` stands for a layer number."""
    return re.compile(r"\d+".join(re.escape(part) for part in name.split("*")))


def one_dimension_to_contiguous(t: Any) -> int | None:
    """The size ``n`` of the one fixed-size dimension of ``t`` that, were it 1, would leave ``t``'s
    dimensions in their storage order, so that a contiguous copy of ``t`` is a view (None when
    ``t`` is contiguous, not a dense permutation of its storage, or no or several dimensions do).
    Read from the symbolic shape and strides without guarding on them."""
    from .flops import as_expr

    sizes = [as_expr(d) for d in t.shape]
    strides = [as_expr(d) for d in t.stride()]
    dims = [d for d, size in enumerate(sizes) if size != 1]
    symbols = set().union(*(x.free_symbols for x in strides))
    hint = {x: 1009 for x in symbols}  # any size >= 2 orders the strides the same way
    physical = sorted(dims, key=lambda d: -int(strides[d].xreplace(hint)))  # outermost first
    expected: Any = 1
    for d in reversed(physical):
        if (strides[d] - expected).expand() != 0:
            return None  # not a dense permutation of its storage
        expected = expected * sizes[d]
    if physical == dims:
        return None

    def without(order: list[int], d: int) -> list[int]:
        return [x for x in order if x != d]

    found = [int(sizes[d]) for d in dims if sizes[d].is_Integer and without(dims, d) == without(physical, d)]
    return found[0] if len(found) == 1 else None


def _style_lookup(plan: Mapping[str, str]) -> Any:
    """A function giving the style of a module or parameter name in ``plan`` (None: no entry)."""
    patterns = [(_pattern(name), style) for name, style in plan.items()]

    def style_of(name: str) -> str | None:
        return next((style for pattern, style in patterns if pattern.fullmatch(name)), None)

    return style_of


def parameter_splits(model: Any, plan: Mapping[str, str]) -> dict[str, Split]:
    """How tensor parallelism splits each parameter of ``model`` under ``plan`` (by parameter name;
    one rank holds ``1/tp`` of a split one, all of a whole one, :attr:`Split.NONE`).

    A parameter takes its own entry's style, else its module's (as transformers'
    ``_get_parameter_plan`` does), and that style's :data:`PARAM_SHARDING`: a vector is a matrix's
    bias or scale (row styles leave it whole).
    """
    style_of = _style_lookup(plan)
    out: dict[str, Split] = {}
    for name, param in model.named_parameters():
        style = style_of(name)
        if style is None and "." in name:
            style = style_of(name.rsplit(".", 1)[0])
        if style in PARAM_SHARDING:
            matrix, vector = PARAM_SHARDING[style]
            out[name] = matrix if param.dim() >= 2 else vector
    return out


def resolved_plan(model: Any) -> tuple[dict[str, str], str | None]:
    """(the model's tensor-parallel plan with ``*`` patterns, why it cannot be followed or None).

    The plan is transformers' ``model.tp_plan``; it is refused (empty, with the reason) when the
    config has no ``base_model_tp_plan`` or a style this module does not know.
    """
    config = getattr(model, "config", None)
    base = getattr(config, "base_model_tp_plan", None) if config is not None else None
    model_type = getattr(config, "model_type", "this model")
    if not base:
        return {}, f"transformers has no tensor-parallel plan (base_model_tp_plan) for {model_type}"
    plan = dict(getattr(model, "tp_plan", None) or {})
    known = OUTPUT_DIVIDED | OUTPUT_WHOLE | INPUT_DIVIDED | PASSING | PARAM_OUT | PARAM_IN | set(PARAM_SHARDING)
    unknown = sorted({style for style in plan.values() if style not in known})
    if unknown:
        return {}, f"the {model_type} tensor-parallel plan uses styles not followed here: {', '.join(unknown)}"
    return plan, None


class StorageSplit:
    """Follows, through one step, which storages tensor parallelism divides (a context manager).

    Made from a model and its plan (:func:`resolved_plan`); while entered, module hooks and a
    dispatch mode mark each new storage divided or whole. Enter it inside the fake mode.
    """

    def __init__(self, model: Any, plan: Mapping[str, str]) -> None:
        import torch
        from torch.multiprocessing.reductions import StorageWeakRef
        from torch.utils._python_dispatch import TorchDispatchMode

        self._weak = StorageWeakRef
        self.divided_keys: dict[int, bool] = {}
        self.split_inputs: set[int] = set()  # whole inputs of running rowwise_split_input modules
        self.views_at: dict[int, int] = {}  # divided copies -> the tp at which the copy is a view
        self.params: dict[int, bool] = {}  # parameter storage -> split along its output features
        self.handles: list[Any] = []
        style_of = _style_lookup(plan)
        for name, param in model.named_parameters():
            style = style_of(name)
            if style in PARAM_OUT or style in PARAM_IN:  # an entry naming a parameter: a parameter style
                self.params[self.key(param)] = style in PARAM_OUT
        self._modules = [(mod, style) for name, mod in model.named_modules() if (style := style_of(name)) is not None]
        tracker = self
        clone = torch.ops.aten.clone.default

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                inputs = [tracker.key(t) for t in tracker._tensors((args, kwargs))]
                params = [tracker.params[k] for k in inputs if k in tracker.params]
                if params:
                    divided = all(params)
                else:
                    divided = any(tracker.divided_keys.get(k, False) for k in inputs)
                outputs = tracker._tensors(out)
                for t in outputs:
                    k = tracker.key(t)
                    tracker.divided_keys[k] = divided
                    if k not in inputs:  # a new storage (a view keeps what its storage is)
                        tracker.views_at.pop(k, None)
                if divided and func is clone and len(outputs) == 1 and isinstance(args[0], torch.Tensor):
                    at = one_dimension_to_contiguous(args[0])
                    if at is not None:
                        tracker.views_at[tracker.key(outputs[0])] = at
                return out

        self._mode = Mode()
        self._torch = torch

    def key(self, t: Any) -> int:
        """The storage key of tensor ``t`` (as the trace's records key it)."""
        return int(self._weak(t.untyped_storage()).cdata)

    def _tensors(self, obj: Any) -> list[Any]:
        leaves = self._torch.utils._pytree.tree_leaves(obj)
        return [t for t in leaves if isinstance(t, self._torch.Tensor)]

    def divided(self, t: Any) -> bool:
        """Whether tensor parallelism divides the storage of ``t`` (True: one rank holds 1/tp of it)."""
        return self.divided_keys.get(self.key(t), False)

    def view_at(self, t: Any) -> int | None:
        """The ``tp`` at which the divided copy in ``t``'s storage is a view instead (None: none)."""
        return self.views_at.get(self.key(t))

    def split_input(self, t: Any) -> bool:
        """Whether ``t`` is the whole input of a running module that splits it itself
        (``rowwise_split_input``): what that module saves of it is a new ``1/tp`` slice."""
        return self.key(t) in self.split_inputs

    def _mark(self, obj: Any, divided: bool) -> None:
        for t in self._tensors(obj):
            self.divided_keys[self.key(t)] = divided

    def _splitting(self, args: Any, running: bool) -> None:
        for t in self._tensors(args[:1]):
            (self.split_inputs.add if running else self.split_inputs.discard)(self.key(t))

    def __enter__(self) -> StorageSplit:
        for mod, style in self._modules:
            if style in INPUT_DIVIDED:
                self.handles.append(mod.register_forward_pre_hook(lambda m, args: self._splitting(args, True)))
                self.handles.append(
                    mod.register_forward_hook(lambda m, args, out: self._splitting(args, False), always_call=True)
                )
            if style in OUTPUT_DIVIDED or style in OUTPUT_WHOLE:
                value = style in OUTPUT_DIVIDED
                self.handles.append(mod.register_forward_hook(lambda m, a, out, v=value: self._mark(out, v)))
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
