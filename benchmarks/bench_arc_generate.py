"""Benchmark: ARC's generation protocol (HCX: shuffled options, greedy answer, prefix match) vs letters.

Scores the same items twice through :func:`labkit.evals.runner.evaluate` with nothing cached: once in
the ``generate`` style (the registry's ARC protocol: options shuffled and listed, greedy generation
with the registry's budget and stop string, prefix match) and once by letter choice on the same
shuffled options and shots. Prints items/s of each, the accuracies, and how often the generated
answer named no option at all.

Items: ARC-Easy's test split through ``datasets`` (its local cache; ``LABKIT_OFFLINE=0`` to download)
with ``--datasets``, else the English items of the book's koen_parallel set posed in ARC's format
(4-option multiple choice; offline, shots from its few-shot pool).

Run on a quiet machine, e.g. ``python benchmarks/bench_arc_generate.py --model smollm2-135m --shots 5``
(CPU) or ``python benchmarks/bench_arc_generate.py --datasets --device cuda --dtype bfloat16 --model
naver-hyperclovax/HyperCLOVAX-SEED-Text-Instruct-0.5B --items 512 --shots 25 --batch-size 16`` (GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from labkit.evals import evaluate, load_fewshot, load_task
from labkit.evals.prompts import shuffle_options
from labkit.evals.runner import resolve_protocol
from labkit.evals.tasks import take_balanced
from labkit.models import load_causal_lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--shots", type=int, default=5, help="ARC's registry protocol uses 25")
    ap.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    ap.add_argument("--datasets", action="store_true", help="real ARC-Easy test items via `datasets`")
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tok = load_causal_lm(args.model, dtype=args.dtype, device=args.device)
    if args.datasets:
        items = load_task("arc:ARC-Easy", use_datasets=True, max_items=args.items)
        pool = load_fewshot("arc:ARC-Easy", use_datasets=True)
    else:
        items = take_balanced(load_task("koen_parallel", lang="en"), args.items)
        pool = load_fewshot("koen_parallel", lang="en")
    gen_cfg, _, _ = resolve_protocol("arc", overrides={"shots": min(args.shots, len(pool))})
    items = [shuffle_options(it, gen_cfg.seed) for it in items]
    print(
        f"{args.model} {args.dtype} on {args.device}: {len(items)} items, {gen_cfg.shots} shots, "
        f"budget {gen_cfg.max_new_tokens} new tokens, stop {gen_cfg.until!r}",
        flush=True,
    )
    rows = []
    for cfg in (gen_cfg, dataclasses.replace(gen_cfg, style="letters")):
        # letters: the log-likelihood scorer's own token-budget batching
        bs = args.batch_size if cfg.style == "generate" else None
        kw = dict(template="arc", prompt=cfg, fewshot_pool=pool, batch_size=bs, progress=False)
        evaluate(model, tok, items[:2], **kw)  # warm-up
        t0 = time.perf_counter()
        recs, _ = evaluate(model, tok, items, **kw)
        sec = time.perf_counter() - t0
        acc = sum(r["correct"]["acc"] for r in recs) / len(recs)
        none = sum(r["preds"]["acc"] == -1 for r in recs) / len(recs)
        rows.append((cfg.style, sec, acc, none))
    print(f"\n{'style':<10} {'seconds':>8} {'items/s':>8} {'acc':>6} {'no option named':>16}")
    for style, sec, acc, none in rows:
        print(f"{style:<10} {sec:8.2f} {len(items) / sec:8.2f} {acc:6.3f} {none:16.3f}")


if __name__ == "__main__":
    main()
