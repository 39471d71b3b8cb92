"""The answer cache: same answers as an uncached run, no SymPy on a warm run, corrupt entries ignored."""

from __future__ import annotations

import errno
import hashlib
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


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder for in-process lookups and stores."""
    monkeypatch.setenv("SYMBOLIC_CACHE_DIR", str(tmp_path / "cache"))
    resultcache._MEMO.pop("secret", None)
    yield tmp_path / "cache"
    resultcache._MEMO.pop("secret", None)


def test_a_forged_entry_is_not_believed(cache):
    """An entry written without the secret (its checksum recomputed) is ignored, whatever it says."""
    resultcache.store(ARGV, '{"total": 7}\n')
    entry = resultcache.cache_dir() / f"{resultcache.key_for(ARGV)}.json"
    data = json.loads(entry.read_text())
    forged = '{"total": 1234}\n'
    for mac in (hashlib.sha256(forged.encode()).hexdigest(), data["mac"]):
        entry.write_text(json.dumps({"mac": mac, "output": forged, "sha256": mac}))
        assert resultcache.lookup(ARGV) is None
    resultcache.store(ARGV, '{"total": 7}\n')
    assert resultcache.lookup(ARGV) == '{"total": 7}\n'


def test_keys_depend_on_the_secret(cache):
    first = resultcache.key_for(ARGV)
    (cache / "secret").unlink()
    resultcache._MEMO.pop("secret", None)
    second = resultcache.key_for(ARGV)
    assert first and second and first != second


def test_the_secret_is_user_only(cache):
    assert resultcache.secret() is not None
    assert (cache / "secret").stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700


def test_a_secret_others_can_read_disables_the_cache(cache):
    resultcache.store(ARGV, "x\n")
    (cache / "secret").chmod(0o644)
    resultcache._MEMO.pop("secret", None)
    assert resultcache.key_for(ARGV) is None
    assert resultcache.lookup(ARGV) is None


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o722])
def test_a_folder_others_can_write_is_not_used(cache, mode):
    resultcache.store(ARGV, "x\n")
    assert resultcache.lookup(ARGV) == "x\n"
    resultcache.cache_dir().chmod(mode)
    assert resultcache.lookup(ARGV) is None
    resultcache.cache_dir().chmod(0o700)
    cache.chmod(mode)
    resultcache._MEMO.pop("secret", None)
    assert resultcache.lookup(ARGV) is None
    resultcache.store(ARGV, "y\n")
    cache.chmod(0o700)
    resultcache._MEMO.pop("secret", None)
    assert resultcache.lookup(ARGV) == "x\n"  # nothing was written while the folder was open to others


def test_a_fifo_where_an_entry_should_be_is_skipped_without_blocking(cache):
    resultcache.store(ARGV, "x\n")
    entry = resultcache.cache_dir() / f"{resultcache.key_for(ARGV)}.json"
    entry.unlink()
    os.mkfifo(entry)
    assert resultcache.lookup(ARGV) is None  # would block forever if the FIFO were opened for reading
    assert resultcache.read_regular(entry) is None


def test_a_full_disk_leaves_no_temporary_file(cache, monkeypatch):
    resultcache.store(["params", "gpt2", "--json"], "x\n")  # creates the folders
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, *args, **kwargs):
            self.handle = real_fdopen(fd, *args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resultcache.os, "fdopen", Full)
    resultcache.store(ARGV, "x\n")
    assert resultcache.lookup(ARGV) is None
    assert sorted(p.name for p in resultcache.cache_dir().iterdir() if p.name.startswith(".tmp")) == []


@pytest.mark.parametrize("arg", ["x" * 300, "a/" * 3000, "bad\0name"])
def test_long_or_odd_arguments_do_not_break_the_key(cache, arg):
    assert resultcache.key_for(["params", arg, "--json"]) is not None


def test_the_stamp_follows_package_files(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(resultcache, "_PACKAGE", str(package))
    monkeypatch.setattr(resultcache, "_MEMO", {})
    first = resultcache.package_stamp()
    resultcache._MEMO.clear()
    (package / "a.py").write_text("x = 22\n")
    assert resultcache.package_stamp() != first


def test_a_truncated_secret_disables_the_cache_and_none_is_left_half_written(cache):
    cache.mkdir(mode=0o700)
    (cache / "secret").write_bytes(b"short")
    (cache / "secret").chmod(0o600)
    assert resultcache.secret() is None and resultcache.key_for(ARGV) is None
    (cache / "secret").unlink()
    resultcache._MEMO.pop("secret", None)
    assert len(resultcache.secret()) == 32
    assert sorted(p.name for p in cache.iterdir()) == ["secret"]
