"""A cache of command answers, so a repeated ``--json`` query imports no symbolic machinery.

A cache is an optimisation: it must never change an answer nor run code this installation did not
write. So:

- Entries are authenticated with a per-installation secret (:func:`secret`: 32 random bytes in the
  cache folder, readable by its owner only). An entry's file name is an HMAC-SHA256 of what the
  answer depends on, and its content carries an HMAC of that name and the answer: an entry written
  by anyone without the secret, or edited, is ignored and rewritten.
- The answer depends on the command line, the package's own files (formulas, shipped configs,
  transformers defaults, templates), SymPy's release, the installed torch and transformers (a traced
  answer depends on them), the Python version and the bytes of any
  ``config.json`` named on the command line. The package is identified by a *stamp* of its files'
  names, sizes and modification times (``os.stat``, no reading or hashing of the package per call):
  any edit or reinstall gives new keys, so an entry is never stale.
- A cache folder that is group- or world-writable, or owned by another user, is not used; folders
  are created user-only (``0o700``). Only regular files are read (a FIFO or device where an entry
  should be is skipped without blocking). Writes are atomic (temporary file + ``os.replace``), and a
  failed write (a full disk) leaves no temporary file behind.

This module imports nothing heavy: it is what makes a warm ``symbolic memory ... --json`` fast.
Set ``SYMBOLIC_NO_RESULT_CACHE=1`` to bypass it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CACHED_COMMANDS",
    "cache_root",
    "cache_dir",
    "secure_dir",
    "secret",
    "package_stamp",
    "read_regular",
    "write_atomic",
    "key_for",
    "lookup",
    "store",
]

CACHED_COMMANDS = frozenset({"params", "memory", "inference", "flops"})
_FORMAT = "symbolic-result-v2"
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_STAMPED = (".py", ".json", ".j2")
_SECRET_BYTES = 32
_MAX_ENTRY = 64 << 20  # bytes; a larger file where an entry should be is not ours
_MEMO: dict[str, object] = {}


def cache_root() -> Path:
    """The folder of every symbolic cache: ``$SYMBOLIC_CACHE_DIR`` or ``~/.cache/symbolic``."""
    return Path(os.environ.get("SYMBOLIC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "symbolic"))


def cache_dir() -> Path:
    """Where answers are cached: the ``results`` folder of :func:`cache_root`."""
    return cache_root() / "results"


def _safe(st: os.stat_result) -> bool:
    owner = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISDIR(st.st_mode) and owner and not st.st_mode & 0o022


def secure_dir(path: str | os.PathLike[str], create: bool = False) -> bool:
    """Whether ``path`` is a folder only its owner (this user) can write to; ``create`` makes it ``0o700``.

    A group- or world-writable folder, one owned by another user, or a non-folder gives False, as
    does a folder above it (up to the cache root) that fails the same test.
    """
    root = os.path.abspath(cache_root())
    path = os.path.abspath(os.fspath(path))
    chain = [path]
    while chain[-1] != root and os.path.dirname(chain[-1]) != chain[-1] and chain[-1].startswith(root):
        chain.append(os.path.dirname(chain[-1]))
    for folder in reversed(chain):
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            if not create:
                return False
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
                st = os.stat(folder)
            except OSError:
                return False
        except OSError:
            return False
        if not _safe(st):
            return False
    return True


def read_regular(path: str | os.PathLike[str], limit: int = _MAX_ENTRY) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; None otherwise.

    Opens without blocking (a FIFO where a file should be is skipped, never waited on) and
    without following a final symbolic link.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically (user-only temporary file, then ``os.replace``).

    Returns whether it was written; on any failure (a full disk, say) nothing is left behind.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def secret() -> bytes | None:
    """This installation's cache secret (32 bytes), created on first use; None if no safe one exists.

    It lives in :func:`cache_root` as ``secret``, mode ``0o600``; a secret file that others can
    read or write, or that is not a regular file, disables the caches rather than be trusted.
    """
    root = os.fspath(cache_root())
    memo = _MEMO.get("secret")
    if isinstance(memo, tuple) and memo[0] == root:
        return memo[1]
    value = None
    if secure_dir(root, create=True):
        path = os.path.join(root, "secret")
        value = _read_secret(path)
        if value is None and not os.path.lexists(path):
            # written whole to a private temporary file, then linked into place: the secret file
            # appears complete or not at all, and a second process racing us keeps the first one
            tmp = os.path.join(root, f".tmp-secret-{os.getpid()}-{os.urandom(6).hex()}")
            if write_atomic(tmp, os.urandom(_SECRET_BYTES)):
                try:
                    os.link(tmp, path)
                except OSError:
                    pass  # another process made it first (or links are not supported): use what is there
                finally:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
            value = _read_secret(path)
    _MEMO["secret"] = (root, value)
    return value


def _read_secret(path: str) -> bytes | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
        return None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return None
    data = read_regular(path, _SECRET_BYTES)
    return data if data is not None and len(data) == _SECRET_BYTES else None


def package_stamp() -> str:
    """A fingerprint of this installation (hex): every package file's name, size and modification time.

    Also SymPy's release file (its version) and the Python version. Costs one ``stat`` per file:
    nothing is read or hashed but the names and numbers.
    """
    memo = _MEMO.get("stamp")
    if isinstance(memo, str):
        return memo
    parts = [_FORMAT, sys.version]
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(_STAMPED):
                st = os.stat(os.path.join(folder, name))
                parts.append(f"{os.path.relpath(os.path.join(folder, name), _PACKAGE)}:{st.st_size}:{st.st_mtime_ns}")
    templates = os.path.join(os.path.dirname(_PACKAGE), "templates")
    for folder, dirs, files in os.walk(templates):  # the templates of a source checkout
        dirs.sort()
        for name in sorted(files):
            st = os.stat(os.path.join(folder, name))
            parts.append(f"templates/{name}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(_sympy_release())
    # torch and transformers: a traced answer (--convention traced, types without rules) depends on them
    parts += [_installed(name, file) for name, file in (("torch", "version.py"), ("transformers", "__init__.py"))]
    stamp = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    _MEMO["stamp"] = stamp
    return stamp


def _sympy_release() -> str:
    """SymPy's ``release.py`` (which holds its version), found without importing SymPy."""
    for entry in sys.path:
        path = os.path.join(entry or ".", "sympy", "release.py")
        data = read_regular(path, 1 << 16)
        if data is not None:
            return data.decode("utf-8", "replace")
    return "sympy: none"


