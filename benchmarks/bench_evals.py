"""Benchmark: labkit.evals.loglikelihood vs lm-evaluation-harness 0.4.13 ``HFLM.loglikelihood``.

SmolLM2-135M-Instruct in float32 on CPU, 100 four-option multiple-choice items (50 Korean + 50
English from the book's koen_parallel set, 0-shot cloze prompts by default: 400 identical requests
for both), measured side by side in one run. Reports items/s, the speed-up, and max |Δ log-likelihood|.
A few minutes on 2 cores; ``--shots 1 --lm-eval-batch-sizes 1,8`` is the longer, fuller comparison.

lm-eval is a benchmark peer, not a dependency: without it only labkit's rows are printed.
Run: ``python benchmarks/bench_evals.py`` (``--items N`` to change the item count).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import time
import warnings

import torch

from labkit.evals import PromptConfig, build_prompt, load_fewshot, load_task, loglikelihood
from labkit.evals.prompts import select_shots
from labkit.models import load_causal_lm


def requests(n_items: int, shots: int = 0) -> list[tuple[str, str]]:
    cfg = PromptConfig(style="cloze", shots=shots)
    reqs = []
    for lang in ("ko", "en"):
        items = load_task("koen_parallel", lang=lang, max_items=n_items // 2)
        pool = load_fewshot("koen_parallel", lang=lang)
        for it in items:
            p = build_prompt(it, "generic", cfg, select_shots(it, pool, cfg))
            reqs += [(p.context, c) for c in p.continuations]
    return reqs


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--shots", type=int, default=0, help="few-shot examples per prompt (longer contexts)")
    ap.add_argument("--lm-eval-batch-sizes", default="8", help="comma-separated HFLM batch sizes, e.g. 1,8")
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tok = load_causal_lm("smollm2-135m", dtype="float32", device="cpu")
    reqs = requests(args.items, args.shots)
    n_items = len(reqs) // 4
    print(
        f"SmolLM2-135M fp32, {n_items} items, {len(reqs)} requests, torch threads={torch.get_num_threads()}",
        flush=True,
    )
    loglikelihood(model, tok, reqs[:8], progress=False)  # warm-up
    rows = []
    for label, bs in (("labkit (packed, token budget)", None), ("labkit (packed, batch_size=1)", 1)):
        vals, sec = timed(lambda bs=bs: loglikelihood(model, tok, reqs, batch_size=bs, progress=False))
        rows.append((label, sec, vals))
        print(f"  {label}: {sec:.1f} s", flush=True)
    if importlib.util.find_spec("lm_eval") is None:
        print("lm_eval not installed: `pip install lm_eval==0.4.13` for the side-by-side rows")
        return
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    logging.getLogger("lm-eval").setLevel(logging.ERROR)
    refs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for bs in [int(x) for x in args.lm_eval_batch_sizes.split(",")]:
            lm = HFLM(pretrained=model, tokenizer=tok, batch_size=bs)
            inst = [Instance("loglikelihood", {}, r, i) for i, r in enumerate(reqs)]
            vals, sec = timed(lambda lm=lm, inst=inst: lm.loglikelihood(inst, disable_tqdm=True))
            refs.append((f"lm-eval 0.4.13 HFLM (batch_size={bs})", sec, vals))
            print(f"  {refs[-1][0]}: {sec:.1f} s", flush=True)
    ref_vals = refs[0][2]
    best_ref = min(sec for _, sec, _ in refs)
    hdr = f"{'implementation':<40} {'seconds':>8} {'items/s':>8} {'speed-up':>9} {'max|dll|':>10} greedy="
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for name, sec, vals in rows + refs:
        dmax = max(abs(a[0] - b[0]) for a, b in zip(vals, ref_vals, strict=True))
        same = all(a[1] == b[1] for a, b in zip(vals, ref_vals, strict=True))
        print(f"{name:<40} {sec:8.2f} {n_items / sec:8.2f} {best_ref / sec:8.2f}x {dmax:10.2e} {same!s:>7}")
    print("speed-up: relative to the fastest lm-eval row; max|dll| and greedy=: against lm-eval's first row")


if __name__ == "__main__":
    main()
