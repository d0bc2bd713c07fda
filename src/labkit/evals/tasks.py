"""Task registry and loaders for the real field layouts of public Korean and English benchmarks.

Each :class:`TaskSpec` records the benchmark's Hugging Face location, its raw fields, the HyperCLOVA X
(HCX, arXiv:2404.01954) category and shot count, its scoring, and a converter from a raw record to an
:class:`~labkit.evals.schema.Item`. Records come from a local JSONL file in the benchmark's own layout
(tests use small fixtures written for this project; the real KMMLU/HAE-RAE licences forbid copying)
or, on a workstation, through ``datasets.load_dataset`` — from its local cache only unless
``LABKIT_OFFLINE=0`` (:class:`~labkit.evals.errors.OfflineDatasetError` otherwise).

The book's own parallel Korean/English set is task ``koen_parallel`` (package data, ``lang`` ko/en).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import data_path
from .errors import EvalDataError, OfflineDatasetError, UnknownGroupError, UnknownTaskError
from .schema import Item, check_unique_ids, item_from_dict, make_item, read_jsonl, validate_record

__all__ = [
    "GROUPS",
    "KMMLU_SUBJECTS",
    "KOEN_CATEGORIES",
    "TASKS",
    "TaskGroup",
    "TaskSpec",
    "get_group",
    "get_task",
    "has_package_data",
    "load_fewshot",
    "load_records",
    "load_task",
    "protocol",
    "take_balanced",
    "task_table",
]

LETTERS = "ABCDEFGHIJ"
KOEN_CATEGORIES = ("knowledge", "commonsense", "arithmetic", "reading", "korean_culture")


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark: where it lives, its raw fields, and how HCX evaluated it.

    Attributes
    ----------
    name, benchmark:
        Registry key and display name.
    lang:
        ``"ko"``, ``"en"`` or ``"ko+en"`` (parallel).
    hcx_category:
        HCX category (``"Kor."``, ``"Eng."``, ``"CS"``, ``"Fact"``) or ``None`` if HCX did not use it.
    shots:
        Few-shot count (HCX's where HCX used the benchmark, else lm-eval's default).
    scoring:
        ``"letters"`` (options in the prompt, next-token probability restricted to the labels, as HCX
        did for most benchmarks), ``"cloze"`` (log-likelihood of each option text) or
        ``"generate"`` (options in the prompt, the model generates the answer text, scored by prefix
        match against the options: HCX's ARC; :func:`labkit.evals.scoring.match_option`).
    template:
        Key of the cloze prompt in :data:`labkit.evals.prompts.CLOZE_TEMPLATES`.
    required, optional:
        Raw record fields (the real dataset layout).
    sampler:
        Few-shot sampler of the reference protocol: ``"first_n"`` (lm-eval's MMLU: the first n dev
        items) or ``"random"`` (lm-eval's default; KMMLU).
    same_subject_shots:
        Draw shots only from dev items of the test item's own subject (``category``), as lm-eval does
        by running each MMLU/KMMLU subject as its own task.
    subject_header:
        Start the prompt with lm-eval's MMLU description line naming the subject.
    subsets:
        The ``category`` values the reference run keeps (HCX's CLIcK subset); ``None`` keeps all.
    shuffle_options:
        Shuffle each item's options with a seeded per-item permutation (HCX did so for ARC, whose
        gold positions are biased).
    max_new_tokens, until:
        ``generate`` scoring: the greedy generation budget (new tokens) and the stop strings.
    """

    name: str
    benchmark: str
    lang: str
    hcx_category: str | None
    shots: int
    scoring: str
    template: str
    required: tuple[str, ...]
    convert: Callable[[dict, str, str], Item]
    optional: tuple[str, ...] = ()
    hf_path: str | None = None
    hf_name: str | None = None
    test_split: str = "test"
    fewshot_split: str | None = None
    metric: str = "acc"
    licence: str = "unknown"
    notes: str = ""
    configs: tuple[str, ...] = field(default_factory=tuple)
    sampler: str = "random"
    same_subject_shots: bool = False
    subject_header: bool = False
    subsets: tuple[str, ...] | None = None
    shuffle_options: bool = False
    protocol_notes: str = ""
    max_new_tokens: int = 64
    until: tuple[str, ...] = ("\n",)


