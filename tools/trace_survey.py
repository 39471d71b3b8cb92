"""Which of transformers' causal-LM model types trace, and why the rest do not.

For every model type in ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` this builds a small config (the
class defaults with the usual size fields shrunk: 2 layers, width 64, 4 heads, 128 tokens, 4
experts) and builds the real model from it first: a small config the real model rejects, or whose
real training step fails, says nothing about tracing (``no-small-config``). Then it runs
``symbolic.trace.trace`` (SDPA, or eager where a type has no SDPA path; batch and sequence
symbolic, or at b = 2, s = 9 where the code fixes a size) and compares, at b = 2, s = 9, the
traced saved bytes with autograd's on the real model (``tests/harness/measure.py``) and the
traced parameters with the real model's. Each type runs in a worker process with a CPU-time
budget (``--cpu-seconds``, counted by the process, so a loaded machine does not shorten it) and
a wall-clock backstop; a type that runs out is recorded as such.

One JSON object per type goes to ``--out`` (default ``docs/trace-survey.jsonl``, sorted by type;
types already there are skipped unless ``--redo``)::

    {"model_type": ..., "outcome": "traces" | "traces-at-point" | "fails" | "no-small-config",
     "reason": one line (why it fails, or which size the code fixes), "attention": ...,
     "traced_bytes": ..., "measured_bytes": ..., "bytes_agree": ..., "traced_params": ...,
     "real_params": ..., "params_agree": ..., "cpu_seconds": ...}

    nice -n 10 python tools/trace_survey.py [TYPE ...] [--cpu-seconds 60] [--redo]
    python tools/trace_survey.py --summary        # the counts and reasons docs/activations.md quotes
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "docs" / "trace-survey.jsonl"
BATCH, SEQ = 2, 9
MAX_PARAMS = 50_000_000  # parameters of a small config's model, at most (200 MB in fp32)
MEMORY_LIMIT = 8 << 30  # bytes of address space a worker may take
OUTCOMES = ("traces", "traces-at-point", "fails", "no-small-config")
SMALL = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 128,
    "head_dim": 16,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "kv_lora_rank": 16,
    "q_lora_rank": 24,
    "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
    "n_group": 1,
    "topk_group": 1,
    "first_k_dense_replace": 1,
    "max_position_embeddings": 256,
    # state-space (Mamba-style) layers: heads x head width = 2 x hidden, small state and chunks
    "mamba_n_heads": 8,
    "mamba_d_head": 16,
    "mamba_d_state": 16,
    "mamba_chunk_size": 16,
    "state_size": 16,
    "ssm_state_size": 16,
    "chunk_size": 16,
    "num_heads": 8,
    # per-layer inputs (Gemma 4), the sparse-attention indexer (DeepSeek-V3.2), vision towers' depth
    "vocab_size_per_layer_input": 128,
    "hidden_size_per_layer_input": 16,
    "index_n_heads": 4,
    "index_head_dim": 16,
    "qk_head_dim": 16,
    "depth": 2,
}
TOKENS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def small_config(model_type: str, adjusted: bool = False) -> dict:
    """A small config dict for ``model_type``: the class defaults with the size fields shrunk.

    ``adjusted`` (tried where the real model rejects the plain one): per-layer lists such as
    ``layer_types`` cut to the first layers, ``head_dim`` set to the rotary part of multi-head latent
    attention, a rotary width inside the small heads.

    >>> small_config("llama")["hidden_size"]
    64
    """
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type)
    defaults = config.to_dict()
    renamed = getattr(config, "attribute_map", {}) or {}  # gpt2: hidden_size is n_embd
    cfg: dict[str, object] = {"model_type": model_type, **_shrunk(defaults, renamed, adjusted)}
    for key, sub in defaults.items():  # a composite model's parts (text_config, vision_config): shrunk alike
        if isinstance(sub, dict) and isinstance(sub.get("model_type"), str) and _shrunk(sub, {}, False):
            cfg[key] = {**sub, **_shrunk(sub, _attribute_map(sub["model_type"]), adjusted)}
    return cfg


def _shrunk(defaults: dict, renamed: dict, adjusted: bool) -> dict:
    """The fields of one config's ``defaults`` (a dict) that :func:`small_config` changes: size fields
    at the small sizes, token ids distinct and small, and with ``adjusted`` the adjustments it
    names; ``renamed``: the config class's attribute map."""
    out: dict[str, object] = {}
    for common, value in SMALL.items():
        key = renamed.get(common, common)
        present = defaults.get(key)
        if key in defaults and (present is None or (isinstance(present, int) and not isinstance(present, bool))):
            out[key] = value
    for key in TOKENS:
        if isinstance(defaults.get(key), int):
            out[key] = TOKENS.index(key)
    if not adjusted:
        return out
    layers = renamed.get("num_hidden_layers", "num_hidden_layers")
    for key, value in defaults.items():  # per-layer lists (layer_types): the first layers' entries
        if isinstance(value, list) and layers in out and len(value) == defaults.get(layers) and len(value) > 2:
            out[key] = value[: SMALL["num_hidden_layers"]]
        if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):  # per_layer_config
            out[key] = {k: v for k, v in value.items() if int(k) < SMALL["num_hidden_layers"]}
    if "qk_rope_head_dim" in out and "head_dim" in out:  # MLA: head_dim is the rotary part
        out["head_dim"] = out["qk_rope_head_dim"]
    if isinstance(defaults.get("rotary_dim"), int):  # a rotary part within the 16-wide heads
        out["rotary_dim"] = 8
    return out


