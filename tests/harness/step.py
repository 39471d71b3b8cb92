"""Ground truth for a whole training step: the CPU allocator's bytes, event by event.

One run: a small randomly initialised ``*ForCausalLM`` built from an HF config dict (no hub),
``torch.optim.AdamW`` with the chosen implementation, and ``steps`` training steps of::

    with autocast (amp recipes only):
        loss = model(ids, labels=ids).loss      # forward and loss
    loss.backward()                             # backward
    optimizer.step()                            # optimizer step
    optimizer.zero_grad(set_to_none=...)        # zero_grad

The last step is measured with ``torch.profiler`` (``profile_memory=True``): every allocation
and free of the CPU allocator is an event carrying the running total of bytes allocated since
profiling started. Bytes alive at the start of the measured step (weights, buffers, optimizer
state, gradients when they are zeroed instead of freed, the ids) are summed over their unique
storages (:func:`step_state_bytes`; :func:`live_bytes` cross-checks it over every tensor the garbage
collector knows in a fresh process); the step's absolute peak is that baseline plus the largest
running total. Phases are ``record_function`` ranges; per-layer marks come from
module hooks (forward) and tensor hooks on each layer's input gradient (backward).

torch / transformers are imported lazily so that ``symbolic`` imports without them.
"""

from __future__ import annotations

import gc
from typing import Any

from .measure import _make_inputs, _num_layers, build_model, layer_index

__all__ = ["RECIPES", "IMPLEMENTATIONS", "measure_step", "live_bytes", "step_state_bytes"]

# recipe -> (parameter dtype, autocast dtype or None)
RECIPES = {
    "fp32": ("fp32", None),
    "bf16": ("bf16", None),
    "fp16": ("fp16", None),
    "amp-bf16": ("fp32", "bf16"),
    "amp-fp16": ("fp32", "fp16"),
}
IMPLEMENTATIONS = ("for-loop", "foreach", "fused")
PHASES = ("forward", "backward", "optimizer", "zero_grad")


def live_bytes() -> int:
    """Bytes of the unique CPU storages of every tensor the garbage collector tracks (bytes)."""
    import torch

    seen: dict[int, int] = {}
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and obj.device.type == "cpu" and not obj.is_meta:
                st = obj.untyped_storage()
                if st.nbytes():
                    seen[st.data_ptr()] = st.nbytes()
        except Exception:  # noqa: BLE001  (tensor subclasses without storage)
            continue
    return sum(seen.values())


def step_state_bytes(model, opt, *tensors) -> int:
    """Bytes of the unique storages alive between steps (bytes): parameters, buffers, gradients,
    optimizer state and ``tensors`` (the ids). Counting only these keeps tensors other code left in the
    process (earlier tests, earlier examples) out of the baseline."""
    import torch

    seen: dict[int, int] = {}

    def add(t) -> None:
        if isinstance(t, torch.Tensor) and t.device.type == "cpu":
            st = t.untyped_storage()
            if st.nbytes():
                seen[st.data_ptr()] = st.nbytes()

    for p in model.parameters():
        add(p)
        add(p.grad)
    for b in model.buffers():
        add(b)
    for state in opt.state.values():
        for v in state.values():
            add(v)
    for t in tensors:
        add(t)
    return sum(seen.values())


def _optimizer(model, impl: str, lr: float = 1e-3, weight_decay: float = 0.01):
    import torch

    kw: dict[str, Any] = {}
    if impl == "foreach":
        kw["foreach"] = True
    elif impl == "fused":
        kw["fused"] = True
    elif impl == "for-loop":
        kw["foreach"] = False
    else:
        raise ValueError(f"unknown impl {impl!r}; allowed: {', '.join(IMPLEMENTATIONS)}")
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, **kw)


def _layers(model):
    """The decoder layers, in order (the ModuleList whose children carry a layer index)."""
    best = []
    for name, mod in model.named_modules():
        idx = layer_index(name)
        if idx is not None and name.split(".")[-1] == str(idx):
            best.append((idx, mod))
    return [m for _, m in sorted(best, key=lambda x: x[0])]


