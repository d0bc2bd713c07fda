"""Published measurements of swimming *E. coli*, shipped as package data (``labkit/data/flagella``).

* :func:`load_darnton2007` — population means ± s.d. of Darnton et al., J. Bacteriol. 189:1756 (2007),
  with the confidence tag of each value (see ``DATACARD.md``);
* :func:`load_lisevich2024` — per-replicate speeds and rotation rates of three strains with ~2, ~5 and
  ~8 flagella (Lisevich et al., bioRxiv 10.1101/2024.03.30.587422, 2024; Nat. Commun. 16:1731, 2025);
  :meth:`StrainData.by_strain` gives strain means and standard errors.

Both readers validate the file: a missing column, a non-numeric or non-positive value raises
:class:`~labkit.flagella.errors.FlagellaError` naming the file, the column and the value. Values are
returned in SI (m/s, rad/s, m).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import FlagellaError

__all__ = [
    "DARNTON_FILE",
    "LISEVICH_FILE",
    "Measurement",
    "StrainData",
    "data_path",
    "load_darnton2007",
    "load_lisevich2024",
    "read_table",
]

DARNTON_FILE = "darnton2007_swimming.csv"
LISEVICH_FILE = "lisevich2024_flagella_number.csv"

_DARNTON_CITE = "Darnton et al. 2007 (J. Bacteriol. 189:1756), Table 1"
_UNIT_SI = {"um/s": 1e-6, "Hz": 2 * math.pi, "um": 1e-6, "count": 1.0}
_TAG_WORDS = {"V": "[V]", "S": "[S] Das & Lauga 2018", "R": "[R]", "T": "[T]"}


@dataclass(frozen=True)
class Measurement:
    """A measured mean ± standard deviation (SI units) with its source and confidence tags."""

    mean: float
    sd: float
    source: str


def data_path(name: str) -> Path:
    """Path of a file in ``labkit/data/flagella``."""
    return Path(str(resources.files("labkit") / "data" / "flagella" / name))


def read_table(path: str | Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a ``#``-commented CSV file as dicts; every column of ``required`` must be present.

    Raises
    ------
    FlagellaError
        If the file cannot be read, has no header or no rows, or lacks a required column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlagellaError(f"cannot read flagella data file {path}: {exc}") from exc
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise FlagellaError(f"{path.name}: no header row")
    reader = csv.DictReader(lines)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise FlagellaError(f"{path.name}: missing column(s) {missing}; found {header}")
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    if not rows:
        raise FlagellaError(f"{path.name}: no data rows")
    return rows


def _number(path: Path, row: int, column: str, text: str, *, positive: bool = True) -> float:
    try:
        x = float(text)
    except ValueError as exc:
        raise FlagellaError(f"{path.name}: row {row}, column {column!r}: {text!r} is not a number") from exc
    if not math.isfinite(x) or (positive and x <= 0):
        raise FlagellaError(
            f"{path.name}: row {row}, column {column!r}: {text!r} must be positive and finite"
        )
    return x


def load_darnton2007(path: str | Path | None = None) -> dict[str, Measurement]:
    """Darnton et al. (2007) means ± s.d. in SI, keyed ``speed``, ``bundle_rate``, ``body_rate``,
    ``body_length``, ``body_width``, ``flagella`` (s.d. NaN where unknown).

    ``source`` names the table and the tags of the mean and the s.d. (``[S]``, ``[R]``, ``[T]``).
    """
    p = data_path(DARNTON_FILE) if path is None else Path(path)
    rows = read_table(p, ("quantity", "unit", "mean", "sd", "tag_mean", "tag_sd"))
    out: dict[str, Measurement] = {}
    for i, r in enumerate(rows, start=1):
        unit = r["unit"]
        if unit not in _UNIT_SI:
            raise FlagellaError(f"{p.name}: row {i}, column 'unit': unknown unit {unit!r}")
        k = _UNIT_SI[unit]
        mean = _number(p, i, "mean", r["mean"]) * k
        sd = _number(p, i, "sd", r["sd"]) * k if r["sd"] else float("nan")
        tags = f"mean {_TAG_WORDS.get(r['tag_mean'], r['tag_mean'])}"
        if r["tag_sd"]:
            tags += f", sd {_TAG_WORDS.get(r['tag_sd'], r['tag_sd'])}"
        out[r["quantity"]] = Measurement(mean, sd, f"{_DARNTON_CITE}; {tags}")
    for key in ("speed", "bundle_rate", "body_rate"):
        if key not in out:
            raise FlagellaError(f"{p.name}: missing row {key!r}")
    return out


@dataclass(frozen=True)
class StrainData:
    """Per-replicate measurements of Lisevich et al. (2024), SI units (m/s, rad/s).

    Attributes
    ----------
    n_flagella:
        Mean flagella per cell of each replicate's strain.
    speed, bundle_rate, motor_rate, body_rate:
        Replicate means.
    published_speed_per_turn, published_body_ratio:
        The file's ``v0wf`` (µm per turn) and ``wbwf`` columns as published (see ``DATACARD.md``).
    """

    n_flagella: np.ndarray
    speed: np.ndarray
    bundle_rate: np.ndarray
    motor_rate: np.ndarray
    body_rate: np.ndarray
    published_speed_per_turn: np.ndarray
    published_body_ratio: np.ndarray

    @property
    def speed_per_turn(self) -> np.ndarray:
        """Distance swum per bundle turn ``2πU/ω_f``, m (motor-free)."""
        return 2 * math.pi * self.speed / self.bundle_rate

    @property
    def body_ratio(self) -> np.ndarray:
        """``Ω_b/ω_f`` (motor-free)."""
        return self.body_rate / self.bundle_rate

    def by_strain(self) -> dict[str, np.ndarray]:
        """Strain means and standard errors over replicates.

        Returns a dict with ``n_flagella`` and, for each of ``speed``, ``bundle_rate``, ``motor_rate``,
        ``body_rate``, ``speed_per_turn``, ``body_ratio``, the keys ``<name>`` (mean) and ``<name>_se``
        (standard error; NaN for a single replicate), one entry per strain in increasing N.
        """
        ns = np.unique(self.n_flagella)
        out: dict[str, np.ndarray] = {"n_flagella": ns}
        for name in ("speed", "bundle_rate", "motor_rate", "body_rate", "speed_per_turn", "body_ratio"):
            v = getattr(self, name)
            mean, se = [], []
            for n in ns:
                x = v[self.n_flagella == n]
                mean.append(x.mean())
                se.append(x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan"))
            out[name], out[f"{name}_se"] = np.array(mean), np.array(se)
        return out


def load_lisevich2024(path: str | Path | None = None) -> StrainData:
    """The Lisevich et al. (2024) replicate table in SI units (see :class:`StrainData`)."""
    p = data_path(LISEVICH_FILE) if path is None else Path(path)
    cols = ("nflag", "v0wf", "wbwf", "v0", "wf", "wM", "wb")
    rows = read_table(p, cols)
    vals = {c: np.array([_number(p, i, c, r[c]) for i, r in enumerate(rows, start=1)]) for c in cols}
    hz = 2 * math.pi
    return StrainData(
        n_flagella=vals["nflag"],
        speed=vals["v0"] * 1e-6,
        bundle_rate=vals["wf"] * hz,
        motor_rate=vals["wM"] * hz,
        body_rate=vals["wb"] * hz,
        published_speed_per_turn=vals["v0wf"] * 1e-6,
        published_body_ratio=vals["wbwf"],
    )
