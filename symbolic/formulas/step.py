"""The timeline of one training step: bytes alive at each point, as closed-form SymPy expressions.

A step under PyTorch (``loss = model(ids, labels=ids).loss; loss.backward(); opt.step();
opt.zero_grad()``) allocates and frees in a fixed order, and the peak is the largest of these
points (each a sum of named byte totals; ``i`` is the layer index, kept a symbol):

======================  =====================================================================
point                   bytes alive
======================  =====================================================================
start                   weights + master + optimizer state + step counters + buffers + ids (+ gradients
                        when they are zeroed instead of freed, or accumulated over micro-batches)
forward, layer i        start + activations before the layers + (i + 1) layers' activations
loss (forward)          start + activations - the loss's saved tensors + logits + log-softmax
loss (backward)         start + activations + two fp32 logits-sized gradients (nll_loss's and
                        log_softmax's) - the loss's saved labels and weight (freed by then)
final norm (backward)   RMSNorm models: start + the layers' activations + the head's gradients +
                        the norm's fp32 input + five fp32 copies' worth (pow's backward)
backward, layer i       start + activations before layer i + i layers' activations + the head's
                        gradients + (L - 1 - i) layers' gradients + the incoming gradient +
                        the layer's backward working set (the MLP's, see below)
embedding (backward)    start + all gradients + the incoming gradient (a learned position table's
                        batch sum; tied, the token gradient added out of place)
optimizer               start + all gradients + the implementation's temporaries
======================  =====================================================================

Each per-layer point is linear in ``i``, so its maximum over ``0 <= i < L`` is the larger of its
two ends (:func:`max_over_layers`): the peak stays a closed form while layers stay a symbol.

Measured on CPU (``tests/harness/step.py``, torch 2.13, transformers 5.24) for llama, mistral,
qwen2, gemma, gpt2, gpt_neox and mixtral in fp32, bf16, amp-bf16 and amp-fp16: every point to a
few dozen bytes, the layer's backward working set (:func:`_layer_working_set`, read off autograd's
order) included, except where 16-bit matmuls' oneDNN packing buffers (not modelled) hold the peak.
The optimizer temporaries (:data:`IMPLEMENTATIONS`) follow ``torch.optim.AdamW``'s code:
the for-loop kernel builds ``sqrt(v)`` and ``sqrt(v)/c`` for one tensor at a time while the
previous tensor's denominator is still held, foreach builds ``sqrt(v)`` for every tensor at once,
fused builds none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import sympy as sp

from .. import symbols as S
from ..arch import AttentionKind, LayerGroup, Model, NormKind, Positions
from ..errors import SymbolicError
from ..families import ACTIVATION_EXTRA_SAVED, rules_for
from ..numeric.values import rational
from ..terms import Breakdown, Term

__all__ = [
    "Implementation",
    "IMPLEMENTATIONS",
    "default_implementation",
    "get_implementation",
    "ZERO_GRAD",
    "Point",
    "Timeline",
    "step_timeline",
    "max_over_layers",
    "buffer_bytes",
    "LAYER",
]

LAYER = sp.Symbol("i", integer=True, nonnegative=True)
FP32, INT64 = 4, 8


@dataclass(frozen=True)
class Implementation:
    """How an optimizer's update runs, and the temporaries it allocates (state-sized tensors).

    ``per_tensor``: state-sized temporaries alive at once for one tensor, with ``previous`` of the
    tensor before it still held (the for-loop kernel); ``whole``: temporaries the size of all the
    state at once (foreach).
    """

    name: str
    title: str
    per_tensor: int
    whole: int
    source: str
    previous: int = 0


IMPLEMENTATIONS: dict[str, Implementation] = {
    i.name: i
    for i in (
        Implementation(
            "for-loop",
            "one tensor at a time: sqrt(v) and sqrt(v)/c of a tensor, with the previous tensor's denominator",
            2,
            0,
            "torch.optim.adamw._single_tensor_adamw: denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)",
            previous=1,
        ),
        Implementation(
            "foreach",
            "all tensors at once: sqrt(v) for every tensor (one state-sized copy of the model)",
            0,
            1,
            "torch.optim.adamw._multi_tensor_adamw: exp_avg_sq_sqrt = torch._foreach_sqrt(device_exp_avg_sqs)",
        ),
        Implementation("fused", "one fused kernel: no temporaries", 0, 0, "torch._fused_adamw_"),
    )
}
# torch.optim's default when neither foreach nor fused is given: foreach on CUDA, the for-loop on CPU
DEFAULT_IMPLEMENTATION = {"cuda": "foreach", "cpu": "for-loop"}
ZERO_GRAD = ("set-to-none", "zero")
# optimizers whose temporaries the implementations describe (Adam's denominator)
ADAM_LIKE = ("adamw", "adam")


def default_implementation(device: str) -> str:
    """torch.optim's default implementation on ``device`` (``cuda``: foreach, ``cpu``: for-loop).

    >>> default_implementation("cpu"), default_implementation("cuda")
    ('for-loop', 'foreach')
    """
    return DEFAULT_IMPLEMENTATION[device]


def get_implementation(name: str | None, device: str = "cuda") -> Implementation:
    """The implementation called ``name`` (``None``: torch's default on ``device``); a clear error otherwise."""
    name = name or default_implementation(device)
    try:
        return IMPLEMENTATIONS[name]
    except KeyError:
        raise SymbolicError("--optimizer-impl", f"unknown {name!r}; allowed: {', '.join(IMPLEMENTATIONS)}") from None


def buffer_bytes(model: Model, weight_bytes: sp.Expr | int = FP32) -> sp.Expr:
    """Bytes of the model's buffers (tensors a module registers that are not parameters), alive
    through the whole step; floating-point ones in the weights' dtype (``weight_bytes`` per element:
    ``model.to(dtype)`` casts them), boolean ones at one byte.

    - rotary positions computed once per forward (transformers' ``*RotaryEmbedding``): ``inv_freq``
      and ``original_inv_freq``, ``d_rot / 2`` elements each;
    - GPT-J's sin/cos table ``embed_positions``: ``n_positions * d_rot`` elements;
    - GPTBigCode's causal mask ``bias``: a ``n_ctx * n_ctx`` boolean table.

    >>> from symbolic.registry import load_model
    >>> buffer_bytes(load_model("llama2-7b"))  # inv_freq and original_inv_freq: d_head / 2 fp32 each
    4*d_head
    >>> buffer_bytes(load_model("starcoder"))  # the causal mask: n_ctx * n_ctx booleans
    n_ctx**2
    """
    arch = model.arch
    try:
        rules = rules_for(arch.family)
    except SymbolicError:
        rules = None
    rotary = "shared" if rules is None else rules.rotary
    out = sp.Integer(0)
    if arch.positions is Positions.ROTARY and rotary != "none":
        width = (
            S.d_rope if arch.attention.kind is AttentionKind.MLA else S.d_head * rational(model.rotary_table_fraction)
        )
        if rotary == "per_layer":  # GPT-J: one sin/cos table over every position
            positions = model.config.get("n_positions") or model.config.get("max_position_embeddings") or 0
            out += int(positions) * width * weight_bytes
        else:
            out += 2 * (width / 2) * weight_bytes
    if rules is not None and rules.causal_mask_buffer:  # a causal mask over the whole position table
        out += S.symbol("n_ctx") ** 2
    return out


@dataclass(frozen=True)
class Point:
    """One point of the timeline: ``phase``, ``label``, bytes alive ``expr`` (may contain ``i``).

    ``layers``: the symbol counting the layers the point runs over (``expr`` then holds
    :data:`LAYER`, 0-based within that group), else ``None``.
    """

    phase: str
    label: str
    expr: sp.Expr
    layers: sp.Expr | None = None

    def peak(self) -> sp.Expr:
        """The largest value of this point over its layers (bytes), a closed form."""
        return sp.Max(*self.candidates())

    def candidates(self) -> tuple[sp.Expr, ...]:
        """The expressions whose largest value is :meth:`peak` (bytes): the point itself, or its
        values at a layer group's two ends (:func:`max_over_layers`), for a caller that evaluates
        them at numbers and takes the largest without building a symbolic Max."""
        return layer_ends(self.expr, self.layers) if self.layers is not None else (self.expr,)


def max_over_layers(expr: sp.Expr, count: sp.Expr) -> sp.Expr:
    """``max(expr)`` over ``i = 0 .. count - 1`` for ``expr`` linear in ``i`` (bytes): the larger end.

    >>> import sympy as sp
    >>> a, g, L = sp.symbols("a g L", positive=True)
    >>> max_over_layers(100 + (LAYER + 1) * a + (L - 1 - LAYER) * g, L)
    Max(L*a + 100, a + g*(L - 1) + 100)
    """
    return sp.Max(*layer_ends(expr, count))


def layer_ends(expr: sp.Expr, count: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """``expr`` (bytes, linear in the layer index ``i``) at the first and the last of ``count`` layers,
    the two values the largest over the layers is one of (bytes)."""
    poly = sp.Poly(sp.expand(expr), LAYER)
    if poly.degree() > 1:
        raise SymbolicError("timeline", f"per-layer point is not linear in the layer index: {expr}")
    return expr.subs(LAYER, 0), expr.subs(LAYER, count - 1)


@dataclass(frozen=True)
class Timeline:
    """The points of one step in order, with named byte totals they are made of (bytes)."""

    points: tuple[Point, ...]
    parts: Mapping[str, sp.Expr]

    @property
    def peak_expr(self) -> sp.Expr:
        """The step's peak: the maximum over every point (bytes)."""
        return sp.Max(*(p.peak() for p in self.points))


def _loss(term: Term) -> bool:
    """Whether the loss saved ``term`` (``loss.*`` paths; a traced term is tagged ``loss``)."""
    return term.path.startswith("loss.") or "loss" in term.tags


def _log_probs(term: Term) -> bool:
    """Whether ``term`` is the loss's log-softmax output (tagged ``log_probs`` when traced)."""
    return term.path == "loss.log_probs" or "log_probs" in term.tags


def _group_of(term: Term, groups: Sequence[LayerGroup]) -> LayerGroup | None:
    for g in groups:
        if g.count in term.count.free_symbols or term.count == g.count:
            return g
    return None


def step_timeline(
    model: Model,
    states: Breakdown,
    activations: Breakdown,
    *,
    dtype_bytes: int,
    grad_bytes: sp.Expr,
    state_bytes: sp.Expr,
    optimizer: str,
    implementation: Implementation,
    zero_grad: str = "set-to-none",
    accumulation: int = 1,
    step_counters: bool = True,
    layer_transient: sp.Expr | int = 0,
    autocast: bool = False,
    weight_bytes: sp.Expr | int = FP32,
    eager: bool = False,
    buffers: sp.Expr | None = None,
) -> Timeline:
    """The points of one training step on one device (bytes), from the state and activation terms.

    ``states``: weights, gradients, master and optimizer terms (tagged with their category) of one
    device; ``activations``: the activation terms of one micro-batch; ``dtype_bytes``: bytes of one
    activation element; ``grad_bytes``: bytes of one gradient element; ``state_bytes``: bytes of one optimizer-state element (the temporaries'
    dtype); ``optimizer``/``implementation``: which update runs; ``zero_grad``: ``set-to-none``
    (gradients freed after the step) or ``zero`` (kept, zeroed); ``accumulation``: micro-batches per
    step (from the second on, gradients are alive through forward and backward);
    ``layer_transient``: bytes alive only while a layer runs (ZeRO-3's gathered weights, a layer
    recomputed under full recomputation), added to the per-layer points; ``autocast``: fp32 weights
    under ``torch.autocast`` (each linear's weight copy is freed by its backward); ``weight_bytes``:
    bytes of one weight element (the model's floating-point buffers, :func:`buffer_bytes`, are cast
    to it); ``eager``: attention written in PyTorch ops (``--attention eager``), whose backward
    holds ``s^2`` gradients; ``buffers``: the buffers' bytes where they are not :func:`buffer_bytes`'s
    (a model known only through its trace).
    """
    if zero_grad not in ZERO_GRAD:
        raise SymbolicError("--zero-grad", f"unknown {zero_grad!r}; allowed: {', '.join(ZERO_GRAD)}")
    if isinstance(accumulation, bool) or not isinstance(accumulation, int) or accumulation <= 0:
        raise SymbolicError("--grad-accum", f"must be a positive integer, got {accumulation!r}")
    arch = model.arch
    groups = arch.groups
    b, s, V, h = S.batch, S.seq, S.n_vocab, S.d_model
    tokens = b * s

    def cat(name: str) -> Breakdown:
        return states.where(lambda t: name in t.tags)

    W, M, OPT, G = (cat(c).total for c in ("weights", "master", "optimizer", "gradients"))
    grads = cat("gradients")
    per_layer_grads = {
        g.name: sp.Add(*(t.total / t.count for t in grads if _group_of(t, [g]) is not None)) for g in groups
    }
    outside_grads = [t for t in grads if _group_of(t, groups) is None]
    tied = arch.tied_embeddings
    token_grads = sp.Add(*(t.total for t in outside_grads if t.path.startswith("gradients.embedding.tokens")))
    position_grads = sp.Add(*(t.total for t in outside_grads if t.path.startswith("gradients.embedding.positions")))
    head_grads = sp.Add(*(t.total for t in outside_grads if not t.path.startswith("gradients.embedding")))
    if tied:  # one parameter: its gradient buffer fills at the output layer, the embedding adds to it
        head_grads += token_grads

    counters = 0
    if step_counters and optimizer in ADAM_LIKE and OPT != 0:
        counters = FP32 * sp.Add(*(t.count for t in cat("optimizer")))
    ids = tokens * INT64
    kept = G if (zero_grad == "zero" or accumulation > 1) else 0
    if buffers is None:
        buffers = buffer_bytes(model, weight_bytes)
    start = W + M + OPT + counters + buffers + ids + kept

    # per group: the layers this device runs (the terms' count: n_layers, or its pipeline share)
    counts = {g.name: g.count for g in groups}
    for t in activations:
        g = _group_of(t, groups)
        if g is not None:
            counts[g.name] = t.count
    groups = tuple(replace(g, count=counts[g.name]) for g in groups)
    per_layer_acts = {g.name: sp.Integer(0) for g in groups}
    pre = post = loss_other = sp.Integer(0)
    for t in activations:
        g = _group_of(t, groups)
        if g is not None:
            per_layer_acts[g.name] += t.total / g.count
        elif t.path.startswith(("head.", "loss.")) or "head" in t.tags:
            post += t.total
            if _loss(t) and not _log_probs(t):
                loss_other += t.total
        else:
            pre += t.total
    A = activations.total
    logits = tokens * V * FP32  # one fp32 logits-sized tensor
    logits_dtype = tokens * V * dtype_bytes
    scalars = 2 * FP32  # the loss and the gradient seeded into backward

    points: list[Point] = [Point("start", "start of the step", start)]
    # forward: group by group, layer by layer
    before = pre
    for g in groups:
        a = per_layer_acts[g.name]
        expr = start + before + (LAYER + 1) * a + layer_transient
        points.append(Point("forward", f"after {g.name} layer i's forward", expr, g.count))
        before += g.count * a
    loss_all = sp.Add(*(t.total for t in activations if _loss(t)))
    # logits in the dtype, their fp32 copy (16-bit), the log-softmax, the padded and shifted labels
    fwd_loss = start + A - loss_all + logits_dtype + (logits if dtype_bytes != FP32 else 0) + logits + 2 * loss_other
    if autocast:  # the model's output still holds the final norm's fp32 output; the head saved its 16-bit copy
        fwd_loss += tokens * h * FP32
    points.append(Point("forward", "loss forward: logits and their fp32 log-softmax", fwd_loss))
    points.append(
        Point(
            "backward",
            "loss backward: nll_loss's and log_softmax's fp32 gradients",
            start + A + 2 * logits - loss_other + scalars,
        )
    )
    after_head = head_grads if not (accumulation > 1 or zero_grad == "zero") else 0
    # the final RMSNorm's backward (written in Python ops, computed in fp32): after the head's
    # backward, with its fp32 input still saved, pow's backward holds three fp32 copies of it on top
    # of the mul's input gradient and the mean's expanded gradient (5 in all)
    norm_input = sp.Add(*(t.total for t in activations if t.path == "head.final_norm.input_fp32"))
    if arch.norm.kind is NormKind.RMSNORM and norm_input != 0:
        label = "final norm backward: RMSNorm's fp32 gradients (pow's backward)"
        points.append(Point("backward", label, start + A - post + after_head + 6 * norm_input))
    # backward: groups in reverse, each layer's working set on top of what is alive when it starts
    after_head = head_grads
    # the residual stream's gradient (fp32 under autocast, where the residual stream stays fp32)
    incoming = tokens * h * (FP32 if autocast else dtype_bytes)
    if accumulation > 1 or zero_grad == "zero":
        layer_grads_alive = {g.name: sp.Integer(0) for g in groups}  # already in ``start``
        transient_grads = {g.name: per_layer_grads[g.name] for g in groups}
        after_head = 0
    else:
        layer_grads_alive = per_layer_grads
        transient_grads = {g.name: sp.Integer(0) for g in groups}
    later_grads = sp.Integer(0)
    remaining = A - post  # activations before the head
    for g in reversed(groups):
        a, gl = per_layer_acts[g.name], layer_grads_alive[g.name]
        earlier = remaining - g.count * a  # activations of everything before this group
        working = _layer_working_set(
            model,
            g,
            _per_layer(activations, g),
            _per_layer(grads, g, "gradients."),
            dtype_bytes,
            grad_bytes,
            autocast,
            eager,
        )
        working += transient_grads[g.name]
        # layer i's backward begins with layers 0..i of this group alive and the later layers' grads
        expr = start + earlier + (LAYER + 1) * a + after_head + later_grads + (g.count - 1 - LAYER) * gl
        expr += incoming + working + layer_transient
        points.append(Point("backward", f"{g.name} layer i's backward", expr, g.count))
        later_grads += g.count * gl
        remaining = earlier
    # the embedding's backward, with the incoming gradient alive: a learned position table's
    # gradient (and the batch sum feeding it) is made first, then the token gradient; tied, autograd
    # adds it to the output layer's out of place (all three alive a moment)
    done = start - kept + G
    ends = [done + incoming]
    if position_grads != 0:
        pos_ids = sp.Add(*(t.total for t in activations if t.path == "embedding.position_ids"))
        ends.append(done - (0 if tied else token_grads) + incoming + s * h * grad_bytes + pos_ids)
    if tied:
        ends.append(done + token_grads + incoming)
        if not autocast:  # under autocast the head's gradient is a fresh fp32 cast, accumulated in place
            ends.append(done + 2 * token_grads)
    points.append(Point("backward", "end of backward: the embedding's gradients", sp.Max(*ends)))
    temps = _optimizer_temporaries(
        states, optimizer, implementation, sp.nsimplify(state_bytes) / sp.nsimplify(grad_bytes), _fused(arch)
    )
    points.append(Point("optimizer", f"optimizer step ({implementation.name})", start - kept + G + temps))
    points.append(Point("zero_grad", "after zero_grad", start))
    parts = {
        "weights": W,
        "master": M,
        "optimizer": OPT,
        "step_counters": counters,
        "buffers": buffers,
        "ids": ids,
        "gradients": G,
        "activations": A,
        "optimizer_temporaries": temps,
    }
    return Timeline(tuple(points), parts)


def _per_layer(terms: Breakdown, group: LayerGroup, prefix: str = "") -> dict[str, sp.Expr]:
    """Bytes per layer of ``group`` of each term, keyed by its path below the group (``mlp.down_proj.weight``)."""
    head = f"{prefix}{group.name}."
    out: dict[str, sp.Expr] = {}
    for t in terms:
        if t.path.startswith(head) and _group_of(t, [group]) is not None:
            key = t.path[len(head) :]
            out[key] = out.get(key, sp.Integer(0)) + t.total / t.count
    return out


def _sum(parts: Mapping[str, sp.Expr], *needles: str) -> sp.Expr:
    return sp.Add(*(v for k, v in parts.items() if any(k.startswith(n) or f".{n}" in k for n in needles)))


def _layer_working_set(
    model: Model,
    group: LayerGroup,
    acts: Mapping[str, sp.Expr],
    grads: Mapping[str, sp.Expr],
    dtype_bytes: int,
    grad_bytes: sp.Expr,
    autocast: bool,
    eager: bool = False,
) -> sp.Expr:
    """The most bytes a layer's backward allocates on top of what is alive when it starts (bytes).

    Read off the order in which autograd runs a layer's nodes and frees their saved tensors (a
    node's outputs are allocated before its saved tensors and incoming gradient are released):
    the peak is one of a few points of the MLP's backward, or of SDPA's math path when it keeps
    the ``s^2`` probabilities. ``acts``/``grads``: the layer's activation and gradient bytes by
    path (:func:`_per_layer`). All points are relative to the layer's start, where its
    activations, the later layers' gradients and the incoming residual gradient are alive.

    - Down projection: its input gradient (``b*s*f``) and weight gradient are allocated before
      the saved input (``b*s*f``) and the residual dropout's gradient are freed; under autocast the
      weight gradient is first made in the compute dtype, then cast to fp32 and the weight copy freed.
    - Activation: a gated MLP's product and a composed tanh-GELU (``0.5*x*(1+tanh(...))``) allocate two
      ``b*s*f`` gradients at once, a fused activation (``gelu``, ``silu``) one.
    - Routed experts (``torch._grouped_mm``): the un-permutation's gradient (``2*b*s*k*h``), the
      routing-weight product's two ``b*s*k*h`` gradients, then the experts' own down projection
      and product.
    - SDPA's math path (CPU, with dropout): after the MLP's tensors are freed, ``P@V``'s backward
      allocates the fp32 probabilities' gradient (``b*a*s^2``) and the values' gradient.
    - Eager attention (no attention dropout, no soft-capping): after the output projection's
      backward (its saved input freed), ``P@V``'s backward makes the probabilities' gradient and
      frees their cast copy (the values' gradient takes the saved values' place); the softmax's
      backward then makes the scores' gradient while the probabilities' gradient and the softmax
      output are alive: two softmax-output-sized tensors on top.
    """
    b, s, h = S.batch, S.seq, S.d_model
    dt = dtype_bytes
    tokens = b * s
    gw = sp.nsimplify(grad_bytes)
    arch = model.arch
    sites = 1 if arch.parallel_block else 2
    masks = _sum(acts, "dropout_masks")
    mask = masks / sites  # one residual dropout site's mask
    drop_grad = tokens * h * dt if masks != 0 else sp.Integer(0)

    def linear(name: str) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """(gradient bytes of the weight and bias, bytes allocated while it runs, weight copy freed)."""
        w, bias = grads.get(f"{name}.weight", sp.Integer(0)), grads.get(f"{name}.bias", sp.Integer(0))
        if not autocast:
            return w + bias, w + bias, sp.Integer(0)
        copy = w / gw * dt  # autocast's copy of the weight, saved for backward, freed with the node
        return w + bias, (w + bias) / gw * dt, copy

    points: list[sp.Expr] = []
    if group.moe:
        k = S.top_k
        f = S.symbol("d_expert") if "d_expert" in model.sizes else S.d_ffn
        edt = FP32 if autocast else dt  # torch._grouped_mm is not autocast
        routed = tokens * k * h * edt  # the experts' inputs and outputs, in their dtype
        w_down = grads.get("moe.experts.down_proj.weight", sp.Integer(0))
        points.append(2 * routed)  # gradient of the un-permutation (index) of the experts' outputs
        after_index = routed - INT64 * tokens * k
        points.append(after_index + 2 * routed + tokens * k * edt)  # routing weights' product
        after_mul = -INT64 * tokens * k
        points.append(after_mul + w_down + tokens * k * f / S.tp * edt)  # experts' down projection
        points.append(after_mul + w_down - routed + 2 * tokens * k * f / S.tp * edt)  # gate * up
        mlp_grads = _sum(grads, "moe.", "norm_mlp")
        mlp_acts = _sum(acts, "moe.", "mlp.", "norm_2")
    else:
        f = S.d_ffn if "d_ffn" in model.sizes else 4 * h
        inner = tokens * f / S.tp * dt
        kept, made, copy = linear("mlp.down_proj")
        points.append(drop_grad)  # the residual dropout's gradient, before its mask is freed
        points.append(drop_grad - mask + inner + made)  # down projection: input and weight gradients
        after_down = -mask + kept - copy
        # a composed activation (it keeps more than a fused kernel) ends in a product of two b*s*f tensors
        two = arch.mlp.kind.value == "gated" or ACTIVATION_EXTRA_SAVED.get(arch.mlp.activation, 0) > 0
        points.append(after_down + (2 if two else 1) * inner)
        mlp_grads = _sum(grads, "mlp.", "norm_mlp")
        mlp_acts = _sum(acts, "mlp.", "norm_2") + (mask if masks != 0 else 0)
    probs = acts.get("attention.probs", sp.Integer(0))
    plain = "attention.dropped_probs" not in acts and "attention.softcap" not in acts
    if eager and probs != 0 and plain and not arch.parallel_block:
        start = mlp_grads - mlp_acts  # the MLP's part of the layer is done
        kept, made, copy = linear("attention.o_proj")
        out = acts.get("attention.output", sp.Integer(0))
        cast = acts.get("attention.probs_cast", sp.Integer(0))
        points.append(start - mask + kept - copy - out - cast + 2 * probs)
    elif probs != 0 and S.seq**2 in sp.expand(probs).atoms(sp.Pow) and "attention.dropped_probs" not in acts:
        if not arch.parallel_block:  # SDPA's math path: softmax output, scaled mask, dropped probabilities
            start = mlp_grads - mlp_acts  # the MLP's part of the layer is done
            kept, made, copy = linear("attention.o_proj")
            out = acts.get("attention.output", sp.Integer(0))
            fp32_heads = out / dt * FP32
            points.append(start - mask + kept - copy - out + 2 * fp32_heads + probs / 3)
    return sp.Max(*points) if len(points) > 1 else points[0]


def _fused(arch) -> frozenset[str]:
    """Which projections share one parameter in the modules: ``qkv`` (q, k, v) and ``gate_up``."""
    try:
        rules = rules_for(arch.family)
    except SymbolicError:
        return frozenset()
    return frozenset(n for n, on in (("qkv", rules.fused_qkv), ("gate_up", rules.fused_gate_up)) if on)


_MEMBERS = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "gate_proj": "gate_up", "up_proj": "gate_up"}


def _tensors(trainable: Sequence[Term], fused: frozenset[str]) -> list[sp.Expr]:
    """Bytes of each trainable tensor in registration order, projections that share one parameter
    summed (``fused``; routed experts keep gate and up in one ``gate_up_proj`` tensor)."""
    out: list[sp.Expr] = []
    seen: dict[str, int] = {}
    for t in trainable:
        part = t.path.rsplit(".", 2)
        kind = _MEMBERS.get(part[1]) if len(part) == 3 else None
        if kind is not None and (kind in fused or (kind == "gate_up" and ".experts" in part[0])):
            key = f"{part[0]}.{kind}.{part[2]}"
            if key in seen:
                out[seen[key]] += t.expr
                continue
            seen[key] = len(out)
        out.append(t.expr)
    return out


def _optimizer_temporaries(
    states: Breakdown, optimizer: str, impl: Implementation, ratio: sp.Expr, fused: frozenset[str] = frozenset()
) -> sp.Expr:
    """Bytes the optimizer step allocates for a moment (bytes): see :data:`IMPLEMENTATIONS`.

    ``ratio``: bytes of a state element over bytes of a gradient element (the gradient terms are bytes);
    ``fused``: projections that are one parameter (:func:`_fused`).
    """
    if optimizer not in ADAM_LIKE:
        return sp.Integer(0)
    trainable = [t for t in states if "gradients" in t.tags]
    if not trainable:
        return sp.Integer(0)
    out = sp.Integer(0)
    if impl.per_tensor:
        # tensor j's sqrt(v) and sqrt(v)/c are made while tensor j-1's denominator is still held by
        # the loop's variable (freed when it is reassigned): parameters in registration order
        sizes = _tensors(trainable, fused)
        pairs = [impl.per_tensor * sizes[0]]
        pairs += [impl.per_tensor * t + impl.previous * p for p, t in zip(sizes[:-1], sizes[1:], strict=True)]
        out += sp.Max(*pairs)
    if impl.whole:
        out += impl.whole * sp.Add(*(t.total for t in trainable))
    return out * ratio
