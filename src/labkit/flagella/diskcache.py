"""The flagella solvers' disk cache: one JSON record per key under ``cache_dir()/flagella``.

A key is any JSON-serialisable value (the inputs that determine the result, with a version
number); its file is ``<prefix>_<first 20 hex digits of SHA-256 of the key's JSON>.json``. Records
are written atomically (:func:`labkit.paths.atomic_write_text`), so a reader never sees half a
file; an unreadable record reads as a miss and is recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..paths import atomic_write_text, cache_dir
from .errors import FlagellaError

__all__ = ["JsonCache"]


class JsonCache:
    """JSON records of one kind (``prefix``), keyed by their inputs, in ``cache_dir()/<folder>``."""

    def __init__(self, prefix: str, folder: str = "flagella") -> None:
        if not prefix or not prefix.replace("_", "").isalnum():
            raise FlagellaError(f"prefix must be a non-empty identifier-like name, got {prefix!r}")
        self.prefix = prefix
        self.folder = folder

    @staticmethod
    def digest(key: Any) -> str:
        """First 20 hex digits of the SHA-256 of ``key`` as JSON with sorted dict keys."""
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

    def path(self, key: Any) -> Path:
        """The file that holds ``key``'s record (the cache folder is created on first use)."""
        return cache_dir() / self.folder / f"{self.prefix}_{self.digest(key)}.json"

    def get(self, key: Any, *, required: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """``key``'s record, or ``None`` when it is absent, unreadable or lacks a ``required`` field."""
        path = self.path(key)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or any(k not in record for k in required):
            return None
        return record

    def put(self, key: Any, record: dict[str, Any]) -> Path:
        """Write ``record`` for ``key`` atomically; returns its path."""
        return atomic_write_text(self.path(key), json.dumps(record))
