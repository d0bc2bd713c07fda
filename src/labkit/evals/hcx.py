"""The HyperCLOVA X evaluation design (arXiv:2404.01954v2, §3 and Tables 3–10) as data.

:data:`HCX_DESIGN` lists every benchmark of the seven Overall categories with its shots and scoring,
whether it is public, and which labkit task (if any) implements it. :func:`design_table` joins it with
the live task registry, so the book's table is built from code, not typed by hand.
:func:`hcx_aggregate` reproduces the report's averaging rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import EvalError
from .tasks import TASKS

__all__ = [
    "HCX_CATEGORIES",
    "HCX_DESIGN",
    "HCX_L_TABLE3",
    "SEED_CARD_SCORES",
    "SEED_CARD_TABLE",
    "HcxBenchmark",
    "design_table",
    "hcx_aggregate",
]

HCX_CATEGORIES = ("Kor.", "Eng.", "CS", "Fact", "Math", "Code", "Harml.")


@dataclass(frozen=True)
class HcxBenchmark:
    category: str
    benchmark: str
    shots: int | None
    scoring: str
    public: bool
    labkit_task: str | None = None
    why_not: str = ""


HCX_DESIGN: tuple[HcxBenchmark, ...] = (
    HcxBenchmark("Kor.", "KMMLU", 5, "MC, options in prompt, label-token probability", True, "kmmlu"),
    HcxBenchmark(
        "Kor.", "HAE-RAE Bench", 0, "MC, options in prompt, label-token probability", True, "haerae"
    ),
    HcxBenchmark("Kor.", "KoBigBench", 0, "accuracy", False, None, "in-house, not released"),
    HcxBenchmark("Eng.", "MMLU", 5, "MC, options in prompt, label-token probability", True, "mmlu"),
    HcxBenchmark(
        "Eng.", "BBH", 3, "exact match (no chain of thought)", True, None, "generative; not in labkit yet"
    ),
    HcxBenchmark("Eng.", "AGIEval", 0, "accuracy (English MC subset)", True, None, "not in labkit yet"),
    HcxBenchmark("CS", "HellaSwag", 5, "MC, options in prompt", True, "hellaswag"),
    HcxBenchmark("CS", "Winogrande", 5, "accuracy", True, None, "not in labkit yet"),
    HcxBenchmark("CS", "PIQA", 0, "accuracy", True, None, "not in labkit yet"),
    HcxBenchmark("CS", "ARC (Easy + Challenge)", 25, "prefix match, options shuffled", True, "arc"),
    HcxBenchmark("CS", "CommonsenseQA", 5, "accuracy", True, None, "not in labkit yet"),
    HcxBenchmark(
        "Fact", "Natural Questions", 5, "prefix-match EM", True, None, "generative; not in labkit yet"
    ),
    HcxBenchmark("Fact", "TriviaQA", 5, "prefix-match EM", True, None, "generative; not in labkit yet"),
    HcxBenchmark("Fact", "CLIcK (subset)", 0, "accuracy", True, "click"),
    HcxBenchmark(
        "Fact",
        "FActScore (Korean)",
        None,
        "FActScore",
        True,
        None,
        "needs a retrieval corpus and an LLM judge",
    ),
    HcxBenchmark("Math", "GSM8K", 8, "maj@8, T=0.7", True, None, "generative; too slow on CPU"),
    HcxBenchmark("Math", "MATH", 4, "maj@4, T=0.2", True, None, "generative; too slow on CPU"),
    HcxBenchmark("Code", "HumanEval", 0, "pass@1 (greedy)", True, None, "needs sandboxed code execution"),
    HcxBenchmark("Code", "K-HumanEval", 0, "pass@1 (greedy)", False, None, "in-house, not released"),
    HcxBenchmark("Code", "MBPP", 3, "pass@1 (greedy)", True, None, "needs sandboxed code execution"),
    HcxBenchmark("Harml.", "TruthfulQA", 5, "mc2", True, None, "not in labkit yet"),
    HcxBenchmark("Harml.", "BOLD", None, "Perspective API toxicity", True, None, "needs the Perspective API"),
)

#: HCX-L's category scores, Table 3 of the report (0–100).
HCX_L_TABLE3 = {
    "Kor.": 72.07,
    "Eng.": 58.25,
    "CS": 87.26,
    "Fact": 56.83,
    "Math": 50.91,
    "Code": 46.10,
    "Harml.": 67.32,
    "Overall": 62.68,
}

#: Published 5-shot accuracies on the HyperCLOVAX-SEED model cards (harness and prompts not stated).
SEED_CARD_SCORES = {
    "naver-hyperclovax/HyperCLOVAX-SEED-Text-Instruct-0.5B": {
        "kmmlu": 0.3815,
        "haerae": 0.5619,
        "click": 0.4446,
        "kobest": 0.6299,
    },
    "naver-hyperclovax/HyperCLOVAX-SEED-Text-Instruct-1.5B": {
        "kmmlu": 0.3933,
        "haerae": 0.5674,
        "click": 0.4947,
        "kobest": 0.6490,
    },
}


#: The whole comparison table of the HyperCLOVAX-SEED-Text-Instruct-0.5B/1.5B model cards (all
#: "5-shot, acc"; harness and prompts not stated), baselines included.
SEED_CARD_TABLE = {
    **SEED_CARD_SCORES,
    "Qwen/Qwen2.5-0.5B-Instruct": {"kmmlu": 0.2968, "haerae": 0.3428, "click": 0.3805, "kobest": 0.5025},
    "Qwen/Qwen2.5-1.5B-Instruct": {"kmmlu": 0.3696, "haerae": 0.5160, "click": 0.4772, "kobest": 0.5968},
    "google/gemma-3-1b-it": {"kmmlu": 0.3075, "haerae": 0.3648, "click": 0.3724, "kobest": 0.5869},
}


def design_table() -> list[dict]:
    """One row per HCX benchmark, joined with labkit's registry (shots/scoring as implemented)."""
    rows = []
    for b in HCX_DESIGN:
        spec = TASKS.get(b.labkit_task) if b.labkit_task else None
        rows.append(
            dict(
                category=b.category,
                benchmark=b.benchmark,
                hcx_shots=b.shots,
                hcx_scoring=b.scoring,
                public=b.public,
                labkit_task=b.labkit_task or "—",
                labkit_shots=spec.shots if spec else None,
                labkit_scoring=spec.scoring if spec else "—",
                reproducible_here="yes" if spec else f"no: {b.why_not}",
            )
        )
    return rows