def measure_step(
    config: dict,
    batch: int,
    seq: int,
    recipe: str = "fp32",
    impl: str = "for-loop",
    *,
    attention: str = "sdpa",
    steps: int = 3,
    set_to_none: bool = True,
    accumulation: int = 1,
    marks: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure the CPU allocator over the last of ``steps`` training steps (bytes).

    Returns ``{"peak", "baseline", "phase_peak", "phase_end", "peak_phase", "marks", ...}``:
    ``peak`` the absolute largest bytes alive during the step; ``baseline`` bytes alive at its
    start; ``phase_peak``/``phase_end`` per phase (forward, backward, optimizer, zero_grad);
    ``marks`` a list of ``(label, bytes)`` after each layer's forward and backward.
    ``accumulation`` micro-batches run forward and backward before one optimizer step.
    """
    import torch
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile, record_function

    param_dtype, amp = RECIPES[recipe]
    model = build_model(config, dtype=param_dtype, attn_implementation=attention, seed=seed)
    model.train()
    opt = _optimizer(model, impl)
    ids = _make_inputs(config, batch, seq, seed)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp) if amp else None
    layers = _layers(model)

    handles = []
    if marks:
        for i, layer in enumerate(layers):

            def fwd(mod, args, out, i=i):
                with record_function(f"mark:forward:{i}"):
                    pass
                x = args[0] if args else None
                if isinstance(x, torch.Tensor) and x.requires_grad:
                    x.register_hook(lambda g, i=i: _mark(f"mark:backward:{i}"))

            handles.append(layer.register_forward_hook(fwd))

    def _mark(label):
        with record_function(label):
            pass

    def one_step():
        for _ in range(accumulation):
            with record_function("phase:forward"):
                if amp_dtype is not None:
                    with torch.autocast("cpu", dtype=amp_dtype):
                        loss = model(ids, labels=ids, use_cache=False).loss
                else:
                    loss = model(ids, labels=ids, use_cache=False).loss
                if accumulation > 1:
                    loss = loss / accumulation
            with record_function("phase:backward"):
                loss.backward()
            del loss
        with record_function("phase:optimizer"):
            opt.step()
        with record_function("phase:zero_grad"):
            opt.zero_grad(set_to_none=set_to_none)

    for _ in range(steps - 1):
        one_step()
    gc.collect()
    baseline = step_state_bytes(model, opt, ids)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        one_step()
    for h in handles:
        h.remove()

    allocs: list[tuple[int, int, int]] = []  # (time, order, running total)
    ranges: list[tuple[int, int, str]] = []

    def walk(node):
        if node.tag == _EventType.Allocation:
            e = node.extra_fields
            if str(e.device).startswith("cpu"):
                allocs.append((node.start_time_ns, len(allocs), e.total_allocated))
        elif node.name.startswith(("phase:", "mark:")):
            ranges.append((node.start_time_ns, node.end_time_ns, node.name))
        for c in node.children:
            walk(c)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root)
    allocs.sort()
    ranges.sort()
    phases = [r for r in ranges if r[2].startswith("phase:")]

    def total_before(t: int) -> int:
        last = 0
        for time, _, tot in allocs:
            if time > t:
                break
            last = tot
        return last

    phase_peak: dict[str, int] = {}
    phase_end: dict[str, int] = {}
    for start, end, name in phases:
        key = name.split(":", 1)[1]
        inside = [tot for time, _, tot in allocs if start <= time <= end]
        top = max(inside + [total_before(start)])
        phase_peak[key] = max(phase_peak.get(key, 0), baseline + top)
        phase_end[key] = baseline + total_before(end)
    peak = max(phase_peak.values())
    peak_phase = max(phase_peak, key=phase_peak.get)
    mark_list = [
        (name.split(":", 1)[1], baseline + total_before(end)) for _, end, name in ranges if name.startswith("mark:")
    ]
    # the largest bytes alive between consecutive marks/phase boundaries, labelled by the segment's end
    cuts = sorted([(end, name.split(":", 1)[1]) for _, end, name in ranges])
    segments, prev = [], (phases[0][0] if phases else 0)
    for end, label in cuts:
        inside = [tot for time, _, tot in allocs if prev <= time <= end]
        segments.append((label, baseline + max(inside + [total_before(prev)])))
        prev = end
    return {
        "peak": peak,
        "baseline": baseline,
        "peak_phase": peak_phase,
        "phase_peak": phase_peak,
        "phase_end": phase_end,
        "marks": mark_list,
        "segments": segments,
        "n_layers": _num_layers(model),
        "params": sum(p.numel() for p in model.parameters()),
        "settings": {
            "batch": batch,
            "seq": seq,
            "recipe": recipe,
            "impl": impl,
            "attention": attention,
            "steps": steps,
            "set_to_none": set_to_none,
            "accumulation": accumulation,
            "threads": torch.get_num_threads(),
        },
    }