def _attribute_map(model_type: str) -> dict:
    """The attribute map of ``model_type``'s config class ({} where transformers registers no such type)."""
    from transformers import AutoConfig

    try:
        return dict(getattr(AutoConfig.for_model(model_type), "attribute_map", {}) or {})
    except (KeyError, ValueError):
        return {}


class _OutOfTime(BaseException):  # not an Exception: no handler below may turn it into an answer
    pass


def _out_of_time(signum: int, frame: object) -> None:
    raise _OutOfTime


def _line(err: BaseException) -> str:
    return f"{type(err).__name__}: {_clean(str(err))}"[:220]


def _clean(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"0x[0-9a-f]{6,}", "0x...", text)  # addresses differ from run to run
    return re.sub(r"/\S*/(?:site-packages|build)/", "", text)  # where torch was built or installed


def _check_size(cfg: dict) -> None:
    """Refuse a small config whose model still has more than ``MAX_PARAMS`` parameters (counted
    on the meta device): the parts the size fields do not reach (vision towers, codecs) keep
    their default sizes, too big to build for real on a shared machine."""
    import torch
    import transformers

    from symbolic.trace.run import hf_config

    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config(cfg))
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_PARAMS:
        raise ValueError(
            f"the small config still has {params:,} parameters (parts the size fields do not reach keep their "
            f"default sizes), over the {MAX_PARAMS:,} built for real here"
        )


def _measure(cfg: dict) -> tuple[str, int, int]:
    """(attention, saved bytes at b = 2, s = 9, parameters) from the real model on CPU."""
    import torch

    from tests.harness.measure import _prepare, measure_activations

    _check_size(cfg)
    for attention in ("sdpa", "eager"):
        try:
            model = _prepare(cfg, "fp32", attention, "none", 0)
        except ValueError as err:
            if attention == "sdpa" and "does not support an attention implementation" in str(err):
                continue
            raise
        params = sum(p.numel() for p in model.parameters())
        with torch.random.fork_rng():
            total = measure_activations(cfg, BATCH, SEQ, attn_implementation=attention, model=model)["total"]
        return attention, total, params
    raise AssertionError("unreachable")


def _traced(cfg: dict, attention: str) -> tuple[str, str, int, int]:
    """(outcome, note, saved bytes at b = 2, s = 9, parameters) from ``symbolic.trace``."""
    from symbolic import symbols as S
    from symbolic.trace import TraceOptions, trace

    result = trace(cfg, TraceOptions(attention=attention, at=(BATCH, SEQ)), use_cache=False)
    at = {S.n_layers: result.sizes["n_layers"], S.batch: BATCH, S.seq: SEQ}
    traced = int(result.activations.total.subs(at))
    params = int(result.parameters.total.subs(at))
    outcome = "traces-at-point" if any(n.startswith("traced at") for n in result.notes) else "traces"
    return outcome, _clean(" ".join(result.notes))[:220], traced, params


def survey_one(model_type: str, cpu_seconds: int) -> dict:
    """One row of the survey for ``model_type`` (see the module doc), within ``cpu_seconds`` of CPU."""
    from symbolic.errors import SymbolicError

    row: dict = {"model_type": model_type}
    started = time.process_time()
    signal.signal(signal.SIGPROF, _out_of_time)
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    stage = "the real model"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                cfg = small_config(model_type)
                attention, measured, real_params = _measure(cfg)
            except Exception as err:
                try:
                    cfg = small_config(model_type, adjusted=True)
                    attention, measured, real_params = _measure(cfg)
                    row["small_config"] = "adjusted"
                except Exception:
                    row["outcome"], row["reason"] = "no-small-config", f"the real model: {_line(err)}"
                    return row
            stage = "the trace"
            row["attention"] = attention
            outcome, note, traced, traced_params = _traced(cfg, attention)
        row["outcome"] = outcome
        if note:
            row["reason"] = note
        row["traced_bytes"], row["measured_bytes"], row["bytes_agree"] = traced, measured, traced == measured
        row["traced_params"], row["real_params"] = traced_params, real_params
        row["params_agree"] = traced_params == real_params
    except _OutOfTime:
        row["outcome"] = "no-small-config" if stage == "the real model" else "fails"
        row["reason"] = f"{stage}: no answer within {cpu_seconds} s of CPU"
    except SymbolicError as err:  # the real model ran: the trace failed
        row["outcome"] = "fails"
        row["reason"] = f"{err.field}: {_clean(err.message)}"[:240]
    except Exception as err:  # the trace failed where the real model runs
        row["outcome"], row["reason"] = "fails", _line(err)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        row["cpu_seconds"] = round(time.process_time() - started, 1)
    return row


