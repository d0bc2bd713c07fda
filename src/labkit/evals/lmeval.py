"""Interoperability with lm-evaluation-harness 0.4.13: an lm-eval model and lm-eval's results layout.

* :func:`lm_eval_model` wraps a Hugging Face model and tokenizer as an lm-eval model (a subclass of
  ``lm_eval.api.model.TemplateLM``) whose ``loglikelihood`` and ``generate_until`` are labkit's, so
  lm-eval's own tasks can be scored with labkit's faster packed scorer:
  ``lm_eval.simple_evaluate(model=lm_eval_model(model, tok), tasks=[...])``. lm-eval is imported
  only when this is called (it is not a labkit dependency).
* :func:`to_lm_eval_results` writes labkit runs in the layout of lm-eval's ``results.json``
  (``results`` with ``"acc,none"``/``"acc_stderr,none"`` keys, ``groups``, ``group_subtasks``,
  ``configs``, ``n-shot``, ``n-samples``, ``higher_is_better``, ``versions``, ``config``), so tools
  that read lm-eval output (e.g. ``lm_eval.utils.make_table``) read labkit's. Standard errors follow
  lm-eval's conventions (sample sd / √n per task; a group's pooled-variance SE); labkit's clustered
  SE is added as ``"acc_clustered_stderr,none"``, a key lm-eval's table skips. A ``generate``-style
  run (ARC as HCX scored it) is exported as lm-eval exports a ``generate_until`` task: its config
  has ``"output_type": "generate_until"`` and ``generation_kwargs``, and its metrics are
  ``"acc,none"`` (the generated answer names the gold option) and ``"exact_match,none"``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import EvalError
from .runner import TaskResult

__all__ = ["lm_eval_model", "pooled_sample_stderr", "to_lm_eval_results"]


def _require_lm_eval():
    try:
        import lm_eval  # noqa: F401
        from lm_eval.api.model import TemplateLM
    except ImportError as err:
        raise EvalError(
            "lm-eval interop needs lm-evaluation-harness: `pip install lm_eval==0.4.13` "
            "(not a labkit dependency)"
        ) from err
    return TemplateLM


@functools.cache
def _adapter_class():
    TemplateLM = _require_lm_eval()
    from .lm import _prefix_token_id, generate_until, loglikelihood, model_max_length, tok_encode

    class LabkitLM(TemplateLM):
        """lm-eval's ``TemplateLM`` interface over labkit's scorer (``labkit.evals.lm``)."""

        def __init__(self, model, tokenizer, batch_size: int | None = None):
            super().__init__()
            self.model = model
            self.tokenizer = tokenizer
            self.batch_size = batch_size

        @property
        def eot_token_id(self) -> int:
            return self.tokenizer.eos_token_id

        @property
        def prefix_token_id(self) -> int:
            return _prefix_token_id(self.tokenizer)

        @property
        def max_length(self) -> int:
            return model_max_length(self.model, self.tokenizer)

        def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
            return tok_encode(self.tokenizer, string, add_special_tokens=add_special_tokens)

        def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            # labkit encodes each pair with TemplateLM._encode_pair's rules itself
            return loglikelihood(
                self.model,
                self.tokenizer,
                [tuple(r.args) for r in requests],
                batch_size=self.batch_size,
                progress=not disable_tqdm,
            )

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
            # the string pairs carry everything labkit needs (its encoding equals the given tokens)
            return loglikelihood(
                self.model,
                self.tokenizer,
                [tuple(r[0]) for r in requests],
                batch_size=self.batch_size,
                progress=not disable_tqdm,
            )

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
            raise EvalError(
                "labkit's lm-eval adapter does not implement loglikelihood_rolling (perplexity tasks)"
            )

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            out = []
            for req in requests:
                context, kwargs = req.args
                kwargs = dict(kwargs or {})
                until = kwargs.pop("until", None) or [self.tokenizer.decode([self.eot_token_id])]
                until = [until] if isinstance(until, str) else list(until)
                temperature = float(kwargs.pop("temperature", 0.0) or 0.0)
                if not kwargs.pop("do_sample", temperature > 0):
                    temperature = 0.0
                text = generate_until(
                    self.model,
                    self.tokenizer,
                    [context],
                    until=until,
                    max_new_tokens=int(kwargs.pop("max_gen_toks", 256)),
                    temperature=temperature,
                    progress=False,
                )[0][0]
                out.append(text)
            return out

    return LabkitLM


def lm_eval_model(model, tokenizer, *, batch_size: int | None = None):
    """An lm-eval model (``TemplateLM`` subclass) that scores with labkit.

    Raises :class:`EvalError` if lm-eval is not installed.
    """
    return _adapter_class()(model, tokenizer, batch_size=batch_size)


def pooled_sample_stderr(stderrs: Sequence[float], sizes: Sequence[int]) -> float:
    """lm-eval 0.4.13's group standard error (``lm_eval.api.metrics.pooled_sample_stderr``): the pooled
    variance ``Σ (n_i − 1) s_i² n_i / (Σ n_i − k)`` over sub-tasks, divided by ``Σ n_i`` and square-rooted
    (``s_i`` = sub-task SE, so ``s_i² n_i`` is its sample variance)."""
    s = np.asarray(stderrs, float)
    n = np.asarray(sizes, float)
    if s.size == 0 or s.size != n.size or (n < 2).any():
        raise EvalError("pooled_sample_stderr needs one SE and a size >= 2 per sub-task")
    pooled = float(((n - 1) * s**2 * n).sum() / (n.sum() - s.size))
    return float(np.sqrt(pooled / n.sum()))


def _task_entry(res: TaskResult, name: str, metrics: Sequence[str]) -> dict:
    entry: dict = {"alias": name}
    for m in metrics:
        x = res.correct(m)
        entry[f"{m},none"] = float(x.mean())
        entry[f"{m}_stderr,none"] = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else "N/A"
        entry[f"{m}_clustered_stderr,none"] = res.estimate(m, clustered=True).se
    return entry


def _task_config(res: TaskResult, name: str, metrics: Sequence[str]) -> dict:
    """lm-eval's ``configs`` entry of one run: ``multiple_choice``, or for a ``generate``-style run
    ``generate_until`` with lm-eval's ``generation_kwargs`` (greedy: ``do_sample`` false) and its
    ``metric_list``, as lm-eval writes for its generative tasks."""
    cfg = res.prompt
    entry: dict = {"task": name, "num_fewshot": cfg.shots}
    if cfg.style == "generate":
        entry["output_type"] = "generate_until"
        entry["generation_kwargs"] = {
            "until": list(cfg.until),
            "do_sample": False,
            "max_gen_toks": cfg.max_new_tokens,
        }
        entry["metric_list"] = [
            {"metric": m, "aggregation": "mean", "higher_is_better": True} for m in metrics
        ]
    else:
        entry["output_type"] = "multiple_choice"
    entry["metadata"] = {"labkit_prompt": cfg.as_dict(), "overrides": res.meta.get("overrides", {})}
    return entry


def to_lm_eval_results(
    results: Mapping[str, TaskResult],
    *,
    groups: Sequence[str] = (),
    model_name: str | None = None,
    metrics: Sequence[str] | None = None,
) -> dict:
    """labkit runs as an lm-eval ``results.json`` dict (``json.dump`` it to save).

    ``results`` maps a task name to its run; ``groups`` names task groups of
    :data:`labkit.evals.tasks.GROUPS` whose members are among ``results`` (micro or macro as the group
    says; SE pooled as lm-eval does). ``metrics`` defaults to every metric of each run.
    """
    from .tasks import get_group

    if not results:
        raise EvalError("to_lm_eval_results needs at least one result")
    out: dict = {
        "results": {},
        "groups": {},
        "group_subtasks": {},
        "configs": {},
        "versions": {},
        "n-shot": {},
        "higher_is_better": {},
        "n-samples": {},
    }
    for name, res in results.items():
        ms = list(metrics or res.metrics)
        out["results"][name] = _task_entry(res, name, ms)
        out["configs"][name] = _task_config(res, name, ms)
        out["versions"][name] = "labkit"
        out["n-shot"][name] = res.prompt.shots
        out["higher_is_better"][name] = {m: True for m in ms}
        out["n-samples"][name] = {"original": len(res.records), "effective": len(res.records)}
    for gname in groups:
        g = get_group(gname)
        members = [m for m in g.members if m in results]
        if not members:
            raise EvalError(f"group {gname!r}: none of its members is in the results")
        sizes = [len(results[m].records) for m in members]
        entry: dict = {"alias": gname}
        for m in metrics or ["acc"]:
            vals = [out["results"][t][f"{m},none"] for t in members]
            ses = [out["results"][t][f"{m}_stderr,none"] for t in members]
            w = np.asarray(sizes, float) if g.aggregation == "micro" else np.ones(len(members))
            entry[f"{m},none"] = float(np.dot(vals, w) / w.sum())
            entry[f"{m}_stderr,none"] = pooled_sample_stderr(ses, sizes)
        out["groups"][gname] = entry
        out["results"][gname] = dict(entry)
        out["group_subtasks"][gname] = members
        out["versions"][gname] = "labkit"
        out["higher_is_better"][gname] = {m: True for m in metrics or ["acc"]}
    any_res = next(iter(results.values()))
    out["config"] = {"model": "labkit", "model_name": model_name or any_res.model_id, "batch_size": None}
    return out
