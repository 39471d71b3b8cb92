"""Random training steps for holding the hand-written ``exact`` activations to the traced truth.

A :class:`Case` is one Hugging Face config of a hand-written family with the settings of one
training step (attention kernel, dtype, recomputation, dropout, autocast) and the batch and sequence sizes
at which to compare: b = 1 and b > 1, and where the config has a sliding window, sequences shorter
and longer than it. :func:`cases` draws them with hypothesis (configs from
``tests/hf_factories.py``, every ``hidden_act`` transformers accepts, windows, partial rotary,
MoE layers); :func:`compare` traces the step on fake tensors (``symbolic.trace``, whose bytes
equal autograd's: ``tests/test_trace.py``) and returns the points where ``exact`` differs.

Used by ``tests/test_exact_vs_traced.py`` (a bounded, derandomized sample) and by
``tools/exact_vs_traced.py`` (any number of examples).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.hf_factories import FACTORIES

# the config field each family's MLP reads its activation from (None: fixed in the module)
ACT_FIELD = {
    "llama": "hidden_act",
    "mistral": "hidden_act",
    "mixtral": "hidden_act",
    "qwen2": "hidden_act",
    "qwen2_moe": "hidden_act",
    "qwen3": "hidden_act",
    "gemma": "hidden_act",
    "gemma2": "hidden_activation",
    "phi3": "hidden_act",
    "olmo": "hidden_act",
    "deepseek_v3": "hidden_act",
    "stablelm": "hidden_act",
    "starcoder2": "hidden_act",
    "gpt_neox": "hidden_act",
    "gpt2": "activation_function",
    "gpt_bigcode": "activation_function",
    "gptj": "activation_function",
    "opt": "activation_function",
    "falcon": "activation",
    "bloom": None,
}
# families whose attention reads ``sliding_window`` (qwen2/qwen3 also need ``use_sliding_window``)
WINDOWED = {"mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "starcoder2", "gemma2", "phi3"}
# families with partial rotary and the field transformers 5.24 reads its fraction from
PARTIAL_ROTARY = {"gpt_neox": "rotary_pct", "stablelm": "partial_rotary_factor", "phi3": "partial_rotary_factor"}
NO_SDPA = {"gemma2", "bloom"}
MOE = {"mixtral", "qwen2_moe", "deepseek_v3"}
DROPOUT_FIELDS = (
    "attention_dropout",
    "attn_pdrop",
    "resid_pdrop",
    "embd_pdrop",
    "hidden_dropout",
    "dropout",
    "residual_dropout",
    "embedding_dropout",
)


# not drawn: the fake-tensor build leaves xIELU's parameters in bfloat16 (the class creates them in that
# dtype, and the real model.to(dtype) converts them), so its trace is off by their two 1-element
# products; tests/test_exact_vs_traced.py holds exact's xIELU rule to the real measurement instead
NOT_TRACED_ACTIVATIONS = frozenset({"xielu"})


def activations() -> tuple[str, ...]:
    """Every activation name transformers' ``ACT2FN`` accepts whose trace is exact."""
    from transformers.activations import ACT2CLS

    return tuple(sorted(set(ACT2CLS) - NOT_TRACED_ACTIVATIONS))


@dataclass(frozen=True)
class Case:
    """One training step to compare: the config, its settings and the (batch, seq) points."""

    config: dict[str, Any]
    attention: str = "sdpa"
    dtype: str = "fp32"
    recompute: str = "none"
    points: tuple[tuple[int, int], ...] = ((1, 5), (3, 7))
    labels: tuple[str, ...] = field(default=(), compare=False)
    autocast: bool = False  # fp32 weights, the step under torch.autocast to ``dtype`` (the amp recipes)

    def describe(self) -> str:
        """One line naming the family and the settings (for reports)."""
        dtype = f"amp-{self.dtype}" if self.autocast else self.dtype
        bits = [self.config["model_type"], self.attention, dtype, f"recompute={self.recompute}", *self.labels]
        return " ".join(bits)

    def trace_options(self) -> Any:
        """The :class:`~symbolic.trace.TraceOptions` of this step (autocast: fp32 weights, 16-bit compute)."""
        from symbolic.trace import TraceOptions

        if self.autocast:
            return TraceOptions(dtype="fp32", attention=self.attention, recompute=self.recompute, autocast=self.dtype)
        return TraceOptions(dtype=self.dtype, attention=self.attention, recompute=self.recompute)


