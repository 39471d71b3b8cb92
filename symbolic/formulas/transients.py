"""The largest transient buffers of a training step's backward pass, as named byte terms.

Peak per device = model states + activations + the largest of these (each tagged ``transient``):

* ``transient.logits_grad``: the gradient of the logits, built in fp32 by the loss's backward
  (``b*s*V*4``) and, for a 16-bit model, cast back to the model dtype (``+ b*s*V*2``) while the
  fp32 one is alive. Every step has it.
* ``transient.recompute.<group>``: with full recomputation, backward re-runs one checkpointed layer's
  forward and holds all of its saved tensors (the same terms as ``--recompute none``, one layer) until
  that layer's backward ends.
* ZeRO-3 / FSDP's gathered layer of weights is added by :mod:`symbolic.memory` (model states).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import sympy as sp

from .. import symbols as S
from ..arch import Model
from ..terms import Breakdown, Quantity, Term
from .activations.options import ActivationOptions, ActivationRule, Layout

__all__ = ["transient_terms"]

BYTES = Quantity.BYTES
TAGS = frozenset({"transient"})


def transient_terms(
    model: Model,
    rule: ActivationRule,
    options: ActivationOptions | None = None,
    layout: Layout | None = None,
    convention: str = "exact",
    share: Callable[[Term], Term] | None = None,
) -> Breakdown:
    """Candidate transient buffers of the backward pass (bytes); the peak adds the largest one.

    ``rule`` is the activation rule of the convention named ``convention``: its builder gives the
    layer recomputed under full recomputation, ``rule.per_tp_device`` splits the logits gradient over
    ``tp`` (vocab-parallel cross entropy), ``rule.uniform_layers`` says which layer counts exist.
    ``share`` turns an unsharded term into one device's share
    (:meth:`symbolic.parallel.Parallelism.activation_share`) for rules whose terms carry their splits.
    """
    share = share or (lambda t: t)
    o = options or ActivationOptions()
    b, s, V = S.batch, S.seq, S.n_vocab
    extra = 0 if o.nbytes == 4 else o.nbytes
    own = 1 / S.tp if rule.per_tp_device else sp.Integer(1)
    if rule.per_tp_device and layout is not None and layout.cp > 1:
        own = own / S.cp
    logits = share(
        Term(
            "transient.logits_grad",
            b * s * V * (4 + extra) * own,
            BYTES,
            "gradient of the logits in fp32" + (" and its cast to the model dtype" if extra else ""),
            source="PyTorch cross_entropy backward (log_softmax + nll_loss on fp32 logits)",
            tags=TAGS,
        )
    )
    terms = [logits]
    if o.recompute == "full":
        full = rule.build(model, replace(o, recompute="none"), layout or Layout())
        counts = [S.n_layers] if rule.uniform_layers else [g.count for g in model.arch.groups]
        for count in counts:
            layer = [share(t) for t in full if t.count == count]
            name = next((g.name for g in model.arch.groups if g.count == count), "block")
            terms.append(
                Term(
                    f"transient.recompute.{name}",
                    sp.Add(*(t.expr for t in layer)),
                    BYTES,
                    f"one {name} layer's activations, recomputed in backward under full recomputation",
                    source=f"torch.utils.checkpoint (non-reentrant); terms of the {convention} convention",
                    tags=TAGS,
                )
            )
    return Breakdown(BYTES, tuple(terms))
