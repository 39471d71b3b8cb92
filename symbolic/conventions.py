"""The table of conventions: each convention is a value that carries its builders.

A convention says how a figure is counted. It carries one builder per quantity it covers (``None``
where it covers none) and the facts the composition needs about it; code asks the value and never
branches on its name::

    Convention
      parameters   Arch -> Breakdown (parameters)                  formulas/params.py, formulas/basic.py
      activations  ActivationRule                                   formulas/activations/
                     build(model, options, layout) -> Breakdown (bytes)
                     per_tp_device, places_stages, uniform_layers   (how tp and pp apply to its terms)
      transients   (model, rule, options, layout, name) -> Breakdown (bytes)   formulas/transients.py
      flops        FlopsRule                                         formulas/flops.py
                     forward(arch, causal) -> forward terms (FLOPs); causal; selective_factor

Adding a convention (for example one traced from the real modules): write its builders where its
formulas live (they may import heavy packages inside the function), then add one ``Convention(...)``
to ``_TABLE`` below. The command line's ``--convention`` choices, ``symbolic.model`` (parameters,
activations, FLOPs), ``symbolic.memory``, the sweep, the documents and the tests that iterate over
:data:`CONVENTIONS` pick it up; nothing else changes.

>>> get_convention("megatron", "flops").flops.selective_factor
3
>>> names_for("parameters")
('exact', 'basic', 'basic-gated')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType

from .arch import Arch, Model
from .errors import SymbolicError
from .formulas.activations import (
    BASIC_ACTIVATIONS,
    EXACT_ACTIVATIONS,
    MEGATRON_ACTIVATIONS,
    ActivationOptions,
    ActivationRule,
    Layout,
)
from .formulas.basic import basic_parameter_terms
from .formulas.flops import CHINCHILLA_FLOPS, EXACT_FLOPS, KAPLAN_FLOPS, MEGATRON_FLOPS, PALM_FLOPS, FlopsRule
from .formulas.params import parameter_terms
from .formulas.transients import transient_terms
from .terms import Breakdown, Term

__all__ = ["Convention", "CONVENTIONS", "QUANTITIES", "DEFAULT", "get_convention", "names_for"]

ParameterBuilder = Callable[[Arch], Breakdown]
TransientBuilder = Callable[
    [Model, ActivationRule, ActivationOptions, Layout, str, Callable[[Term], Term] | None], Breakdown
]

# what a convention can cover; ``memory`` needs activations (states come from the parameters)
QUANTITIES = ("parameters", "activations", "memory", "flops")


@dataclass(frozen=True)
class Convention:
    """A named way of counting: where it comes from, what it leaves out, and its builders.

    ``parameters``, ``activations`` (with ``transients``) and ``flops`` are ``None`` for a quantity the
    convention does not describe. Under ``memory``, a convention without a parameter builder counts
    the model states with the default convention's parameters.
    """

    name: str
    title: str
    source: str
    leaves_out: str
    parameters: ParameterBuilder | None = None
    activations: ActivationRule | None = None
    transients: TransientBuilder | None = None
    flops: FlopsRule | None = None

    @property
    def quantities(self) -> frozenset[str]:
        """The quantities this convention covers (names from :data:`QUANTITIES`)."""
        has = {
            "parameters": self.parameters is not None,
            "activations": self.activations is not None,
            "memory": self.activations is not None,
            "flops": self.flops is not None,
        }
        return frozenset(q for q, present in has.items() if present)

    def transient_terms(
        self,
        model: Model,
        options: ActivationOptions,
        layout: Layout,
        share: Callable[[Term], Term] | None = None,
    ) -> Breakdown:
        """The transient buffers of the backward pass under this convention (bytes); ``share``: one
        device's share of an unsharded term (:meth:`symbolic.parallel.Parallelism.activation_share`)."""
        if self.activations is None or self.transients is None:
            raise SymbolicError("convention", f"{self.name} has no activation rule")
        return self.transients(model, self.activations, options, layout, self.name, share)


