"""The same items under several scoring rules: accuracy per rule, disagreement, position bias."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .runner import TaskResult

__all__ = ["letter_histogram", "rule_disagreement", "scoring_table"]


def scoring_table(results: Mapping[tuple[str, str], TaskResult]) -> list[dict]:
    """Rows ``(lang, rule, accuracy, se, n)`` for results keyed by ``(style, lang)``.

    Cloze results contribute ``acc``, ``acc_norm``, ``acc_bytes`` and ``acc_token``; letter results
    contribute ``letters`` (HCX-style).
    """
    rows = []
    for (style, lang), res in results.items():
        metrics = ["acc"] if style == "letters" else ["acc", "acc_norm", "acc_bytes", "acc_token"]
        for m in metrics:
            est = res.estimate(m)
            rule = "letters (HCX)" if style == "letters" else f"cloze {m}"
            rows.append(dict(lang=lang, rule=rule, acc=est.value, se=est.se, n=est.n))
    return rows


def rule_disagreement(res: TaskResult, a: str, b: str) -> float:
    """Fraction of items on which scoring rules ``a`` and ``b`` pick different options."""
    return float(np.mean([r["preds"][a] != r["preds"][b] for r in res.records]))


def letter_histogram(res: TaskResult) -> dict[str, dict[str, int]]:
    """How often each option position was predicted (position bias), and the gold positions."""
    labels = "ABCDEFGHIJ"
    pred = {labels[i]: 0 for i in range(len(res.records[0]["lls"]))}
    gold = dict(pred)
    for r in res.records:
        pred[labels[r["preds"]["acc"]]] += 1
        gold[labels[r["label"]]] += 1
    return {"pred": pred, "gold": gold}
