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

Adding a convention (as the traced one was): write its builders where its
formulas live (they may import heavy packages inside the function), then add one ``Convention(...)``
to ``_TABLE`` below. The command line's ``--convention`` choices, ``symbolic.model`` (parameters,
activations, FLOPs), ``symbolic.memory``, the sweep, the documents and the tests that iterate over
:data:`CONVENTIONS` pick it up; nothing else changes.

>>> get_convention("megatron", "flops").flops.selective_factor
3
>>> names_for("parameters")
('exact', 'basic', 'basic-gated', 'traced')

The ``traced`` row's builders (:mod:`symbolic.trace.convention`) trace the transformers code of the
model's config on fake tensors; they need the optional ``trace`` install (torch, transformers) and
answer for model types without hand-written rules too (``reads_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

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

__all__ = [
    "Convention",
    "CONVENTIONS",
    "PARALLEL_SPLITS",
    "QUANTITIES",
    "DEFAULT",
    "get_convention",
    "names_for",
    "for_untyped",
]

# Arch -> Breakdown; a convention that ``reads_model`` takes the Model instead
ParameterBuilder = Callable[[Any], Breakdown]
TransientBuilder = Callable[
    [Model, ActivationRule, ActivationOptions, Layout, str, Callable[[Term], Term] | None], Breakdown
]

# the parallel splits a convention's terms can say how they are divided by (Convention.parallel)
PARALLEL_SPLITS = frozenset({"tp", "pp", "cp", "ep", "sequence_parallel", "vocab_multiple"})

# what a convention can cover; ``memory`` needs activations (states come from the parameters)
QUANTITIES = ("parameters", "activations", "memory", "flops")


@dataclass(frozen=True)
class Convention:
    """A named way of counting: where it comes from, what it leaves out, and its builders.

    ``parameters``, ``activations`` (with ``transients``) and ``flops`` are ``None`` for a quantity the
    convention does not describe. Under ``memory``, a convention without a parameter builder counts
    the model states with the default convention's parameters. ``reads_model``: the builders take
    the :class:`Model` (they read its config) rather than the Arch, and answer for models without
    hand-written rules too; ``extra``: the optional install its builders need (documents that list
    every convention leave it out); ``parallel``: the splits its terms say how they are divided by,
    of :data:`PARALLEL_SPLITS` (``tp``, ``pp``, ``cp``, ``ep``, ``sequence_parallel``,
    ``vocab_multiple``); those left out are refused (empty: one unsharded replica, only data
    parallelism and ZeRO apply).
    """

    name: str
    title: str
    source: str
    leaves_out: str
    parameters: ParameterBuilder | None = None
    activations: ActivationRule | None = None
    transients: TransientBuilder | None = None
    flops: FlopsRule | None = None
    reads_model: bool = False
    extra: str | None = None
    parallel: frozenset[str] = PARALLEL_SPLITS

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

    def parameter_terms(self, model: Model | Arch) -> Breakdown:
        """The parameter terms of ``model`` under this convention (parameters).

        A convention that does not read the config refuses a model without hand-written rules
        (``model_type``); one that reads it refuses a bare Arch (``convention``).
        """
        if self.parameters is None:
            raise SymbolicError("convention", f"{self.name} has no parameter rule")
        self.check_model(model)
        if self.reads_model:
            return self.parameters(model)
        return self.parameters(model.arch if isinstance(model, Model) else model)

    def fixed_sizes(self, model: Model) -> frozenset[str]:
        """The sizes of ``model`` this convention's terms hold fixed (numbers read from the config, so
        no sweep, growth or derivative in them means anything): for one that reads the config every
        size but the layer count; none for a hand-written one."""
        if not self.reads_model:
            return frozenset()
        return frozenset(k for k in model.sizes if k != "n_layers")

    def check_varies(self, model: Model, name: str, option: str) -> None:
        """Raise :class:`SymbolicError` (naming ``option``) when ``name`` is a size this convention holds fixed."""
        if name in self.fixed_sizes(model):
            raise SymbolicError(
                option,
                f"{name}: the {self.name} convention reads it from the model's config ({model.sizes[name]}), "
                "so it cannot vary; edit config.json or use a hand-written convention",
            )

    def check_model(self, model: Model | Arch) -> None:
        """Raise :class:`SymbolicError` when this convention cannot answer for ``model``: a model
        without hand-written rules under a hand-written convention, or an Arch where the config is read."""
        if self.reads_model and not isinstance(model, Model):
            raise SymbolicError("convention", f"{self.name} reads the model's config: pass a Model, not an Arch")
        if isinstance(model, Model) and not model.hand_written and not self.reads_model:
            from .hf import SUPPORTED_MODEL_TYPES
            from .inputs import shown

            readers = ", ".join(c.name for c in CONVENTIONS.values() if c.reads_model)
            raise SymbolicError(
                "model_type",
                f"unsupported {shown(model.arch.family)}; supported: {', '.join(SUPPORTED_MODEL_TYPES)} "
                f"(or --convention {readers})",
            )

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
        self.check_model(model)
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


def _traced_parameters(model: Model) -> Breakdown:
    from .trace.convention import parameter_terms as traced_parameter_terms

    return traced_parameter_terms(model)


def _traced_activations(model: Model, options: ActivationOptions, layout: Layout) -> Breakdown:
    from .trace.convention import activation_terms as traced_activation_terms

    return traced_activation_terms(model, options, layout)


def _traced_transients(*args: object, **kwargs: object) -> Breakdown:
    from .trace.convention import transient_terms as traced_transient_terms

    return traced_transient_terms()


def _traced_forward(model: Model, causal: bool) -> list[Term]:
    from .trace.convention import forward_terms

    return forward_terms(model, causal)


def _traced_backward(model: Model, causal: bool) -> list[Term]:
    from .trace.convention import backward_terms

    return backward_terms(model, causal)


# the traced convention: its builders trace the transformers code (torch, transformers imported on use)
TRACED_ACTIVATIONS = ActivationRule(_traced_activations)
TRACED_FLOPS = FlopsRule(_traced_forward, reads_model=True, backward=_traced_backward, recomputes=("none", "full"))

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
    Convention(
        "traced",
        "Traced: one training step of the transformers code on fake tensors, batch and sequence symbolic",
        "the model's own transformers modules (the pinned torch and transformers), run on fake tensors "
        "with a ShapeEnv; the storages autograd saves, torch.utils.flop_counter's formulas",
        "the backward pass's transient buffers; element-wise FLOPs (norms, activations, softmax); "
        "pipeline, context, expert and sequence parallelism (tensor parallelism as transformers' own "
        "plan splits); CUDA kernels "
        "(traced on CPU kernels; on CUDA their saved tensors are assumed the same)",
        parameters=_traced_parameters,
        activations=TRACED_ACTIVATIONS,
        transients=_traced_transients,
        flops=TRACED_FLOPS,
        reads_model=True,
        extra="trace",
        parallel=frozenset({"tp"}),
    ),
)

