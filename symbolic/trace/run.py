"""One training step of a transformers causal LM on fake tensors, batch and sequence symbolic.

``run_step`` builds the model from its config inside a ``FakeTensorMode`` that carries a
``ShapeEnv`` (no memory is allocated; sizes are SymPy expressions), runs one training forward
``model(ids, labels=ids, use_cache=False)`` with the loss inside, and records:

* every storage autograd saves for backward and that is still alive after the forward (the rule
  of ``docs/activations.md``: unique storages, not parameters, buffers or the ids), with the
  module that first saved it and the grad_fn that saved it;
* with ``flops=True``, the FLOPs of the forward and the backward as ``torch.utils.flop_counter``
  counts them (matrix products and attention), per module;
* the guards the code placed on the sizes (``s <= window``), which say where the answer holds.

Decoder layers of identical structure are run once (twice when a group has two or more layers,
so that storages shared by all layers are told apart from per-layer ones); the other layers are
replaced by pass-through modules, and the counts are put back by :mod:`symbolic.trace.terms`.

torch and transformers are imported here only; ``symbolic`` imports without them.
"""

from __future__ import annotations

import contextlib
import gc
import re
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from .flops import as_expr as _expr
from .flops import make_recorder
from .sizes import SizeSymbols, symbolise_sizes
from .split import StorageSplit

_LAYER_LIST = re.compile(r"^(?:.*\.)?(?:layers|h|blocks|layer|decoder_layers)$")
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# the batch and sequence hints the general trace is taken at: any b >= 2, s >= 2 gives the same
# formula inside the guards it records (the guards say where); odd values avoid divisibility luck
BATCH_HINT = 3
SEQ_HINT = 37
# one save under tensor parallelism: divided, the whole input of a module splitting it, the tp at which a view
TpSave = tuple[bool, bool, "int | None"]


@dataclass
class Saved:
    """One storage kept for backward: its size (SymPy, shape-env symbols), where and how saved."""

    nbytes: sp.Expr
    module: str
    grad_fn: str
    dtype: str
    shape: tuple[sp.Expr, ...]
    layers: set[int] = field(default_factory=set)
    divided: bool = False  # tensor parallelism (the model's own plan) divides it: one rank holds 1/tp
    split_copy: bool = False  # the 1/tp slice a module splitting a whole input saves (kept only when tp > 1)
    view_at: int | None = None  # a divided copy that is a view (no storage of its own) at this tp


@dataclass
class StepResult:
    """What one fake training step recorded (sizes in the shape env's symbols)."""

    saved: list[Saved]
    flops: dict[str, sp.Expr]
    guards: list[sp.Expr]
    batch: sp.Expr
    seq: sp.Expr
    specialised: dict[str, int]
    sizes: SizeSymbols | None = None  # the model sizes kept symbolic (None: the config's numbers)


@dataclass
class Layers:
    """The decoder layers: the module list's path, each layer's structure signature, the groups."""

    path: str
    signatures: list[str]
    groups: list[list[int]]  # layer indexes per group, groups in order of first layer

    def group_of(self, index: int) -> int:
        """The group number of layer ``index``."""
        for g, members in enumerate(self.groups):
            if index in members:
                return g
        raise KeyError(index)


def import_torch() -> tuple[Any, Any]:
    """torch and transformers, imported (ImportError when the ``trace`` extra is missing)."""
    import torch
    import transformers

    return torch, transformers


def versions() -> dict[str, str]:
    """The torch and transformers versions that answer a trace (read without importing them).

    Raises ImportError when either is not installed.
    """
    from importlib import metadata

    try:
        return {name: metadata.version(name) for name in ("torch", "transformers")}
    except metadata.PackageNotFoundError as err:
        raise ImportError(str(err), name=err.name) from None


def hf_config(config: Mapping[str, Any]) -> Any:
    """The transformers config object for an HF config dict (``model_type`` required)."""
    _, transformers = import_torch()
    cfg = dict(config)
    model_type = cfg.pop("model_type")
    for key in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "auto_map"):
        cfg.pop(key, None)
    return transformers.AutoConfig.for_model(model_type, **cfg)