# --------------------------------------------------------------------------- converters
def _label(value, n: int, where: str, field_name: str = "label") -> int:
    try:
        lab = int(value)
    except (TypeError, ValueError):
        raise EvalDataError(f"{where}: field {field_name!r}={value!r} is not an integer") from None
    if not 0 <= lab < n:
        raise EvalDataError(f"{where}: field {field_name!r}={value!r} out of range for {n} choices")
    return lab


def _rid(r: dict, where: str) -> str:
    """The record's own id, else its location (``file:line`` without folders)."""
    return str(r["id"]) if r.get("id") is not None else where.rsplit("/", 1)[-1]


def _kobest_boolq(r: dict, where: str, task: str) -> Item:
    return make_item(
        id=_rid(r, where),
        question=r["question"],
        passage=r["paragraph"],
        choices=["아니오", "예"],
        label=_label(r["label"], 2, where),
        lang="ko",
        where=where,
    )


def _kobest_copa(r: dict, where: str, task: str) -> Item:
    q = str(r["question"]).strip()
    if q not in ("원인", "결과"):
        raise EvalDataError(f"{where}: field 'question'={r['question']!r} must be '원인' or '결과'")
    return make_item(
        id=_rid(r, where),
        question=r["premise"],
        choices=[r["alternative_1"], r["alternative_2"]],
        label=_label(r["label"], 2, where),
        lang="ko",
        meta={"relation": q},
        where=where,
    )


def _kobest_wic(r: dict, where: str, task: str) -> Item:
    return make_item(
        id=_rid(r, where),
        question=r["word"],
        choices=["아니오", "예"],
        label=_label(r["label"], 2, where),
        lang="ko",
        meta={"context_1": r["context_1"], "context_2": r["context_2"]},
        where=where,
    )


def _kobest_hellaswag(r: dict, where: str, task: str) -> Item:
    return make_item(
        id=_rid(r, where),
        question=r["context"],
        choices=[r[f"ending_{i}"] for i in range(1, 5)],
        label=_label(r["label"], 4, where),
        lang="ko",
        where=where,
    )


def _kobest_sentineg(r: dict, where: str, task: str) -> Item:
    return make_item(
        id=_rid(r, where),
        question=r["sentence"],
        choices=["부정", "긍정"],
        label=_label(r["label"], 2, where),
        lang="ko",
        where=where,
    )


def _kmmlu(r: dict, where: str, task: str) -> Item:
    # answer is 1-based (lm-eval uses answer-1)
    return make_item(
        id=_rid(r, where),
        question=str(r["question"]).strip(),
        choices=[str(r[k]) for k in "ABCD"],
        label=_label(int(r["answer"]) - 1, 4, where, "answer"),
        lang="ko",
        category=r.get("Category"),
        where=where,
    )


_HAERAE_OPT = re.compile(r"\(([A-E])\)\s*(.+?)(?=\s*\([A-E]\)|\s*###|\n|$)")


def _haerae(r: dict, where: str, task: str) -> Item:
    query = str(r["query"])
    ans = str(r["answer"]).strip()
    m = re.fullmatch(r"\(?([A-E])\)?", ans)
    if not m:
        raise EvalDataError(f"{where}: field 'answer'={r['answer']!r} must be a letter like '(A)'")
    opts = dict(_HAERAE_OPT.findall(query.split("선택지", 1)[-1]))
    letters = sorted(opts) if opts else list("ABCDE")
    if opts and letters != list(LETTERS[: len(letters)]):
        raise EvalDataError(f"{where}: options in 'query' are not consecutive letters: {letters}")
    choices = [opts[k].strip() for k in letters] if opts else [f"({k})" for k in letters]
    return make_item(
        id=_rid(r, where),
        question=query,
        choices=choices,
        label=_label(LETTERS.index(m.group(1)), len(choices), where, "answer"),
        lang="ko",
        category=r.get("category"),
        meta={"options_in_question": True, "parsed_options": bool(opts)},
        where=where,
    )