def _worker(types: list[str], cpu_seconds: int) -> int:
    """Survey ``types`` in this process, one JSON line each on stdout (``{"begin": type}`` first)."""
    import logging

    import torch
    import transformers

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))  # a failed allocation, not the OOM killer
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ["SYMBOLIC_NO_TRACE_CACHE"] = "1"
    for model_type in types:
        print(json.dumps({"begin": model_type}), flush=True)
        print(json.dumps(survey_one(model_type, cpu_seconds)), flush=True)
    return 0


def load(path: Path) -> dict[str, dict]:
    """The rows already in ``path``, by model type (empty when there is no file)."""
    rows: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["model_type"]] = row
    return rows


def _save(path: Path, rows: dict[str, dict]) -> None:
    text = "".join(json.dumps(rows[k], sort_keys=True) + "\n" for k in sorted(rows))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run(types: list[str], out: Path, cpu_seconds: int) -> None:
    """Survey ``types`` in worker processes (nice'd), adding each row to ``out`` as it comes.

    A worker that gives no answer for a type within a wall-clock backstop (four times the CPU
    budget plus a minute) is stopped, the type is recorded as not answering, and a new worker takes
    the rest.
    """
    rows = load(out)
    todo = list(types)
    backstop = 4 * cpu_seconds + 60
    while todo:
        cmd = [sys.executable, __file__, "--worker", "--cpu-seconds", str(cpu_seconds), *todo]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=lambda: os.nice(10)
        )
        assert proc.stdout is not None
        current, deadline = None, time.monotonic() + backstop
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # the backstop: the type gave no answer
                proc.kill()
                proc.wait()
                if current is not None:
                    rows[current] = {
                        "model_type": current,
                        "outcome": "fails",
                        "reason": f"no answer within {backstop} s of wall-clock time (the worker was stopped)",
                    }
                    todo.remove(current)
                    print(json.dumps(rows[current]), flush=True)
                    _save(out, rows)
                break
            line = proc.stdout.readline()
            if not line:  # the worker ended (or died)
                code = proc.wait()
                if current is not None and current in todo:
                    rows[current] = {"model_type": current, "outcome": "fails", "reason": f"the process died ({code})"}
                    todo.remove(current)
                    _save(out, rows)
                break
            msg = json.loads(line)
            if "begin" in msg:
                current, deadline = msg["begin"], time.monotonic() + backstop
                continue
            rows[msg["model_type"]] = msg
            todo.remove(msg["model_type"])
            current = None
            print(line.rstrip(), flush=True)
            _save(out, rows)


def summary(rows: dict[str, dict]) -> str:
    """The survey's counts, with the reasons grouped, as Markdown (what docs/activations.md quotes)."""
    counts = Counter(r["outcome"] for r in rows.values())
    traced = [r for r in rows.values() if r["outcome"] in ("traces", "traces-at-point")]
    agree = sum(1 for r in traced if r.get("bytes_agree"))
    params = sum(1 for r in traced if r.get("params_agree"))
    lines = [
        f"- types surveyed: {len(rows)}",
        *(f"- {o}: {counts.get(o, 0)}" for o in OUTCOMES),
        f"- traced saved bytes equal to the measured ones at b = {BATCH}, s = {SEQ}: {agree} of {len(traced)}",
        f"- traced parameters equal to the real model's: {params} of {len(traced)}",
    ]
    for outcome in OUTCOMES[1:]:
        names = sorted(k for k, r in rows.items() if r["outcome"] == outcome)
        if names:
            lines.append(f"- {outcome}: {', '.join(names)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("types", nargs="*", help="model types (default: every causal-LM type)")
    parser.add_argument("--cpu-seconds", type=int, default=60, help="CPU budget per type (default 60)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--redo", action="store_true", help="survey types already in --out again")
    parser.add_argument("--summary", action="store_true", help="print the summary of --out and stop")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_seconds < 1:
        parser.error("--cpu-seconds must be a positive number of seconds")
    if args.summary:
        print(summary(load(args.out)))
        return 0
    if args.worker:
        return _worker(args.types, args.cpu_seconds)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    unknown = sorted(set(args.types) - set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES))
    if unknown:
        parser.error(f"not causal-LM model types in transformers: {', '.join(unknown)}")
    types = args.types or sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    done = load(args.out)
    todo = [t for t in types if args.redo or t not in done]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    run(todo, args.out, args.cpu_seconds)
    print(summary(load(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
