"""The answer cache: same answers as an uncached run, no SymPy on a warm run, corrupt entries ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from symbolic import resultcache

ARGV = ["memory", "llama2-7b", "--batch", "1", "--seq", "512", "--json"]


def _run(args, env, code="import sys; from symbolic.cli import main; sys.exit(main())"):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "SYMBOLIC_CACHE_DIR": str(tmp_path / "cache")}


def test_warm_answer_equals_cold_answer_and_imports_no_sympy(env):
    cold = _run(ARGV, env)
    assert cold.returncode == 0
    probe = "import sys; from symbolic.cli import main; code = main(); assert 'sympy' not in sys.modules, 'sympy imported'; sys.exit(code)"
    warm = _run(ARGV, env, probe)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout == cold.stdout
    uncached = _run(ARGV, {**env, "SYMBOLIC_NO_RESULT_CACHE": "1"})
    assert uncached.stdout == cold.stdout
    assert json.loads(cold.stdout)["per_device"]["weights"] > 0


def test_corrupt_entry_is_ignored_and_rewritten(env, monkeypatch, tmp_path):
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", env["SYMBOLIC_CACHE_DIR"])
    assert _run(ARGV, env).returncode == 0
    entry = resultcache.cache_dir() / f"{resultcache.key_for(ARGV)}.json"
    good = entry.read_text()
    data = json.loads(good)
    data["output"] = data["output"].replace('"unit"', '"unot"')  # edited payload, stale checksum
    entry.write_text(json.dumps(data))
    assert resultcache.lookup(ARGV) is None
    entry.write_text(good[: len(good) // 2])  # truncated
    assert resultcache.lookup(ARGV) is None
    again = _run(ARGV, env)
    assert '"unot"' not in again.stdout and json.loads(again.stdout)["unit"] == "bytes"
    assert resultcache.lookup(ARGV) == again.stdout


def test_key_follows_the_config_file_content(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4}))
    argv = ["params", str(path), "--json"]
    first = resultcache.key_for(argv)
    path.write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, "n_layer": 3, "n_head": 4}))
    assert resultcache.key_for(argv) != first


@pytest.mark.parametrize(
    "argv", [["memory", "llama2-7b"], ["derive", "llama2-7b", "--json"], ["params", "--help", "--json"], []]
)
def test_only_json_answers_of_pure_commands_are_cached(argv):
    assert resultcache.key_for(argv) is None


def test_errors_are_not_cached(env):
    bad = ["memory", "llama2-7b", "--batch", "1", "--seq", "512", "--tp", "3", "--json"]
    first = _run(bad, env)
    assert first.returncode == 2
    assert _run(bad, env).returncode == 2
