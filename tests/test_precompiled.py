"""Answers before SymPy loads: the generated modules are current and give the SymPy path's answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symbolic.arch import Model
from symbolic.cli import build_parser
from symbolic.cli._common import term_json
from symbolic.cli.memory import memory_answer
from symbolic.errors import SymbolicError
from symbolic.hf import from_hf_config
from symbolic.model import parameter_counts, parameters
from symbolic.precompiled import generate, precompiled_memory, precompiled_params, structure_key
from symbolic.precompiled._index import KEYS
from symbolic.registry import load_model, shipped_models
from tests import hf_factories

FOLDER = Path(generate.__file__).parent


def sympy_answer(model: Model) -> dict:
    """The params answer computed from the SymPy expressions (what the command line printed before)."""
    terms = parameters(model)
    counts = parameter_counts(model, terms)
    return {
        "model": model.name,
        "convention": "exact",
        "unit": "parameters",
        "total": counts.total,
        "trainable": counts.trainable,
        "frozen": counts.frozen,
        "published_params": model.published_params,
        "sizes": dict(model.sizes),
        "formula": str(terms.view("collect")),
        "terms": [{**term_json(t), "parameters": counts.per_term[t.path], "trainable": t.trainable} for t in terms],
        "total_latex": sp.latex(terms.view("collect")),
    }


def test_generated_modules_are_current():
    """Regenerating from the expressions gives exactly the checked-in files (run
    ``python -m symbolic.precompiled.generate`` after changing a formula)."""
    wanted = generate.sources()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in FOLDER.glob("_m*.py")}
    on_disk["_index.py"] = (FOLDER / "_index.py").read_text(encoding="utf-8")
    assert sorted(on_disk) == sorted(wanted)
    stale = [name for name, text in wanted.items() if on_disk[name] != text]
    assert not stale, f"stale generated modules {stale}: run python -m symbolic.precompiled.generate"


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_is_answered_as_sympy_answers_it(name):
    model = load_model(name)
    assert structure_key(model) in KEYS
    assert precompiled_params(model) == sympy_answer(model)


_SIZE = st.integers(min_value=1, max_value=2**24)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(shipped_models())), data=st.data())
def test_random_sizes_of_every_structure_equal_sympy(name, data):
    """Any sizes (odd, 1, large) on a shipped structure: the generated code equals SymPy exactly."""
    base = load_model(name)
    sizes = {k: data.draw(_SIZE, label=k) for k in base.sizes}
    if "n_kv_heads" in sizes:  # the one shape rule among the sizes: kv heads divide the heads
        sizes["n_heads"] = sizes["n_kv_heads"] * data.draw(st.integers(1, 64), label="groups")
    if "top_k" in sizes:
        sizes["top_k"] = min(sizes["top_k"], sizes["n_experts"])
    try:
        model = base.with_sizes(**sizes)
    except SymbolicError:
        assume(False)
    if structure_key(model) not in KEYS:  # sizes that pick other exact rules: declined, SymPy answers
        assert precompiled_params(model) is None
        return
    assert precompiled_params(model) == sympy_answer(model)


FACTORIES = [
    hf_factories.llama_like("llama"),
    hf_factories.llama_like("mistral"),
    hf_factories.llama_like("qwen2"),
    hf_factories.gpt2_like("gpt2"),
    hf_factories.gpt_neox(),
    hf_factories.opt(),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.one_of(FACTORIES))
def test_random_configs_answered_or_declined(config):
    """A config.json of a modelled family: answered exactly as SymPy answers it when its structure
    has a generated module, declined (None: the SymPy path answers) otherwise."""
    try:
        model = from_hf_config(config, name="random")
    except SymbolicError:
        assume(False)
    got = precompiled_params(model)
    if structure_key(model) in KEYS:
        assert got == sympy_answer(model)
    else:
        assert got is None


def sympy_memory(model: Model, batch: int, seq: int) -> dict | None:
    """``symbolic memory MODEL --batch B --seq S --json`` computed from the SymPy expressions, or None
    when the command refuses it."""
    argv = ["memory", model.name, "--batch", str(batch), "--seq", str(seq), "--json"]
    try:
        return memory_answer(model, build_parser(argv).parse_args(argv))
    except SymbolicError:
        return None


def _json(obj: object) -> str:
    return json.dumps(obj, indent=2)  # the order of keys is part of the answer


# one shipped model per structure with a default memory answer, and a few without one
STRUCTURES = sorted({structure_key(load_model(n)): n for n in sorted(shipped_models(), reverse=True)}.values())


@pytest.mark.parametrize("name", STRUCTURES)
def test_memory_of_every_structure_as_sympy_answers_it(name):
    model = load_model(name)
    batch, seq = 3, min(1000, model.sizes.get("n_ctx", 1000))
    want = sympy_memory(model, batch, seq)
    got = precompiled_memory(model, batch, seq)
    assert got is None if want is None else _json(got) == _json(want)


_MEMORY_MODELS = [n for n in STRUCTURES if precompiled_memory(load_model(n), 1, 16) is not None]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_MEMORY_MODELS), data=st.data())
def test_memory_at_random_sizes_and_workloads_equals_sympy(name, data):
    """Random sizes (odd, 1, large), batch and sequence on a shipped structure: every number and every
    line of text of the memory answer equals the SymPy path's (bytes, exact)."""
    base = load_model(name)
    sizes = {k: data.draw(st.integers(1, 2**16), label=k) for k in base.sizes}
    if "n_kv_heads" in sizes:
        sizes["n_heads"] = sizes["n_kv_heads"] * data.draw(st.integers(1, 16), label="groups")
    if "top_k" in sizes:
        sizes["top_k"] = min(sizes["top_k"], sizes["n_experts"])
    try:
        model = base.with_sizes(**sizes)
    except SymbolicError:
        assume(False)
    batch = data.draw(st.integers(1, 64), label="batch")
    seq = data.draw(st.integers(1, 2**15), label="seq")
    got = precompiled_memory(model, batch, seq)
    if structure_key(model) not in KEYS:  # sizes that pick other exact rules (kv = 1, odd rotary): declined
        assert got is None
        return
    want = sympy_memory(model, batch, seq)
    assert got is None if want is None else _json(got) == _json(want)


