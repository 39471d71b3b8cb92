"""Ground-truth activation-memory measurement for Hugging Face causal LMs.

Definition implemented here ("activations"): the sum of ``untyped_storage().nbytes()``
over the *unique* storages that autograd keeps alive for backward after one training
forward pass::

    model.train(); out = model(input_ids, labels=input_ids, use_cache=False)

(the loss is computed inside the model), excluding parameters, buffers and the
``input_ids``/``labels`` tensor.  Storages shared by several saved tensors count once.

How it is measured
------------------
* ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor an autograd node saves
  (built-in nodes and custom ``autograd.Function``s).  The pack hook returns a detached
  alias (so no reference cycle is created) and keeps a weak reference to it; after the
  forward only the ones still alive count (a node that is not reachable from the loss is
  freed together with its saved tensors).
* The saving node is identified through the thread-local autograd sequence number: while a
  node's inputs/outputs are packed, ``torch._C._autograd._get_sequence_nr() - 1`` is that
  node's ``_sequence_nr()``; the graph is walked afterwards (without unpacking anything) to
  map sequence numbers to node names.
* With non-reentrant activation checkpointing, everything saved *inside* the checkpointed
  region is packed by the checkpoint's own (innermost) hooks into empty ``_Holder``s and
  our hooks never see it.  What stays alive is (a) the positional tensor inputs of the
  checkpoint, saved by ``_NoopSaveInputs`` *outside* the region (our hooks see them) and
  (b) the tensors captured in the ``functools.partial`` closure that the layer passes to
  ``checkpoint`` (kwargs such as the attention mask, ``position_embeddings``=(cos, sin),
  ``position_ids``...).  (b) is held by the checkpoint frame (referenced from the graph)
  but is not a saved tensor, so the harness wraps each layer's
  ``_gradient_checkpointing_func`` and records those tensors too ("grad_fn":
  ``"checkpoint-closure"``).  :func:`measure_held` cross-checks all of this by tracking
  every storage created during the forward and counting those still alive afterwards.

torch / transformers are imported lazily so that ``symbolic`` imports without them.
"""

from __future__ import annotations

import re
from typing import Any

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)")

_DTYPES = {
    "fp32": "float32",
    "float32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
}


def _torch_dtype(dtype: str):
    import torch

    if not isinstance(dtype, str):
        return dtype
    return getattr(torch, _DTYPES[dtype])


def layer_index(module_path: str | None) -> int | None:
    """Decoder-layer index encoded in a module path (``model.layers.3.mlp`` -> 3)."""
    if not module_path:
        return None
    m = _LAYER_RE.search(module_path)
    return int(m.group(1)) if m else None


def build_model(
    config: dict,
    dtype: str = "fp32",
    attn_implementation: str = "eager",
    seed: int = 0,
    experts_implementation: str | None = None,
):
    """A small randomly initialised CPU ``*ForCausalLM`` built from an HF config dict.

    ``config`` must contain ``model_type``; the rest is passed to
    ``transformers.AutoConfig.for_model``.  ``experts_implementation`` (MoE only) is
    passed through when given (transformers' default is ``"grouped_mm"``).
    """
    import torch
    import transformers

    cfg = dict(config)
    model_type = cfg.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    tdtype = _torch_dtype(dtype)
    kw = {}
    if experts_implementation is not None:
        kw["experts_implementation"] = experts_implementation
    model = transformers.AutoModelForCausalLM.from_config(
        hf_config, dtype=tdtype, attn_implementation=attn_implementation, **kw
    )
    model.to(tdtype)
    return model


def _storage_key(t) -> tuple[int, int] | None:
    s = t.untyped_storage()
    n = s.nbytes()
    if n == 0:
        return None
    return (s.data_ptr(), n)


def _excluded_ptrs(model, extra=()) -> set[int]:
    ptrs = set()
    for p in model.parameters():
        ptrs.add(p.untyped_storage().data_ptr())
    for b in model.buffers():
        ptrs.add(b.untyped_storage().data_ptr())
    for t in extra:
        ptrs.add(t.untyped_storage().data_ptr())
    return ptrs


