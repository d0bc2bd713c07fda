"""Typed exceptions of :mod:`labkit.evals`; every message names the file, line, field or value at fault."""

from __future__ import annotations

from .. import likelihood
from ..likelihood import ContextTruncatedWarning  # the shared scorer warns with it

__all__ = [
    "ContextTooLongError",
    "ContextTruncatedWarning",
    "EvalDataError",
    "EvalError",
    "NonFiniteScoreError",
    "OfflineDatasetError",
    "UnknownGroupError",
    "UnknownMetricError",
    "UnknownTaskError",
]


class EvalError(ValueError):
    """Base class of every bad-input error raised by :mod:`labkit.evals`."""


class EvalDataError(EvalError):
    """A malformed item: bad JSON, missing/extra field, label out of range, duplicate id, …"""


class OfflineDatasetError(EvalDataError):
    """A Hugging Face dataset is not in the local cache and labkit runs offline (``LABKIT_OFFLINE``)."""


class UnknownTaskError(EvalError, KeyError):
    """A task name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownGroupError(EvalError, KeyError):
    """A task-group name that is not in :data:`labkit.evals.tasks.GROUPS`."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownMetricError(EvalError, KeyError):
    """A metric name that :mod:`labkit.evals.scoring` does not implement."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NonFiniteScoreError(EvalError):
    """The model gave NaN or infinite log-likelihoods; such records are never cached."""


class ContextTooLongError(EvalError, likelihood.ContextTooLongError):
    """A request that cannot fit the model window even after truncation."""
