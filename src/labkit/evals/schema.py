"""The evaluation item and its JSONL form, with validation that names file, line and field.

Every loader turns a benchmark record into an :class:`Item`. All text is NFC-normalised on the way
in (Hangul can arrive precomposed, NFC, or as conjoining jamo, NFD; the two tokenize and length-
normalise differently), and ``Item.meta["nfc_changed"]`` records whether normalisation changed it.

labkit's own JSONL item schema (one object per line)::

    {"id": str, "question": str, "choices": [str, ...] (>= 2, non-empty), "label": int,
     "lang": "ko"|"en", optional "category", "passage", "cluster", "answer", "meta"}
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import EvalDataError

__all__ = [
    "ITEM_FIELDS",
    "Item",
    "check_unique_ids",
    "item_from_dict",
    "nfc",
    "read_jsonl",
    "validate_record",
]

ITEM_REQUIRED = ("id", "question", "choices", "label")
ITEM_OPTIONAL = ("lang", "category", "passage", "cluster", "answer", "meta")
ITEM_FIELDS = ITEM_REQUIRED + ITEM_OPTIONAL


def nfc(text: str) -> str:
    """Unicode NFC normal form (precomposed Hangul syllables)."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Item:
    """One evaluation item.

    Attributes
    ----------
    id:
        Unique within a task.
    question:
        The stem shown to the model (for benchmarks whose prompt already lists the options, e.g.
        HAE-RAE's ``query``, the full text and ``meta["options_in_question"] = True``).
    choices:
        Answer options (texts); scored by cloze or shown as lettered options.
    label:
        Index of the gold option in ``choices``; ``-1`` for purely generative items.
    lang:
        ``"ko"`` or ``"en"``.
    category:
        Sub-category used for category means (HCX-style aggregation).
    passage:
        Shared reading passage, if any.
    cluster:
        Cluster id for clustered standard errors (a passage, or the pair id of translations).
    answer:
        Gold answer string for generative scoring (exact/prefix match).
    """

    id: str
    question: str
    choices: tuple[str, ...]
    label: int
    lang: str = "en"
    category: str | None = None
    passage: str | None = None
    cluster: str | None = None
    answer: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["choices"] = list(self.choices)
        d["meta"] = dict(self.meta)
        return d


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line is not None else source


def validate_record(
    rec: Any,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    source: str = "<record>",
    line: int | None = None,
) -> dict:
    """Check a raw record has exactly the ``required`` (+ ``optional``) fields; return it as a dict."""
    where = _where(source, line)
    if not isinstance(rec, dict):
        raise EvalDataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in required if k not in rec]
    if missing:
        raise EvalDataError(f"{where}: missing field(s) {missing}")
    extra = sorted(set(rec) - set(required) - set(optional))
    if extra:
        raise EvalDataError(
            f"{where}: unexpected field(s) {extra}; allowed: {sorted([*required, *optional])}"
        )
    return rec


def _check_item(item: Item, where: str) -> Item:
    if not isinstance(item.id, str) or not item.id.strip():
        raise EvalDataError(f"{where}: field 'id' must be a non-empty string, got {item.id!r}")
    if not isinstance(item.question, str):
        raise EvalDataError(f"{where}: field 'question' must be a string (id={item.id!r})")
    if item.label != -1:
        if len(item.choices) < 2:
            raise EvalDataError(f"{where}: field 'choices' needs >= 2 options (id={item.id!r})")
        for i, c in enumerate(item.choices):
            if not isinstance(c, str) or not c.strip():
                raise EvalDataError(f"{where}: choice {i} is empty (id={item.id!r})")
        if (
            isinstance(item.label, bool)
            or not isinstance(item.label, int)
            or not (0 <= item.label < len(item.choices))
        ):
            raise EvalDataError(
                f"{where}: field 'label'={item.label!r} out of range for {len(item.choices)} choices "
                f"(id={item.id!r})"
            )
    elif not item.answer:
        raise EvalDataError(f"{where}: a generative item (label -1) needs 'answer' (id={item.id!r})")
    if item.lang not in ("ko", "en"):
        raise EvalDataError(f"{where}: field 'lang'={item.lang!r} must be 'ko' or 'en' (id={item.id!r})")
    return item


def make_item(
    *,
    id: str,
    question: str,
    choices: Iterable[str],
    label: int,
    lang: str = "en",
    category: str | None = None,
    passage: str | None = None,
    cluster: str | None = None,
    answer: str | None = None,
    meta: Mapping[str, Any] | None = None,
    where: str = "<record>",
) -> Item:
    """Build, NFC-normalise and validate an :class:`Item`."""
    choices = tuple(choices)
    raw = [question, passage or "", answer or "", *[c for c in choices if isinstance(c, str)]]
    changed = any(isinstance(t, str) and nfc(t) != t for t in raw)
    item = Item(
        id=str(id) if isinstance(id, (int, str)) else id,
        question=nfc(question) if isinstance(question, str) else question,
        choices=tuple(nfc(c) if isinstance(c, str) else c for c in choices),
        label=label,
        lang=lang,
        category=category,
        passage=nfc(passage) if isinstance(passage, str) else passage,
        cluster=cluster,
        answer=nfc(answer) if isinstance(answer, str) else answer,
        meta={**(meta or {}), "nfc_changed": changed},
    )
    return _check_item(item, where)


def item_from_dict(rec: Any, *, source: str = "<record>", line: int | None = None) -> Item:
    """Validate a record of labkit's own item schema and return the :class:`Item`."""
    rec = validate_record(rec, required=ITEM_REQUIRED, optional=ITEM_OPTIONAL, source=source, line=line)
    if not isinstance(rec["choices"], list):
        raise EvalDataError(f"{_where(source, line)}: field 'choices' must be a list")
    return make_item(
        id=rec["id"],
        question=rec["question"],
        choices=rec["choices"],
        label=rec["label"],
        lang=rec.get("lang", "en"),
        category=rec.get("category"),
        passage=rec.get("passage"),
        cluster=rec.get("cluster"),
        answer=rec.get("answer"),
        meta=rec.get("meta") or {},
        where=_where(source, line),
    )


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """Parse a JSONL file into ``(line_number, object)`` pairs (blank lines skipped).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    EvalDataError
        On malformed JSON, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSONL file: {path}")
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append((n, json.loads(line, object_pairs_hook=_no_duplicate_keys)))
            except json.JSONDecodeError as err:
                raise EvalDataError(f"{path}:{n}: malformed JSON ({err.msg} at column {err.colno})") from None
            except _DuplicateKey as err:
                raise EvalDataError(
                    f"{path}:{n}: field {err.args[0]!r} appears twice in one record; keep one"
                ) from None
    return out


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads`` hook: a key given twice is an error (json keeps the last one silently)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def check_unique_ids(items: Sequence[Item], source: str = "<items>") -> None:
    """Raise :class:`EvalDataError` naming the first duplicated id."""
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise EvalDataError(f"{source}: duplicate id {it.id!r}")
        seen.add(it.id)