def _installed(package: str, file: str) -> str:
    """Size and modification time of ``package/file`` on ``sys.path`` (it changes with every install)."""
    for entry in sys.path:
        try:
            st = os.stat(os.path.join(entry or ".", package, file))
        except OSError:
            continue
        return f"{package}:{st.st_size}:{st.st_mtime_ns}"
    return f"{package}: none"


def key_for(argv: Sequence[str]) -> str | None:
    """The cache key (hex) of a command line, or None when its answer is not cached.

    Only ``--json`` answers of pure commands (params, memory, inference, flops) are cached, and
    only with a usable secret (:func:`secret`). The key is an HMAC, so it cannot be computed
    without the secret.
    """
    if os.environ.get("SYMBOLIC_NO_RESULT_CACHE") or not argv or argv[0] not in CACHED_COMMANDS:
        return None
    if "--json" not in argv or any(a in ("-h", "--help") for a in argv):
        return None
    key = secret()
    if key is None:
        return None
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(package_stamp().encode() + b"\0" + json.dumps(list(argv)).encode() + b"\0")
    for arg in argv[1:]:
        if arg.startswith("-"):
            continue
        path = os.path.join(arg, "config.json") if _isdir(arg) else arg
        data = read_regular(path) if _short(path) else None
        if data is not None:
            mac.update(hashlib.sha256(data).digest())  # a user's config: its content, not its name
        elif _exists(path):
            return None  # something we will not read (a FIFO, too large): do not cache
    return mac.hexdigest()


def _exists(path: str) -> bool:
    try:
        return _short(path) and os.path.lexists(path)
    except (OSError, ValueError):
        return False


def _short(path: str) -> bool:
    return len(path) < 4096 and "\0" not in path


def _isdir(path: str) -> bool:
    try:
        return _short(path) and os.path.isdir(path)
    except (OSError, ValueError):
        return False


def _entry_mac(key: str, output: bytes) -> str:
    secret_key = secret() or b""
    return hmac.new(secret_key, key.encode() + b"\0" + output, hashlib.sha256).hexdigest()


def lookup(argv: Sequence[str]) -> str | None:
    """The cached answer (stdout text) of ``argv``, or None (not cached, not authentic, or not cacheable)."""
    key = key_for(argv)
    if key is None or not secure_dir(cache_dir()):
        return None
    data = read_regular(cache_dir() / f"{key}.json")
    if data is None:
        return None
    try:
        entry = json.loads(data)
        output = entry["output"]
        if not isinstance(output, str) or not hmac.compare_digest(
            str(entry["mac"]), _entry_mac(key, output.encode("utf-8"))
        ):
            return None
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None
    return output


def store(argv: Sequence[str], output: str) -> None:
    """Cache ``output`` as the answer of ``argv`` (atomically); silently skips what cannot be cached."""
    key = key_for(argv)
    if key is None or not secure_dir(cache_dir(), create=True):
        return
    try:
        encoded = output.encode("utf-8")
    except UnicodeError:
        return
    entry = {"mac": _entry_mac(key, encoded), "output": output}
    write_atomic(cache_dir() / f"{key}.json", json.dumps(entry).encode("utf-8"))
