"""Test-session settings: caches go to a temporary folder, never to the user's home."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SYMBOLIC_CACHE_DIR", tempfile.mkdtemp(prefix="symbolic-test-cache-"))
