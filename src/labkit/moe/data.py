"""Offline calibration text with a held-out split, token blocks, and a multiple-choice continuation set.

The corpus is real English prose shipped with every CPython: the reference-manual topics of
``pydoc_data.topics`` (what ``help('for')`` prints) plus the docstrings of a fixed list of standard-
library modules. Documents are assigned to splits by a stable hash of their name:

* ``test``: ~25 % of the ``pydoc_data`` topics, never used for training or policy selection
  (perplexity and zero-shot accuracy);
* ``valid``: ~12 % of the topics (stage-2 policy selection);
* ``train``: the remaining topics and all docstrings (distillation calibration).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import warnings
from dataclasses import dataclass

import torch

from .errors import MoEError, TokenBudgetError

__all__ = [
    "SPLITS",
    "ChoiceItem",
    "continuation_choices",
    "corpus_documents",
    "corpus_fingerprint",
    "split_documents",
    "token_blocks",
    "token_stream",
]

SPLITS = ("train", "valid", "test")

_DOC_MODULES = (
    "abc",
    "argparse",
    "ast",
    "asyncio",
    "base64",
    "bisect",
    "calendar",
    "cmath",
    "codecs",
    "collections",
    "concurrent.futures",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "doctest",
    "email",
    "enum",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "heapq",
    "hmac",
    "html.parser",
    "http.client",
    "imaplib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "locale",
    "logging",
    "mailbox",
    "math",
    "mimetypes",
    "multiprocessing",
    "operator",
    "optparse",
    "os",
    "pathlib",
    "pdb",
    "pickle",
    "pprint",
    "queue",
    "random",
    "re",
    "sched",
    "secrets",
    "selectors",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "trace",
    "traceback",
    "typing",
    "unittest",
    "unittest.mock",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "wave",
    "weakref",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "zipfile",
)


def _module_text(name: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importlib.import_module(name)
    except Exception:  # pragma: no cover - module missing on this platform
        return ""
    parts = [inspect.getdoc(mod) or ""]
    # only the static ``__all__``: ``dir(mod)`` changes with what else the process imported
    for attr in sorted(getattr(mod, "__all__", None) or ()):
        if attr.startswith("_"):
            continue
        obj = getattr(mod, attr, None)
        if (
            not (inspect.isclass(obj) or inspect.isfunction(obj))
            or getattr(obj, "__module__", "") != mod.__name__
        ):
            continue
        # the object's own docstring: ``inspect.getdoc`` would fall back to a base class's, which
        # depends on the process (in a Jupyter kernel ``pdb.Pdb`` inherits nothing from ``bdb``)
        doc = inspect.cleandoc(obj.__doc__) if isinstance(obj.__doc__, str) else ""
        if doc and len(doc) > 80:
            parts.append(f"{attr}\n{doc}")
    return "\n\n".join(p for p in parts if p)


@functools.lru_cache(maxsize=1)
def corpus_documents() -> tuple[tuple[str, str], ...]:
    """All ``(name, text)`` documents of the corpus, in a fixed order (computed once per process)."""
    from pydoc_data.topics import topics

    docs = [(f"topic:{k}", topics[k].strip()) for k in sorted(topics)]
    for name in _DOC_MODULES:
        text = _module_text(name)
        if text:
            docs.append((f"module:{name}", text))
    return tuple(docs)


def _split_of(name: str) -> str:
    if not name.startswith("topic:"):
        return "train"
    h = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 25 else "valid" if h < 37 else "train"


def split_documents(split: str) -> list[str]:
    """The texts of one split (``"train"``, ``"valid"`` or ``"test"``)."""
    if split not in SPLITS:
        raise MoEError(f"split={split!r} must be one of {SPLITS}")
    return [text for name, text in corpus_documents() if _split_of(name) == split]


def corpus_fingerprint() -> str:
    """Short hash of the whole corpus (it changes with the Python version); part of cache keys."""
    h = hashlib.sha256()
    for name, text in corpus_documents():
        h.update(name.encode())
        h.update(text.encode())
    return h.hexdigest()[:12]


def token_stream(tokenizer, split: str) -> torch.Tensor:
    """All documents of a split tokenized and joined by EOS: a 1-D long tensor."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in split_documents(split):
        ids.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        if eos is not None:
            ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def token_blocks(tokenizer, split: str, num_tokens: int, seq_len: int) -> torch.Tensor:
    """``num_tokens // seq_len`` consecutive blocks ``[B, seq_len]`` from the start of a split.

    Raises
    ------
    TokenBudgetError
        If the split holds fewer than ``num_tokens`` tokens, or the budget is below one block.
    """
    if seq_len < 2 or num_tokens < seq_len:
        raise TokenBudgetError(f"num_tokens={num_tokens} must be ≥ seq_len={seq_len} ≥ 2")
    stream = token_stream(tokenizer, split)
    if stream.numel() < num_tokens:
        raise TokenBudgetError(
            f"num_tokens={num_tokens} exceeds the {stream.numel()} tokens of the {split!r} split "
            "of the offline corpus; lower the budget"
        )
    b = num_tokens // seq_len
    return stream[: b * seq_len].view(b, seq_len).clone()


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice item: a context and ``len(choices)`` candidate continuations."""

    context: torch.Tensor
    choices: tuple[torch.Tensor, ...]
    answer: int


def continuation_choices(
    tokenizer,
    *,
    split: str = "test",
    num_items: int | None = 100,
    context_tokens: int = 48,
    continuation_tokens: int = 16,
    num_choices: int = 4,
    seed: int = 0,
) -> list[ChoiceItem]:
    """A zero-shot "which continuation is real?" set built from held-out text.

    Each item takes ``context_tokens`` consecutive tokens of the split; the right answer is the
    next ``continuation_tokens`` tokens, the distractors are equally long windows from elsewhere
    in the split. Chance accuracy is ``1/num_choices``. Deterministic for a given seed.
    """
    stream = token_stream(tokenizer, split)
    span = context_tokens + continuation_tokens
    slots = stream.numel() // span
    if num_items is None:
        num_items = slots
    if slots < max(num_items, num_choices):
        raise TokenBudgetError(
            f"num_items={num_items} needs {num_items * span} tokens; split {split!r} has {stream.numel()}"
        )
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randperm(slots, generator=gen)[:num_items].sort().values.tolist()
    items = []
    for p in picks:
        start = p * span
        ctx = stream[start : start + context_tokens]
        true = stream[start + context_tokens : start + span]
        others: list[torch.Tensor] = []
        while len(others) < num_choices - 1:
            q = int(torch.randint(slots, (1,), generator=gen))
            if q == p:
                continue
            s = q * span + context_tokens
            others.append(stream[s : s + continuation_tokens])
        answer = int(torch.randint(num_choices, (1,), generator=gen))
        choices = others[:answer] + [true] + others[answer:]
        items.append(ChoiceItem(ctx, tuple(choices), answer))
    return items