def buffer_sizes(model: Any) -> dict[str, int]:
    """The model's buffers (registered tensors that are not parameters), each storage once:
    ``buffer_float_elements`` (floating point, in the model's dtype after ``model.to(dtype)``) and
    ``buffer_other_bytes`` (integer and boolean ones, in bytes)."""
    from torch.multiprocessing.reductions import StorageWeakRef

    seen: set[int] = set()
    floats = other = 0
    for tensor in model.buffers():
        key = StorageWeakRef(tensor.untyped_storage()).cdata
        if key in seen:
            continue
        seen.add(key)
        nbytes = _hint(tensor.untyped_storage().nbytes())
        if tensor.is_floating_point():
            floats += nbytes // tensor.element_size()
        else:
            other += nbytes
    return {"buffer_float_elements": floats, "buffer_other_bytes": other}


def _hint(value: Any) -> int:
    """An int, or a symbolic size's example value (read without guarding, so no size is fixed)."""
    node = getattr(value, "node", None)
    if node is not None and node.hint is not None:
        return int(node.hint)
    return int(value)


def _module_signature(module: Any) -> str:
    """A layer's structure: classes, parameter shapes and scalar attributes (not its index)."""
    parts = []
    for name, sub in module.named_modules():
        attrs = sorted(
            (k, repr(v))
            for k, v in vars(sub).items()
            if not k.startswith("_") and k not in ("layer_idx", "layer_id", "training") and _scalar(v)
        )
        params = [(n, tuple(p.shape), str(p.dtype)) for n, p in sub.named_parameters(recurse=False)]
        parts.append(f"{name}:{type(sub).__name__}:{attrs}:{params}")
    return "\n".join(parts)


