"""labkit.evals: bilingual (Korean/English) LLM evaluation after the HyperCLOVA X methodology.

Submodules: :mod:`.lm` (log-likelihood and generation with lm-eval's contract), :mod:`.schema`
(items), :mod:`.tasks` (registry and loaders), :mod:`.prompts`, :mod:`.scoring`, :mod:`.stats`,
:mod:`.fertility`, :mod:`.results`, :mod:`.runner`, :mod:`.hcx` (the HyperCLOVA X design as data),
the analyses of the Part II chapters (:mod:`.tables`,
:mod:`.runsets`, :mod:`.rule_analysis`, :mod:`.consistency`, :mod:`.comparison`, :mod:`.cards`;
:mod:`.study` re-exports them under the names the chapters first used), :mod:`.cli` (``labkit eval``).
"""

from __future__ import annotations

from .errors import (
    ContextTooLongError,
    ContextTruncatedWarning,
    EvalDataError,
    EvalError,
    UnknownMetricError,
    UnknownTaskError,
)
from .lm import encode_pair, generate_until, loglikelihood
from .prompts import PromptConfig, build_prompt
from .runner import TaskResult, evaluate, evaluate_generation, run_task
from .schema import Item
from .tasks import TASKS, load_fewshot, load_task

__all__ = [
    "TASKS",
    "ContextTooLongError",
    "ContextTruncatedWarning",
    "EvalDataError",
    "EvalError",
    "Item",
    "PromptConfig",
    "TaskResult",
    "UnknownMetricError",
    "UnknownTaskError",
    "build_prompt",
    "encode_pair",
    "evaluate",
    "evaluate_generation",
    "generate_until",
    "load_fewshot",
    "load_task",
    "loglikelihood",
    "run_task",
]
