"""Fuzz the command line: generated invocations and config files, checked for what must never happen.

Usage::

    python tools/fuzz_cli.py                       # 10,000 invocations, 2 workers, summary on stdout
    python tools/fuzz_cli.py -n 500 --seed 3       # a smaller run
    python tools/fuzz_cli.py --json report.json    # also write every finding as JSON

Each invocation is drawn from a table of every command's options, mixing valid values with
malformed ones (wrong types, huge, negative, float, bool-like and numeric-string numbers, long
arguments, broken expressions, impossible settings) and from generated ``config.json`` files
(malformed JSON, non-UTF-8 bytes, deep nesting, fields of the wrong type or range). Most run
in-process in worker processes (fast); a share runs through the installed ``symbolic`` command
with its answer cache on. A parent watchdog kills a worker that runs past ``--timeout`` seconds.

What is recorded (each a count in the summary; the goal for every one is 0):

- ``tracebacks``: an exception escaped, a ``Traceback`` was printed, an exit status other than
  0 or 2, or a status-2 error that is not one ``error: ...`` line;
- ``hangs``: a run past the timeout;
- ``invalid JSON``: ``--json`` output (or ``sweep --format json``) that strict JSON rejects
  (``Infinity`` and ``NaN`` included);
- ``invariant breaks``: a negative byte/parameter/FLOP count, a non-integer byte or parameter
  count, a peak below its parts, states that are not the sum of their categories, MFU above
  100%, a count that changes when the same request is spelled another way (model alias, a
  shipped config given as a file, ``--opt=value``, a size with another unit, list options
  split or joined), and a cache that changes an answer or runs code it did not write.

The generator is deterministic for a given ``--seed``. CI runs a bounded sample through
``tests/test_fuzz_cli.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# ---- the generator -----------------------------------------------------------------------------

MODELS = (
    "gpt2",
    "llama2-7b",
    "llama3-8b",
    "mixtral-8x7b",
    "qwen2-57b-a14b",
    "deepseek-v3",
    "gemma2-9b",
    "phi3-mini",
    "falcon-7b",
    "opt-1.3b",
    "starcoder",
    "mistral-7b",
)
ALIASES = {"llama2-7b": "Llama-2-7B", "gpt2": "GPT2", "mixtral-8x7b": "Mixtral_8x7B", "llama3-8b": "llama 3 8b"}
SYMBOLS = ("d_model", "n_layers", "n_heads", "seq", "batch", "d_ffn", "n_vocab", "n_experts", "tp", "dp")
LONG = "x" * 300


def _huge_digits(rng: random.Random) -> str:
    return rng.choice(["9" * 300, "1" + "0" * 5000, "9" * 40])


def bad_int(rng: random.Random) -> str:
    """A string that is not an acceptable positive integer (or is one at an edge)."""
    return rng.choice(
        [
            "0",
            "-1",
            "-64",
            "1.5",
            "2.0",
            "1e3",
            "1e400",
            "inf",
            "nan",
            "true",
            "",
            " ",
            "abc",
            "0x10",
            "1_000",
            "٣",
            "10**30",
            "10^30",
            _huge_digits(rng),
            str(2**63),
            str(2**64 + 1),
            LONG,
            "1,2",
            "--json",
        ]
    )


def good_int(rng: random.Random, choices: tuple[int, ...]) -> str:
    return str(rng.choice(choices))


def int_value(rng: random.Random, choices: tuple[int, ...], bad: float = 0.15) -> str:
    return bad_int(rng) if rng.random() < bad else good_int(rng, choices)


def expr_text(rng: random.Random) -> str:
    """A symbol or expression as a user might type it (many broken)."""
    return rng.choice(
        [
            "seq",
            "d_model",
            "n_layers",
            "batch",
            "1/0",
            "d_model/0",
            "(((",
            ")",
            "d_model**10**10",
            "",
            " ",
            "seq,d_model",
            "__import__('os')",
            "d_model+",
            "2^16",
            "foo",
            "seq seq",
            LONG,
            "n_heads/2",
            "d_model*2",
        ]
    )


def path_text(rng: random.Random) -> str:
    return rng.choice(
        [
            "d_ffn=4*d_model",
            "d_ffn=8/3*d_model, n_heads=d_model/128",
            "d_ffn=((((((((2^16)^16)^16)^16)^16)^16)^16)^16)",
            "d_ffn=",
            "=d_model",
            "d_ffn=d_model/0",
            "d_ffn=d_model**d_model",
            "d_ffn=((",
            "n_heads=d_model/128,n_heads=2",
            LONG,
            "seq=2*seq",
        ]
    )


def size_text(rng: random.Random) -> str:
    return rng.choice(
        ["80GiB", "141GB", "24GiB", "1.5TB", "512MiB", "1000", "0", "-5GiB", "80gib", "80 XB", "1e400GB", "", LONG]
    )


@dataclass
class Case:
    """One invocation: its arguments, config files to write first, and its family (for the summary)."""

    argv: list[str]
    family: str
    files: dict[str, bytes] = field(default_factory=dict)
    via: str = "inprocess"  # or "installed"
    twin: list[str] | None = None  # an equivalent spelling whose answer must be the same


def _point(rng: random.Random, args: list[str]) -> None:
    if rng.random() < 0.7:
        args += ["--batch", int_value(rng, (1, 2, 3, 8))]
    if rng.random() < 0.7:
        args += ["--seq", int_value(rng, (1, 7, 128, 1024, 4096, 100000))]


def _parallel(rng: random.Random, args: list[str], names=("dp", "tp", "pp", "cp", "ep")) -> None:
    for name in names:
        if rng.random() < 0.3:
            choices = (1, 2, 3, 4, 5, 6, 7, 8, 12, 24, 96) if name == "dp" else (1, 2, 3, 4, 7, 8)
            args += [f"--{name}", int_value(rng, choices, 0.1)]


def _memory_options(rng: random.Random, args: list[str]) -> None:
    _point(rng, args)
    _parallel(rng, args)
    if rng.random() < 0.4:
        args += ["--zero", rng.choice(["0", "1", "2", "3", "4", "-1", "1.0", "x"])]
    if rng.random() < 0.2:
        args += [
            "--precision",
            rng.choice(
                [
                    "fp32",
                    "mixed",
                    "bf16",
                    "mixed-fp32-grads",
                    "custom:2,2,4,8",
                    "custom:1e400,2,4,8",
                    "custom:-1,2,4,8",
                    "custom:a,b",
                    "custom:2,2,4,8,2",
                    "custom:",
                    "nope",
                ]
            ),
        ]
    if rng.random() < 0.2:
        args += ["--optimizer", rng.choice(["adamw", "sgd", "lion", "adafactor", "adam-8bit", "none", "zzz"])]
    if rng.random() < 0.15:
        args += ["--lora-rank", int_value(rng, (1, 8, 64, 100000))]
    if rng.random() < 0.1:
        args += ["--lora-targets", rng.choice(["q_proj,v_proj", "q_proj", "zz", ",", "q_proj,,v_proj"])]
    if rng.random() < 0.1:
        args += ["--freeze", rng.choice(["embedding", "attention,mlp", "all", "zz", ""])]
    if rng.random() < 0.08:
        args += ["--qlora", rng.choice(["nf4", "nf4-dq"])]
    if rng.random() < 0.1:
        args += ["--hybrid-shard", int_value(rng, (1, 2, 4))]
    if rng.random() < 0.1:
        args += ["--sequence-parallel"]
    if rng.random() < 0.1:
        args += ["--stage", int_value(rng, (0, 1, 3))]
    if rng.random() < 0.1:
        args += ["--vocab-multiple", int_value(rng, (1, 64, 128))]
    for option, values in (
        ("--convention", ("exact", "basic", "megatron")),
        ("--recompute", ("none", "selective", "full")),
        ("--attention", ("eager", "sdpa", "flash")),
        ("--dtype", ("fp32", "bf16")),
        ("--device", ("cpu", "cuda")),
    ):
        if rng.random() < 0.1:
            args += [option, rng.choice(values)]


def _analysis_point(rng: random.Random, args: list[str]) -> None:
    if rng.random() < 0.3:
        args += ["--quantity", rng.choice(["params", "flops", "memory", "zz"])]
    _point(rng, args)
    if rng.random() < 0.15:
        args += ["--set", rng.choice(["n_layers=4", "d_model=0", "d_model=1.5", "zz=3", "n_layers", "seq=" + LONG])]
    if rng.random() < 0.1:
        args += ["--convention", rng.choice(["exact", "basic", "megatron", "zz"])]
    if rng.random() < 0.1:
        args += ["--recompute", rng.choice(["none", "selective", "full", "zz"])]


def gen_command(rng: random.Random, model: str) -> list[str]:
    """A random invocation of one command on ``model``."""
    command = rng.choices(
        [
            "params",
            "memory",
            "flops",
            "inference",
            "dominates",
            "sensitivity",
            "crossover",
            "fit",
            "sweep",
            "models",
            "derive",
            "plot",
            "none",
        ],
        weights=[14, 24, 14, 10, 6, 5, 4, 5, 8, 1, 1.2, 0.8, 1],
    )[0]
    if command == "none":
        return rng.choice([[], ["--version"], ["--help"], ["nope"], [LONG], ["params"], ["-x"]])
    if command == "models":
        return ["models"] + (["--json"] if rng.random() < 0.5 else [])
    args = [command, model]
    json_flag = rng.random() < 0.6
    if command == "params":
        if rng.random() < 0.2:
            args += ["--convention", rng.choice(["exact", "basic", "basic-gated", "zz"])]
        if rng.random() < 0.2:
            args += ["--lora-rank", int_value(rng, (1, 8, 100000))]
        if rng.random() < 0.15:
            args += ["--freeze", rng.choice(["embedding", "attention,mlp", "all", "zz"])]
    elif command == "memory":
        _memory_options(rng, args)
    elif command == "flops":
        _point(rng, args)
        if rng.random() < 0.3:
            args += ["--tokens", rng.choice(["300e9", "1e400", "1e999999999", "9" * 300, "-1", "abc", "1/3", "0"])]
        if rng.random() < 0.3:
            args += ["--devices", int_value(rng, (1, 8, 1024))]
        if rng.random() < 0.3:
            args += ["--peak", rng.choice(["312T", "989.5TFLOP/s", "1e400", "0", "-1T", "x"])]
        if rng.random() < 0.2:
            args += ["--mfu", rng.choice(["0.4", "1", "5", "0", "-0.1", "nan", "inf", "1e400"])]
        if rng.random() < 0.2:
            args += ["--step-time", rng.choice(["1.5", "0.0001", "10", "0", "inf", "1e-400"])]
        if rng.random() < 0.1:
            args += ["--causal"]
    elif command == "inference":
        _point(rng, args)
        if rng.random() < 0.2:
            args += ["--tp", int_value(rng, (1, 2, 3, 8))]
        if rng.random() < 0.2:
            args += ["--dtype", rng.choice(["bf16", "int8", "nf4", "fp32", "zz"])]
        if rng.random() < 0.2:
            args += ["--kv-dtype", rng.choice(["bf16", "fp8", "int8", "zz"])]
    elif command == "dominates":
        _analysis_point(rng, args)
        if rng.random() < 0.3:
            args += ["--grow", expr_text(rng)]
        if rng.random() < 0.2:
            args += ["--path", path_text(rng)]
        if rng.random() < 0.1:
            args += ["--top", int_value(rng, (1, 3, 100))]
        if rng.random() < 0.1:
            args += ["--depth", int_value(rng, (1, 2, 9))]
    elif command == "sensitivity":
        _analysis_point(rng, args)
        if rng.random() < 0.5:
            args += ["--wrt", expr_text(rng)]
        if rng.random() < 0.1:
            args += ["--term", rng.choice(["attention", "mlp", "zz", ""])]
    elif command == "crossover":
        _analysis_point(rng, args)
        args += ["--a", rng.choice(["attention", "mlp", "attention.scores", "optimizer", "zz"])]
        args += ["--b", rng.choice(["rest", "mlp", "activations", "zz"])]
        args += ["--over", expr_text(rng)]
    elif command == "fit":
        solve = rng.choice(["batch", "seq", "dp", "tp", "pp", "cp", "ep", "zz"])
        _memory_options(rng, args)
        args += ["--budget", size_text(rng), "--solve", solve]
        if rng.random() < 0.3:
            args += ["--max", int_value(rng, (8, 64, 1024, 10**30), 0.2)]
    elif command == "sweep":
        json_flag = False
        for option in rng.sample(["--batch", "--seq", "--dp", "--tp", "--pp", "--lora-rank", "--tokens"], 2):
            args += [
                option,
                rng.choice(
                    ["1,2,4", "1024:4096:x2", "1:4", "3", "0", "-1", "1.5", "10^30", "1:10**30", "", "a", "1,,2"]
                ),
            ]
        if rng.random() < 0.2:
            args += ["--grid", rng.choice(["n_layers=2:8:+2", "zz=1", "d_model=1.5", "n_layers=" + "9" * 300])]
        if rng.random() < 0.3:
            args += ["--quantity", rng.choice(["memory.peak", "params.total", "flops.total", "memory.states", "zz"])]
        if rng.random() < 0.3:
            args += ["--zero", rng.choice(["0", "1", "3", "5"])]
        if rng.random() < 0.3:
            args += ["--format", rng.choice(["csv", "json", "parquet", "zz"])]
        if rng.random() < 0.1:
            args += ["--float"]
        if rng.random() < 0.1:
            args += ["--fits", size_text(rng)]
        if rng.random() < 0.15:
            args += ["-o", rng.choice(["out.csv", "/nonexistent/dir/x.csv", "/proc/x.csv", ".", "sub"])]
    elif command == "derive":
        json_flag = False
        args += ["--seq", rng.choice(["128", "1024", "9" * 300, "0"])]
        if rng.random() < 0.3:
            args += ["--batch", rng.choice(["1", "9" * 300])]
        if rng.random() < 0.5:
            args += ["-o", rng.choice(["out.md", "/proc/x.md", ".", "/nonexistent/dir/x.md", "sub"])]
        if rng.random() < 0.2:
            args += ["--zero", rng.choice(["0", "3", "7"]), "--dp", rng.choice(["1", "3", "8"])]
    elif command == "plot":
        json_flag = False
        args += ["-o", rng.choice(["out.png", "out.svg", "/nonexistent/dir/x.png", "/proc/x.png", ".", "out.txt"])]
        if rng.random() < 0.5:
            args += ["--kind", "scaling", "--grow", expr_text(rng), "--range", rng.choice(["256:4096", "1:2", "0:1"])]
        else:
            args += ["--seq", "128"]
            if rng.random() < 0.5:
                args += ["--setting", rng.choice(["dp=8,zero=3", "dp=3,zero=1", "tp=2", "dp=x", "zero=9"])]
    if json_flag and command not in ("sweep", "derive", "plot"):
        args.append("--json")
    return args


# ---- generated config files ---------------------------------------------------------------------

BAD_VALUES: list[Any] = [
    -64,
    0,
    63.7,
    2.5,
    "64",
    "abc",
    True,
    None,
    [1],
    {"a": 1},
    "__BIG__",
    10**12,
    1000000000,
    1e400,  # written as a huge float literal below
    "0,1",
    5,
]


def _shipped_config(name: str) -> dict[str, Any]:
    data = json.loads((ROOT / "symbolic" / "configs" / f"{name}.json").read_text(encoding="utf-8"))
    return dict(data["config"])


def _dump(obj: Any) -> bytes:
    text = json.dumps(obj, default=str)
    return text.replace('"__INF__"', "1e400").replace('"__BIG__"', "1" + "0" * 5000).encode()


def gen_config(rng: random.Random) -> tuple[bytes, str]:
    """A config.json (bytes) and a label of how it was broken."""
    kind = rng.random()
    if kind < 0.04:
        return b"{not json", "malformed"
    if kind < 0.07:
        return b'{"model_type": "llama", "hidden_size": 4096, "name": "\xff\xfe"}', "non-utf8"
    if kind < 0.09:
        return b"[" * 100000 + b"]" * 100000, "deep-nesting"
    if kind < 0.11:
        return rng.choice([b"[]", b"null", b"3", b'"llama"', b""]), "not-an-object"
    base = _shipped_config(
        rng.choice(["llama2-7b", "qwen2-57b-a14b", "deepseek-v3", "gpt2", "mixtral-8x7b", "gemma2-9b"])
    )
    if kind < 0.16:
        return _dump(base), "valid:" + json.dumps(base)
    label = []
    for _ in range(rng.choice([1, 1, 2])):
        key = rng.choice(sorted(base) + ["model_type"])
        value = rng.choice(BAD_VALUES)
        if key == "model_type" and rng.random() < 0.5:
            value = rng.choice([["llama"], "nope", 7, None, {"x": 1}])
        base[key] = "__INF__" if value == 1e400 else value
        label.append(key)
    return _dump(base), "field:" + ",".join(label)


def generate(rng: random.Random, installed_share: float) -> Case:
    """One case: mostly shipped models, sometimes a generated config, an alias or a long name."""
    roll = rng.random()
    files: dict[str, bytes] = {}
    family = "shipped"
    if roll < 0.25:
        blob, label = gen_config(rng)
        files["cfg/config.json"] = blob
        model = rng.choice(["cfg/config.json", "cfg"])
        family = "config:" + label.split(":")[0]
    elif roll < 0.28:
        model = rng.choice([LONG, "nope", "", "/proc", "/dev/null", "-", "../" * 100])
        family = "model-name"
    else:
        model = rng.choice(MODELS)
    argv = gen_command(rng, model)
    if rng.random() < 0.03 and len(argv) > 2:
        argv.insert(rng.randrange(2, len(argv) + 1), rng.choice(["--" + LONG, LONG, "--json=" + LONG]))
        family = "long-argument"
    case = Case(argv, family, files)
    if family == "config:valid" and argv[:1] and argv[0] in ("params", "memory", "inference", "flops"):
        twin_config = respell_config(rng, json.loads(label.split(":", 1)[1]))
        case.files["cfg2/config.json"] = _dump(twin_config)
        case.twin = [("cfg2/config.json" if a == model else a) for a in argv]
        case.family = "equivalent-config"
        return case
    if rng.random() < installed_share:
        case.via = "installed"
    elif rng.random() < 0.08 and model in MODELS and argv and argv[0] in ("params", "memory", "inference", "flops"):
        case.twin = twin_of(rng, argv, model)
        case.family = "equivalent-spelling"
    return case


def respell_config(rng: random.Random, config: dict[str, Any]) -> dict[str, Any]:
    """The same config spelled another way: fields under the aliases transformers' config class
    accepts (``n_embd`` for ``hidden_size``), and some declared defaults written out."""
    sys.path.insert(0, str(ROOT))
    from symbolic.hf import hf_defaults

    table = hf_defaults().get(config.get("model_type"), {})
    to_alias: dict[str, str] = {}
    for alias, canonical in table.get("__attribute_map__", {}).items():
        to_alias.setdefault(canonical, alias)
    out = {to_alias.get(k, k) if rng.random() < 0.8 else k: v for k, v in config.items()}
    derived = table.get("__derived__", {})
    for key, value in table.items():
        if key.startswith("__") or key in derived or key in config or key in to_alias:
            continue
        if isinstance(value, bool | int | str) and rng.random() < 0.3:
            out[key] = value
    return out


def twin_of(rng: random.Random, argv: list[str], model: str) -> list[str]:
    """The same request spelled another way: alias, config file, --opt=value, joined lists."""
    twin = list(argv)
    choice = rng.choice(["alias", "file", "equals", "lists"])
    if choice == "alias" and model in ALIASES:
        twin[1] = ALIASES[model]
    elif choice == "file":
        twin[1] = str(ROOT / "symbolic" / "configs" / f"{model}.json")
    elif choice == "equals":
        out = [twin[0], twin[1]]
        i = 2
        while i < len(twin):
            if twin[i].startswith("--") and i + 1 < len(twin) and not twin[i + 1].startswith("-"):
                out.append(f"{twin[i]}={twin[i + 1]}")
                i += 2
            else:
                out.append(twin[i])
                i += 1
        twin = out
    else:
        out = []
        i = 0
        while i < len(twin):
            if twin[i] in ("--freeze", "--lora-targets") and i + 1 < len(twin) and "," in twin[i + 1]:
                for item in twin[i + 1].split(","):
                    out += [twin[i], item]
                i += 2
            else:
                out.append(twin[i])
                i += 1
        twin = out
    return twin


# ---- checking one answer ----------------------------------------------------------------------


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _numbers(obj: Any, path: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield path, obj


COUNT_KEYS = ("bytes", "parameters", "total", "trainable", "frozen", "weights", "kv_cache", "flops", "peak")


def invariants(argv: list[str], out: Any) -> list[str]:
    """What is wrong with a JSON answer (an empty list when nothing is)."""
    problems: list[str] = []
    if not isinstance(out, dict):
        return problems
    command = argv[0] if argv else ""
    for path, number in _numbers(out):
        leaf = path.rsplit(".", 1)[-1].split("[")[0]
        if path.startswith((".settings.", ".values.", ".sizes.")):
            continue  # inputs echoed back, not counts
        counted = leaf in COUNT_KEYS or path.startswith(".per_device.")
        if counted and number < 0:
            problems.append(f"negative count {path} = {number}")
        if counted and command in ("params", "memory", "inference", "fit") and not isinstance(number, int):
            problems.append(f"non-integer count {path} = {number}")
    per = out.get("per_device")
    if command in ("memory", "fit") and isinstance(per, dict):
        parts = [per.get(k) for k in ("weights", "gradients", "master", "optimizer")]
        if all(isinstance(p, int) for p in parts) and isinstance(per.get("states"), int):
            if sum(parts) != per["states"]:
                problems.append(f"states {per['states']} != sum of categories {sum(parts)}")
        peak = per.get("peak")
        if isinstance(peak, int | float):
            for k in ("states", "activations", "transient"):
                if isinstance(per.get(k), int | float) and peak < per[k]:
                    problems.append(f"peak {peak} below {k} {per[k]}")
            # the peak is the largest point of the step's timeline: at the end of the forward pass the
            # weights, master copies, optimizer state and activations are all alive (gradients may not
            # be: zero_grad(set_to_none=True) frees them), so the peak is at least their sum
            held = [per.get(k) for k in ("weights", "master", "optimizer", "activations")]
            if all(isinstance(h, int) for h in held) and peak < sum(held):
                problems.append(f"peak {peak} below weights + master + optimizer + activations {sum(held)}")
        terms = out.get("terms")
        if command == "memory" and isinstance(terms, list) and isinstance(per.get("states"), int):
            states = sum(
                t["bytes"] for t in terms if t.get("category") in ("weights", "gradients", "master", "optimizer")
            )
            if states != per["states"]:
                problems.append(f"states {per['states']} != sum of its terms {states}")
    if command == "params" and all(isinstance(out.get(k), int) for k in ("total", "trainable", "frozen")):
        if out["total"] != out["trainable"] + out["frozen"]:
            problems.append("params total != trainable + frozen")
        terms = out.get("terms") or []
        if terms and sum(t.get("parameters", 0) for t in terms) != out["total"]:
            problems.append("params total != sum of its terms")
    if command == "inference" and all(isinstance(out.get(k), int) for k in ("weights", "kv_cache", "total")):
        if out["total"] != out["weights"] + out["kv_cache"]:
            problems.append("inference total != weights + kv_cache")
    if command == "flops":
        util = out.get("utilization") or {}
        for k in ("mfu", "hfu"):
            if isinstance(util.get(k), int | float) and util[k] > 1:
                problems.append(f"{k} above 100%: {util[k]}")
        training = out.get("training") or {}
        if isinstance(training.get("mfu"), int | float) and training["mfu"] > 1:
            problems.append(f"assumed mfu above 100%: {training['mfu']}")
        for k in ("model_flops", "hardware_flops"):
            if isinstance(out.get(k), int | float) and isinstance(out.get("forward"), int | float):
                if out[k] < out["forward"]:
                    problems.append(f"{k} below the forward FLOPs")
    return problems


def _comparable(out: Any) -> Any:
    """An answer with the fields that legitimately differ between spellings removed."""
    if isinstance(out, dict):
        return {k: _comparable(v) for k, v in out.items() if k not in ("model", "source", "published_params")}
    if isinstance(out, list):
        return [_comparable(v) for v in out]
    return out


# ---- running ----------------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    code: int | None
    stdout: str
    stderr: str
    error: str | None  # an escaped exception's traceback
    seconds: float


def run_inprocess(argv: list[str]) -> tuple[int | None, str, str, str | None]:
    """Run ``symbolic.cli.main`` on ``argv`` with stdout/stderr captured (no answer cache)."""
    from symbolic.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | None
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv, use_cache=False)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # noqa: BLE001 - every escape is a finding
            code = None
            error = traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), error


def _write_files(case: Case, base: Path) -> None:
    for name, blob in case.files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    (base / "sub").mkdir(exist_ok=True)


def _worker(conn: Any, workdir: str) -> None:
    """A worker: receive cases, run each in-process, send back the result."""
    os.chdir(workdir)
    os.environ["SYMBOLIC_CACHE_DIR"] = str(Path(workdir) / "cache")
    os.environ["MPLBACKEND"] = "Agg"
    sys.setrecursionlimit(10000)
    import symbolic.cli  # noqa: F401 - warm the imports once

    while True:
        case = conn.recv()
        if case is None:
            return
        _write_files(case, Path(workdir))
        start, cpu = time.perf_counter(), time.process_time()
        code, out, err, error = run_inprocess(case.argv)
        twin = None
        if case.twin is not None and error is None:
            twin = run_inprocess(case.twin)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        conn.send((code, out[:2_000_000], err[:4000], error, seconds, twin and twin[:4], cpu))


class Pool:
    """Worker processes with a watchdog: a case past the timeout is a hang, its worker is replaced."""

    def __init__(self, workers: int, timeout: float, root: Path) -> None:
        self.timeout = timeout
        self.root = root
        self.ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self.slots: list[Any] = [self._start(i) for i in range(workers)]
        self.cpu = 0.0  # CPU seconds the workers spent on the cases

    def _start(self, i: int) -> Any:
        workdir = self.root / f"w{i}-{time.monotonic_ns()}"
        workdir.mkdir(parents=True)
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, str(workdir)), daemon=True)
        proc.start()
        return {"proc": proc, "conn": parent, "case": None, "since": 0.0, "i": i}

    def run(self, cases: list[Case], on_result: Any) -> None:
        from multiprocessing.connection import wait

        queue = list(reversed(cases))
        busy = 0
        while queue or busy:
            for slot in self.slots:
                if slot["case"] is None and queue:
                    case = queue.pop()
                    slot["conn"].send(case)
                    slot["case"], slot["since"] = case, time.monotonic()
                    busy += 1
            ready = wait([s["conn"] for s in self.slots if s["case"] is not None], timeout=0.2)
            now = time.monotonic()
            for slot in list(self.slots):
                if slot["case"] is None:
                    continue
                if slot["conn"] in ready:
                    try:
                        code, out, err, error, seconds, twin, cpu = slot["conn"].recv()
                    except (EOFError, OSError):
                        code, out, err, error, seconds, twin, cpu = None, "", "", "worker died", 0.0, None, 0.0
                    self.cpu += cpu
                    on_result(Result(slot["case"], code, out, err, error, seconds), twin)
                elif now - slot["since"] > self.timeout:
                    on_result(Result(slot["case"], None, "", "", "HANG", self.timeout), None)
                else:
                    continue
                if slot["case"] is not None and (not slot["proc"].is_alive() or now - slot["since"] > self.timeout):
                    slot["proc"].kill()
                    slot["proc"].join()
                    self.slots[self.slots.index(slot)] = slot = self._start(slot["i"])
                slot["case"] = None
                busy -= 1

    def close(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(Exception):
                slot["conn"].send(None)
            slot["proc"].join(timeout=2)
            if slot["proc"].is_alive():
                slot["proc"].kill()


def run_installed(case: Case, workdir: Path, timeout: float) -> Result:
    """Run a case through the installed ``symbolic`` command (answer cache on, in ``workdir``)."""
    os.makedirs(workdir, exist_ok=True)
    _write_files(case, workdir)
    exe = shutil.which("symbolic")
    command = [exe] if exe else [sys.executable, "-m", "symbolic"]
    env = {**os.environ, "SYMBOLIC_CACHE_DIR": str(workdir / "cache"), "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command + case.argv, cwd=workdir, env=env, capture_output=True, timeout=timeout, errors="replace"
        )
    except subprocess.TimeoutExpired:
        return Result(case, None, "", "", "HANG", timeout)
    return Result(case, done.returncode, done.stdout, done.stderr, None, time.perf_counter() - start)


# ---- cache attacks ----------------------------------------------------------------------------


def cache_attacks(workdir: Path, timeout: float) -> list[tuple[str, str]]:
    """Tamper with the answer cache and the compiled-code cache; findings are (kind, detail).

    Each query runs once to fill the caches, then every entry is forged (payload changed, any
    checksum recomputed), truncated, replaced by a FIFO, or its folder made world-writable; the
    rerun must print the uncached answer, never run the planted code, and never hang.
    """
    import hashlib

    findings: list[tuple[str, str]] = []
    workdir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("symbolic")
    command = [exe] if exe else [sys.executable, "-m", "symbolic"]
    marker = workdir / "PLANTED_CODE_RAN"
    queries = [
        ["params", "llama2-7b", "--json"],
        ["memory", "gpt2", "--batch", "1", "--seq", "128", "--json"],
        ["sweep", "gpt2", "--batch", "1,2", "--seq", "128,256", "--quantity", "params.total"],
    ]

    def call(argv: list[str], cache: Path, use: bool = True) -> tuple[int | None, str, str]:
        env = {**os.environ, "SYMBOLIC_CACHE_DIR": str(cache), "MPLBACKEND": "Agg"}
        if not use:
            env["SYMBOLIC_NO_RESULT_CACHE"] = "1"
        try:
            done = subprocess.run(
                command + argv, cwd=workdir, env=env, capture_output=True, timeout=timeout, errors="replace"
            )
        except subprocess.TimeoutExpired:
            return None, "", "HANG"
        return done.returncode, done.stdout, done.stderr

    attacks = ("forge", "truncate", "fifo", "world-writable")
    for argv in queries:
        for attack in attacks:
            cache = workdir / f"cache-{attack}-{argv[0]}"
            shutil.rmtree(cache, ignore_errors=True)
            truth = call(argv, cache / "none", use=False)
            call(argv, cache)  # fill
            entries = [p for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".")]
            for entry in entries:
                try:
                    data = json.loads(entry.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = None
                if attack == "forge" and isinstance(data, dict):
                    if isinstance(data.get("output"), str):
                        data["output"] = data["output"].replace('"total": ', '"total": 1234', 1)
                        data["sha256"] = hashlib.sha256(data["output"].encode()).hexdigest()
                    if isinstance(data.get("source"), str):
                        plant = f"open({str(marker)!r}, 'w').write('x')\n"
                        data["source"] = plant + data["source"]
                        with contextlib.suppress(Exception):  # recompute the checksum as the package does
                            import importlib

                            sys.path.insert(0, str(ROOT))
                            for name in ("symbolic.numeric.cache", "symbolic.numeric"):
                                checksum = getattr(importlib.import_module(name), "_checksum", None)
                                if checksum is not None:
                                    break
                            data["checksum"] = checksum(  # type: ignore[misc]
                                data.get("key", ""), data.get("mode", ""), tuple(data.get("args", ())), data["source"]
                            )
                    entry.write_text(json.dumps(data), encoding="utf-8")
                elif attack == "truncate":
                    blob = entry.read_bytes()
                    entry.write_bytes(blob[: len(blob) // 2])
                elif attack == "fifo":
                    entry.unlink()
                    os.mkfifo(entry)
                elif attack == "world-writable":
                    os.chmod(entry.parent, 0o777)
            marker.unlink(missing_ok=True)
            again = call(argv, cache)
            label = f"{attack} {' '.join(argv)}"
            if again[0] is None:
                findings.append(("hang", f"cache {label}"))
            elif marker.exists():
                findings.append(("invariant", f"cache {label}: ran code this installation did not write"))
            elif again[0] != truth[0] or again[1] != truth[1]:
                findings.append(("invariant", f"cache {label}: the answer changed"))
            elif "Traceback" in again[2]:
                findings.append(("traceback", f"cache {label}: {again[2].strip().splitlines()[-1]}"))
            shutil.rmtree(cache, ignore_errors=True)
    return findings


# ---- the whole run ----------------------------------------------------------------------------


@dataclass
class Report:
    invocations: int = 0
    tracebacks: int = 0
    hangs: int = 0
    invalid_json: int = 0
    invariant_breaks: int = 0
    exits: Counter = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    causes: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)  # total seconds by command
    runs: Counter = field(default_factory=Counter)  # invocations by command
    cpu: float = 0.0  # CPU seconds of the in-process invocations (independent of other load)

    def add(self, kind: str, argv: list[str], detail: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        cause = detail.strip().splitlines()[-1][:160] if detail.strip() else kind
        self.causes[(kind, cause)] += 1
        if len(self.findings) < 2000:
            self.findings.append({"kind": kind, "argv": [a[:200] for a in argv], "detail": detail[-1500:]})


def check(report: Report, result: Result, twin: Any) -> None:
    """Classify one result into the report's counts."""
    argv = result.case.argv
    report.invocations += 1 + (twin is not None)
    report.exits[result.code] += 1
    command = argv[0] if argv and not argv[0].startswith("-") else "(none)"
    report.runs[command] += 1
    report.seconds[command] += result.seconds
    if result.error == "HANG":
        report.add("hangs", argv, f"no answer within {result.seconds:.0f} s")
        return
    if result.error is not None:
        report.add("tracebacks", argv, result.error)
        return
    if "Traceback (most recent call last)" in result.stderr or result.code not in (0, 2):
        report.add("tracebacks", argv, f"exit {result.code}: {result.stderr}")
        return
    if result.code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if len(lines) != 1 or not lines[0].startswith(("error:", "usage:")) and "error" not in lines[0]:
            report.add("tracebacks", argv, f"a status-2 answer that is not one error line: {result.stderr[:300]!r}")
        return
    wants_json = "--json" in argv or (argv[:1] == ["sweep"] and "json" in argv and "-o" not in argv)
    if wants_json and result.stdout.strip():
        try:
            out = _strict_json(result.stdout)
        except ValueError as err:
            report.add("invalid_json", argv, f"{err}: {result.stdout[:200]!r}")
            return
        for problem in invariants(argv, out):
            report.add("invariant_breaks", argv, problem)
        if twin is not None:
            code2, out2, _err2, error2 = twin
            if error2 is not None:
                report.add("tracebacks", result.case.twin or [], error2)
            elif code2 != result.code:
                report.add("invariant_breaks", argv, f"equivalent spelling {result.case.twin} exits {code2}")
            else:
                try:
                    other = _strict_json(out2)
                except ValueError:
                    report.add("invalid_json", result.case.twin or [], out2[:200])
                    return
                if _comparable(other) != _comparable(out):
                    report.add("invariant_breaks", argv, f"equivalent spelling {result.case.twin} gives another answer")
    if argv[:1] == ["sweep"] and result.code == 0 and "--float" not in argv and result.stdout:
        lines = result.stdout.splitlines()
        if lines and not lines[0].startswith("{"):
            for line in lines[1:50]:
                cell = line.rsplit(",", 1)[-1]
                if cell and not cell.lstrip("-").isdigit():
                    report.add("invariant_breaks", argv, f"sweep wrote a non-integer count {cell!r}")
                    break