_PROBE = """
import sys
from symbolic.cli import main
code = main(sys.argv[1:])
print("SYMPY" if "sympy" in sys.modules else "NO-SYMPY", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("command", ["params", "memory"])
@pytest.mark.parametrize("source", ["shipped", "config.json"])
def test_cli_answers_without_importing_sympy(tmp_path, source, command):
    """``symbolic params MODEL --json`` and ``symbolic memory MODEL --batch B --seq S --json`` with empty
    caches: SymPy is never imported, and the answer is the SymPy path's."""
    if source == "shipped":
        arg, model = "llama2-7b", load_model("llama2-7b")
    else:  # a new config of a modelled family: llama2-7b's structure with other sizes
        config = {**shipped_models()["llama2-7b"].config, "hidden_size": 2048, "num_hidden_layers": 7}
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        arg, model = str(path), load_model(str(path))
    env = {**os.environ, "SYMBOLIC_CACHE_DIR": str(tmp_path / "cache")}
    argv = (
        ["params", arg, "--json"] if command == "params" else ["memory", arg, "--batch", "2", "--seq", "300", "--json"]
    )
    run = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env, check=True)
    assert run.stderr.strip().splitlines()[-1] == "NO-SYMPY"
    want = sympy_answer(model) if command == "params" else sympy_memory(model, 2, 300)
    assert run.stdout == _json(want) + "\n"


def test_other_options_take_the_sympy_path():
    from symbolic.precompiled import cli_answer

    assert cli_answer(["params", "llama2-7b", "--json"]) is not None
    assert cli_answer(["params", "llama2-7b", "--json", "--convention", "basic"]) is None
    assert cli_answer(["params", "llama2-7b", "--json", "--freeze", "all"]) is None
    assert cli_answer(["params", "llama2-7b"]) is None  # the table is printed by the full command
    assert cli_answer(["params", "no-such-model", "--json"]) is None  # the full command says why
    assert cli_answer(["memory", "llama2-7b", "--batch", "1", "--seq", "64", "--json"]) is not None
    assert cli_answer(["memory", "llama2-7b", "--batch=1", "--seq=64", "--json"]) is not None
    assert cli_answer(["memory", "llama2-7b", "--batch", "1", "--seq", "64", "--json", "--dp", "2"]) is None
    assert cli_answer(["memory", "llama2-7b", "--batch", "0", "--seq", "64", "--json"]) is None
    assert cli_answer(["memory", "llama2-7b", "--batch", "1", "--json"]) is None
    assert cli_answer(["memory", "gpt2", "--batch", "1", "--seq", "4096", "--json"]) is None  # past n_ctx