@st.composite
def cases(draw: Any, families: tuple[str, ...] | None = None, amp: bool = False) -> Case:
    """A random :class:`Case` of one of ``families`` (all hand-written families by default); ``amp``:
    fp32 weights under ``torch.autocast`` to bf16 or fp16 (the amp recipes) instead of one model dtype."""
    family = draw(st.sampled_from(sorted(families or FACTORIES)))
    cfg = dict(draw(FACTORIES[family]))
    labels: list[str] = []
    act_field = ACT_FIELD[family]
    if act_field is not None and draw(st.booleans()):
        cfg[act_field] = draw(st.sampled_from(activations()))
        labels.append(f"{act_field}={cfg[act_field]}")
    p = draw(st.sampled_from([0.0, 0.0, 0.1]))
    for key in DROPOUT_FIELDS:
        cfg[key] = p
    if p:
        labels.append(f"dropout={p}")
    if family in PARTIAL_ROTARY and draw(st.booleans()):
        cfg[PARTIAL_ROTARY[family]] = draw(st.sampled_from([0.25, 0.5, 1.0]))
        labels.append(f"{PARTIAL_ROTARY[family]}={cfg[PARTIAL_ROTARY[family]]}")
    if family in PARTIAL_ROTARY and _odd_rotary(cfg):  # an odd width whose forward fails in transformers
        cfg[PARTIAL_ROTARY[family]] = 1.0
    batch = draw(st.integers(2, 4))
    seqs = sorted(set(draw(st.lists(st.integers(2, 12), min_size=1, max_size=2))))
    window = None
    if family in WINDOWED and draw(st.booleans()):
        window = draw(st.integers(2, 10))
        cfg["sliding_window"] = window
        if family in ("qwen2", "qwen2_moe", "qwen3"):
            cfg["use_sliding_window"] = True
            cfg["max_window_layers"] = draw(st.integers(0, cfg.get("num_hidden_layers", 1)))
        seqs = sorted({*seqs, max(2, window - 1), window, window + 1, window + 3})
        labels.append(f"window={window}")
    elif family in WINDOWED and family != "gemma2":  # Gemma 2 always has a window (its class default, 4096)
        cfg["sliding_window"] = None
    for key in ("n_positions", "max_position_embeddings"):  # learned position tables cover every sequence drawn
        if key in cfg:
            cfg[key] = max(cfg[key], 16)
    attention = "eager" if family in NO_SDPA else draw(st.sampled_from(["sdpa", "eager"]))
    dtype = draw(st.sampled_from(["bf16", "fp16"] if amp else ["fp32", "bf16", "fp16"]))
    if family in MOE and dtype != "fp32":
        _align_experts(cfg)
    recompute = draw(st.sampled_from(["none", "none", "full"]))
    points = tuple((b, s) for s in seqs for b in (1, batch))
    return Case(cfg, attention, dtype, recompute, points, tuple(labels), autocast=amp)


def _odd_rotary(cfg: dict[str, Any]) -> bool:
    """Whether the config rotates an odd number of each head's dims where the family's forward then fails
    (exact refuses those; GPT-NeoX and Phi-3 round the width up and run)."""
    from symbolic.formulas.activations.exact import odd_rotary_fails
    from symbolic.hf import from_hf_config

    return odd_rotary_fails(from_hf_config(cfg))


def _align_experts(cfg: dict[str, Any]) -> None:
    """Widen an MoE config so that torch's CPU ``grouped_mm`` takes it in 16-bit (rows of the hidden and
    expert widths a multiple of 16 bytes; real models are aligned, the factories' tiny widths not)."""

    def up(value: int) -> int:
        return -(-value // 8) * 8

    for key in ("moe_intermediate_size", "shared_expert_intermediate_size"):
        if cfg.get(key):
            cfg[key] = up(cfg[key])
    if cfg["model_type"] == "mixtral":
        cfg["intermediate_size"] = up(cfg["intermediate_size"])
        cfg["hidden_size"] = up(cfg["hidden_size"])
    while cfg["hidden_size"] % 8:  # qwen2_moe: hidden = heads * head width; more heads of the same width
        cfg["hidden_size"] *= 2
        cfg["num_attention_heads"] *= 2


@dataclass
class Outcome:
    """What one case gave: points compared, the disagreeing ones (exact - traced), or an error."""

    case: Case
    points: int = 0
    misses: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # (b, s) -> (exact, traced)
    error: str | None = None

    @property
    def agree(self) -> int:
        """Points where exact equals traced to the byte."""
        return self.points - len(self.misses)


def exact_total(case: Case) -> tuple[Any, dict[str, int]]:
    """The ``exact`` activation total (bytes, a SymPy expression) and the sizes to evaluate it at."""
    from symbolic.formulas.activations import ActivationOptions
    from symbolic.hf import from_hf_config
    from symbolic.model import activation_terms

    model = from_hf_config(case.config)
    options = ActivationOptions(
        dtype=case.dtype, attention=case.attention, recompute=case.recompute, device="cpu", autocast=case.autocast
    )
    values = dict(model.sizes)
    window = model.config.get("sliding_window")
    if isinstance(window, int) and window > 0:  # as symbolic.memory binds it
        values["window"] = window
    return activation_terms(model, "exact", options).total, values


def compare(case: Case) -> Outcome:
    """Trace ``case`` and evaluate ``exact`` and the traced total at each of its points (bytes)."""
    from symbolic import symbols as S
    from symbolic.errors import SymbolicError
    from symbolic.numeric import evaluate
    from symbolic.trace import trace

    out = Outcome(case)
    try:
        traced = trace(case.config, case.trace_options())
    except SymbolicError as err:  # a config transformers rejects is no case (the factories avoid them)
        out.error = f"trace: {err.field}: {err.message}"[:300]
        return out
    try:
        mine, values = exact_total(case)
    except SymbolicError as err:  # exact refusing a step transformers runs is a disagreement
        out.error = f"exact: {err.field}: {err.message}"[:300]
        return out
    layers = {S.n_layers: traced.sizes["n_layers"]}
    for batch, seq in case.points:
        got = int(evaluate(mine, {**values, "batch": batch, "seq": seq}))
        truth = int(traced.activations.total.xreplace(layers).subs({S.batch: batch, S.seq: seq}))
        out.points += 1
        if got != truth:
            out.misses[(batch, seq)] = (got, truth)
    return out


def draw(
    examples: int, seed: int | None = None, families: tuple[str, ...] | None = None, amp: bool = False
) -> list[Case]:
    """``examples`` cases, the same on every run for a given ``seed`` (``None``: hypothesis' derandomized
    draws, the sample the test suite runs); ``amp``: steps under ``torch.autocast`` (see :func:`cases`)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    out: list[Case] = []

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=seed is None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(families, amp))
    def collect(case: Case) -> None:
        out.append(case)

    if seed is not None:
        collect = fix_seed(seed)(collect)
    collect()
    return out[:examples]