class _ModuleStack:
    """Forward pre/post hooks on every submodule maintaining the active-module stack."""

    def __init__(self, model):
        self.stack = [""]
        self.handles = []
        self.layer_entries: list[tuple[int, str]] = []
        self.clock = [0]
        for name, mod in model.named_modules():
            if name == "":
                name = "<root>"
            self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self.handles.append(mod.register_forward_hook(self._post(name), always_call=True))

    def _pre(self, name):
        def hook(mod, args):
            self.stack.append(name)

        return hook

    def _post(self, name):
        def hook(mod, args, out):
            if self.stack and self.stack[-1] == name:
                self.stack.pop()
            elif name in self.stack:  # defensive: unwind to it
                while self.stack and self.stack.pop() != name:
                    pass

        return hook

    @property
    def current(self) -> str:
        return self.stack[-1]

    def remove(self):
        for h in self.handles:
            h.remove()


def _walk_graph(roots) -> dict[int, str]:
    """sequence_nr -> node name for every node reachable from ``roots`` (no unpacking)."""
    names: dict[int, str] = {}
    seen = set()
    stack = [r for r in roots if r is not None]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        try:
            names[n._sequence_nr()] = n.name()
        except Exception:  # pragma: no cover
            pass
        for f, _ in n.next_functions:
            if f is not None:
                stack.append(f)
    return names


def _iter_tensors(obj, depth=0):
    import torch

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


def _make_inputs(config: dict, batch: int, seq: int, seed: int):
    import torch

    vocab = int(config.get("vocab_size", 128))
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, vocab, (batch, seq), generator=g)


def _prepare(config, dtype, attn_implementation, recompute, seed, experts_implementation=None):
    model = build_model(
        config,
        dtype=dtype,
        attn_implementation=attn_implementation,
        seed=seed,
        experts_implementation=experts_implementation,
    )
    model.train()
    if recompute == "full":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif recompute not in ("none", None):
        raise ValueError(f"unknown recompute={recompute!r} (use 'none' or 'full')")
    return model


def _versions(model=None):
    import torch
    import transformers

    v = {"torch": torch.__version__, "transformers": transformers.__version__}
    if model is not None:
        cfg = model.config
        v["attn_implementation"] = getattr(cfg, "_attn_implementation", None)
        v["experts_implementation"] = getattr(cfg, "_experts_implementation", None)
    return v


def _summarise(tensors: list[dict], n_layers: int) -> dict:
    per_layer = [0] * n_layers
    outside = 0
    for t in tensors:
        li = t["layer"]
        if li is not None and 0 <= li < n_layers:
            per_layer[li] += t["bytes"]
        else:
            outside += t["bytes"]
    return {"total": sum(per_layer) + outside, "per_layer": per_layer, "outside_layers": outside}


def _num_layers(model) -> int:
    cfg = model.config
    for k in ("num_hidden_layers", "n_layer", "num_layers"):
        v = getattr(cfg, k, None)
        if isinstance(v, int):
            return v
    return 0


class _SavedRecorder:
    """saved_tensors_hooks pack/unpack pair recording every saved tensor (weakly)."""

    def __init__(self, excluded: set[int], module_fn=lambda: ""):
        self.excluded = excluded
        self.module_fn = module_fn
        self.records: list[dict] = []
        # >0 while inside a checkpoint call: our (outer) hooks then only see the checkpoint's
        # own _NoopSaveInputs.save_for_backward of the positional inputs; the region itself
        # is packed by the checkpoint's innermost hooks.
        self.in_ckpt_prelude = [0]

    def pack(self, t):
        import weakref

        import torch

        key = _storage_key(t)
        if key is None or key[0] in self.excluded:
            return t
        alias = t.detach()  # no reference cycle through grad_fn
        self.records.append(
            {
                "key": key,
                "ref": weakref.ref(alias),
                "shape": tuple(t.shape),
                "dtype": str(t.dtype).replace("torch.", ""),
                "module": self.module_fn(),
                "seq": torch._C._autograd._get_sequence_nr() - 1,
                "kind": "checkpoint-input" if self.in_ckpt_prelude[0] else "saved",
            }
        )
        return alias

    @staticmethod
    def unpack(x):
        return x

    def alive_keys(self) -> set:
        return {r["key"] for r in self.records if r["ref"]() is not None}


