"""Build the labkit Korean/English parallel evaluation set (``labkit/data/koen_parallel``).

The items are written in plain-text source files, one per category, in
``src/labkit/data/koen_parallel/source/`` (``<category>.txt`` and ``fewshot.txt``); they are the
single reviewed source of the data set. This small builder parses them and writes the JSONL files
shipped in the package, in a stable sorted order, with atomic writes. Run from the repository root::

    .venv/bin/python tools/koen_parallel_build.py          # (re)write items.jsonl and fewshot.jsonl
    .venv/bin/python tools/koen_parallel_build.py --check  # exit 1 if the files are stale or invalid

Line format (blocks separated by blank lines, ``#`` lines are comments):

- ``K:`` / ``KA:`` Korean question / options, ``E:`` / ``EA:`` English question / options. Options are
  separated by `` | `` and **the first option is the correct one**; ko and en options correspond by
  position. The builder moves the correct option to a balanced, seeded position (same permutation for
  both languages of a pair).
- arithmetic: ``X:`` an arithmetic expression giving the exact answer (numbers, ``+ - * / // %``,
  ``**``, parentheses, ``ceil(...)``/``floor(...)``; evaluated by :func:`arith`, never by Python's ``eval``),
  ``D:`` the three wrong numbers; the answer is formatted by :func:`format_number` and is both
  ``answer_number`` and the correct choice.
- reading: ``PID:`` starts a passage (``PK:`` Korean, ``PE:`` English text); the question blocks that
  follow belong to it.
- few-shot file: ``@ category`` starts a section.

All text is original (written for the labkit book), licensed CC-BY-4.0; see DATACARD.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import operator
import random
import sys
import unicodedata
from pathlib import Path

from labkit.evals.tasks import KOEN_FIELDS

CATEGORIES = ("knowledge", "commonsense", "arithmetic", "reading", "korean_culture")
PREFIX = {
    "knowledge": "know",
    "commonsense": "comm",
    "arithmetic": "arith",
    "reading": "read",
    "korean_culture": "kcul",
}
PAIRED = {"knowledge", "commonsense", "arithmetic", "reading"}
FIELDS = KOEN_FIELDS  # the item schema the task loader reads
SEED = "labkit-koen-parallel-v1"


class BuildError(ValueError):
    """A malformed block in the item source."""


def nfc(text: str) -> str:
    """Strip and NFC-normalise ``text`` (precomposed Hangul syllables)."""
    return unicodedata.normalize("NFC", text.strip())


def format_number(value: float) -> str:
    """Canonical string of a numeric answer: integers without a decimal point, else at most 6 decimals."""
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_FUNCS = {"ceil": math.ceil, "floor": math.floor}


def arith(expr: str) -> float:
    """Value of an arithmetic expression: numbers, ``+ - * / // % **``, unary minus, parentheses and
    ``ceil``/``floor`` calls. Anything else is a :class:`BuildError` (the source is data, not code)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS
            and len(node.args) == 1
            and not node.keywords
        ):
            return _FUNCS[node.func.id](ev(node.args[0]))
        raise BuildError(f"not an arithmetic expression: {expr!r}")

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as err:
        raise BuildError(f"not an arithmetic expression: {expr!r}") from err
    return ev(tree)


def _options(line: str) -> list[str]:
    return [nfc(part) for part in line.split("|")]


