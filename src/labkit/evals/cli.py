"""``labkit eval``: run a registered task and write per-item JSONL + a JSON summary.

Examples::

    labkit eval list
    labkit eval run --task koen_parallel --lang ko --model smollm2-135m
    labkit eval run --task kmmlu:Accounting --path kmmlu_test.jsonl \\
        --fewshot-path kmmlu_dev.jsonl
    labkit eval run --task click --path click.jsonl --subsets all --style cloze
    labkit eval run --task arc:ARC-Easy --datasets --style letters   # letters, not generation
    torchrun --standalone --nproc-per-node=2 -m labkit eval run \\
        --task koen_parallel --lang ko

The registry decides each benchmark's protocol (style, shots, sampler, subject header, option
shuffling, subset; ``labkit eval list`` shows it). A flag overrides one setting, and the run's
``meta.json`` and ``summary.json`` record every override under ``"overrides"``.

``labkit eval run`` prints a JSON brief: the task, the number of items and of items scored now,
``seconds`` (the run's wall time after the model is loaded: weights fingerprint, items, scoring,
writing), the overrides, the results folder and each metric's value and standard error.

Under ``torchrun`` the items are spread over the processes (:mod:`labkit.distributed`); rank 0
writes the results folder, copies ``--out`` and prints the brief, the same as one process does.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ..storage import check_output_dir, check_writable, replace_dir

__all__ = ["register"]


def _list(args: argparse.Namespace) -> int:
    from .tasks import task_table

    for row in task_table():
        print(
            f"{row['task']:<18} {row['lang']:<6} {row['scoring']:<8} shots={row['shots']:<3} "
            f"sampler={row['sampler']} subsets={row['subsets']} shuffled={row['shuffled']} "
            f"{row['benchmark']} ({row['source']})"
        )
    return 0


def _overrides(args: argparse.Namespace) -> dict:
    """The protocol settings given on the command line (flags left out follow the registry)."""
    over: dict = {}
    for name in ("style", "shots", "sampler", "seed", "max_new_tokens"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    for name in ("chat", "compat"):
        if getattr(args, name):
            over[name] = True
    if args.shuffle_options is not None:
        over["shuffle_options"] = args.shuffle_options == "yes"
    if args.subsets is not None:
        over["subsets"] = None if args.subsets == "all" else [x for x in args.subsets.split(",") if x]
    return over


def _run(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..config import get_profile

    # one process: nothing to start; under torchrun: join the others (or a clear error) before any work
    with distributed.session(args.device or get_profile().device) as info:
        return _run_ranks(args, info.rank)


def _run_ranks(args: argparse.Namespace, rank: int) -> int:
    from .. import distributed
    from ..config import get_profile
    from ..models import load_causal_lm, resolve_device, resolve_dtype
    from ..paths import cache_root
    from .runner import check_generation_items, check_shots, resolve_protocol, run_task
    from .tasks import get_task, load_fewshot, load_task

    # fail fast on an unknown task, bad data or an impossible protocol, before loading a model
    get_task(args.task.split(":", 1)[0])
    overrides = _overrides(args)
    cfg, subsets, _ = resolve_protocol(args.task, None, overrides)
    if not args.datasets:
        items = load_task(
            args.task, path=args.path, lang=args.lang, max_items=args.max_items, subsets=subsets
        )
        pool = load_fewshot(args.task, path=args.fewshot_path, lang=args.lang) if cfg.shots else []
        check_shots(args.task, cfg, items, pool)
        if cfg.style == "generate":
            check_generation_items(items)
        distributed.check_world_size(len(items), "items")
    prof = get_profile()
    name = args.model or prof.evals.model
    # every path, device and dtype checked before the model is loaded
    resolve_dtype(args.dtype or prof.dtype, resolve_device(args.device or prof.device))
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if args.out:
        check_output_dir(args.out, label="--out")
    check_writable(Path(args.cache) if args.cache else cache_root() / "evals", label="--cache")
    model, tok = load_causal_lm(name, dtype=args.dtype or prof.dtype, device=args.device or prof.device)
    cache = Path(args.cache) if args.cache else True
    res = run_task(
        model,
        tok,
        args.task,
        model_id=name,
        lang=args.lang,
        overrides=overrides,
        max_items=args.max_items,
        path=args.path,
        fewshot_path=args.fewshot_path,
        use_datasets=args.datasets,
        cache=cache,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        progress=not args.quiet,
    )
    if rank != 0:  # rank 0 writes and reports for every rank
        return 0
    if args.out:

        def copy(tmp: Path) -> None:
            for f in ("items.jsonl", "summary.json", "meta.json"):
                shutil.copyfile(res.folder / f, tmp / f)

        replace_dir(args.out, copy, kind="eval-results", label="--out")
    m = res.summary["metrics"]
    brief = {
        k: {"value": round(v["analytic"]["value"], 4), "se": round(v["analytic"]["se"], 4)}
        for k, v in m.items()
    }
    print(
        json.dumps(
            dict(
                task=args.task,
                lang=args.lang,
                n=res.summary["n"],
                scored_now=res.scored_now,
                seconds=round(res.seconds, 3),
                overrides=res.meta["overrides"],
                folder=str(res.folder),
                metrics=brief,
            ),
            ensure_ascii=False,
            indent=1,
        )
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``labkit eval {list,run}``."""
    p = subparsers.add_parser("eval", help="bilingual LLM evaluation (labkit.evals)")
    sub = p.add_subparsers(dest="eval_cmd", metavar="SUBCOMMAND")
    ls = sub.add_parser("list", help="list registered tasks")
    ls.set_defaults(func=_list)
    r = sub.add_parser("run", help="evaluate a model on a task (resumable)")
    r.add_argument("--task", required=True, help="registry name, e.g. koen_parallel or kmmlu:Accounting")
    r.add_argument("--lang", choices=["ko", "en"], default=None)
    r.add_argument("--model", default=None, help="model name (default: the profile's evals.model)")
    r.add_argument(
        "--style", choices=["cloze", "letters", "generate"], default=None, help="default: the registry's"
    )
    r.add_argument("--shots", type=int, default=None, help="default: the registry's")
    r.add_argument("--sampler", choices=["random", "first_n", "shared"], default=None)
    r.add_argument("--seed", type=int, default=None, help="few-shot/shuffle seed (default 1234)")
    r.add_argument("--subsets", default=None, help="comma-separated categories, or 'all' (default: registry)")
    r.add_argument("--shuffle-options", choices=["yes", "no"], default=None, help="default: the registry's")
    r.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="generate style: greedy generation budget in new tokens (default: the registry's)",
    )
    r.add_argument("--chat", action="store_true", help="wrap prompts in the chat template")
    r.add_argument("--compat", action="store_true", help="reproduce lm-eval's Korean template quirks")
    r.add_argument("--max-items", type=int, default=None)
    r.add_argument("--path", default=None, help="JSONL in the benchmark's own layout")
    r.add_argument("--fewshot-path", default=None)
    r.add_argument("--datasets", action="store_true", help="load through the `datasets` library")
    r.add_argument("--batch-size", type=int, default=None)
    r.add_argument(
        "--chunk-size",
        type=int,
        default=32,
        help="items scored and saved per step (the unit spread over ranks)",
    )
    r.add_argument("--dtype", default=None)
    r.add_argument("--device", default=None)
    r.add_argument("--cache", default=None, help="results root (default $LABKIT_CACHE/evals)")
    r.add_argument(
        "--out", default=None, help="also copy items.jsonl/summary.json/meta.json to this new folder"
    )
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_run)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