def _scalar(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    if isinstance(value, (tuple, list)) and len(value) < 16:
        return all(isinstance(v, (bool, int, float, str, type(None))) for v in value)
    return False


def find_layers(model: Any) -> Layers | None:
    """The decoder layers' module list and its groups of identical structure (None if none)."""
    torch, _ = import_torch()
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and _LAYER_LIST.match(name) and len(mod) > 0:
            if best is None or len(mod) > len(best[1]):
                best = (name, mod)
    if best is None:
        return None
    name, mods = best
    signatures = [_module_signature(m) for m in mods]
    groups: dict[str, list[int]] = {}
    for i, sig in enumerate(signatures):
        groups.setdefault(sig, []).append(i)
    return Layers(name, signatures, list(groups.values()))


class _PassThrough:
    """Stands in for a decoder layer that is not run: returns its hidden states unchanged."""

    def __init__(self, template: Any) -> None:
        self.template = template  # the kind of value a real layer returned

    def __call__(self, hidden_states: Any, *args: Any, **kwargs: Any) -> Any:
        template = self.template[0] if self.template else None
        if isinstance(template, tuple):
            return (hidden_states, *template[1:])
        return hidden_states


def _layer_index(path: str, prefix: str) -> int | None:
    if not path.startswith(prefix + "."):
        return None
    head = path[len(prefix) + 1 :].split(".", 1)[0]
    return int(head) if head.isdigit() else None


class _ModuleStack:
    """Forward pre/post hooks keeping the path of the module running now.

    A module object held under several paths (OpenAI GPT's activation, one instance in every
    layer) is named by the path under the module that calls it, so each layer's work stays in
    its own layer."""

    def __init__(self, model: Any) -> None:
        self.stack = [""]
        self.handles = []
        paths: dict[int, tuple[Any, list[str]]] = {}
        for name, mod in model.named_modules(remove_duplicate=False):
            paths.setdefault(id(mod), (mod, []))[1].append(name)
        for mod, names in paths.values():
            self.handles.append(mod.register_forward_pre_hook(self._pre(names)))
            self.handles.append(mod.register_forward_hook(self._post(names), always_call=True))

    def _pick(self, names: list[str]) -> str:
        if len(names) == 1:
            return names[0]
        caller = self.stack[-1]
        for name in names:
            if name.rpartition(".")[0] == caller:
                return name
        return next((n for n in names if n.startswith(caller + ".")), names[0])

    def _pre(self, names: list[str]) -> Any:
        def hook(mod: Any, args: Any) -> None:
            self.stack.append(self._pick(names))

        return hook

    def _post(self, names: list[str]) -> Any:
        def hook(mod: Any, args: Any, out: Any) -> None:
            if any(n in self.stack for n in names):
                while self.stack and self.stack.pop() not in names:
                    pass

        return hook

    @property
    def current(self) -> str:
        return self.stack[-1]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _iter_tensors(obj: Any, depth: int = 0) -> Iterator[Any]:
    torch, _ = import_torch()
    if depth > 4:
        return
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _iter_tensors(o, depth + 1)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _iter_tensors(o, depth + 1)


@contextlib.contextmanager
def _real_branches() -> Iterator[None]:
    """Take the branch the real run takes where transformers treats fake tensors as tracing.

    ``masking_utils.find_packed_sequence_indices`` reads the position ids to detect packed
    sequences; on real tensors with positions ``0..s-1`` in every row it returns None, but on fake
    tensors it cannot read them and keeps a packed-sequence mask, so SDPA would get an explicit
    ``b x 1 x s x s`` mask the real run never builds. The trace only ever feeds such positions, so
    the real answer (None) is taken. Likewise a padding mask a model builds itself when it is given
    none (``torch.ones``, BART-style decoders) is all ones, which the real run reads to drop the
    SDPA mask; the decision is taken as for no padding mask (the same answer for all ones).
    ``nn.functional.pad`` of the labels in the loss calls the
    size as an int and would fix the sizes; a ``cat`` builds the same storage symbolically.
    torch's shape function for ``_grouped_mm`` (MoE experts) checks the dtypes the CUDA kernel
    takes (bf16 only), while the CPU kernel the real run uses also multiplies fp32 and fp16: the
    shape function's output (contiguous, the out dtype) is used without that check.
    ``torch.polar`` (DeepSeek-V2's rotary tables) fixes the sizes on fake tensors, and so does
    ``torch.complex``; it is run as the complex view of ``stack([r cos t, r sin t], -1)``, which
    gives the same complex values in a storage of the same size. ``Tensor.baddbmm``
    (BLOOM's ALiBi scores) fails in torch's shape function on symbolic sizes; it is run as
    ``beta * input + alpha * bmm(batch1, batch2)``, which saves the same storages (bmm keeps
    ``batch1`` and ``batch2`` as baddbmm does; products with Python numbers keep nothing).
    """
    torch, _ = import_torch()
    import torch._meta_registrations as metas
    import transformers.loss.loss_utils as loss_utils
    import transformers.masking_utils as masking

    original_grouped = getattr(metas, "_meta_grouped_mm_common", None)

    def grouped(
        mat_a: Any, mat_b: Any, scale_a: Any = None, scale_b: Any = None, offs: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        if scale_a is None and scale_b is None and mat_a.dtype == mat_b.dtype and mat_a.dtype != torch.bfloat16:
            return metas._create_grouped_mm_output_tensor(mat_a, mat_b, offs, kwargs.get("out_dtype"))
        assert original_grouped is not None  # only installed where torch has it
        return original_grouped(mat_a, mat_b, scale_a, scale_b, offs, *args, **kwargs)

    original_find = masking.find_packed_sequence_indices
    original_pad = torch.nn.functional.pad

    def pad(input: Any, pad: Any, mode: str = "constant", value: Any = None) -> Any:
        if mode == "constant" and tuple(pad) == (0, 1) and input.dim() == 2 and not input.is_floating_point():
            fill = input.new_full((input.shape[0], 1), 0 if value is None else value)
            return torch.cat([input, fill], dim=1)
        return original_pad(input, pad, mode=mode, value=value)

    original_polar = torch.polar

    def polar(abs: Any, angle: Any) -> Any:
        return torch.view_as_complex(torch.stack([abs * torch.cos(angle), abs * torch.sin(angle)], dim=-1))

    original_baddbmm = torch.Tensor.baddbmm

    def baddbmm(self: Any, batch1: Any, batch2: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
        return beta * self + alpha * torch.bmm(batch1, batch2)

    original_causal, original_bidirectional = masking._ignore_causal_mask_sdpa, masking._ignore_bidirectional_mask_sdpa
    fake_type = torch._subclasses.fake_tensor.FakeTensor

    def all_ones(original: Any) -> Any:
        def decide(padding_mask: Any, *args: Any, **kwargs: Any) -> Any:
            return original(None if isinstance(padding_mask, fake_type) else padding_mask, *args, **kwargs)

        return decide

    masking.find_packed_sequence_indices = lambda position_ids: None
    masking._ignore_causal_mask_sdpa = all_ones(original_causal)
    masking._ignore_bidirectional_mask_sdpa = all_ones(original_bidirectional)
    loss_utils.nn.functional.pad = pad
    torch.polar = polar
    torch.Tensor.baddbmm = baddbmm
    if original_grouped is not None:
        metas._meta_grouped_mm_common = grouped
    try:
        yield
    finally:
        masking.find_packed_sequence_indices = original_find
        masking._ignore_causal_mask_sdpa = original_causal
        masking._ignore_bidirectional_mask_sdpa = original_bidirectional
        loss_utils.nn.functional.pad = original_pad
        torch.polar = original_polar
        torch.Tensor.baddbmm = original_baddbmm
        if original_grouped is not None:
            metas._meta_grouped_mm_common = original_grouped


def build_fake(
    config: Mapping[str, Any],
    dtype: str,
    attention: str,
    recompute: str,
    experts: str | None,
    symbolic_sizes: bool = False,
    numeric_sizes: frozenset[str] = frozenset(),
) -> tuple[Any, Any, Any, SizeSymbols | None]:
    """(model, fake_mode, shape_env, sizes): the model built on fake tensors, in training mode.

    ``symbolic_sizes``: the config's size fields become symbols of the shape env (see
    :mod:`symbolic.trace.sizes`), but those in ``numeric_sizes``, returned as ``sizes`` (else None). Weight initialisation is
    skipped then (it reads sizes as floats, which would fix them); fake weights have no values."""
    torch, transformers = import_torch()
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    cfg = hf_config(config)
    # no duck sizing when sizes are symbols: two fields of equal value stay two symbols
    shape_env = _quiet(ShapeEnv(duck_shape=False) if symbolic_sizes else ShapeEnv())
    fake = FakeTensorMode(shape_env=shape_env, allow_non_fake_inputs=True)
    # the op cache pays off when the same op meets the same shapes again; in a trace almost every
    # op's sizes are new symbolic expressions, and rebuilding a hit's symbolic outputs costs more
    # than running the meta function (about a third of a step's time on a 7B-class model)
    fake.cache_enabled = False
    kw: dict[str, Any] = {}
    if experts is not None:
        kw["experts_implementation"] = experts
    tdtype = getattr(torch, _DTYPES[dtype])
    sizes = None

    def build(skip_initialisation: bool) -> Any:
        with _no_initialisation(skip_initialisation), _conversions_in_place():
            model = transformers.AutoModelForCausalLM.from_config(
                cfg, dtype=tdtype, attn_implementation=attention, **kw
            )
            if skip_initialisation:  # skipping the initialisation skipped the tying that follows it
                model.tie_weights()
        return model

    with fake:
        if symbolic_sizes:
            sizes = symbolise_sizes(cfg, shape_env, numeric_sizes)
        try:
            model = build(symbolic_sizes)
        except Exception as err:
            # an initialisation that reads the values of fake weights (ModernBERT's): fake weights
            # have none, and initialising them changes no size, so the model is built without it
            if symbolic_sizes or not _raised_in(err, "transformers/initialization.py"):
                raise
            model = build(True)
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point() and tensor.dtype != tdtype:  # as model.to(dtype) does
                tensor.data = tensor.data.to(tdtype)
    model.train()
    if recompute == "full":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, fake, shape_env, sizes


def _raised_in(err: BaseException, path: str) -> bool:
    """Whether ``err`` passed through a file whose path ends in ``path``."""
    import traceback

    return any(frame.filename.endswith(path) for frame in traceback.extract_tb(err.__traceback__))


@contextlib.contextmanager
def _conversions_in_place() -> Iterator[None]:
    """Let a model convert its fake parameters while it is built (``norm.to(torch.float32)`` in
    ``__init__``): ``Module._apply`` swaps a fake parameter with its converted tensor, which fails
    when the conversion returns the parameter itself or something else holds it; the parameter then
    takes the converted tensor's data in place, as ``_apply`` does for real tensors."""
    torch, _ = import_torch()
    original = torch.utils.swap_tensors
    fake_type = torch._subclasses.fake_tensor.FakeTensor

    def swap(t1: Any, t2: Any) -> None:
        try:
            original(t1, t2)
        except RuntimeError:
            if not (isinstance(t1, fake_type) and isinstance(t2, fake_type)):
                raise
            if t2 is not t1 and t2.data is not t1.data:
                t1.data = t2.data

    torch.utils.swap_tensors = swap
    try:
        yield
    finally:
        torch.utils.swap_tensors = original


@contextlib.contextmanager
def _no_initialisation(skip: bool) -> Iterator[None]:
    """Build without initialising the weights when ``skip``; else nothing changes. Weight initialisation is
    skipped (transformers' ``no_init_weights``, and the fan-in torch's layers read as a float in
    ``reset_parameters``), and ``LayerNorm(size)`` takes a symbolic size as it takes an int (it
    tests for ``numbers.Integral``, which a SymInt is not)."""
    if not skip:
        yield
        return
    import numbers
    import types

    torch, _ = import_torch()
    import torch.nn.modules.normalization as normalization
    from transformers.initialization import no_init_weights

    original = torch.nn.init._calculate_fan_in_and_fan_out
    original_numbers = normalization.numbers
    torch.nn.init._calculate_fan_in_and_fan_out = lambda tensor: (1, 1)
    normalization.numbers = types.SimpleNamespace(Integral=(numbers.Integral, torch.SymInt))  # type: ignore[assignment]
    try:
        with no_init_weights():
            yield
    finally:
        torch.nn.init._calculate_fan_in_and_fan_out = original
        normalization.numbers = original_numbers


def _quiet(shape_env: Any) -> Any:
    """``shape_env`` without source locations: the shape env walks the Python stack (and imports
    torch.export to know which frames to skip) for every symbol and guard it makes, only to name the
    line in its own messages; the trace reads none of them (a third of a 7B-class step's time)."""
    from torch.fx.experimental import symbolic_shapes

    sloc = getattr(symbolic_shapes, "SLoc", None)
    if sloc is not None and hasattr(shape_env, "_get_stack_summary"):

        def summary(is_debug: bool = False, framework_loc: Any = None) -> tuple[Any, str]:
            return sloc(framework_loc, None), ""

        shape_env._get_stack_summary = summary
    return shape_env


def select_layers(model: Any, layers: Layers, unrolled: bool) -> dict[int, int]:
    """Keep the first two layers of every group (all layers when ``unrolled``); returns kept -> group."""
    module_list = model.get_submodule(layers.path)
    kept: dict[int, int] = {}
    for g, members in enumerate(layers.groups):
        for i in members if unrolled else members[:2]:
            kept[i] = g
    if unrolled:
        return kept
    template: list[Any] = []

    def remember(mod: Any, args: Any, kwargs: Any, out: Any) -> None:
        if not template:
            template.append(out)

    module_list[0].register_forward_hook(remember, with_kwargs=True)
    for i in range(len(module_list)):
        if i not in kept:
            module_list[i] = _Skip(template)
    return kept


def _skip_class() -> type:
    torch, _ = import_torch()
    module: Any = torch.nn.Module

    class Skip(module):
        """A decoder layer that is not run: hidden states pass through unchanged."""

        def __init__(self, template: list[Any]) -> None:
            super().__init__()
            self.passthrough = _PassThrough(template)

        def forward(self, hidden_states: Any, *args: Any, **kwargs: Any) -> Any:
            return self.passthrough(hidden_states)

    return Skip


def _Skip(template: list[Any]) -> Any:  # noqa: N802 - a class built lazily (torch is optional)
    return _skip_class()(template)


def run_step(
    model: Any,
    fake: Any,
    shape_env: Any,
    layers_path: str | None,
    batch: int | None,
    seq_hint: int,
    flops: bool,
    seq_fixed: bool = False,
    autocast: str | None = None,
    tp_plan: Mapping[str, str] | None = None,
    sizes: SizeSymbols | None = None,
) -> StepResult:
    """One training forward (and, with ``flops``, backward) on fake ids of symbolic sizes.

    The sequence length is a symbol whose example value is ``seq_hint`` (the branches the code
    takes at that value are recorded as guards); ``batch`` None: the batch is a symbol too
    (example value ``BATCH_HINT``); an int: the batch is fixed (1 traces the b = 1 branch).
    ``seq_fixed``: the sequence length is fixed at ``seq_hint`` too (a trace at one point).
    ``autocast`` (``bf16``, ``fp16``): the forward, loss included, runs under ``torch.autocast("cpu")``
    to that dtype, as a mixed-precision training step does; the backward runs outside it, as torch
    recommends (it computes in the dtypes the forward chose). What is saved is read after leaving the
    autocast region, which frees its cache of 16-bit weight copies, so only the copies that nodes
    saved stay alive, as in a real step.
    ``tp_plan``: the model's tensor-parallel plan (:func:`symbolic.trace.split.resolved_plan`);
    with it each saved storage says whether tensor parallelism divides it (``Saved.divided``).
    """
    torch, _ = import_torch()
    from torch.fx.experimental.symbolic_shapes import DimDynamic, StatelessSymbolicContext
    from torch.multiprocessing.reductions import StorageWeakRef

    dims = [
        DimDynamic.STATIC if batch is not None else DimDynamic.DYNAMIC,
        DimDynamic.STATIC if seq_fixed else DimDynamic.DYNAMIC,
    ]
    real = torch.zeros((batch or BATCH_HINT, seq_hint), dtype=torch.long)
    n_guards = len(shape_env.guards)
    ids = fake.from_tensor(real, symbolic_context=StatelessSymbolicContext(dynamic_sizes=dims))
    b_expr, s_expr = _expr(ids.shape[0]), _expr(ids.shape[1])

    def key(t: Any) -> int:
        return StorageWeakRef(t.untyped_storage()).cdata

    excluded = {key(p) for p in model.parameters()} | {key(b) for b in model.buffers()} | {key(ids)}
    stack = _ModuleStack(model)
    # key, weakref, tensor info, module, seq nr, (divided, a split input, tp at which a view)
    records: list[tuple[int, Any, Any, str, int, TpSave]] = []
    splits = StorageSplit(model, tp_plan) if tp_plan else None

    def divided(t: Any) -> TpSave:
        if splits is None:
            return (False, False, None)
        return (splits.divided(t), splits.split_input(t), splits.view_at(t))

    closure_refs: list[Any] = []
    prelude = [0]

    def pack(t: Any) -> Any:
        k = key(t)
        if k in excluded:
            return t
        alias = t.detach()
        seq_nr = torch._C._autograd._get_sequence_nr() - 1
        kind = "checkpoint-input" if prelude[0] else ""
        records.append((k, weakref.ref(alias), _info(t), stack.current, -1 if kind else seq_nr, divided(t)))
        return alias

    wrapped = []
    for name, mod in model.named_modules():
        f = mod.__dict__.get("_gradient_checkpointing_func")
        if f is None:
            continue

        def make(f: Any, name: str) -> Any:
            def wrapper(function: Any, *args: Any, **kwargs: Any) -> Any:
                seen = set()
                for obj in (getattr(function, "keywords", {}) or {}, getattr(function, "args", ()), kwargs):
                    for t in _iter_tensors(obj):
                        k = key(t)
                        if id(t) in seen or k in excluded:
                            continue
                        seen.add(id(t))
                        closure_refs.append(t)
                        records.append((k, weakref.ref(t), _info(t), name, -2, divided(t)))
                prelude[0] += 1
                try:
                    return f(function, *args, **kwargs)
                finally:
                    prelude[0] -= 1

            return wrapper

        mod._gradient_checkpointing_func = make(f, name)
        wrapped.append((mod, f))

    flop_counts: dict[str, sp.Expr] = {}
    # every object alive now (modules, the model, torch's and transformers' own) outlives the step:
    # frozen, the collection below walks only what the step made (a third of a second less per step)
    gc.freeze()
    try:
        with fake, _real_branches():
            counter: Any = make_recorder(stack) if flops else contextlib.nullcontext()
            region: Any = (
                torch.autocast("cpu", dtype=getattr(torch, _DTYPES[autocast])) if autocast else contextlib.nullcontext()
            )
            with counter, splits if splits is not None else contextlib.nullcontext():
                with region, torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
                    out = model(ids, labels=ids, use_cache=False)
                    loss = out.loss
                    del out
                closure_refs.clear()
                gc.collect()
                names = _walk_graph(loss.grad_fn)
                saved = _alive(records, names, layers_path)
                if flops:
                    loss.backward()
            if flops:
                flop_counts = dict(counter.counts)
            del loss
    finally:
        gc.unfreeze()
        stack.remove()
        for mod, f in wrapped:
            mod._gradient_checkpointing_func = f
    for p in model.parameters():
        p.grad = None
    guards = [g.expr for g in shape_env.guards[n_guards:]]
    specialised = {}
    for label, expr in (("batch", b_expr), ("seq", s_expr)):
        value = shape_env.replace(expr)
        if expr.free_symbols and not value.free_symbols:
            specialised[label] = int(value)
    return StepResult(saved, flop_counts, guards, b_expr, s_expr, specialised, sizes)


def _info(t: Any) -> tuple[sp.Expr, str, tuple[sp.Expr, ...]]:
    return (_expr(t.untyped_storage().nbytes()), str(t.dtype).replace("torch.", ""), tuple(_expr(d) for d in t.shape))


def _walk_graph(root: Any) -> dict[int, str]:
    names: dict[int, str] = {}
    seen = set()
    stack = [root]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        names[n._sequence_nr()] = n.name()
        stack.extend(f for f, _ in n.next_functions if f is not None)
    return names


def _alive(
    records: list[tuple[int, Any, Any, str, int, TpSave]], names: dict[int, str], layers_path: str | None
) -> list[Saved]:
    """The saved storages still alive, each once (its first saver names it).

    A storage that a module splitting its whole input (``rowwise_split_input``) saved is divided
    when nothing else saved it; when something did, it stays whole and the module's ``1/tp`` slice
    is a storage of its own (``split_copy``), which only a tensor-parallel run makes.
    """
    by_key: dict[int, list[tuple[Any, str, int, TpSave]]] = {}
    for k, ref, info, module, seq_nr, flags in records:
        if ref() is not None:
            by_key.setdefault(k, []).append((info, module, seq_nr, flags))
    out = []
    for saves in by_key.values():
        whole = [r for r in saves if not r[3][1]]
        splitters = [r for r in saves if r[3][1]]
        if whole:
            out.append(_saved(whole, names, layers_path, divided=whole[0][3][0], view_at=whole[0][3][2]))
        if splitters:
            out.append(_saved(splitters, names, layers_path, divided=True, split_copy=bool(whole)))
    return out


def _saved(
    saves: list[tuple[Any, str, int, TpSave]],
    names: dict[int, str],
    layers_path: str | None,
    divided: bool,
    split_copy: bool = False,
    view_at: int | None = None,
) -> Saved:
    """One storage from its saves (the first names it; every saver's layer is counted)."""
    (nbytes, dtype, shape), module, seq_nr, _ = saves[0]
    if seq_nr == -2:
        grad_fn = "checkpoint-closure"
    elif seq_nr == -1:
        grad_fn = "checkpoint-input"
    else:
        grad_fn = names.get(seq_nr, "saved")
    entry = Saved(nbytes, module, grad_fn, dtype, shape, divided=divided, split_copy=split_copy, view_at=view_at)
    for _, saver, _, _ in saves:
        li = _layer_index(saver, layers_path) if layers_path else None
        if li is not None:
            entry.layers.add(li)
    return entry
