"""Family facts are data: one table, a reason per field, and no family name inside the builders."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import symbolic
from symbolic.families import FAMILY, FamilyRules, rules_for
from symbolic.hf import SUPPORTED_MODEL_TYPES, from_hf_config

BUILDERS = Path(symbolic.__file__).parent / "formulas"


def test_every_supported_model_type_has_rules() -> None:
    assert set(FAMILY) == set(SUPPORTED_MODEL_TYPES)


def test_every_field_says_why() -> None:
    source = inspect.getsource(FamilyRules)
    for f in dataclasses.fields(FamilyRules):
        line = next(line for line in source.splitlines() if line.strip().startswith(f"{f.name}:"))
        assert "#" in line and len(line.split("#", 1)[1].strip()) > 20, f"{f.name} has no reason"


def test_no_family_name_in_the_formulas() -> None:
    names = "|".join(re.escape(n) for n in FAMILY)
    literal = re.compile(rf"[\"']({names})[\"']")
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in BUILDERS.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line) or re.search(r"\.family\s*(==|!=|in\b)", line)
    ]
    assert not offenders, offenders


def test_the_family_grep_finds_a_name() -> None:
    names = "|".join(re.escape(n) for n in FAMILY)
    assert re.search(rf"[\"']({names})[\"']", 'if fam == "gemma2":')


def test_run_time_facts_come_from_the_config() -> None:
    # dropout, partial rotary, sliding pattern and soft-capping are read into the Arch
    base = {
        "model_type": "gpt_neox",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "intermediate_size": 256,
        "vocab_size": 100,
        "rotary_pct": 0.25,
        "hidden_dropout": 0.1,
    }
    arch = from_hf_config(base).arch
    assert arch.rotary_fraction == dataclasses.replace(arch).rotary_fraction == 0.25
    assert arch.dropout.residual == 0.1 and arch.dropout.embedding == 0.1
    gemma2 = from_hf_config(
        {
            "model_type": "gemma2",
            "hidden_size": 64,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "num_hidden_layers": 2,
            "intermediate_size": 128,
            "vocab_size": 100,
            "sliding_window": 8,
        }
    ).arch
    assert gemma2.attention.sliding.value == "alternate"
    assert gemma2.attention.softcap and gemma2.final_softcap


def test_unknown_family_names_the_described_ones() -> None:
    try:
        rules_for("nope")
    except symbolic.errors.SymbolicError as err:
        assert "llama" in err.message
    else:  # pragma: no cover
        raise AssertionError("no error")
