"""Fast tests of the activation-measurement harness (tests.harness.measure)."""

import pytest

torch = pytest.importorskip("torch")

from tests.harness import measure  # noqa: E402


def _count(fn, *params):
    return measure.measure_callable(fn, exclude=params)


class Tiny(torch.nn.Module):
    """loss = (relu(x @ W1) @ W2).sum(): mm saves x (for W1's grad), relu saves its output,
    the second mm saves that same output (for W2's grad) -> shared storage."""

    def __init__(self, d=8, f=16):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(d, f))
        self.w2 = torch.nn.Parameter(torch.randn(f, d))

    def forward(self, x):
        return (torch.relu(x @ self.w1) @ self.w2).sum()


def test_matmul_saves_input_and_relu_output_shared():
    m = Tiny()
    x = torch.randn(4, 8)
    n, loss = _count(lambda: m(x), *m.parameters())
    # x (4x8 fp32) saved by the first mm (needed for grad of w1); relu output (4x16) saved
    # by relu and by the second mm -> one storage, counted once.  w1/w2 are parameters.
    assert n == 4 * 8 * 4 + 4 * 16 * 4
    loss.backward()  # hooks must not break backward


def test_parameters_excluded_and_bf16_itemsize():
    w = torch.nn.Parameter(torch.randn(8, 8, dtype=torch.bfloat16))
    x = torch.randn(2, 8, dtype=torch.bfloat16, requires_grad=True)
    n, _ = _count(lambda: (x @ w).sum(), w)
    assert n == 2 * 8 * 2  # only x (w is excluded even though mm saves it)


def test_views_of_one_storage_count_once_full_storage():
    x = torch.randn(6, 10, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(5, 5))
    # two column-slices of the same storage saved by two matmuls -> one storage, full size
    n, _ = _count(lambda: (x[:, :5] @ w).sum() + (x[:, 5:] @ w).sum(), w)
    assert n == 6 * 10 * 4


def test_freed_nodes_not_counted():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(4, 4))

    def fn():
        _ = x.exp() @ w  # graph dropped immediately -> saved tensors die with it
        return (x * 2).sum()  # mul by a python scalar saves nothing

    n, _ = _count(fn, w)
    assert n == 0


def test_layer_index_parsing():
    assert measure.layer_index("model.layers.3.self_attn") == 3
    assert measure.layer_index("transformer.h.11.mlp.c_fc") == 11
    assert measure.layer_index("model.decoder.layers.0") == 0
    assert measure.layer_index("lm_head") is None
    assert measure.layer_index("model.norm") is None


_LLAMA = dict(
    model_type="llama",
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    vocab_size=64,
    max_position_embeddings=32,
    attention_dropout=0.0,
    tie_word_embeddings=False,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=2,
)


@pytest.fixture(scope="module")
def warm():
    """Import transformers and build the model class once (setup time, not test time)."""
    pytest.importorskip("transformers")
    measure.build_model(_LLAMA)


def test_llama_tiny_matches_formula_and_held_crosscheck(warm):
    b, s, h, a, f, V = 2, 8, 32, 4, 48, 64
    r = measure.measure_activations(_LLAMA, b, s)
    layer = 4 * (10 * b * s * h + 2 * b * s + 4 * b * s * f + b * a * s * s)
    shared_rope = 4 * 2 * s * (h // a)  # cos and sin, saved by every layer, counted once (layer 0)
    outside = 4 * (3 * b * s * h + b * s + b * s * V + 1) + 8 * b * s
    assert r["per_layer"] == [layer + shared_rope, layer]
    assert r["outside_layers"] == outside
    assert r["total"] == sum(r["per_layer"]) + outside
    held = measure.measure_held(_LLAMA, b, s)
    assert held["total"] == r["total"]
    # parameters and input_ids never appear
    assert all(t["dtype"] != "int64" or t["shape"] == [b * s] for t in r["tensors"])


def test_llama_tiny_checkpointing_keeps_inputs_and_closure(warm):
    b, s, h, a, _f, _V = 2, 8, 32, 4, 48, 64
    r = measure.measure_activations(_LLAMA, b, s, recompute="full")
    held = measure.measure_held(_LLAMA, b, s, recompute="full")
    assert r["total"] == held["total"]
    # per layer: hidden_states input (b·s·h fp32); once: eager 4-D mask b·1·s·s fp32, cos, sin
    # (s·d_h each, fp32) and position_ids (1·s int64) captured by the checkpoint closures
    closure = 4 * b * s * s + 2 * 4 * s * (h // a) + 8 * s
    assert r["per_layer"] == [4 * b * s * h + closure, 4 * b * s * h]
