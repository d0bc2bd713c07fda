"""Per-item and per-task results on disk: atomic, resumable, keyed by model + task + prompt config.

Layout of one run (``results_dir(...)``)::

    <cache>/evals/<model-slug>/<task>-<lang>-<key>/
        meta.json      # what the key was computed from
        items.jsonl    # one record per scored item: prompt, log-likelihoods,
                       # predictions, correctness
        summary.json   # per-metric score, SE, CI, n (written when a run completes)

``items.jsonl`` is rewritten through a temporary file and ``os.replace`` after every chunk, so an
interrupted run leaves a valid file; :class:`ResultStore` then reports which items are done and a
rerun scores only the rest. Each record carries a hash of its item, so an edited item is rescored.
Records with NaN or infinite log-likelihoods are never written (and never reused if an older file
has them). The run's folder is locked while a run writes it (:meth:`ResultStore.locked`): a second
run on the same folder waits, then reuses the first one's records instead of rewriting them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..paths import atomic_write_text, cache_dir
from ..storage import file_lock, quarantine, remove_stale_temporaries
from .errors import EvalDataError
from .schema import Item, read_jsonl

__all__ = [
    "RESULTS_VERSION",
    "ResultStore",
    "RunAgreement",
    "compare_runs",
    "item_hash",
    "results_dir",
    "run_key",
]

RESULTS_VERSION = 1


def item_hash(item: Item) -> str:
    """Short content hash of an item (id, text, choices, label, passage)."""
    blob = json.dumps(
        [item.id, item.question, list(item.choices), item.label, item.passage, item.lang], ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def run_key(**parts) -> str:
    """Stable 12-hex-digit key of a JSON-serialisable configuration."""
    blob = json.dumps(
        {**parts, "results_version": RESULTS_VERSION}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def results_dir(model_id: str, task: str, lang: str | None, key: str, root: str | Path | None = None) -> Path:
    """Folder of one run under ``root`` (default ``$LABKIT_CACHE/evals``)."""
    root = Path(root) if root is not None else cache_dir() / "evals"
    return root / _slug(model_id) / f"{_slug(task)}-{lang or 'all'}-{key}"


def is_finite_record(rec: dict) -> bool:
    """Whether every log-likelihood / probability in a record is a finite number."""
    vals = [*rec.get("lls", []), *([rec["p_gold"]] if "p_gold" in rec else [])]
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals)


class ResultStore:
    """Atomic JSONL store of per-item records in one run folder."""

    def __init__(self, folder: str | Path, meta: dict | None = None):
        self.folder = Path(folder)
        self.items_path = self.folder / "items.jsonl"
        self.summary_path = self.folder / "summary.json"
        self.meta_path = self.folder / "meta.json"
        self._records: dict[str, dict] = {}
        remove_stale_temporaries(self.folder)  # half-written files of a killed run
        if self.items_path.exists():
            try:
                for n, rec in read_jsonl(self.items_path):
                    if not isinstance(rec, dict) or "id" not in rec or "item_hash" not in rec:
                        raise EvalDataError(f"{self.items_path}:{n}: not a labkit result record")
                    self._records[rec["id"]] = rec
            except EvalDataError as err:  # damaged on disk (labkit writes it atomically): rescore
                self._records = {}
                quarantine(self.items_path, f"results file is damaged ({err})")
        if meta is not None and not self.meta_path.exists():
            atomic_write_text(self.meta_path, json.dumps(meta, ensure_ascii=False, indent=1, default=str))

    @staticmethod
    @contextlib.contextmanager
    def locked(folder: str | Path) -> Iterator[Path]:
        """Hold the run folder's lock (``.labkit.lock`` inside it) for the duration of a run."""
        folder = Path(folder)
        with file_lock(folder / ".labkit.lock", what=f"the results in {folder}") as path:
            yield path

    def done(self, item: Item) -> dict | None:
        """The stored record of ``item`` if scored with the same content (and finite), else ``None``."""
        rec = self._records.get(item.id)
        ok = rec is not None and rec["item_hash"] == item_hash(item) and is_finite_record(rec)
        return rec if ok else None

    def add(self, records: Iterable[dict]) -> None:
        """Add (or replace) records and rewrite ``items.jsonl`` atomically.

        Raises
        ------
        ValueError
            For a record with NaN/inf scores (callers filter them: they are never cached).
        """
        for rec in records:
            if not is_finite_record(rec):
                raise ValueError(f"record {rec.get('id')!r} has non-finite scores; it is not cached")
            self._records[rec["id"]] = rec
        self._write()

    def _write(self) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self._records.values())
        atomic_write_text(self.items_path, text)

    def order_as(self, ids: Sequence[str]) -> None:
        """Put the records of ``ids`` first, in that order (any others after them, as they were), and
        rewrite ``items.jsonl`` atomically if that changes it.

        A run over ranks saves each round's records as they arrive, in the order the rounds deal the
        chunks; this gives ``items.jsonl`` the item order a single process writes.
        """
        first = {i: self._records[i] for i in ids if i in self._records}
        ordered = {**first, **{i: r for i, r in self._records.items() if i not in first}}
        if list(ordered) == list(self._records):
            return
        self._records = ordered
        self._write()

    def write_summary(self, summary: dict) -> None:
        atomic_write_text(self.summary_path, json.dumps(summary, ensure_ascii=False, indent=1, default=str))

    def __len__(self) -> int:
        return len(self._records)


@dataclass(frozen=True)
class RunAgreement:
    """How far two runs' result folders agree (:func:`compare_runs`)."""

    items_identical: bool  # items.jsonl byte for byte
    summary_identical: bool  # summary.json byte for byte
    same_predictions: bool  # every item's predictions under every metric
    max_abs_dll: float  # largest |difference| of a log-likelihood (nats)
    world_sizes: tuple[int | None, int | None]  # meta.json's "world_size" of each


def compare_runs(a: str | Path, b: str | Path) -> RunAgreement:
    """Compare two finished run folders of the same items (one process vs several ranks, two
    thread counts, ...): byte equality of ``items.jsonl`` and ``summary.json``, per-item predictions
    and the largest log-likelihood difference (0 for generated answers, which have none).

    Raises
    ------
    EvalDataError
        A folder without ``items.jsonl``, ``summary.json`` or ``meta.json``, or two folders of
        different items.
    """
    folders = (Path(a), Path(b))
    for f in folders:
        for name in ("items.jsonl", "summary.json", "meta.json"):
            if not (f / name).is_file():
                raise EvalDataError(f"{f} has no {name}: not a finished labkit run folder")
    ra, rb = ({r["id"]: r for _, r in read_jsonl(f / "items.jsonl")} for f in folders)
    if set(ra) != set(rb):
        raise EvalDataError(f"{folders[0]} and {folders[1]} hold different items")
    dll = [abs(x - y) for i in ra for x, y in zip(ra[i].get("lls", []), rb[i].get("lls", []), strict=True)]
    sizes = tuple(
        json.loads((f / "meta.json").read_text(encoding="utf-8")).get("world_size") for f in folders
    )
    return RunAgreement(
        items_identical=(folders[0] / "items.jsonl").read_bytes()
        == (folders[1] / "items.jsonl").read_bytes(),
        summary_identical=(folders[0] / "summary.json").read_bytes()
        == (folders[1] / "summary.json").read_bytes(),
        same_predictions=all(ra[i]["preds"] == rb[i]["preds"] for i in ra),
        max_abs_dll=max(dll, default=0.0),
        world_sizes=(sizes[0], sizes[1]),
    )
