"""Helpers for chapters: glue computed numbers into prose and show the active profile.

``glue`` wraps :func:`myst_nb.glue` and falls back to a no-op outside a myst-nb build, so
chapters also run in plain Jupyter or under nbval. Every glued value is also kept in
:data:`GLUED` so hidden assert cells can check that prose numbers equal computed results.
"""

from __future__ import annotations

from typing import Any

from .config import Profile, get_profile

__all__ = ["GLUED", "glue", "show_profile"]

#: Everything glued in this kernel, by key.
GLUED: dict[str, Any] = {}


def glue(name: str, value: Any, display: bool = False) -> None:
    """Store ``value`` under ``name`` for ``{glue:text}`name:fmt``` roles in the prose.

    Returns ``None``, so a cell ending in ``glue(...)`` does not echo the value into the page.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"glue name must be a non-empty string, got {name!r}")
    GLUED[name] = value
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - reader environment without myst-nb
        return None
    _glue(name, value, display=display)


def show_profile(profile: Profile | None = None) -> Profile:
    """Print the active profile line (chapters call this near their top) and return it."""
    profile = profile or get_profile()
    print(profile.summary())
    return profile
