"""The analyses of the Part II chapters, under the names the chapters first imported them by.

The code lives in modules named for what it does; this module re-exports every name they had
here, so ``from labkit.evals.study import md_table`` keeps working:

* :mod:`labkit.evals.tables`: :func:`~labkit.evals.tables.md_table`;
* :mod:`labkit.evals.runsets`: :func:`~labkit.evals.runsets.koen_runs`,
  :func:`~labkit.evals.runsets.public_runs`, :func:`~labkit.evals.runsets.pool`,
  :func:`~labkit.evals.runsets.paired_runs`, :func:`~labkit.evals.runsets.task_runs`;
* :mod:`labkit.evals.rule_analysis`: :func:`~labkit.evals.rule_analysis.scoring_table`,
  :func:`~labkit.evals.rule_analysis.rule_disagreement`,
  :func:`~labkit.evals.rule_analysis.letter_histogram`;
* :mod:`labkit.evals.consistency`: :func:`~labkit.evals.consistency.crosslingual`;
* :mod:`labkit.evals.comparison`: :func:`~labkit.evals.comparison.se_comparison`,
  :func:`~labkit.evals.comparison.compare_models`,
  :func:`~labkit.evals.comparison.comparison_systems`,
  :class:`~labkit.evals.comparison.ComparisonPlan`,
  :func:`~labkit.evals.comparison.n_distinct_clusters`,
  :func:`~labkit.evals.comparison.paired_by_language`,
  :class:`~labkit.evals.comparison.PairedRow`;
* :mod:`labkit.evals.cards`: :func:`~labkit.evals.cards.results_card`,
  :func:`~labkit.evals.cards.category_scores`, :func:`~labkit.evals.cards.write_card`,
  :func:`~labkit.evals.cards.card_folder`, :func:`~labkit.evals.cards.group_score`,
  :func:`~labkit.evals.cards.public_comparison`, :data:`~labkit.evals.cards.CARD_PROTOCOL`,
  :data:`~labkit.evals.cards.CARD_FAMILIES`.

New code should import from those modules. Nothing here, nor anywhere in :mod:`labkit.evals`,
imports Part I (:mod:`labkit.moe`): the statistics chapter composes the two parts itself. The
names are re-exported with ``import … as …`` and this module has no ``__all__``, so the API
reference documents each object once, in the module that defines it.
"""

from __future__ import annotations

from .cards import CARD_FAMILIES as CARD_FAMILIES
from .cards import CARD_PROTOCOL as CARD_PROTOCOL
from .cards import card_folder as card_folder
from .cards import category_scores as category_scores
from .cards import group_score as group_score
from .cards import public_comparison as public_comparison
from .cards import results_card as results_card
from .cards import write_card as write_card
from .comparison import ComparisonPlan as ComparisonPlan
from .comparison import PairedRow as PairedRow
from .comparison import compare_models as compare_models
from .comparison import comparison_systems as comparison_systems
from .comparison import n_distinct_clusters as n_distinct_clusters
from .comparison import paired_by_language as paired_by_language
from .comparison import se_comparison as se_comparison
from .consistency import crosslingual as crosslingual
from .rule_analysis import letter_histogram as letter_histogram
from .rule_analysis import rule_disagreement as rule_disagreement
from .rule_analysis import scoring_table as scoring_table
from .runsets import koen_runs as koen_runs
from .runsets import paired_runs as paired_runs
from .runsets import pool as pool
from .runsets import public_runs as public_runs
from .runsets import task_runs as task_runs
from .tables import md_table as md_table