def fuzz(
    n: int, seed: int, workers: int, timeout: float, installed_share: float, attacks: bool, progress: bool = False
) -> Report:
    """Run ``n`` generated invocations; returns the report."""
    rng = random.Random(seed)
    cases = [generate(rng, installed_share) for _ in range(n)]
    report = Report()
    with tempfile.TemporaryDirectory(prefix="symbolic-fuzz-") as tmp:
        root = Path(tmp)
        inproc = [c for c in cases if c.via == "inprocess"]
        installed = [c for c in cases if c.via == "installed"]
        pool = Pool(workers, timeout, root)
        try:

            def on_result(result: Result, twin: Any) -> None:
                check(report, result, twin)
                if progress and report.invocations // 1000 != (report.invocations - 1 - (twin is not None)) // 1000:
                    elapsed = time.perf_counter() - started
                    sys.stderr.write(f"{report.invocations} invocations, {elapsed:.0f} s\n")

            started = time.perf_counter()
            pool.run(inproc, on_result)
        finally:
            pool.close()
        report.cpu += pool.cpu
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as ex:
            for _i, result in enumerate(
                ex.map(
                    lambda ic: run_installed(ic[1], root / f"installed-{ic[0] % workers}", timeout),
                    enumerate(installed),
                )
            ):
                check(report, result, None)
        if attacks:
            for kind, detail in cache_attacks(root / "attacks", min(timeout, 10.0)):
                kind = {"hang": "hangs", "traceback": "tracebacks", "invariant": "invariant_breaks"}[kind]
                report.add(kind, ["cache"], detail)
                report.invocations += 0
    return report


