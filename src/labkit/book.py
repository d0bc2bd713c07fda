"""Helpers for chapters: glue computed numbers into prose and show the active profile.

``glue`` wraps :func:`myst_nb.glue` and falls back to a no-op outside a myst-nb build, so
chapters also run in plain Jupyter or under nbval. Every glued value is also kept in
:data:`GLUED` so hidden assert cells can check that prose numbers equal computed results.
:func:`glue_many` glues several values in one call, so a cell that computes the numbers of a
paragraph ends in one line rather than one ``glue`` line per number.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from .config import Profile, get_profile

__all__ = ["GLUED", "LINE_WIDTH", "glue", "glue_many", "show_profile"]

#: Everything glued in this kernel, by key.
GLUED: dict[str, Any] = {}

#: Widest line a chapter prints or shows as code; wider lines scroll sideways in the HTML.
LINE_WIDTH = 88


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


def glue_many(values: Mapping[str, Any] | None = None, /, **named: Any) -> None:
    """:func:`glue` each ``name=value`` (from a mapping, keyword arguments, or both), in order.

    ``glue_many(n=n, mean=m)`` is ``glue("n", n); glue("mean", m)``. A mapping passes names that
    are not Python identifiers. A name given both ways is an error (one value would be lost).
    Returns ``None``, so the cell echoes nothing.
    """
    items = dict(values or {})
    twice = sorted(set(items) & set(named))
    if twice:
        raise ValueError(f"glue_many: {twice} given both in the mapping and as keywords")
    items.update(named)
    for name, value in items.items():
        glue(name, value)


def show_profile(profile: Profile | None = None) -> Profile:
    """Print the active profile (chapters call this near their top) and return it.

    The line of :meth:`~labkit.config.Profile.summary` is wrapped at :data:`LINE_WIDTH` characters,
    continuation lines indented, so the page does not scroll sideways.
    """
    profile = profile or get_profile()
    text = profile.summary()
    print(textwrap.fill(text, LINE_WIDTH, subsequent_indent="    ", break_on_hyphens=False))
    return profile