def _click(r: dict, where: str, task: str) -> Item:
    choices = list(r["choices"])
    if r["answer"] not in choices:
        raise EvalDataError(f"{where}: field 'answer'={r['answer']!r} is not one of 'choices'")
    para = r.get("paragraph") or None
    return make_item(
        id=r["id"],
        question=r["question"],
        passage=para,
        choices=choices,
        label=choices.index(r["answer"]),
        lang="ko",
        cluster=para and "p:" + hashlib.sha1(para.encode()).hexdigest()[:10],
        category=_click_category(r["id"]),
        where=where,
    )


def _click_category(item_id: str) -> str:
    low = item_id.lower()
    for key in ("economy", "geography", "law", "politics", "popular", "society", "tradition", "history"):
        if key in low:
            return key
    if "KHB" in item_id:
        return "history"
    if "PSAT" in item_id:
        return "law"
    return "language"


def _mmlu(r: dict, where: str, task: str) -> Item:
    choices = list(r["choices"])
    return make_item(
        id=_rid(r, where),
        question=str(r["question"]).strip(),
        choices=choices,
        label=_label(r["answer"], len(choices), where, "answer"),
        lang="en",
        category=r.get("subject"),
        where=where,
    )


def _arc(r: dict, where: str, task: str) -> Item:
    ch = r["choices"]
    if not isinstance(ch, dict) or set(ch) != {"text", "label"}:
        raise EvalDataError(f"{where}: field 'choices' must be {{'text': [...], 'label': [...]}}")
    if r["answerKey"] not in ch["label"]:
        raise EvalDataError(f"{where}: field 'answerKey'={r['answerKey']!r} not in labels {ch['label']}")
    return make_item(
        id=r["id"],
        question=r["question"],
        choices=list(ch["text"]),
        label=list(ch["label"]).index(r["answerKey"]),
        lang="en",
        where=where,
    )


