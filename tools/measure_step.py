"""Compare the training-step peak of ``symbolic memory`` with the CPU allocator's, family by family.

For each small config (seven families), batch, sequence, recipe and optimizer implementation,
runs three real training steps on CPU (``tests/harness/step.py``: torch.profiler allocation
events over the third step) and evaluates ``symbolic memory CONFIG --batch B --seq S --precision R
--optimizer adamw --optimizer-impl I --dtype D --attention sdpa --device cpu`` in-process.

    python tools/measure_step.py                    # the full table (minutes)
    python tools/measure_step.py --families llama --recipes fp32 --quick
    python tools/measure_step.py --json out.json    # also write the rows
    python tools/measure_step.py --draw 40 --seed 1 # 40 randomly drawn configs and settings
    python tools/measure_step.py --draw 40 --seed 1 --wide  # every family, wider models, b up to 4

Prints one row per case: measured peak, ours, the error, and the phase each puts the peak in.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# small configs, every dimension distinct where the family allows it
FAMILIES: dict[str, dict] = {
    "llama": dict(
        model_type="llama",
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=1000,
        max_position_embeddings=2048,
    ),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=3, n_head=4, vocab_size=1000, n_positions=1024),
    "mistral": dict(
        model_type="mistral",
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1000,
        max_position_embeddings=2048,
    ),
    "qwen2": dict(
        model_type="qwen2",
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1000,
        max_position_embeddings=2048,
    ),
    "gemma": dict(
        model_type="gemma",
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=3,
        head_dim=16,
        num_attention_heads=4,
        num_key_value_heads=1,
        vocab_size=1000,
        max_position_embeddings=2048,
    ),
    "gpt_neox": dict(
        model_type="gpt_neox",
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=3,
        num_attention_heads=4,
        vocab_size=1000,
        max_position_embeddings=2048,
    ),
    "mixtral": dict(
        model_type="mixtral",
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        vocab_size=1000,
        max_position_embeddings=2048,
    ),
}
DTYPE = {"fp32": "fp32", "bf16": "bf16", "amp-bf16": "bf16", "amp-fp16": "fp16"}


def draw_case(rng) -> tuple[str, dict, int, int, str, str]:
    """One random case: (family, config, batch, seq, recipe, impl); every size drawn, vocabularies
    from far below the MLP width (the layers' backward holds the peak) to far above it (the loss)."""
    family = rng.choice(sorted(FAMILIES))
    heads = rng.choice([2, 4])
    d_head = rng.choice([8, 16])
    hidden = heads * d_head
    vocab = rng.choice([rng.randint(40, 200), rng.randint(200, 3000)])
    layers = rng.randint(1, 3)
    ffn = 2 * rng.randint(8, 120)
    if family == "gpt2":
        cfg = dict(model_type="gpt2", n_embd=hidden, n_layer=layers, n_head=heads, vocab_size=vocab, n_positions=1024)
        if rng.random() < 0.5:
            cfg["n_inner"] = ffn
    else:
        cfg = dict(FAMILIES[family], hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads)
        cfg.update(intermediate_size=ffn, vocab_size=vocab)
        if "num_key_value_heads" in cfg:
            cfg["num_key_value_heads"] = rng.choice([1, heads])
        if family == "gemma":
            cfg["head_dim"] = d_head
        if family == "mixtral":  # torch._grouped_mm wants 16-byte strides
            cfg["intermediate_size"] = 8 * rng.randint(2, 30)
            cfg["num_local_experts"] = rng.randint(2, 5)
            cfg["num_experts_per_tok"] = rng.randint(1, 2)
    recipe = rng.choice(["fp32", "bf16", "amp-bf16", "amp-fp16"])
    impl = rng.choice(["for-loop", "foreach"])
    return family, cfg, rng.randint(1, 2), rng.choice([rng.randint(8, 64), rng.randint(64, 384)]), recipe, impl


# every family the CPU's SDPA path builds (bloom and gemma2 have no SDPA implementation in transformers)
WIDE_FAMILIES = (
    "llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "olmo", "stablelm", "starcoder2", "mixtral",
    "qwen2_moe", "deepseek_v3", "gpt2", "gpt_bigcode", "gptj", "gpt_neox", "opt", "falcon",
)  # fmt: skip


def draw_wide(rng) -> tuple[str, dict, int, int, str, str]:
    """One random case over every family with an SDPA path: widths up to 512 (mostly 128 or more),
    one to four sequences of 8 to 400 tokens (any length), every recipe measured on CPU, for-loop
    and foreach; returns (family, config, batch, seq, recipe, impl)."""
    family = rng.choice(WIDE_FAMILIES)
    heads = rng.choice([2, 4, 8])
    d_head = rng.choice([16, 32, 64]) if rng.random() < 0.8 else 8
    if family == "deepseek_v3":  # latent attention: its own widths, kept small (slow to build)
        heads, d_head = rng.choice([2, 4]), 16
    hidden = heads * d_head
    kv = rng.choice([d for d in (1, 2, heads) if heads % d == 0])
    vocab = rng.choice([rng.randint(40, 200), rng.randint(200, 3000)])
    layers = rng.randint(1, 3)
    ffn = 2 * rng.randint(hidden // 2, 2 * hidden)
    moe_ffn = 8 * rng.randint(2, max(2, hidden // 16))  # torch._grouped_mm wants 16-byte strides
    base = dict(
        model_type=family,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_position_embeddings=1024,
    )
    if family in ("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "olmo", "stablelm", "starcoder2"):
        cfg = dict(base, num_key_value_heads=kv)
        if family in ("qwen3", "gemma"):
            cfg["head_dim"] = d_head
        if family == "phi3":
            cfg["pad_token_id"] = None  # the class default lies outside a small vocabulary
    elif family == "mixtral":
        cfg = dict(base, num_key_value_heads=kv, intermediate_size=moe_ffn)
        cfg.update(num_local_experts=rng.randint(2, 5), num_experts_per_tok=rng.randint(1, 2))
    elif family == "qwen2_moe":
        cfg = dict(base, num_key_value_heads=kv, moe_intermediate_size=moe_ffn)
        cfg.update(num_experts=rng.randint(2, 5), num_experts_per_tok=2)
        cfg["shared_expert_intermediate_size"] = rng.choice([0, 8 * rng.randint(2, max(2, hidden // 8))])
    elif family == "deepseek_v3":
        cfg = dict(base, num_key_value_heads=heads, moe_intermediate_size=moe_ffn)
        cfg.update(n_routed_experts=rng.randint(2, 4), n_group=1, topk_group=1, num_experts_per_tok=2)
        cfg.update(n_shared_experts=rng.randint(0, 1), first_k_dense_replace=rng.randint(0, layers))
        cfg.update(q_lora_rank=rng.choice([None, 16]), kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8)
        cfg["v_head_dim"] = 8
    elif family in ("gpt2", "gpt_bigcode", "gptj"):
        cfg = dict(model_type=family, n_embd=hidden, n_layer=layers, n_head=heads, vocab_size=vocab, n_positions=1024)
        if rng.random() < 0.5:
            cfg["n_inner"] = ffn
        if family == "gpt_bigcode":
            cfg["multi_query"] = rng.random() < 0.5
        if family == "gptj":
            cfg["rotary_dim"] = rng.choice([4, 8])
    elif family == "gpt_neox":
        cfg = dict(base, use_parallel_residual=rng.random() < 0.5)
    elif family == "opt":
        cfg = dict(base, word_embed_proj_dim=hidden, ffn_dim=ffn, do_layer_norm_before=rng.random() < 0.8)
        del cfg["intermediate_size"]
    else:  # falcon
        new = rng.random() < 0.5
        cfg = dict(base, new_decoder_architecture=new, multi_query=rng.random() < 0.5, bias=rng.random() < 0.5)
        del cfg["intermediate_size"]
        cfg["parallel_attn"] = True if new else rng.random() < 0.5
        if new:
            cfg["num_kv_heads"] = kv
    recipe = rng.choice(["fp32", "bf16", "amp-bf16", "amp-fp16"])
    impl = rng.choice(["for-loop", "foreach"])
    return family, cfg, rng.randint(1, 4), rng.choice([rng.randint(8, 64), rng.randint(64, 400)]), recipe, impl


def ours(config: dict, batch: int, seq: int, recipe: str, impl: str) -> dict:
    """The memory answer's peak for one case (bytes) and the phase of its timeline it falls in."""
    from symbolic.hf import from_hf_config
    from symbolic.memory import Workload, memory

    model = from_hf_config(config)
    report = memory(
        model,
        Workload(batch, seq),
        precision=recipe,
        optimizer="adamw",
        optimizer_impl=impl,
        dtype=DTYPE[recipe],
        attention="sdpa",
        device="cpu",
    )
    return {"peak": report.bytes("peak"), "phase": report.peak_point()["phase"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--recipes", default="fp32,bf16,amp-bf16")
    p.add_argument("--impls", default="for-loop,foreach")
    p.add_argument("--sizes", default="1x128,2x128,2x512", help="BxS pairs")
    p.add_argument("--quick", action="store_true", help="one size (2x128)")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the rows as a Markdown table")
    p.add_argument("--draw", type=int, default=0, help="instead of the grid, draw this many random cases")
    p.add_argument("--seed", type=int, default=0, help="seed of --draw")
    p.add_argument("--wide", action="store_true", help="with --draw: every family, widths to 512, b up to 4")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    from tests.harness.step import measure_step

    sizes = ["2x128"] if args.quick else args.sizes.split(",")
    rows = []
    print(
        f"{'family':9s} {'recipe':8s} {'impl':8s} {'b':>2s} {'s':>4s} {'measured':>11s} {'ours':>11s} {'error':>8s}  phase (measured / ours)"
    )
    cases = []
    if args.draw:
        import random

        rng = random.Random(args.seed)
        cases = [(draw_wide if args.wide else draw_case)(rng) for _ in range(args.draw)]
    else:
        for fam in args.families.split(","):
            for size in sizes:
                b, s = (int(x) for x in size.split("x"))
                for recipe in args.recipes.split(","):
                    for impl in args.impls.split(","):
                        cases.append((fam, FAMILIES[fam], b, s, recipe, impl))
    for fam, cfg, b, s, recipe, impl in cases:
        got = measure_step(cfg, b, s, recipe, impl, marks=False)
        mine = ours(cfg, b, s, recipe, impl)
        err = 100 * (mine["peak"] / got["peak"] - 1)
        rows.append(
            dict(
                family=fam,
                config=cfg,
                recipe=recipe,
                impl=impl,
                batch=b,
                seq=s,
                measured=got["peak"],
                ours=mine["peak"],
                error_pct=err,
                measured_phase=got["peak_phase"],
                our_phase=mine["phase"],
            )
        )
        print(
            f"{fam:9s} {recipe:8s} {impl:8s} {b:2d} {s:4d} {got['peak']:11d} {mine['peak']:11d} {err:+7.3f}%  "
            f"{got['peak_phase']} / {mine['phase']}" + (f"  {cfg}" if args.draw else ""),
            flush=True,
        )
    worst = max(abs(r["error_pct"]) for r in rows)
    print(f"{len(rows)} cases, largest |error| {worst:.3f}%, within 1%: {sum(abs(r['error_pct']) <= 1 for r in rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        lines = [
            "| family | recipe | impl | b | s | measured (bytes) | ours (bytes) | error | peak in (measured / ours) |"
        ]
        lines.append("|---|---|---|---:|---:|---:|---:|---:|---|")
        for r in rows:
            lines.append(
                f"| {r['family']} | {r['recipe']} | {r['impl']} | {r['batch']} | {r['seq']} | {r['measured']:,} | "
                f"{r['ours']:,} | {r['error_pct']:+.3f}% | {r['measured_phase']} / {r['our_phase']} |"
            )
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