def summary(report: Report, seconds: float) -> str:
    lines = [
        f"invocations       {report.invocations}",
        f"tracebacks        {report.tracebacks}",
        f"hangs             {report.hangs}",
        f"invalid JSON      {report.invalid_json}",
        f"invariant breaks  {report.invariant_breaks}",
        f"wall time         {seconds:.1f} s",
        f"summed run time   {sum(report.seconds.values()):.1f} s (each invocation's own wall time, added up)",
        f"CPU time          {report.cpu:.1f} s in the in-process workers (what the runs cost on idle cores)",
        f"exit statuses     {dict(sorted(report.exits.items(), key=lambda kv: str(kv[0])))}",
        "seconds by command (runs, total, mean): "
        + ", ".join(
            f"{c} {report.runs[c]}/{report.seconds[c]:.0f}/{report.seconds[c] / report.runs[c]:.2f}"
            for c in sorted(report.runs, key=lambda c: -report.seconds[c])
        ),
    ]
    if report.causes:
        lines.append("distinct causes (count, kind, last line):")
        for (kind, cause), count in report.causes.most_common(60):
            lines.append(f"  {count:5}  {kind:16} {cause}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="invocations (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a run counts as a hang")
    parser.add_argument("--installed-share", type=float, default=0.01, help="share run via the installed command")
    parser.add_argument("--no-cache-attacks", action="store_true", help="skip tampering with the caches")
    parser.add_argument("--json", metavar="FILE", help="write the findings as JSON")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = fuzz(
        args.n, args.seed, args.workers, args.timeout, args.installed_share, not args.no_cache_attacks, progress=True
    )
    seconds = time.perf_counter() - start
    print(summary(report, seconds))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "summary": {
                        k: getattr(report, k)
                        for k in ("invocations", "tracebacks", "hangs", "invalid_json", "invariant_breaks")
                    },
                    "seconds": seconds,
                    "findings": report.findings,
                },
                indent=1,
            ),
            encoding="utf-8",
        )
    bad = report.tracebacks + report.hangs + report.invalid_json + report.invariant_breaks
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
