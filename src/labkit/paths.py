"""Filesystem locations: the cache folder and package data, independent of the working directory."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .storage import StorageError, atomic_file

__all__ = ["atomic_write_bytes", "atomic_write_text", "cache_dir", "cache_root", "data_path"]


def cache_root() -> Path:
    """labkit's cache folder: ``$LABKIT_CACHE``, else ``$XDG_CACHE_HOME/labkit``, else ``~/.cache/labkit``."""
    env = os.environ.get("LABKIT_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labkit"


def cache_dir() -> Path:
    """:func:`cache_root`, created on first use.

    Raises
    ------
    StorageError
        If the folder cannot be created (read-only, a file in the way), naming it and ``LABKIT_CACHE``.
    """
    path = cache_root()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(
            err.errno,
            f"cannot create labkit's cache folder {path} ({err.strerror}); set the LABKIT_CACHE "
            "environment variable to a writable folder",
        ) from None
    return path


def data_path(*parts: str) -> Path:
    """Path of a file shipped inside ``labkit/data`` (works from any working directory)."""
    return Path(str(resources.files("labkit").joinpath("data", *parts)))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    A reader never sees a half-written file, and an interrupted write leaves the old file intact
    (:func:`labkit.storage.atomic_file`, labkit's one atomic-write helper).

    Raises
    ------
    StorageError
        On any I/O failure (disk full, read-only folder, …), naming ``path`` and what to do.
    """
    path = Path(path)
    with atomic_file(path, ".tmp", needed_mb=len(data) / 2**20) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding))
