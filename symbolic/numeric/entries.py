"""Authenticated cache entries: JSON payloads under the installation's secret (no SymPy).

An entry is ``{"key", "payload", "mac"}``; the MAC is an HMAC-SHA256 under
:func:`symbolic.resultcache.secret` of its kind, key and payload, so an entry anyone without the
secret wrote or edited is never read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

__all__ = ["read_entry", "write_entry"]


def read_entry(path: Path, key: str, kind: str) -> Any:
    """The payload of an authentic cache entry of ``kind`` for ``key`` at ``path``, else None."""
    from ..resultcache import read_regular, secret, secure_dir

    secret_key = secret()
    if secret_key is None or not secure_dir(path.parent):
        return None
    data = read_regular(path)
    if data is None:
        return None
    try:
        entry = json.loads(data)
        payload = json.dumps(entry["payload"], sort_keys=True)
        want = hmac.new(secret_key, f"{kind}|{key}|{payload}".encode(), hashlib.sha256).hexdigest()
        if entry["key"] != key or not hmac.compare_digest(str(entry["mac"]), want):
            return None
        return entry["payload"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None


def write_entry(path: Path, key: str, kind: str, payload: Any) -> None:
    """Store ``payload`` (JSON) as the authenticated entry of ``kind`` for ``key`` (atomically; skipped when unsafe)."""
    from ..resultcache import secret, secure_dir, write_atomic

    secret_key = secret()
    if secret_key is None or not secure_dir(path.parent, create=True):
        return
    text = json.dumps(payload, sort_keys=True)
    mac = hmac.new(secret_key, f"{kind}|{key}|{text}".encode(), hashlib.sha256).hexdigest()
    write_atomic(path, json.dumps({"key": key, "payload": payload, "mac": mac}).encode())
