"""Filesystem locations: the cache folder and package data, independent of the working directory."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "cache_dir", "data_path"]


def cache_dir() -> Path:
    """labkit's cache folder: ``$LABKIT_CACHE``, else ``$XDG_CACHE_HOME/labkit``, else ``~/.cache/labkit``.

    Created on first use.
    """
    env = os.environ.get("LABKIT_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "labkit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_path(*parts: str) -> Path:
    """Path of a file shipped inside ``labkit/data`` (works from any working directory)."""
    return Path(str(resources.files("labkit").joinpath("data", *parts)))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    A reader never sees a half-written file, and an interrupted write leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding))
