"""A cache of command answers, so a repeated ``--json`` query imports no symbolic machinery.

The key is a SHA-256 of everything the answer depends on: the command line, the package's own
source and data files (formulas, shipped configs, transformers defaults), the SymPy, torch,
transformers and Python versions, and the bytes of a ``config.json`` named on the command line. Any change to any of them
gives a new key, so an entry is never stale. Entries carry their key and a checksum of their
payload; a truncated, edited or foreign entry is ignored and rewritten. Writes are atomic
(temporary file + ``os.replace``), so two processes filling the same entry both end up correct.

This module imports nothing heavy: it is what makes a warm ``symbolic memory ... --json`` fast.
Set ``SYMBOLIC_NO_RESULT_CACHE=1`` to bypass it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

__all__ = ["CACHED_COMMANDS", "cache_root", "cache_dir", "key_for", "lookup", "store"]

CACHED_COMMANDS = frozenset({"params", "memory", "inference", "flops"})
_FORMAT = "symbolic-result-v1"
_PACKAGE = Path(__file__).resolve().parent


def cache_root() -> Path:
    """The folder of every symbolic cache: ``$SYMBOLIC_CACHE_DIR`` or ``~/.cache/symbolic``."""
    return Path(os.environ.get("SYMBOLIC_CACHE_DIR") or Path.home() / ".cache" / "symbolic")


def cache_dir() -> Path:
    """Where answers are cached: the ``results`` folder of :func:`cache_root`."""
    return cache_root() / "results"


def _package_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*")):
        if path.suffix in (".py", ".json", ".j2") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def key_for(argv: Sequence[str]) -> str | None:
    """The cache key of a command line, or None when its answer is not cached.

    Only ``--json`` answers of pure commands (params, memory, inference, flops) are cached.
    """
    if os.environ.get("SYMBOLIC_NO_RESULT_CACHE") or not argv or argv[0] not in CACHED_COMMANDS:
        return None
    if "--json" not in argv or any(a in ("-h", "--help") for a in argv):
        return None
    digest = hashlib.sha256()
    # torch and transformers: a traced answer (--convention traced, types without rules) depends on them
    versions = (_version("sympy"), _version("torch"), _version("transformers"))
    for part in (_FORMAT, sys.version, *versions, _package_digest(), json.dumps(list(argv))):
        digest.update(part.encode())
        digest.update(b"\0")
    for arg in argv[1:]:
        path = Path(arg)
        if path.is_dir():
            path = path / "config.json"
        if not arg.startswith("-") and path.is_file():
            digest.update(path.read_bytes())  # a user's config: its content, not its name
    return digest.hexdigest()


def lookup(argv: Sequence[str]) -> str | None:
    """The cached answer (stdout text) of ``argv``, or None (not cached, corrupt, or not cacheable)."""
    key = key_for(argv)
    if key is None:
        return None
    try:
        entry = json.loads((cache_dir() / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("output"), str):
        return None
    if hashlib.sha256(entry["output"].encode()).hexdigest() != entry.get("sha256"):
        return None
    return entry["output"]


def store(argv: Sequence[str], output: str) -> None:
    """Cache ``output`` as the answer of ``argv`` (atomically); silently skips what cannot be cached."""
    key = key_for(argv)
    if key is None:
        return
    folder = cache_dir()
    entry = {"key": key, "sha256": hashlib.sha256(output.encode()).hexdigest(), "output": output}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        return  # a read-only or full disk only costs speed