def _hellaswag_pre(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(r: dict, where: str, task: str) -> Item:
    ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
    endings = [_hellaswag_pre(e) for e in r["endings"]]
    return make_item(
        id=str(r.get("ind", where)),
        question=_hellaswag_pre(r["activity_label"] + ": " + ctx),
        choices=endings,
        label=_label(r["label"], len(endings), where),
        lang="en",
        category=r.get("activity_label"),
        where=where,
    )


KOEN_FIELDS = (
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
)


def _koen(r: dict, where: str, task: str) -> Item:
    if r["category"] not in KOEN_CATEGORIES:
        raise EvalDataError(f"{where}: field 'category'={r['category']!r} not in {KOEN_CATEGORIES}")
    if not isinstance(r["choices"], list) or len(r["choices"]) != 4:
        raise EvalDataError(f"{where}: field 'choices' must be a list of 4 strings (id={r['id']!r})")
    if isinstance(r["label"], bool) or not isinstance(r["label"], int):
        raise EvalDataError(f"{where}: field 'label'={r['label']!r} must be an int 0-3 (id={r['id']!r})")
    return make_item(
        id=r["id"],
        question=r["question"],
        choices=r["choices"],
        label=r["label"],
        lang=r["lang"],
        category=r["category"],
        passage=r["passage"],
        cluster=r["passage_id"] or r["pair_id"],
        answer=r["answer_number"],
        meta={"pair_id": r["pair_id"], "passage_id": r["passage_id"]},
        where=where,
    )


def _labkit(r: dict, where: str, task: str) -> Item:
    src, _, line = where.rpartition(":")
    return item_from_dict(r, source=src or where, line=int(line) if line.isdigit() else None)


# --------------------------------------------------------------------------- registry
#: KMMLU's 45 subjects (the ``dataset_name`` of lm-eval 0.4.13's ``kmmlu_*`` tasks).
KMMLU_SUBJECTS: tuple[str, ...] = (
    "Accounting",
    "Agricultural-Sciences",
    "Aviation-Engineering-and-Maintenance",
    "Biology",
    "Chemical-Engineering",
    "Chemistry",
    "Civil-Engineering",
    "Computer-Science",
    "Construction",
    "Criminal-Law",
    "Ecology",
    "Economics",
    "Education",
    "Electrical-Engineering",
    "Electronics-Engineering",
    "Energy-Management",
    "Environmental-Science",
    "Fashion",
    "Food-Processing",
    "Gas-Technology-and-Engineering",
    "Geomatics",
    "Health",
    "Industrial-Engineer",
    "Information-Technology",
    "Interior-Architecture-and-Design",
    "Korean-History",
    "Law",
    "Machine-Design-and-Manufacturing",
    "Management",
    "Maritime-Engineering",
    "Marketing",
    "Materials-Engineering",
    "Math",
    "Mechanical-Engineering",
    "Nondestructive-Testing",
    "Patent",
    "Political-Science-and-Sociology",
    "Psychology",
    "Public-Safety",
    "Railway-and-Automotive-Engineering",
    "Real-Estate",
    "Refrigerating-Machinery",
    "Social-Welfare",
    "Taxation",
    "Telecommunications-and-Wireless-Technology",
)

_KOBEST = dict(
    hf_path="skt/kobest_v1",
    fewshot_split="train",
    licence="CC-BY-SA-4.0",
    metric="acc",
    hcx_category=None,
    lang="ko",
    scoring="cloze",
    shots=0,
)

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec(
            "kobest_boolq",
            "KoBEST BoolQ",
            template="kobest_boolq",
            required=("paragraph", "question", "label"),
            convert=_kobest_boolq,
            hf_name="boolq",
            optional=("id",),
            notes="lm-eval prompt ends '답변: ' → continuation '  예' (two spaces); fixed",
            **_KOBEST,
        ),
        TaskSpec(
            "kobest_copa",
            "KoBEST COPA",
            template="kobest_copa",
            required=("premise", "question", "alternative_1", "alternative_2", "label"),
            convert=_kobest_copa,
            hf_name="copa",
            optional=("id",),
            notes="lm-eval puts two spaces before the connector; fixed",
            **_KOBEST,
        ),
        TaskSpec(
            "kobest_wic",
            "KoBEST WiC",
            template="kobest_wic",
            required=("word", "context_1", "context_2", "label"),
            convert=_kobest_wic,
            hf_name="wic",
            optional=("id",),
            **_KOBEST,
        ),
        TaskSpec(
            "kobest_hellaswag",
            "KoBEST HellaSwag",
            template="kobest_hellaswag",
            required=("context", "ending_1", "ending_2", "ending_3", "ending_4", "label"),
            convert=_kobest_hellaswag,
            hf_name="hellaswag",
            optional=("id",),
            **_KOBEST,
        ),
        TaskSpec(
            "kobest_sentineg",
            "KoBEST SentiNeg",
            template="kobest_sentineg",
            required=("sentence", "label"),
            convert=_kobest_sentineg,
            hf_name="sentineg",
            optional=("id",),
            **_KOBEST,
        ),
        TaskSpec(
            "kmmlu",
            "KMMLU",
            lang="ko",
            hcx_category="Kor.",
            shots=5,
            scoring="letters",
            template="kmmlu",
            required=("question", "answer", "A", "B", "C", "D"),
            optional=("Category", "Human Accuracy", "id"),
            convert=_kmmlu,
            hf_path="HAERAE-HUB/KMMLU",
            fewshot_split="dev",
            licence="CC-BY-ND-4.0",
            configs=KMMLU_SUBJECTS,
            same_subject_shots=True,
            notes="lm-eval prompt ends in a full-width colon '정답：' (U+FF1A); fixed to ':'; "
            "lm-eval's group is a micro average, the KMMLU paper's a macro average",
            protocol_notes="5 shots = the subject's 5 dev items, in a seeded per-item order (lm-eval's "
            "default sampler on each subject's dev split)",
        ),
        TaskSpec(
            "haerae",
            "HAE-RAE Bench",
            lang="ko",
            hcx_category="Kor.",
            shots=0,
            scoring="letters",
            template="haerae",
            required=("query", "answer"),
            optional=("options", "category", "id"),
            convert=_haerae,
            hf_path="HAERAE-HUB/HAE_RAE_BENCH",
            fewshot_split=None,
            licence="CC-BY-NC-ND-4.0 (v1.1)",
            configs=("general_knowledge", "history", "loan_word", "rare_word", "standard_nomenclature"),
            notes="lm-eval draws few-shot examples from the test split; labkit never uses the test item "
            "(or its cluster) as a shot; reading comprehension is excluded in lm-eval's copy",
        ),
        TaskSpec(
            "click",
            "CLIcK",
            lang="ko",
            hcx_category="Fact",
            shots=0,
            scoring="letters",
            template="click",
            required=("id", "paragraph", "question", "choices", "answer"),
            convert=_click,
            hf_path="EunsuKim/CLIcK",
            test_split="train",
            fewshot_split=None,
            licence="not stated",
            subsets=("popular", "politics", "tradition"),
            notes="lm-eval lists only options A-D for 5-option CSAT items and writes 'A:' without a "
            "space; fixed (all options shown)",
            protocol_notes="HCX used only the pop-culture, politics and tradition categories",
        ),
        TaskSpec(
            "mmlu",
            "MMLU",
            lang="en",
            hcx_category="Eng.",
            shots=5,
            scoring="letters",
            template="mmlu",
            required=("question", "choices", "answer"),
            optional=("subject", "id"),
            convert=_mmlu,
            hf_path="cais/mmlu",
            hf_name="all",
            fewshot_split="dev",
            licence="MIT",
            sampler="first_n",
            same_subject_shots=True,
            subject_header=True,
            protocol_notes="lm-eval: the subject's description line, then the first 5 dev items of "
            "the same subject",
        ),
        TaskSpec(
            "arc",
            "ARC (Easy + Challenge)",
            lang="en",
            hcx_category="CS",
            shots=25,
            scoring="generate",
            template="arc",
            required=("id", "question", "choices", "answerKey"),
            convert=_arc,
            hf_path="allenai/ai2_arc",
            hf_name="ARC-Challenge",
            fewshot_split="train",
            licence="CC-BY-SA-4.0",
            configs=("ARC-Easy", "ARC-Challenge"),
            shuffle_options=True,
            notes="HCX shuffles the options (biased positions) and scores by prefix match",
            protocol_notes="as HCX: options shuffled per item (seeded) and listed; the model generates "
            "the answer (greedy, stop at a newline), correct if it prefix-matches the gold option's "
            "text; run Easy and Challenge (group 'arc_all')",
        ),
        TaskSpec(
            "hellaswag",
            "HellaSwag",
            lang="en",
            hcx_category="CS",
            shots=5,
            scoring="letters",
            template="hellaswag",
            required=("ctx_a", "ctx_b", "activity_label", "endings", "label"),
            optional=("ind", "ctx", "source_id", "split", "split_type"),
            convert=_hellaswag,
            hf_path="Rowan/hellaswag",
            test_split="validation",
            fewshot_split="train",
            licence="MIT",
            notes="HCX casts HellaSwag as multiple choice with options shown",
        ),
        TaskSpec(
            "koen_parallel",
            "labkit ko/en parallel set",
            lang="ko+en",
            hcx_category=None,
            shots=0,
            scoring="letters",
            template="generic",
            required=KOEN_FIELDS,
            convert=_koen,
            licence="see DATACARD.md",
            notes="written for this book; translations of one item share a cluster (pair_id)",
        ),
        TaskSpec(
            "labkit_jsonl",
            "labkit item JSONL",
            lang="ko+en",
            hcx_category=None,
            shots=0,
            scoring="cloze",
            template="generic",
            required=("id", "question", "choices", "label"),
            convert=_labkit,
            optional=("lang", "category", "passage", "cluster", "answer", "meta"),
        ),
    ]
}


