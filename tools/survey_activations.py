#!/usr/bin/env python
"""Survey of what autograd saves per decoder layer in Hugging Face model families.

For each family / setting, runs ``tests.harness.measure.measure_activations`` at two
tiny sizes whose dimensions all differ (size A and size B), matches the saved storages one
to one, and fits every storage's element count to a monomial in the model symbols
(b, s, h, a, kv, dh, f, V, E, k, ...) that reproduces *both* sizes exactly.  It then
prints, per family/setting, a table of the saved storages of a typical layer (layer 1),
of layer 0 (which also gets storages shared by all layers, first saved there) and outside
the layers, and the byte formula per layer, checked to reproduce the measured bytes at
both sizes (and at a third size C when --check-c).

    python tools/survey_activations.py                       # all families, all settings
    python tools/survey_activations.py llama gpt2 --quick    # fp32 eager, dropout 0, no recompute
    python tools/survey_activations.py --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import warnings
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from symbolic.hf import SUPPORTED_MODEL_TYPES  # noqa: E402
from tests.harness.measure import measure_activations, measure_held  # noqa: E402

ITEMSIZE = {
    "float32": 4,
    "bfloat16": 2,
    "float16": 2,
    "int64": 8,
    "int32": 4,
    "bool": 1,
    "uint8": 1,
    "float64": 8,
    "int8": 1,
}

# Two sizes with pairwise-different dimensions.  dh = h / a everywhere; kv < a (GQA).
SIZES = {
    "A": dict(b=3, s=11, h=40, a=4, kv=2, dh=10, f=52, V=136, E=5, k=2, fe=24, fs=36, rq=20, rkv=16, dn=8, dr=6, dv=6),
    "B": dict(
        b=2, s=13, h=72, a=6, kv=3, dh=12, f=76, V=152, E=7, k=4, fe=28, fs=44, rq=26, rkv=20, dn=12, dr=4, dv=14
    ),
    "C": dict(
        b=1, s=17, h=56, a=4, kv=2, dh=14, f=92, V=140, E=6, k=2, fe=20, fs=32, rq=22, rkv=14, dn=12, dr=4, dv=10
    ),
}
L = 2  # decoder layers
SYM_ORDER = ["b", "s", "h", "a", "kv", "dh", "f", "V", "E", "k", "fe", "fs", "rq", "rkv", "dn", "dr", "dv", "dq", "rkr"]
for _D in SIZES.values():
    _D["dq"] = _D["dn"] + _D["dr"]  # MLA q/k head dim (nope + rope)
    _D["rkr"] = _D["rkv"] + _D["dr"]  # MLA kv_a_proj output width (kv_lora_rank + rope)


P = "<dropout>"  # marks a field that takes the survey's dropout probability
TOKENS = dict(bos_token_id=0, eos_token_id=1, pad_token_id=2, tie_word_embeddings=False)
CORE = ["b", "s", "h", "a", "kv", "dh", "f", "V"]
LLAMA_FIELDS = dict(
    hidden_size="h",
    intermediate_size="f",
    num_hidden_layers=L,
    num_attention_heads="a",
    num_key_value_heads="kv",
    vocab_size="V",
    max_position_embeddings=128,
    attention_dropout=P,
)
GPT2_FIELDS = dict(
    n_embd="h", n_layer=L, n_head="a", n_inner="f", vocab_size="V", n_positions=128, resid_pdrop=P, embd_pdrop=P
) | dict(attn_pdrop=P)


def _rotary_fraction(D: dict) -> float:
    return D["dr"] / D["dh"]


# Per family: (fields, extra symbols). A field's value is a size symbol (a key of SIZES[...]), P for the
# dropout, a function of the sizes, or a literal.
FAMILY_FIELDS: dict[str, tuple[dict, list[str]]] = {
    "llama": (LLAMA_FIELDS, []),
    "olmo": (LLAMA_FIELDS, []),
    "qwen2": (LLAMA_FIELDS, []),
    "mistral": (LLAMA_FIELDS | dict(sliding_window=None), []),
    "qwen3": (LLAMA_FIELDS | dict(head_dim="dh"), []),
    "gemma": (LLAMA_FIELDS | dict(head_dim="dh"), []),
    "gemma2": (LLAMA_FIELDS | dict(head_dim="dh", query_pre_attn_scalar="dh", sliding_window=64), []),
    "mixtral": (
        LLAMA_FIELDS | dict(num_local_experts="E", num_experts_per_tok="k", sliding_window=None),
        ["E", "k"],
    ),
    "qwen2_moe": (
        LLAMA_FIELDS
        | dict(
            num_experts="E",
            num_experts_per_tok="k",
            moe_intermediate_size="fe",
            shared_expert_intermediate_size="fs",
            decoder_sparse_step=1,
        ),
        ["E", "k", "fe", "fs"],
    ),
    "phi3": (LLAMA_FIELDS | dict(resid_pdrop=P, embd_pdrop=P), []),
    "stablelm": (LLAMA_FIELDS | dict(hidden_dropout=P, partial_rotary_factor=_rotary_fraction), ["dr"]),
    "starcoder2": (
        LLAMA_FIELDS | dict(residual_dropout=P, embedding_dropout=P, sliding_window=None),
        [],
    ),
    "gpt2": (GPT2_FIELDS, []),
    "gpt_bigcode": (GPT2_FIELDS | dict(multi_query=True), []),
    "gptj": (GPT2_FIELDS | dict(rotary_dim="dr"), ["dr"]),
    "gpt_neox": (
        {k: v for k, v in LLAMA_FIELDS.items() if k != "num_key_value_heads"}
        | dict(rotary_pct=_rotary_fraction, hidden_dropout=P),
        ["dr"],
    ),
    "falcon": (
        {
            k: v
            for k, v in LLAMA_FIELDS.items()
            if k not in ("intermediate_size", "num_key_value_heads", "max_position_embeddings")
        }
        | dict(num_kv_heads="kv", new_decoder_architecture=True, alibi=False, hidden_dropout=P, ffn_hidden_size="f"),
        [],
    ),
    "opt": (
        {k: v for k, v in LLAMA_FIELDS.items() if k not in ("intermediate_size", "num_key_value_heads")}
        | dict(ffn_dim="f", word_embed_proj_dim="h", dropout=P, activation_dropout=P),
        [],
    ),
    "bloom": (dict(hidden_size="h", n_layer=L, n_head="a", vocab_size="V", attention_dropout=P, hidden_dropout=P), []),
}
DEEPSEEK_FIELDS = LLAMA_FIELDS | dict(
    num_key_value_heads="a",
    moe_intermediate_size="fe",
    n_routed_experts="E",
    num_experts_per_tok="k",
    n_shared_experts=1,
    first_k_dense_replace=1,
    n_group=1,
    topk_group=1,
    q_lora_rank="rq",
    kv_lora_rank="rkv",
    qk_nope_head_dim="dn",
    qk_rope_head_dim="dr",
    v_head_dim="dv",
    rope_scaling=None,
)
DEEPSEEK_SYMBOLS = ["b", "s", "h", "a", "f", "V", "E", "k", "fe", "rq", "rkv", "dn", "dr", "dv", "dq", "rkr"]


def family_config(fam: str, D: dict, dropout: float) -> tuple[dict, list[str]]:
    """HF config dict for a family at dims D, plus the symbols relevant to it."""
    if fam == "deepseek_v3":
        fields, symbols = DEEPSEEK_FIELDS, DEEPSEEK_SYMBOLS
    else:
        fields, extra = FAMILY_FIELDS[fam]
        symbols = CORE + extra
    config: dict = {"model_type": fam}
    for name, value in fields.items():
        if value is P:
            value = dropout
        elif callable(value):
            value = value(D)
        elif isinstance(value, str):
            value = D[value]
        config[name] = value
    return config | TOKENS, symbols


FAMILIES = list(SUPPORTED_MODEL_TYPES)

NO_DROPOUT_FIELDS = set()  # every family above has at least attention dropout


# ---------------------------------------------------------------- monomial fitting
def _monomials(symbols, maxdeg=4):
    out = [()]
    for d in range(1, maxdeg + 1):
        out += list(itertools.combinations_with_replacement(symbols, d))
    return out


_MONO_CACHE: dict = {}


def fit_monomial(numels: list[int], dims: list[dict], symbols: list[str]):
    """Monomial (tuple of symbols, with an integer coefficient) matching all sizes, or None."""
    key = tuple(symbols)
    if key not in _MONO_CACHE:
        _MONO_CACHE[key] = _monomials(symbols)
    best = None
    for coef in (1, 2, 3, 4):
        for m in _MONO_CACHE[key]:
            ok = True
            for n, D in zip(numels, dims, strict=False):
                v = coef
                for x in m:
                    v *= D[x]
                if v != n:
                    ok = False
                    break
            if ok:
                cand = (len(m), coef, [SYM_ORDER.index(x) for x in m], m)
                if best is None or cand < best:
                    best = cand
        if best is not None:
            return best[1], best[3]
    return None


def mono_str(coef, m) -> str:
    if m == ():
        return str(coef)
    c = Counter(m)
    parts = []
    for x in SYM_ORDER:
        if x in c:
            parts.append(x if c[x] == 1 else f"{x}^{c[x]}")
    s = "·".join(parts)
    return s if coef == 1 else f"{coef}·{s}"


def eval_mono(coef, m, D):
    v = coef
    for x in m:
        v *= D[x]
    return v


# ---------------------------------------------------------------- survey
def run_setting(fam, dtype, attn, dropout, recompute, sizes=("A", "B"), cross_check=False, experts=None):
    runs = []
    for sz in sizes:
        D = SIZES[sz]
        cfg, syms = family_config(fam, D, dropout)
        r = measure_activations(
            cfg,
            D["b"],
            D["s"],
            dtype=dtype,
            attn_implementation=attn,
            recompute=recompute,
            experts_implementation=experts,
        )
        if cross_check:
            hr = measure_held(
                cfg,
                D["b"],
                D["s"],
                dtype=dtype,
                attn_implementation=attn,
                recompute=recompute,
                experts_implementation=experts,
            )
            r["held_total"] = hr["total"]
        runs.append((D, r))
    return runs, syms


def analyse(runs, syms):
    (DA, rA) = runs[0]
    n = len(rA["tensors"])
    same = all(len(r["tensors"]) == n for _, r in runs)
    rows = []
    if not same:
        return None
    for i in range(n):
        tA = rA["tensors"][i]
        isz = ITEMSIZE.get(tA["dtype"], 0)
        numels = [r["tensors"][i]["bytes"] // isz for _, r in runs]
        fit = fit_monomial(numels, [D for D, _ in runs], syms)
        rows.append(dict(t=tA, fit=fit, isz=isz))
    return rows


def group_formula(rows, pred):
    terms = Counter()
    for r in rows:
        if not pred(r):
            continue
        if r["fit"] is None:
            terms[("?", r["t"]["bytes"])] += 1
            continue
        coef, m = r["fit"]
        terms[(m, r["isz"])] += coef
    parts = []
    for (m, isz), c in sorted(
        terms.items(), key=lambda kv: (str(kv[0][1]), len(kv[0][0]) if kv[0][0] != "?" else 9, str(kv[0][0]))
    ):
        if m == "?":
            parts.append(f"?{isz}B×{c}")
        else:
            parts.append(f"{mono_str(c, m)}×{isz}")
    return " + ".join(parts) if parts else "0", terms


def check_formula(terms, D):
    tot = 0
    for (m, isz), c in terms.items():
        if m == "?":
            return None
        tot += c * eval_mono(1, m, D) * isz
    return tot


def fmt_row(r):
    t = r["t"]
    sym = mono_str(*r["fit"]) if r["fit"] else f"?({t['bytes']}B)"
    shared = f" shared L{t['layers']}" if len(t["layers"]) > 1 else ""
    return f"    {sym:<16} {t['dtype']:<9} {str(t['shape']):<18} {t['module']:<40} {','.join(t['grad_fns'])}{shared}"


def report(fam, setting, runs, syms, verbose=True, out=None):
    rows = analyse(runs, syms)
    DA, rA = runs[0]
    label = f"{fam:<12} {setting}"
    if rows is None:
        print(
            f"## {label}: storage count differs between sizes: "
            f"{[len(r['tensors']) for _, r in runs]}; totals {[r['total'] for _, r in runs]}"
        )
        return None
    res = {"family": fam, "setting": setting, "totals": [r["total"] for _, r in runs]}
    print(
        f"## {label}  totals={res['totals']}"
        + (f" held={[r.get('held_total') for _, r in runs]}" if "held_total" in rA else "")
    )
    for name, pred in [
        ("layer 1 (typical)", lambda r: r["t"]["layer"] == 1),
        ("layer 0 (incl. storages shared with later layers)", lambda r: r["t"]["layer"] == 0),
        ("outside layers", lambda r: r["t"]["layer"] is None),
    ]:
        f, terms = group_formula(rows, pred)
        checks = []
        for D, r in runs:
            want = (
                r["per_layer"][1]
                if name.startswith("layer 1")
                else r["per_layer"][0]
                if name.startswith("layer 0")
                else r["outside_layers"]
            )
            got = check_formula(terms, D)
            checks.append("ok" if got == want else f"MISMATCH({got} vs {want})")
        print(f"  {name}: {f}   [{', '.join(checks)}]")
        res[name.split(" (")[0]] = f
        if verbose:
            for r in rows:
                if pred(r):
                    print(fmt_row(r))
    if out is not None:
        out.append(res)
    return res


def settings_for(args):
    if args.quick:
        return [("fp32", "eager", 0.0, "none")]
    dts = ["fp32", "bf16"]
    attns = ["eager", "sdpa"]
    drops = [0.0, 0.1]
    recs = ["none", "full"]
    return list(itertools.product(dts, attns, drops, recs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("families", nargs="*", default=FAMILIES)
    ap.add_argument("--quick", action="store_true", help="only fp32/eager/dropout 0/no recompute")
    ap.add_argument("--dtype", nargs="*")
    ap.add_argument("--attn", nargs="*")
    ap.add_argument("--dropout", nargs="*", type=float)
    ap.add_argument("--recompute", nargs="*")
    ap.add_argument("--experts", default=None, help="experts_implementation for MoE families")
    ap.add_argument("--brief", action="store_true", help="formulas only, no per-tensor rows")
    ap.add_argument("--check-c", action="store_true", help="also verify formulas at size C")
    ap.add_argument("--cross-check", action="store_true", help="also run measure_held (alive storages)")
    ap.add_argument("--json", help="write formulas to this JSON file")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except Exception:
        pass
    settings = settings_for(args)
    if args.dtype or args.attn or args.dropout is not None or args.recompute:
        settings = [
            s
            for s in itertools.product(
                args.dtype or ["fp32", "bf16"],
                args.attn or ["eager", "sdpa"],
                args.dropout if args.dropout is not None else [0.0, 0.1],
                args.recompute or ["none", "full"],
            )
        ]
    sizes = ("A", "B", "C") if args.check_c else ("A", "B")
    out = []
    for fam in args.families:
        for dtype, attn, p, rec in settings:
            setting = f"{dtype} {attn} dropout={p} recompute={rec}" + (
                f" experts={args.experts}" if args.experts else ""
            )
            try:
                runs, syms = run_setting(
                    fam, dtype, attn, p, rec, sizes=sizes, cross_check=args.cross_check, experts=args.experts
                )
            except Exception as e:  # keep surveying
                print(f"## {fam:<12} {setting}: ERROR {type(e).__name__}: {str(e)[:200]}")
                continue
            report(fam, setting, runs, syms, verbose=not args.brief, out=out)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
