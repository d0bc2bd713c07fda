"""Checks of the shipped Korean/English parallel evaluation set (``labkit/data/koen_parallel``).

The checks are written as one function, :func:`problems`, that returns a list of human-readable
problems; the data tests assert that list is empty, and the ``test_check_*`` tests feed it corrupted
copies to show each check can fail. Loading the set for evaluation is ``labkit.evals``' job; these
tests read the JSONL directly so that they do not depend on the loader.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from labkit.paths import data_path

CATEGORIES = {
    "knowledge": "know",
    "commonsense": "comm",
    "arithmetic": "arith",
    "reading": "read",
    "korean_culture": "kcul",
}
PAIRED = {"knowledge", "commonsense", "arithmetic", "reading"}
FIELDS = [
    "id",
    "pair_id",
    "lang",
    "category",
    "question",
    "choices",
    "label",
    "passage_id",
    "passage",
    "answer_number",
]
MIN_PAIRS = 40  # per paired category (test split)
MIN_KO_ONLY = 40  # korean_culture items (test split)
MIN_TOTAL = 300
MIN_FEWSHOT = 5  # pairs per paired category, items for korean_culture
MAX_LETTER_SHARE = 0.35
MAX_LONGEST_SHARE = 0.35  # correct option strictly longest, per category and language
HANGUL = re.compile(r"[\uac00-\ud7a3]")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
ID_TEST = re.compile(r"^(know|comm|arith|read|kcul)-(\d{3})-(ko|en)$")
ID_FEWSHOT = re.compile(r"^(know|comm|arith|read|kcul)-fs(\d{2})-(ko|en)$")
REPO = Path(__file__).resolve().parents[1]


def load(name: str) -> list[dict]:
    path = data_path("koen_parallel", name)
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return load("items.jsonl")


@pytest.fixture(scope="module")
def fewshot() -> list[dict]:
    return load("fewshot.jsonl")


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _record_problems(r: dict, id_pattern: re.Pattern) -> list[str]:
    """Schema problems of one record."""
    rid = r.get("id", "<no id>")
    if list(r) != FIELDS:
        return [f"{rid}: fields {list(r)} != {FIELDS}"]
    out: list[str] = []
    m = id_pattern.match(r["id"]) if isinstance(r["id"], str) else None
    if not m:
        return [f"{rid}: id does not match {id_pattern.pattern}"]
    if r["lang"] not in ("ko", "en") or m.group(3) != r["lang"]:
        out.append(f"{rid}: lang {r['lang']!r} does not match the id")
    if r["category"] not in CATEGORIES or CATEGORIES[r["category"]] != m.group(1):
        out.append(f"{rid}: category {r['category']!r} does not match the id prefix")
    if r["pair_id"] != r["id"].rsplit("-", 1)[0]:
        out.append(f"{rid}: pair_id {r['pair_id']!r} is not the id without the language")
    strings = [r["question"], *r["choices"]] if isinstance(r["choices"], list) else [r["question"]]
    strings += [s for s in (r["passage"], r["passage_id"], r["answer_number"]) if s is not None]
    for s in strings:
        if not isinstance(s, str) or not s.strip():
            out.append(f"{rid}: empty or non-string text {s!r}")
        elif unicodedata.normalize("NFC", s) != s or s != s.strip():
            out.append(f"{rid}: text not NFC-normalised/stripped: {s[:30]!r}")
    choices = r["choices"]
    if not isinstance(choices, list) or len(choices) != 4:
        out.append(f"{rid}: choices must be a list of 4 strings")
        return out
    if len({_norm(c) for c in choices if isinstance(c, str)}) != 4:
        out.append(f"{rid}: duplicated option in {choices}")
    if type(r["label"]) is not int or not 0 <= r["label"] <= 3:
        out.append(f"{rid}: label {r['label']!r} not an int in 0..3")
        return out
    texts = " ".join(s for s in strings if isinstance(s, str))
    if r["lang"] == "ko" and not HANGUL.search(r["question"]):
        out.append(f"{rid}: Korean item whose question has no Hangul")
    if r["lang"] == "en" and HANGUL.search(texts):
        out.append(f"{rid}: English item containing Hangul")
    is_reading = r["category"] == "reading"
    if is_reading != (r["passage_id"] is not None) or is_reading != (r["passage"] is not None):
        out.append(f"{rid}: passage_id/passage must be set exactly for reading items")
    if r["category"] == "arithmetic":
        ans = r["answer_number"]
        if not isinstance(ans, str) or not NUMBER.fullmatch(ans):
            out.append(f"{rid}: answer_number {ans!r} is not a plain number string")
        elif choices[r["label"]] != ans:
            out.append(f"{rid}: choice at label {r['label']} is {choices[r['label']]!r}, not {ans!r}")
        elif sum(c == ans for c in choices) != 1:
            out.append(f"{rid}: answer {ans!r} appears more than once")
        if not all(isinstance(c, str) and NUMBER.fullmatch(c) for c in choices):
            out.append(f"{rid}: arithmetic choices must all be plain numbers: {choices}")
        elif len({float(c) for c in choices}) != 4:
            out.append(f"{rid}: two arithmetic choices are the same number: {choices}")
    elif r["answer_number"] is not None:
        out.append(f"{rid}: answer_number must be null outside arithmetic")
    return out


def problems(records: list[dict], *, fewshot: bool = False) -> list[str]:
    """All problems of one split (the test items, or the few-shot pool with ``fewshot=True``)."""
    pattern = ID_FEWSHOT if fewshot else ID_TEST
    out: list[str] = []
    for r in records:
        out += _record_problems(r, pattern)
    if out:
        return out
    ids = Counter(r["id"] for r in records)
    out += [f"duplicate id {i}" for i, n in ids.items() if n > 1]
    for lang in ("ko", "en"):
        questions = Counter((r["passage_id"], _norm(r["question"])) for r in records if r["lang"] == lang)
        out += [f"duplicated {lang} question {q[1][:40]!r}" for q, n in questions.items() if n > 1]

    # Pairing: ko/en partners share label, category, answer_number and passage_id.
    pairs: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        pairs[r["pair_id"]][r["lang"]] = r
    for pid, langs in pairs.items():
        category = next(iter(langs.values()))["category"]
        want = {"ko", "en"} if category in PAIRED else {"ko"}
        if set(langs) != want:
            out.append(f"{pid}: languages {sorted(langs)} != {sorted(want)}")
            continue
        if category in PAIRED:
            ko, en = langs["ko"], langs["en"]
            for key in ("label", "category", "answer_number", "passage_id"):
                if ko[key] != en[key]:
                    out.append(f"{pid}: ko/en differ in {key}: {ko[key]!r} vs {en[key]!r}")
            if _norm(ko["question"]) == _norm(en["question"]):
                out.append(f"{pid}: ko and en questions are identical")

    # Counts.
    n_pairs = Counter(next(iter(v.values()))["category"] for v in pairs.values())
    need_pairs = MIN_FEWSHOT if fewshot else MIN_PAIRS
    need_ko = MIN_FEWSHOT if fewshot else MIN_KO_ONLY
    for category in CATEGORIES:
        need = need_pairs if category in PAIRED else need_ko
        if n_pairs[category] < need:
            out.append(f"{category}: {n_pairs[category]} items/pairs < {need}")
    if not fewshot and len(records) < MIN_TOTAL:
        out.append(f"{len(records)} test items < {MIN_TOTAL}")

    # Reading clusters: one passage text per (passage_id, lang); 3-6 sentences; 3-5 questions per passage.
    clusters: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        if r["passage_id"] is not None:
            clusters[(r["passage_id"], r["lang"])].add(r["passage"])
    for (pid, lang), texts in clusters.items():
        if len(texts) != 1:
            out.append(f"{pid}/{lang}: {len(texts)} different passage texts")
            continue
        n_sent = len(re.findall(r"[.!?](?:\s|$)", next(iter(texts))))
        if not 3 <= n_sent <= 6:
            out.append(f"{pid}/{lang}: passage has {n_sent} sentences, want 3-6")
    per_passage = Counter(r["passage_id"] for r in records if r["passage_id"] and r["lang"] == "ko")
    lo = 3 if not fewshot else 1
    out += [f"{pid}: {n} questions, want {lo}-5" for pid, n in per_passage.items() if not lo <= n <= 5]

    # Answer positions: no letter above 35 % overall, per language, per category and language.
    groups: dict[str, list[int]] = defaultdict(list)
    for r in records:
        for key in ("all", r["lang"], f"{r['category']}/{r['lang']}"):
            groups[key].append(r["label"])
    for key, labels in groups.items():
        letter, n = Counter(labels).most_common(1)[0]
        if n / len(labels) > MAX_LETTER_SHARE and len(labels) >= 20:
            out.append(f"{key}: letter {'ABCD'[letter]} is correct in {n}/{len(labels)} items")

    # Length leak: the correct option should not be systematically the longest.
    if not fewshot:
        longest: dict[str, list[bool]] = defaultdict(list)
        for r in records:
            lens = [len(c) for c in r["choices"]]
            right = lens.pop(r["label"])
            longest[f"{r['category']}/{r['lang']}"].append(right > max(lens))
        for key, flags in longest.items():
            if sum(flags) / len(flags) > MAX_LONGEST_SHARE:
                out.append(f"{key}: correct option is the longest in {sum(flags)}/{len(flags)} items")
    return out


# --------------------------------------------------------------------------------------------- data


def test_items_have_no_problems(items):
    assert problems(items) == []


def test_fewshot_has_no_problems(fewshot):
    assert problems(fewshot, fewshot=True) == []


def test_counts(items):
    counts = Counter((r["category"], r["lang"]) for r in items)
    for category in PAIRED:
        assert counts[(category, "ko")] == counts[(category, "en")] >= MIN_PAIRS
    assert counts[("korean_culture", "ko")] >= MIN_KO_ONLY
    assert counts[("korean_culture", "en")] == 0
    assert len(items) >= MIN_TOTAL


def test_fewshot_disjoint_from_test(items, fewshot):
    test_ids = {r["id"] for r in items} | {r["pair_id"] for r in items}
    fs_ids = {r["id"] for r in fewshot} | {r["pair_id"] for r in fewshot}
    assert not test_ids & fs_ids
    assert not {r["passage_id"] for r in items if r["passage_id"]} & {
        r["passage_id"] for r in fewshot if r["passage_id"]
    }
    test_q = {(_norm(r["question"]), r["passage_id"]) for r in items}
    assert not test_q & {(_norm(r["question"]), r["passage_id"]) for r in fewshot}
    test_passages = {r["passage"] for r in items if r["passage"]}
    assert not test_passages & {r["passage"] for r in fewshot if r["passage"]}


def test_files_are_sorted_utf8_jsonl():
    for name in ("items.jsonl", "fewshot.jsonl"):
        raw = data_path("koen_parallel", name).read_bytes()
        text = raw.decode("utf-8")
        assert "\\u" not in text, "Korean text should be stored as UTF-8, not ASCII escapes"
        ids = [json.loads(line)["id"] for line in text.splitlines()]
        assert ids == sorted(ids)


def test_datacard_counts_match(items, fewshot):
    card = data_path("koen_parallel", "DATACARD.md").read_text("utf-8")
    assert "CC-BY-4.0" in card
    rows = {
        cells[0]: cells
        for line in card.splitlines()
        if line.startswith("|")
        for cells in [[c.strip() for c in line.strip().strip("|").split("|")]]
        if len(cells) == 6
    }
    counts = Counter((r["category"], r["lang"]) for r in items)
    fs_counts = Counter((r["category"], r["lang"]) for r in fewshot)
    for category in CATEGORIES:
        assert category in rows, f"no row for {category} in DATACARD.md"
        _, prefix, ko, en, fs = rows[category][:5]
        assert prefix == CATEGORIES[category]
        assert (int(ko), int(en)) == (counts[(category, "ko")], counts[(category, "en")]), category
        assert fs.replace(" ", "") == f"{fs_counts[(category, 'ko')]}/{fs_counts[(category, 'en')]}"
    assert f"{len(items)} test items" in card and f"{len(fewshot)} few-shot items" in card


def test_generator_reproduces_shipped_files():
    script = REPO / "tools" / "koen_parallel_build.py"
    if not script.exists():
        pytest.skip("generator script not present (installed package without the repository)")
    spec = importlib.util.spec_from_file_location("koen_parallel_build", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    test, fs = module.build()
    assert module.to_jsonl(test) == data_path("koen_parallel", "items.jsonl").read_text("utf-8")
    assert module.to_jsonl(fs) == data_path("koen_parallel", "fewshot.jsonl").read_text("utf-8")


# ----------------------------------------------------------------------- the checks can fail


def _mutated(items, fn):
    records = copy.deepcopy(items)
    fn(records)
    return problems(records)


def _first(records, category, lang):
    return next(r for r in records if r["category"] == category and r["lang"] == lang)


def test_check_detects_label_mismatch_between_partners(items):
    def fn(records):
        r = _first(records, "knowledge", "en")
        r["label"] = (r["label"] + 1) % 4

    assert any("differ in label" in p for p in _mutated(items, fn))


def test_check_detects_duplicated_option(items):
    def fn(records):
        r = _first(records, "commonsense", "ko")
        r["choices"][(r["label"] + 1) % 4] = r["choices"][r["label"]] + " "  # differs only by space

    assert any("duplicated option" in p or "NFC" in p for p in _mutated(items, fn))

    def fn2(records):
        r = _first(records, "commonsense", "en")
        r["choices"][(r["label"] + 1) % 4] = r["choices"][r["label"]].upper()

    assert any("duplicated option" in p for p in _mutated(items, fn2))


def test_check_detects_missing_partner(items):
    def fn(records):
        records.remove(_first(records, "reading", "en"))

    assert any("languages ['ko'] != ['en', 'ko']" in p for p in _mutated(items, fn))


def test_check_detects_unbalanced_labels(items):
    def fn(records):
        for r in records:
            if r["category"] == "korean_culture":
                r["choices"][0], r["choices"][r["label"]] = r["choices"][r["label"]], r["choices"][0]
                r["label"] = 0

    assert any("letter A" in p for p in _mutated(items, fn))


def test_check_detects_wrong_arithmetic_answer(items):
    def fn(records):
        r = _first(records, "arithmetic", "ko")
        r["answer_number"] = r["choices"][(r["label"] + 1) % 4]

    found = _mutated(items, fn)
    assert any("not '" in p or "differ in answer_number" in p for p in found)


def test_check_detects_inconsistent_passage_and_length_leak(items):
    def fn(records):
        reading = [r for r in records if r["category"] == "reading" and r["lang"] == "ko"]
        reading[1]["passage"] = reading[1]["passage"] + " 덧붙인 문장이다."
        for r in records:
            if r["category"] == "commonsense" and r["lang"] == "en":
                r["choices"][r["label"]] += " (this is the full and complete answer)"

    found = _mutated(items, fn)
    assert any("different passage texts" in p for p in found)
    assert any("longest" in p for p in found)


def test_check_detects_bad_ids_and_nfd(items):
    def fn(records):
        _first(records, "knowledge", "ko")["id"] = "know-1-ko"

    assert any("does not match" in p for p in _mutated(items, fn))

    def fn2(records):
        r = _first(records, "korean_culture", "ko")
        r["question"] = unicodedata.normalize("NFD", r["question"])

    assert any("NFC" in p for p in _mutated(items, fn2))


def test_check_detects_duplicate_ids_and_low_counts(items):
    def fn(records):
        records.append(copy.deepcopy(_first(records, "korean_culture", "ko")))

    assert any("duplicate id" in p for p in _mutated(items, fn))

    def fn2(records):
        records[:] = [r for r in records if r["category"] != "arithmetic" or r["pair_id"] < "arith-010"]

    assert any("arithmetic:" in p and "< 40" in p for p in _mutated(items, fn2))


def overlap_baseline(records: list[dict]) -> float:
    """Accuracy of a no-understanding reading baseline: pick the option whose character bigrams
    (spaces removed, lower-cased) occur most often in the passage, as a share of its bigrams."""

    def grams(text: str) -> set[str]:
        text = "".join(text.lower().split())
        return {text[i : i + 2] for i in range(len(text) - 1)}

    hits = 0
    for r in records:
        passage = grams(r["passage"])
        scores = [len(grams(c) & passage) / max(1, len(grams(c))) for c in r["choices"]]
        hits += max(range(4), key=scores.__getitem__) == r["label"]
    return hits / len(records)


MAX_OVERLAP_BASELINE = 0.70  # DATACARD.md reports the measured values (0.67 ko, 0.54 en)


def test_reading_overlap_baseline_is_bounded(items):
    for lang in ("ko", "en"):
        reading = [r for r in items if r["category"] == "reading" and r["lang"] == lang]
        assert overlap_baseline(reading) <= MAX_OVERLAP_BASELINE, lang


def test_overlap_baseline_detects_copied_answers(items):
    reading = copy.deepcopy([r for r in items if r["category"] == "reading" and r["lang"] == "en"])
    for r in reading:  # correct option copied from the passage, distractors with no overlap at all
        r["choices"] = [f"zq{k}x{k}" for k in range(4)]
        r["choices"][r["label"]] = r["passage"].split(". ")[0]
    assert overlap_baseline(reading) == 1.0


# ----------------------------------------------------------------------- near-duplicates and the source

TWIN_JACCARD = 0.6  # word-set overlap at which two questions count as one template


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", _norm(text)))


def template_twins(a: list[dict], b: list[dict] | None = None) -> list[tuple[str, str, float]]:
    """Question pairs (same language, reading excluded: its questions share a passage by design) whose
    word sets overlap by at least :data:`TWIN_JACCARD`; within ``a`` if ``b`` is None, else across."""
    out = []
    for i, x in enumerate(a):
        for y in a[i + 1 :] if b is None else b:
            if x["lang"] != y["lang"] or "reading" in (x["category"], y["category"]):
                continue
            wx, wy = _words(x["question"]), _words(y["question"])
            j = len(wx & wy) / len(wx | wy)
            if j >= TWIN_JACCARD:
                out.append((x["id"], y["id"], round(j, 2)))
    return out


def test_no_template_twins_within_test_or_with_fewshot(items, fewshot):
    assert template_twins(items) == []
    assert template_twins(items, fewshot) == []


def test_twin_check_can_fail(items, fewshot):
    records = copy.deepcopy(items)
    fs = next(r for r in fewshot if r["id"] == "know-fs01-en")  # "What is the capital of Italy?"
    target = next(r for r in records if r["id"] == "know-005-en")
    target["question"] = fs["question"].replace("Italy", "France")
    assert ("know-005-en", "know-fs01-en", 0.71) in template_twins(records, fewshot)


def _builder():
    script = REPO / "tools" / "koen_parallel_build.py"
    if not script.exists():
        pytest.skip("generator script not present (installed package without the repository)")
    spec = importlib.util.spec_from_file_location("koen_parallel_build", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_is_data_and_arithmetic_is_not_eval():
    b = _builder()
    builder_text = (REPO / "tools" / "koen_parallel_build.py").read_text()
    assert not hasattr(b, "SOURCES") and "eval(" not in builder_text
    for name in (*CATEGORIES, "fewshot"):
        assert data_path("koen_parallel", "source", f"{name}.txt").is_file()
    assert b.arith("25 * 16") == 400 and b.arith("ceil(50 / 6) - 2 ** 3") == 1
    for bad in ("__import__('os').getcwd()", "open('x')", "ceil(1, 2)", "x + 1", "[1][0]"):
        with pytest.raises(b.BuildError, match="not an arithmetic expression"):
            b.arith(bad)