def measure_callable(fn, exclude=()) -> tuple[int, Any]:
    """Bytes of unique storages saved for backward by ``fn()`` and still alive after it.

    ``exclude``: tensors (e.g. parameters) whose storages are not counted.  Returns
    ``(bytes, fn_result)``; keep the result alive as long as the graph is needed.
    """
    import gc

    import torch

    rec = _SavedRecorder({t.untyped_storage().data_ptr() for t in exclude})
    with torch.autograd.graph.saved_tensors_hooks(rec.pack, rec.unpack):
        out = fn()
    gc.collect()
    return sum(n for _, n in rec.alive_keys()), out


def measure_activations(
    config: dict,
    batch: int,
    seq: int,
    dtype: str = "fp32",
    attn_implementation: str = "eager",
    recompute: str = "none",
    seed: int = 0,
    model=None,
    experts_implementation: str | None = None,
    autocast: str | None = None,
) -> dict[str, Any]:
    """Bytes of the unique storages autograd keeps for backward after one training forward.

    Returns ``{"total", "per_layer", "outside_layers", "tensors", "versions"}``; ``tensors``
    has one entry per unique storage (``bytes``, ``shape``, ``dtype``, ``module``,
    ``grad_fn``, ``grad_fns``, ``layer``, ``layers``, ``n_saves``), in first-saved order.
    A pre-built ``model`` may be passed (then config/dtype/attn/recompute are only used
    for the inputs and the layer count). ``autocast`` (``"bf16"``/``"fp16"``): the forward, loss
    included, runs under ``torch.autocast("cpu")`` to that dtype (weights in ``dtype``, fp32 for
    the amp recipes); the saved storages are read after leaving it (its weight-copy cache freed).
    """
    import contextlib
    import gc
    import weakref

    import torch

    if model is None:
        model = _prepare(config, dtype, attn_implementation, recompute, seed, experts_implementation)
    input_ids = _make_inputs(config, batch, seq, seed)
    excluded = _excluded_ptrs(model, [input_ids])
    mstack = _ModuleStack(model)

    rec = _SavedRecorder(excluded, lambda: mstack.current)
    records = rec.records
    in_ckpt_prelude = rec.in_ckpt_prelude
    pack, unpack = rec.pack, rec.unpack

    # keep checkpoint closures' tensors (kwargs captured by functools.partial) visible
    closure_refs = []
    wrapped = []
    for name, mod in model.named_modules():
        f = mod.__dict__.get("_gradient_checkpointing_func")
        if f is None:
            continue

        def make(f, name):
            def wrapper(function, *args, **kwargs):
                seen = set()
                for obj in (getattr(function, "keywords", {}) or {}, getattr(function, "args", ()), kwargs):
                    for t in _iter_tensors(obj):
                        if id(t) in seen:
                            continue
                        seen.add(id(t))
                        key = _storage_key(t)
                        if key is None or key[0] in excluded:
                            continue
                        # strong ref is held by the closure itself; weakref to the tensor
                        closure_refs.append(t)
                        records.append(
                            {
                                "key": key,
                                "ref": weakref.ref(t),
                                "shape": tuple(t.shape),
                                "dtype": str(t.dtype).replace("torch.", ""),
                                "module": name,
                                "seq": None,
                                "kind": "checkpoint-closure",
                            }
                        )
                in_ckpt_prelude[0] += 1
                try:
                    return f(function, *args, **kwargs)
                finally:
                    in_ckpt_prelude[0] -= 1

            return wrapper

        mod._gradient_checkpointing_func = make(f, name)
        wrapped.append((mod, f))

    try:
        region = torch.autocast("cpu", dtype=_torch_dtype(autocast)) if autocast else contextlib.nullcontext()
        with region, torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            out = model(input_ids, labels=input_ids, use_cache=False)
            loss = out.loss
            del out
        closure_refs.clear()  # drop our strong refs; closures keep theirs
        gc.collect()
        seq_names = _walk_graph([loss.grad_fn])
    finally:
        mstack.remove()
        for mod, f in wrapped:
            mod._gradient_checkpointing_func = f

    # aggregate alive records per unique storage
    by_key: dict[tuple, dict] = {}
    for r in records:
        if r["ref"]() is None:
            continue
        if r["kind"] == "checkpoint-closure":
            gname = "checkpoint-closure"
        elif r["kind"] == "checkpoint-input":
            gname = "_NoopSaveInputsBackward(checkpoint-input)"
        else:
            gname = seq_names.get(r["seq"], "?")
        li = layer_index(r["module"])
        e = by_key.get(r["key"])
        if e is None:
            by_key[r["key"]] = {
                "bytes": r["key"][1],
                "shape": list(r["shape"]),
                "dtype": r["dtype"],
                "module": r["module"],
                "grad_fn": gname,
                "grad_fns": [gname],
                "layer": li,
                "layers": [li] if li is not None else [],
                "n_saves": 1,
                "views": [list(r["shape"])],
            }
        else:
            e["n_saves"] += 1
            if gname not in e["grad_fns"]:
                e["grad_fns"].append(gname)
            if li is not None and li not in e["layers"]:
                e["layers"].append(li)
            if list(r["shape"]) not in e["views"]:
                e["views"].append(list(r["shape"]))
    tensors = list(by_key.values())
    res = _summarise(tensors, _num_layers(model))
    res["tensors"] = tensors
    res["versions"] = _versions(model)
    del loss
    return res