def get_task(name: str) -> TaskSpec:
    """Registry lookup; :class:`UnknownTaskError` lists the known names."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from None


@contextlib.contextmanager
def _hub_offline(datasets_module: Any) -> Iterator[None]:
    """``datasets`` and ``huggingface_hub`` in offline mode for the block, whenever they were imported.

    Both read ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` once, at import, into module constants: the
    block sets the variables and those constants, and restores all of them afterwards.
    """
    names = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    saved_env = {k: os.environ.get(k) for k in names}
    modules = [getattr(datasets_module, "config", None), sys.modules.get("huggingface_hub.constants")]
    saved = [(m, k, getattr(m, k)) for m in modules if m is not None for k in names if hasattr(m, k)]
    os.environ.update(dict.fromkeys(names, "1"))
    for m, k, _ in saved:
        setattr(m, k, True)
    try:
        yield
    finally:
        for m, k, v in saved:
            setattr(m, k, v)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _records_from_datasets(spec: TaskSpec, split: str, config: str | None) -> list[tuple[str, dict]]:
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - workstation path
        raise EvalDataError(
            f"task {spec.name!r}: loading via `datasets` needs `pip install datasets`"
        ) from err
    if spec.hf_path is None:
        raise EvalDataError(f"task {spec.name!r} has no Hugging Face dataset; pass path=")
    from ..models import _offline_default

    name = f"{spec.hf_path}" + (f" ({config or spec.hf_name})" if config or spec.hf_name else "")
    if not _offline_default():
        ds = datasets.load_dataset(spec.hf_path, config or spec.hf_name, split=split)
    else:
        try:
            with _hub_offline(datasets):
                ds = datasets.load_dataset(spec.hf_path, config or spec.hf_name, split=split)
        except OSError as err:  # FileNotFoundError, ConnectionError (OfflineModeIsEnabled), ...
            raise OfflineDatasetError(
                f"task {spec.name!r}: the Hugging Face dataset {name} [{split}] is not in the local "
                f"cache and labkit runs offline by default ({type(err).__name__}: {err}); set "
                "LABKIT_OFFLINE=0 to let `datasets` download it, or pass path= (a local JSONL file)"
            ) from err
    return [(f"{spec.hf_path}/{config or spec.hf_name}[{split}]:{i}", dict(r)) for i, r in enumerate(ds)]


def load_records(spec: TaskSpec, path: str | Path) -> list[tuple[str, dict]]:
    """Raw records of a local JSONL file, each with a ``file:line`` location for error messages."""
    return [(f"{path}:{n}", rec) for n, rec in read_jsonl(path)]


def _convert(spec: TaskSpec, recs: Sequence[tuple[str, dict]], strict: bool = True) -> list[Item]:
    """Validate and convert raw records. ``strict=False`` (records from ``datasets``, whose column set
    the hub may extend) ignores unknown extra columns but still requires every needed field."""
    items = []
    for where, rec in recs:
        if not strict and isinstance(rec, dict):
            rec = {k: v for k, v in rec.items() if k in spec.required or k in spec.optional}
        validate_record(rec, required=spec.required, optional=spec.optional, source=where)
        items.append(spec.convert(rec, where, spec.name))
    return items


def _default_path(spec: TaskSpec, which: str) -> Path | None:
    if spec.name == "koen_parallel":
        return data_path("koen_parallel", "items.jsonl" if which == "test" else "fewshot.jsonl")
    return None


def has_package_data(name: str) -> bool:
    """Whether task ``name`` (``task`` or ``task:config``) ships with labkit (the book's parallel set);
    the public benchmarks load from a local file or through ``datasets``."""
    return _default_path(get_task(name.split(":", 1)[0]), "test") is not None


def load_task(
    name: str,
    *,
    path: str | Path | None = None,
    lang: str | None = None,
    max_items: int | None = None,
    use_datasets: bool = False,
    split: str | None = None,
    config: str | None = None,
    subsets: Sequence[str] | None = None,
) -> list[Item]:
    """Load the items of a registered task.

    Parameters
    ----------
    name:
        Registry key (:data:`TASKS`); ``"kmmlu:Accounting"`` selects a dataset config.
    path:
        Local JSONL in the benchmark's raw layout. Default: package data for ``koen_parallel``.
    lang:
        Keep only items of this language (``koen_parallel``).
    max_items:
        Keep ``n`` items, taken round-robin over categories (:func:`take_balanced`). For a parallel
        task (items with a ``pair_id``) the choice is made on *pairs*, before the language filter:
        each language keeps its items of the same ``n`` pairs, so the Korean and English runs of one
        ``max_items`` hold the same questions (a Korean-only pair has no English item).
    use_datasets:
        Load through ``datasets.load_dataset`` (workstation): from its local cache only, unless
        ``LABKIT_OFFLINE=0`` allows the network; a dataset not cached raises
        :class:`~labkit.evals.errors.OfflineDatasetError`.
    subsets:
        Keep only items whose ``category`` is one of these (e.g. HCX's CLIcK subset); a name that
        no item carries is an :class:`EvalDataError` naming it.

    Raises
    ------
    UnknownTaskError, EvalDataError, FileNotFoundError
    """
    if ":" in name:
        name, config = name.split(":", 1)
    spec = get_task(name)
    if lang is not None and lang not in ("ko", "en"):
        raise EvalDataError(f"lang={lang!r} must be 'ko' or 'en'")
    if path is None and use_datasets:
        recs = _records_from_datasets(spec, split or spec.test_split, config)
    else:
        path = path or _default_path(spec, "test")
        if path is None:
            raise EvalDataError(
                f"task {name!r}: pass path= (a JSONL in the {spec.benchmark} layout) or use_datasets=True"
            )
        recs = load_records(spec, path)
    items = _convert(spec, recs, strict=not (path is None and use_datasets))
    if config and spec.same_subject_shots and config != spec.hf_name:
        # one subject per config (KMMLU's 45): the config names the subject of test and dev alike
        items = [dataclasses.replace(it, category=config) for it in items]
    check_unique_ids(items, str(path or spec.hf_path))
    if subsets is not None:
        have = sorted({str(it.category) for it in items})
        unknown = [x for x in subsets if x not in have]
        if unknown:
            raise EvalDataError(f"task {name!r}: subset(s) {unknown} not in the data; its subsets are {have}")
        items = [it for it in items if it.category in set(subsets)]
    if max_items is not None and any("pair_id" in it.meta for it in items):
        items = _take_pairs(items, max_items)
    if lang is not None:
        items = [it for it in items if it.lang == lang]
    if max_items is not None and not any("pair_id" in it.meta for it in items):
        items = take_balanced(items, max_items)
    return items


def _take_pairs(items: Sequence[Item], n: int) -> list[Item]:
    """Items of the first ``n`` pairs, taken round-robin over categories (pairs in file order)."""
    first: dict[str, Item] = {}
    for it in items:
        first.setdefault(str(it.meta.get("pair_id", it.id)), it)
    keep = {str(it.meta.get("pair_id", it.id)) for it in take_balanced(list(first.values()), n)}
    return [it for it in items if str(it.meta.get("pair_id", it.id)) in keep]


def take_balanced(items: Sequence[Item], n: int) -> list[Item]:
    """The first ``n`` items taken round-robin over categories (file order within each category).

    Files sorted by id would otherwise give a smoke-sized run of one category only. Without
    categories this is simply the first ``n`` items.
    """
    if n < 0:
        raise EvalDataError(f"max_items must be >= 0, got {n}")
    groups: dict[str | None, list[Item]] = {}
    for it in items:
        groups.setdefault(it.category, []).append(it)
    out: list[Item] = []
    queues = [list(g) for g in groups.values()]
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    order = {it.id: k for k, it in enumerate(items)}
    return sorted(out, key=lambda it: order[it.id])


def load_fewshot(
    name: str,
    *,
    path: str | Path | None = None,
    lang: str | None = None,
    use_datasets: bool = False,
    config: str | None = None,
) -> list[Item]:
    """Few-shot pool of a task: its few-shot split (or ``fewshot.jsonl`` for ``koen_parallel``)."""
    if ":" in name:
        name, config = name.split(":", 1)
    spec = get_task(name)
    if path is None and use_datasets:
        if spec.fewshot_split is None:
            return []
        return load_task(name, use_datasets=True, split=spec.fewshot_split, config=config, lang=lang)
    path = path or _default_path(spec, "fewshot")
    if path is None:
        return []
    return load_task(name, path=path, lang=lang, config=config)


def task_table() -> list[dict]:
    """The registry as rows (for the book's HCX design table)."""
    return [
        dict(
            task=t.name,
            benchmark=t.benchmark,
            lang=t.lang,
            hcx_category=t.hcx_category,
            shots=t.shots,
            scoring=t.scoring,
            sampler=("same-subject " if t.same_subject_shots else "") + t.sampler if t.shots else "—",
            subsets=", ".join(t.subsets) if t.subsets else "all",
            shuffled=t.shuffle_options,
            metric=t.metric,
            source=t.hf_path or "package data",
            licence=t.licence,
            notes=t.notes,
            protocol=t.protocol_notes,
        )
        for t in TASKS.values()
        if t.name != "labkit_jsonl"
    ]


# --------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class TaskGroup:
    """A benchmark made of several registry tasks, with its aggregation stated.

    ``aggregation`` is ``"micro"`` (every item weighs the same: lm-eval's ``weight_by_size: true``)
    or ``"macro"`` (every member weighs the same). ``reference`` says whose convention it is.
    """

    name: str
    benchmark: str
    members: tuple[str, ...]
    aggregation: str
    reference: str
    notes: str = ""

    def __post_init__(self) -> None:
        if self.aggregation not in ("micro", "macro"):
            raise EvalDataError(
                f"TaskGroup {self.name!r}: aggregation={self.aggregation!r} must be micro/macro"
            )


GROUPS: dict[str, TaskGroup] = {
    g.name: g
    for g in [
        TaskGroup(
            "kobest",
            "KoBEST (5 tasks)",
            tuple(t for t in TASKS if t.startswith("kobest_")),
            "micro",
            "lm-eval 0.4.13 group 'kobest' (weight_by_size: true)",
        ),
        TaskGroup(
            "kmmlu",
            "KMMLU (45 subjects)",
            tuple(f"kmmlu:{c}" for c in KMMLU_SUBJECTS),
            "micro",
            "lm-eval 0.4.13 group 'kmmlu' (weight_by_size: true)",
            "the KMMLU paper (and HCX's copied numbers) use the macro average over subjects",
        ),
        TaskGroup(
            "kmmlu_macro",
            "KMMLU (45 subjects, macro)",
            tuple(f"kmmlu:{c}" for c in KMMLU_SUBJECTS),
            "macro",
            "KMMLU paper (Son et al. 2024), as its lm-eval README says",
        ),
        TaskGroup(
            "haerae",
            "HAE-RAE Bench (lm-eval's 5 subsets)",
            tuple(f"haerae:{c}" for c in TASKS["haerae"].configs),
            "micro",
            "lm-eval 0.4.13 group 'haerae' (weight_by_size: true)",
            "reading comprehension is not in lm-eval's copy",
        ),
        TaskGroup(
            "arc_all",
            "ARC (Easy + Challenge)",
            ("arc:ARC-Easy", "arc:ARC-Challenge"),
            "micro",
            "HCX reports one ARC score for Easy + Challenge; its weighting is not stated (micro assumed)",
        ),
    ]
}


def get_group(name: str) -> TaskGroup:
    """Group lookup; :class:`UnknownGroupError` lists the known groups."""
    try:
        return GROUPS[name]
    except KeyError:
        raise UnknownGroupError(f"unknown group {name!r}; known groups: {sorted(GROUPS)}") from None


def protocol(name: str) -> dict:
    """The registry's evaluation protocol of ``name`` (``task`` or ``task:config``) as keyword
    arguments of :class:`~labkit.evals.prompts.PromptConfig` plus ``subsets``.

    This is what :func:`labkit.evals.runner.run_task` and ``labkit eval run`` use unless told
    otherwise: shots, sampler, same-subject shots, the subject header, option shuffling, the scoring
    style (with the generation budget and stop strings of ``generate`` scoring) and the benchmark's
    subset.
    """
    spec = get_task(name.split(":", 1)[0])
    return dict(
        style=spec.scoring,
        shots=spec.shots,
        sampler=spec.sampler,
        same_subject=spec.same_subject_shots,
        subject_header=spec.subject_header,
        shuffle_options=spec.shuffle_options,
        max_new_tokens=spec.max_new_tokens,
        until=spec.until,
        subsets=spec.subsets,
    )