def _blocks(text: str) -> list[dict[str, str]]:
    """Split source text into blocks of ``KEY: value`` lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if current:
                blocks.append(current)
                current = {}
            continue
        if line.startswith("@"):
            if current:
                blocks.append(current)
            blocks.append({"@": line[1:].strip()})
            current = {}
            continue
        key, sep, value = line.partition(":")
        if not sep or key not in {"K", "KA", "E", "EA", "X", "D", "PID", "PK", "PE"}:
            raise BuildError(f"unparseable line {line[:60]!r}")
        if key in current:
            raise BuildError(f"duplicate key {key!r} in block starting {next(iter(current.values()))[:40]!r}")
        current[key] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def parse(text: str, category: str) -> list[dict]:
    """Parse the source of one category into raw items (correct option first)."""
    items: list[dict] = []
    passage: dict[str, str] | None = None
    for block in _blocks(text):
        if "PID" in block:
            passage = {"id": block["PID"], "ko": nfc(block["PK"]), "en": nfc(block["PE"])}
            if set(block) - {"PID", "PK", "PE"}:
                raise BuildError(f"passage block {block['PID']} has extra keys")
            continue
        item: dict = {"ko_q": nfc(block["K"])}
        if category == "arithmetic":
            expr = block["X"]
            value = arith(expr)
            answer = format_number(float(value))
            wrong = [format_number(float(d)) for d in _options(block["D"])]
            item.update(
                en_q=nfc(block["E"]), ko_opts=[answer, *wrong], en_opts=[answer, *wrong], answer_number=answer
            )
        else:
            item["ko_opts"] = _options(block["KA"])
            if category in PAIRED:
                item.update(en_q=nfc(block["E"]), en_opts=_options(block["EA"]))
        if category == "reading":
            if passage is None:
                raise BuildError(f"reading question before any passage: {item['ko_q'][:40]!r}")
            item["passage"] = passage
        for lang in ("ko", "en"):
            opts = item.get(f"{lang}_opts")
            if opts is not None and (len(opts) != 4 or len(set(opts)) != 4):
                raise BuildError(f"{category} item {item['ko_q'][:40]!r}: need 4 distinct {lang} options")
        items.append(item)
    return items


def assign(category: str, items: list[dict], *, fewshot: bool = False, start: int = 0) -> list[dict]:
    """Turn raw items into schema records with balanced, seeded answer positions.

    The labels are the rotation ``start, start+1, ... (mod 4)``, shuffled; ``start`` lets small
    categories (the few-shot pool) spread their one extra letter over A-D.
    """
    rng = random.Random(f"{SEED}:{category}:{'fewshot' if fewshot else 'test'}")
    labels = [(start + i) % 4 for i in range(len(items))]
    rng.shuffle(labels)
    records: list[dict] = []
    for number, (item, label) in enumerate(zip(items, labels, strict=True), start=1):
        order = [1, 2, 3]
        rng.shuffle(order)
        order.insert(label, 0)  # position `label` holds the correct option
        pair_id = f"{PREFIX[category]}-fs{number:02d}" if fewshot else f"{PREFIX[category]}-{number:03d}"
        langs = ("ko", "en") if category in PAIRED else ("ko",)
        for lang in langs:
            passage = item.get("passage")
            records.append(
                {
                    "id": f"{pair_id}-{lang}",
                    "pair_id": pair_id,
                    "lang": lang,
                    "category": category,
                    "question": item[f"{lang}_q"],
                    "choices": [item[f"{lang}_opts"][k] for k in order],
                    "label": label,
                    "passage_id": passage["id"] if passage else None,
                    "passage": passage[lang] if passage else None,
                    "answer_number": item.get("answer_number"),
                }
            )
    return records


def source_dir() -> Path:
    """The folder of the plain-text item sources."""
    return data_dir() / "source"


def read_source(name: str) -> str:
    """The text of ``source/<name>.txt``."""
    return (source_dir() / f"{name}.txt").read_text(encoding="utf-8")


def build() -> tuple[list[dict], list[dict]]:
    """Return ``(test_records, fewshot_records)``, each sorted by id."""
    test: list[dict] = []
    for category in CATEGORIES:
        test.extend(assign(category, parse(read_source(category), category)))
    fewshot: list[dict] = []
    section: str | None = None
    chunks: dict[str, list[str]] = {}
    for line in read_source("fewshot").splitlines():
        if line.startswith("@"):
            section = line[1:].strip()
            chunks[section] = []
        elif section is not None:
            chunks[section].append(line)
    for category in CATEGORIES:
        fewshot.extend(
            assign(
                category,
                parse("\n".join(chunks[category]), category),
                fewshot=True,
                start=len({r["pair_id"] for r in fewshot}),
            )
        )
    test.sort(key=lambda r: r["id"])
    fewshot.sort(key=lambda r: r["id"])
    return test, fewshot


def to_jsonl(records: list[dict]) -> str:
    """One JSON object per line, keys in schema order, UTF-8 (no ASCII escapes)."""
    return "".join(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n" for r in records)


def data_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "src" / "labkit" / "data" / "koen_parallel"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the shipped files instead of writing")
    args = parser.parse_args(argv)
    test, fewshot = build()
    outputs = {"items.jsonl": to_jsonl(test), "fewshot.jsonl": to_jsonl(fewshot)}
    if args.check:
        stale = [
            name
            for name, text in outputs.items()
            if not (data_dir() / name).exists() or (data_dir() / name).read_text("utf-8") != text
        ]
        for name in stale:
            print(f"stale: {data_dir() / name} (rerun tools/koen_parallel_build.py)", file=sys.stderr)
        return 1 if stale else 0
    from labkit.paths import atomic_write_text

    for name, text in outputs.items():
        atomic_write_text(data_dir() / name, text)
    counts: dict[tuple[str, str], int] = {}
    for r in test:
        counts[(r["category"], r["lang"])] = counts.get((r["category"], r["lang"]), 0) + 1
    for (category, lang), n in sorted(counts.items()):
        print(f"{category:15s} {lang}  {n:4d}")
    print(f"test items: {len(test)}  few-shot items: {len(fewshot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