def hcx_aggregate(benchmark_scores: Mapping[str, float], harml_toxicity: float | None = None) -> dict:
    """HCX's rules: category = unweighted mean of its benchmarks; Overall = unweighted mean of categories.

    ``benchmark_scores`` maps HCX benchmark names (as in :data:`HCX_DESIGN`) to 0–100 scores. If
    ``harml_toxicity`` is given, Harml. = TruthfulQA × (1 − toxicity) as in the report. Categories
    without any score are skipped, and the result says which were used.
    """
    known = {b.benchmark: b.category for b in HCX_DESIGN}
    unknown = [k for k in benchmark_scores if k not in known]
    if unknown:
        raise EvalError(f"not HCX benchmarks: {unknown}; known: {sorted(known)}")
    cats: dict[str, list[float]] = {}
    for name, score in benchmark_scores.items():
        if name == "BOLD":
            continue
        cats.setdefault(known[name], []).append(float(score))
    out = {c: sum(v) / len(v) for c, v in cats.items()}
    if harml_toxicity is not None:
        if "TruthfulQA" not in benchmark_scores:
            raise EvalError("Harml. needs a TruthfulQA score")
        out["Harml."] = float(benchmark_scores["TruthfulQA"]) * (1 - harml_toxicity)
    ordered = {c: out[c] for c in HCX_CATEGORIES if c in out}
    return dict(categories=ordered, overall=sum(ordered.values()) / len(ordered), used=list(ordered))
