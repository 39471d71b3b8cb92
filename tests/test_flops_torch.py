"""The ``exact`` FLOPs convention against PyTorch's own count of matrix-product FLOPs.

``torch.utils.flop_counter.FlopCounterMode`` counts every mm/addmm/bmm a real transformers model
runs (2 FLOPs per multiply-add), forward and backward. Eager attention computes all ``seq^2``
query-key pairs, which is the ``exact`` convention's non-causal count.
"""

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolic.hf import from_hf_config
from symbolic.model import flops_terms
from symbolic.numeric import evaluate

from .hf_factories import gpt2_like, llama_like

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)


def _torch_flops(config: dict, batch: int, seq: int) -> tuple[int, int]:
    cfg = transformers.AutoConfig.for_model(**config)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    ids = torch.randint(0, config.get("vocab_size", 8), (batch, seq))
    with FlopCounterMode(display=False) as fwd:
        logits = model(ids).logits
    with FlopCounterMode(display=False) as bwd:
        logits.float().sum().backward()
    return fwd.get_total_flops(), bwd.get_total_flops()


def _ours(config: dict, batch: int, seq: int) -> tuple[int, int]:
    model = from_hf_config(config)
    terms = flops_terms(model, "exact")
    values = {**model.sizes, "batch": batch, "seq": seq}
    fwd = terms.where(lambda t: t.path.startswith("forward."))
    bwd = terms.where(lambda t: t.path.startswith("backward."))
    return int(evaluate(fwd.total, values)), int(evaluate(bwd.total, values))


# MoE models are left out: transformers runs their experts through grouped matrix products that
# FlopCounterMode does not count, so torch would report no expert FLOPs at all.
CONFIGS = st.one_of(llama_like("llama"), llama_like("qwen2"), gpt2_like("gpt2"))


@settings(max_examples=8, deadline=None)
@given(config=CONFIGS, batch=st.integers(1, 3), seq=st.integers(1, 8))
def test_exact_flops_match_torch(config, batch, seq):
    if "n_positions" in config:
        seq = min(seq, config["n_positions"])
    assert _ours(config, batch, seq) == _torch_flops(config, batch, seq)