def measure_held(
    config: dict,
    batch: int,
    seq: int,
    dtype: str = "fp32",
    attn_implementation: str = "eager",
    recompute: str = "none",
    seed: int = 0,
    model=None,
    experts_implementation: str | None = None,
) -> dict[str, Any]:
    """Independent cross-check: storages created during the forward that are still alive.

    A ``TorchDispatchMode`` records a weak reference to the storage of every op output;
    after the forward, ``out`` is dropped (only ``loss`` is kept, which keeps the autograd
    graph alive) and the still-alive storages (excluding params, buffers, input_ids and the
    loss itself) are summed.  No saved-tensor hooks are installed, so this measures what the
    graph really holds, including tensors that checkpoint frames keep in closures.
    Anything else still alive (e.g. a module-level cache) would also show up here.
    """
    import gc

    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode

    if model is None:
        model = _prepare(config, dtype, attn_implementation, recompute, seed, experts_implementation)
    input_ids = _make_inputs(config, batch, seq, seed)
    excluded = _excluded_ptrs(model, [input_ids])
    mstack = _ModuleStack(model)
    seen: dict[int, dict] = {}

    class Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in _iter_tensors(out):
                s = t.untyped_storage()
                if s.nbytes() == 0:
                    continue
                w = StorageWeakRef(s)
                if w.cdata not in seen:
                    seen[w.cdata] = {
                        "ref": w,
                        "ptr": s.data_ptr(),
                        "bytes": s.nbytes(),
                        "shape": list(t.shape),
                        "dtype": str(t.dtype).replace("torch.", ""),
                        "module": mstack.current,
                        "op": str(func),
                    }
            return out

    try:
        with Track():
            out = model(input_ids, labels=input_ids, use_cache=False)
        loss = out.loss
        loss_ptr = loss.untyped_storage().data_ptr()
        del out
        gc.collect()
    finally:
        mstack.remove()
    tensors = []
    for e in seen.values():
        if e["ref"].expired() or e["ptr"] in excluded or e["ptr"] == loss_ptr:
            continue
        tensors.append(
            {
                "bytes": e["bytes"],
                "shape": e["shape"],
                "dtype": e["dtype"],
                "module": e["module"],
                "grad_fn": e["op"],
                "layer": layer_index(e["module"]),
            }
        )
    res = _summarise(tensors, _num_layers(model))
    res["tensors"] = tensors
    res["versions"] = _versions(model)
    del loss
    return res
