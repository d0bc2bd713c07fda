"""The book's plotting house style: one call sets fonts, sizes and a colour-blind-safe cycle."""

from __future__ import annotations

from typing import Any, cast

__all__ = ["PALETTE", "figure", "use_style"]

#: Okabe–Ito colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

_STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
}


def use_style() -> None:
    """Apply the house style to matplotlib's global rcParams (idempotent)."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(cast(Any, _STYLE))  # rcParams' stubs list the keys as literals
    mpl.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float | None = None, **kw):
    """``plt.subplots`` in the house style; height defaults to 0.62·width·nrows/ncols (≥2.5 in)."""
    import matplotlib.pyplot as plt

    use_style()
    if height is None:
        height = max(2.5, 0.62 * width * nrows / ncols)
    return plt.subplots(nrows, ncols, figsize=(width, height), **kw)