CONVENTIONS: MappingProxyType[str, Convention] = MappingProxyType({c.name: c for c in _TABLE})
DEFAULT = "exact"


def names_for(quantity: str) -> tuple[str, ...]:
    """The names of the conventions that cover ``quantity`` (one of :data:`QUANTITIES`), in table order."""
    return tuple(name for name, conv in CONVENTIONS.items() if quantity in conv.quantities)


def for_untyped(name: str | None) -> Convention | None:
    """The convention that answers for a model without hand-written rules when ``name`` is asked:
    ``name`` itself when it reads the model's config; the first convention that does when ``name``
    is None or the default (the answer names it); else None (the model cannot be answered so).

    >>> for_untyped(None).name, for_untyped("basic")
    ('traced', None)
    """
    reader = next((c for c in _TABLE if c.reads_model), None)
    if name is None or name == DEFAULT:
        return reader
    conv = CONVENTIONS.get(name)
    return conv if conv is not None and conv.reads_model else None


def get_convention(name: str, quantity: str = "parameters") -> Convention:
    """The convention called ``name`` that covers ``quantity``; else an error naming the allowed ones."""
    allowed = names_for(quantity)
    if name not in allowed:
        raise SymbolicError("convention", f"unknown {name!r} for {quantity}; allowed: {', '.join(allowed)}")
    return CONVENTIONS[name]
