"""Cross-lingual consistency: one model's answers to the Korean and English versions of an item."""

from __future__ import annotations

import numpy as np

from .errors import EvalError
from .runner import TaskResult
from .runsets import _pair_id
from .stats import mcnemar, mean_se, paired_difference

__all__ = ["crosslingual"]


def _by_pair(res: TaskResult, metric: str) -> dict[str, tuple[int, bool, str]]:
    out = {}
    for r in res.records:
        pid = _pair_id(r)
        out[pid] = (int(r["preds"][metric]), bool(r["correct"][metric]), r.get("cluster") or pid)
    return out


def crosslingual(res_ko: TaskResult, res_en: TaskResult, metric: str = "acc") -> dict:
    """Consistency of one model's answers to the Korean and English versions of the same items.

    Items are matched by pair id (the item id without its ``-ko``/``-en`` suffix); Korean-only items
    are left out. Returns the number of pairs, the answer agreement rate (same option chosen), the
    both-correct rate, the accuracies on the matched pairs, and the paired language gap
    ``acc_en − acc_ko`` with a CR1 SE clustered by passage (pairs on one reading passage are one
    cluster; t interval on G − 1 d.o.f.), plus McNemar's exact test (which treats pairs as independent).
    """
    ko, en = _by_pair(res_ko, metric), _by_pair(res_en, metric)
    pairs = sorted(set(ko) & set(en))
    if not pairs:
        raise EvalError("no item is present in both languages")
    same = np.array([ko[p][0] == en[p][0] for p in pairs], float)
    pk = np.bincount([ko[p][0] for p in pairs], minlength=10) / len(pairs)
    pe_ = np.bincount([en[p][0] for p in pairs], minlength=10) / len(pairs)
    expected = float((pk * pe_).sum())  # agreement expected from the two answer distributions alone
    kappa = (float(same.mean()) - expected) / (1 - expected) if expected < 1 else float("nan")
    ck = np.array([ko[p][1] for p in pairs], float)
    ce = np.array([en[p][1] for p in pairs], float)
    clusters = [en[p][2] for p in pairs]  # the passage for reading pairs, else the pair itself
    gap = paired_difference(ce, ck, clusters)
    mc = mcnemar(ce.astype(bool), ck.astype(bool))
    return dict(
        pairs=len(pairs),
        agreement=mean_se(same),
        expected_agreement=expected,
        kappa=kappa,
        both_correct=float((ck * ce).mean()),
        acc_ko=mean_se(ck),
        acc_en=mean_se(ce),
        gap_en_minus_ko=gap,
        mcnemar=mc,
        pair_ids=pairs,
    )