def _transients(
    model: Model,
    rule: ActivationRule,
    options: ActivationOptions,
    layout: Layout,
    name: str,
    share: Callable[[Term], Term] | None = None,
) -> Breakdown:
    return transient_terms(model, rule, options, layout, name, share)


_TABLE: tuple[Convention, ...] = (
    Convention(
        "exact",
        "Exact: what the implementation builds",
        "Hugging Face transformers 5.24 modules; checked against models built on the meta device",
        "nothing: every weight, bias and norm is counted, tied tensors once",
        parameters=parameter_terms,
        activations=EXACT_ACTIVATIONS,
        transients=_transients,
        flops=EXACT_FLOPS,
    ),
    Convention(
        "basic",
        "The design note, literally",
        "the design note, section 1 (its formula as written)",
        "norms, biases, learned positions, grouped-query sharing, tying, the gated MLP's third matrix",
        parameters=basic_parameter_terms,
        activations=BASIC_ACTIVATIONS,
        transients=_transients,
    ),
    Convention(
        "basic-gated",
        "The design note's formula with the gated MLP's third matrix",
        "design note, section 1: how its llama2-7b figure 6,738,149,376 comes out",
        "norms, biases, learned positions, grouped-query sharing, tying",
        parameters=partial(basic_parameter_terms, gated=True),
    ),
    Convention(
        "kaplan",
        "Kaplan et al. 2020, Table 1: C_forward = 2N + 2 n_layer n_ctx d_attn per token",
        "Kaplan et al. 2020, Scaling Laws for Neural Language Models (arXiv 2001.08361), Table 1",
        "embeddings, de-embedding, biases, norms, non-linearities; causal attention half-counted",
        flops=KAPLAN_FLOPS,
    ),
    Convention(
        "chinchilla",
        "Hoffmann et al. 2022, Appendix F: every matrix product, embeddings and softmax, backward = 2x forward",
        "Hoffmann et al. 2022, Training Compute-Optimal LLMs (arXiv 2203.15556), Appendix F",
        "norms, biases, non-linearities; a two-matrix MLP",
        flops=CHINCHILLA_FLOPS,
    ),
    Convention(
        "megatron",
        "Megatron: 72BLsh^2(1 + s/6h + V/12hL) per step; recompute variants (Eq. 8, Narayanan Eq. 3)",
        "Korthikanti et al. 2022 (arXiv 2205.05198), App. A; Narayanan et al. 2021 (arXiv 2104.04473), Eq. 3",
        "GQA, gated MLPs, MoE (assumes MHA, a 4h MLP and tied logits); non-matrix operations",
        activations=MEGATRON_ACTIVATIONS,  # Korthikanti et al. 2022, Table 2 (formulas/activations/megatron.py)
        transients=_transients,
        flops=MEGATRON_FLOPS,
    ),
    Convention(
        "palm",
        "PaLM: 6N + 12 L H Q T per token (model FLOPs for MFU)",
        "Chowdhery et al. 2022, PaLM (arXiv 2204.02311), Appendix B",
        "rematerialisation (counted separately as hardware FLOPs)",
        flops=PALM_FLOPS,
    ),
)

CONVENTIONS: MappingProxyType[str, Convention] = MappingProxyType({c.name: c for c in _TABLE})
DEFAULT = "exact"


def names_for(quantity: str) -> tuple[str, ...]:
    """The names of the conventions that cover ``quantity`` (one of :data:`QUANTITIES`), in table order."""
    return tuple(name for name, conv in CONVENTIONS.items() if quantity in conv.quantities)


def get_convention(name: str, quantity: str = "parameters") -> Convention:
    """The convention called ``name`` that covers ``quantity``; else an error naming the allowed ones."""
    allowed = names_for(quantity)
    if name not in allowed:
        raise SymbolicError("convention", f"unknown {name!r} for {quantity}; allowed: {', '.join(allowed)}")
    return CONVENTIONS[name]
