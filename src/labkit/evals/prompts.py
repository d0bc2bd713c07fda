"""Korean and English prompt templates, deterministic few-shot selection, and request building.

Three styles:

``cloze``
    The context is the question; each option *text* is a continuation (``" " + choice``), scored by
    log-likelihood (lm-eval's ``multiple_choice``).
``letters``
    The options are listed in the prompt with letters and the continuation is the letter
    (``" A"``, ``" B"``…); the prediction is the label with the highest next-token probability among
    the label tokens only. This is how HyperCLOVA X posed multiple-choice items (arXiv:2404.01954 §3).
``generate``
    The options are listed in the prompt *without* letters and the model generates the answer text
    (greedy, at most ``max_new_tokens``, cut at the first stop string in ``until``); the answer is
    the option it names by prefix match (:func:`labkit.evals.scoring.match_option`). Shots end with
    their gold option's text. This is how HyperCLOVA X scored ARC.

lm-eval's Korean configs have template quirks (see ``bilingual_eval.md`` §0.4 and §2.5). With
``compat=False`` (the default) labkit fixes them; ``compat=True`` reproduces them byte for byte:

1. KoBEST-BoolQ ends in ``"답변: "``; with the default delimiter the continuation becomes ``"  예"``
   (two spaces). Fixed: ``"답변:"`` + ``" 예"``.
2. KoBEST-COPA writes ``f"{premise} {connector}"`` with a connector that already starts with a space
   (two spaces). Fixed: one space.
3. KMMLU ends in ``"정답："`` with a full-width colon U+FF1A, which tokenizes unlike ``":"`` in the
   few-shot answers of other tasks. Fixed: ASCII ``":"``.
4. CLIcK lists only options A–D for five-option CSAT items (option E is scored but never shown), and
   writes ``"A:"`` without a space. Fixed: every option on its own line as ``"A. …"``.
5. HAE-RAE draws few-shot examples from the test split. Fixed: shots never include the test item or
   any item of its cluster (applies to every task).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .errors import EvalError
from .schema import Item

__all__ = [
    "CLOZE_TEMPLATES",
    "Prompt",
    "PromptConfig",
    "build_prompt",
    "letter_labels",
    "select_shots",
    "shuffle_options",
    "subject_particle",
]

LETTERS = "ABCDEFGHIJ"
STYLES = ("cloze", "letters", "generate")
#: PromptConfig fields that only the ``generate`` style uses (left out of other styles' cache keys).
GENERATION_FIELDS = ("max_new_tokens", "until")
SAMPLERS = ("random", "first_n", "shared")

_Q = {"ko": "질문", "en": "Question"}
_A = {"ko": "정답", "en": "Answer"}
_OPTIONS = {"ko": "보기", "en": "Options"}
_INSTR = {
    "ko": "다음 질문에 알맞은 답을 {labels} 중에서 하나 골라 알파벳으로 답하세요.",
    "en": "Answer the following question with one of the letters {labels}.",
}
_INSTR_GENERATE = {
    "ko": "다음 질문에 알맞은 답을 보기 중에서 하나 골라 그 내용을 그대로 답하세요.",
    "en": "Answer the following question by copying the text of one of the options.",
}


@dataclass(frozen=True)
class PromptConfig:
    """How items become requests. Part of every results cache key.

    Attributes
    ----------
    style:
        ``"cloze"``, ``"letters"`` or ``"generate"``.
    shots:
        Few-shot examples per item (whole examples are dropped if the prompt does not fit).
    sampler:
        ``"random"`` (per item, seeded by ``(seed, item id)``, so resuming never changes a prompt),
        ``"first_n"`` (lm-eval's MMLU) or ``"shared"`` (one seeded set for all items, as HELM).
    seed:
        Few-shot seed (lm-eval's default few-shot seed is 1234).
    chat:
        Wrap the prompt in the tokenizer's chat template (user turn + generation prompt); the
        continuation then has no leading delimiter.
    compat:
        Reproduce lm-eval's Korean template quirks instead of fixing them.
    lang:
        Template language; ``None`` uses each item's own language.
    target_delimiter, fewshot_delimiter:
        lm-eval's defaults ``" "`` and ``"\\n\\n"``.
    same_subject:
        Draw shots only from pool items of the test item's ``category`` (MMLU/KMMLU subjects).
    subject_header:
        Start the prompt with lm-eval's MMLU line "The following are multiple choice questions (with
        answers) about <subject>." (subject = the item's ``category``).
    shuffle_options:
        Shuffle each item's options (and its shots' options) with a permutation seeded by
        ``(seed, item id)``, as HCX did for ARC.
    max_new_tokens:
        ``generate`` only: the generation budget, in new tokens (>= 1). A gold option longer than
        this (in tokens) cannot be matched.
    until:
        ``generate`` only: stop strings; the generated text is cut at the first one (default: a
        newline, which also ends each shot's answer).

    :meth:`as_dict` (the form in cache keys and ``meta.json``) holds ``max_new_tokens`` and
    ``until`` only for the ``generate`` style, so that adding them changed no other run's key.
    """

    style: str = "letters"
    shots: int = 0
    sampler: str = "random"
    seed: int = 1234
    chat: bool = False
    compat: bool = False
    lang: str | None = None
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    same_subject: bool = False
    subject_header: bool = False
    shuffle_options: bool = False
    max_new_tokens: int = 64
    until: tuple[str, ...] = ("\n",)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise EvalError(f"PromptConfig.style={self.style!r} must be one of {STYLES}")
        if self.sampler not in SAMPLERS:
            raise EvalError(f"PromptConfig.sampler={self.sampler!r} must be one of {SAMPLERS}")
        if not isinstance(self.shots, int) or self.shots < 0:
            raise EvalError(f"PromptConfig.shots={self.shots!r} must be an int >= 0")
        if self.lang not in (None, "ko", "en"):
            raise EvalError(f"PromptConfig.lang={self.lang!r} must be None, 'ko' or 'en'")
        budget = self.max_new_tokens
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise EvalError(
                f"PromptConfig.max_new_tokens={budget!r} must be an int >= 1 (the generation budget, "
                "in new tokens)"
            )
        if isinstance(self.until, str) or not all(isinstance(u, str) for u in self.until):
            raise EvalError(f"PromptConfig.until={self.until!r} must be a sequence of stop strings")
        object.__setattr__(self, "until", tuple(self.until))  # a list from JSON or the CLI

    def as_dict(self) -> dict:
        """The fields as a dict; ``max_new_tokens``/``until`` only for the ``generate`` style."""
        d = asdict(self)
        if self.style != "generate":
            for k in GENERATION_FIELDS:
                d.pop(k)
        return d


@dataclass(frozen=True)
class Prompt:
    """A rendered item: one context, one continuation per option, and the shots used."""

    context: str
    continuations: tuple[str, ...]
    labels: tuple[str, ...]
    shot_ids: tuple[str, ...]


def letter_labels(item: Item, template: str) -> tuple[str, ...]:
    """Labels shown for the options: ``A, B, …`` (HAE-RAE: ``(A), (B), …``)."""
    n = len(item.choices)
    if template == "haerae":
        return tuple(f"({c})" for c in LETTERS[:n])
    return tuple(LETTERS[:n])


def _lang(item: Item, cfg: PromptConfig) -> str:
    return cfg.lang or item.lang


# --------------------------------------------------------------------------- cloze
def _cloze_generic(item: Item, lang: str, compat: bool) -> str:
    head = f"{item.passage}\n\n" if item.passage else ""
    return f"{head}{_Q[lang]}: {item.question}\n{_A[lang]}:"


def _cloze_boolq(item: Item, lang: str, compat: bool) -> str:
    return f"{item.passage} 질문: {item.question} 답변:" + (" " if compat else "")


def _cloze_copa(item: Item, lang: str, compat: bool) -> str:
    connector = {"원인": " 왜냐하면", "결과": " 그래서"}[item.meta["relation"]]
    return f"{item.question} {connector}" if compat else f"{item.question}{connector}"


def subject_particle(word: str) -> str:
    """``word`` with the subject particle its last syllable takes: 이 after a final consonant
    (받침), 가 after a vowel: "눈이", "사과가". A word that does not end in a Hangul syllable
    (digits, Latin letters) gets "이(가)", the form Korean forms use when the reading is unknown."""
    last = word.rstrip()[-1:] if word.strip() else ""
    if not ("가" <= last <= "힣"):
        return f"{word}이(가)"
    return word + ("이" if (ord(last) - 0xAC00) % 28 else "가")


def _cloze_wic(item: Item, lang: str, compat: bool) -> str:
    m = item.meta
    # lm-eval writes f"{word}가" whatever the word ("눈가" is another word: the skin around the eyes)
    word = f"{item.question}가" if compat else subject_particle(item.question)
    return f"문장1: {m['context_1']} 문장2: {m['context_2']} 두 문장에서 {word} 같은 뜻으로 쓰였나?"


def _cloze_kobest_hellaswag(item: Item, lang: str, compat: bool) -> str:
    return f"문장: {item.question}"


def _cloze_sentineg(item: Item, lang: str, compat: bool) -> str:
    return f"문장: {item.question} 긍부정:"


def _cloze_plain(item: Item, lang: str, compat: bool) -> str:
    return item.question


def _cloze_arc(item: Item, lang: str, compat: bool) -> str:
    return f"Question: {item.question}\nAnswer:"


#: Cloze contexts per template key (lm-eval's ``doc_to_text``, with the Korean quirks fixed).
CLOZE_TEMPLATES = {
    "generic": _cloze_generic,
    "kobest_boolq": _cloze_boolq,
    "kobest_copa": _cloze_copa,
    "kobest_wic": _cloze_wic,
    "kobest_hellaswag": _cloze_kobest_hellaswag,
    "kobest_sentineg": _cloze_sentineg,
    "kmmlu": _cloze_generic,
    "haerae": _cloze_plain,
    "click": _cloze_generic,
    "mmlu": _cloze_generic,
    "arc": _cloze_arc,
    "hellaswag": _cloze_plain,
}


# --------------------------------------------------------------------------- letters
def _letters_context(item: Item, template: str, lang: str, compat: bool, chat: bool) -> str:
    labels = letter_labels(item, template)
    if template == "haerae":
        return item.question.rstrip()
    if template == "click":
        o = item.choices
        shown = "A, B, C, D" if compat else ", ".join(labels)
        if item.passage:
            head = (
                f"주어진 맥락을 천천히 읽고, 질문에 대한 적절한 정답을 {shown} 중에 "
                "골라 알파벳 하나로 답하시오.\n\n"
            )
            head += f"맥락: {item.passage}\n"
        else:
            head = f"주어진 질문을 천천히 읽고, 적절한 정답을 {shown} 중에 골라 알파벳 하나로 답하시오.\n\n"
        if compat:  # lm-eval 0.4.13 click_*/utils.py: only four options, "A:" without a space
            opts = f"A:{o[0]}, B: {o[1]}, C: {o[2]}, D: {o[3]}"
        else:
            opts = "\n".join(f"{lab}. {c}" for lab, c in zip(labels, o, strict=True))
        return f"{head}질문: {item.question}\n보기:\n{opts}\n정답:"
    opts = "\n".join(f"{lab}. {c}" for lab, c in zip(labels, item.choices, strict=True))
    if template == "kmmlu":
        return f"{item.question}\n{opts}\n정답" + ("：" if compat else ":")
    if template == "mmlu":
        return f"{item.question}\n{opts}\nAnswer:"
    if template.startswith("kobest_") or template == "hellaswag":  # the benchmark's own stem + options
        stem = CLOZE_TEMPLATES[template](item, lang, False).rstrip()
        return f"{stem}\n{opts}\n{_A[lang]}:"
    head = f"{item.passage}\n\n" if item.passage else ""
    instr = _INSTR[lang].format(labels=", ".join(labels)) + "\n\n" if chat else ""
    return f"{instr}{head}{_Q[lang]}: {item.question}\n{opts}\n{_A[lang]}:"


# --------------------------------------------------------------------------- few-shot
def shuffle_options(item: Item, seed: int) -> Item:
    """``item`` with its options in a permutation seeded by ``(seed, item id)``; the label follows."""
    import dataclasses

    order = list(range(len(item.choices)))
    random.Random(f"shuffle:{seed}:{item.id}").shuffle(order)
    meta = {**item.meta, "option_order": order}
    return dataclasses.replace(
        item, choices=tuple(item.choices[i] for i in order), label=order.index(item.label), meta=meta
    )


def select_shots(item: Item, pool: Sequence[Item], cfg: PromptConfig) -> list[Item]:
    """Deterministic few-shot examples for ``item``; never the item itself or its cluster.

    With ``cfg.same_subject`` only pool items of the item's ``category`` are candidates.
    """
    if cfg.shots == 0 or not pool:
        return []
    if cfg.same_subject:
        pool = [p for p in pool if p.category == item.category]
    ok = [p for p in pool if p.id != item.id and (item.cluster is None or p.cluster != item.cluster)]
    k = min(cfg.shots, len(ok))
    if cfg.sampler == "first_n":
        return ok[:k]
    if cfg.sampler == "shared":
        shared = random.Random(cfg.seed).sample(list(pool), min(cfg.shots, len(pool)))
        return [p for p in shared if p in ok][:k]
    return random.Random(f"{cfg.seed}:{item.id}").sample(ok, k)


def _generate_context(item: Item, lang: str, chat: bool) -> str:
    """Question, then the options one per line as ``- text`` (no letters: the answer is the text)."""
    head = f"{item.passage}\n\n" if item.passage else ""
    instr = _INSTR_GENERATE[lang] + "\n\n" if chat else ""
    opts = "\n".join(f"- {c}" for c in item.choices)
    return f"{instr}{head}{_Q[lang]}: {item.question}\n{_OPTIONS[lang]}:\n{opts}\n{_A[lang]}:"


def _render(item: Item, template: str, cfg: PromptConfig) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    lang = _lang(item, cfg)
    if cfg.style == "generate":
        return _generate_context(item, lang, cfg.chat), tuple(item.choices), tuple(item.choices)
    if cfg.style == "letters":
        labels = letter_labels(item, template)
        ctx = _letters_context(item, template, lang, cfg.compat, cfg.chat)
        return ctx, labels, labels
    try:
        fn = CLOZE_TEMPLATES[template]
    except KeyError:
        raise EvalError(f"unknown template {template!r}; known: {sorted(CLOZE_TEMPLATES)}") from None
    return fn(item, lang, cfg.compat), tuple(item.choices), tuple(item.choices)


def build_prompt(
    item: Item, template: str, cfg: PromptConfig, shots: Sequence[Item] = (), tokenizer=None
) -> Prompt:
    """Render ``item`` (with ``shots``) into one context and its per-option continuations.

    In the ``generate`` style the continuations are the option texts (with the delimiter), i.e. the
    answers a shot ends with; the model's own answer is generated after the context.

    With ``cfg.chat`` the whole few-shot prompt becomes one user turn of ``tokenizer``'s chat
    template with the generation prompt appended, and continuations carry no delimiter.
    """
    parts = []
    for s in shots:
        if cfg.shuffle_options:
            s = shuffle_options(s, cfg.seed)
        sctx, sconts, _ = _render(s, template, cfg)
        parts.append(f"{sctx}{cfg.target_delimiter}{sconts[s.label]}")
    ctx, conts, labels = _render(item, template, cfg)
    context = cfg.fewshot_delimiter.join([*parts, ctx])
    if cfg.subject_header and item.category:
        subject = item.category.replace("_", " ")
        context = f"The following are multiple choice questions (with answers) about {subject}.\n\n{context}"
    delim = cfg.target_delimiter
    if cfg.chat:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise EvalError("PromptConfig.chat=True needs a tokenizer with a chat template")
        context = tokenizer.apply_chat_template(
            [{"role": "user", "content": context}], add_generation_prompt=True, tokenize=False
        )
        delim = ""
    return Prompt(context, tuple(delim + c for c in conts), labels, tuple(s.id for s in shots))
