"""Benchmark: labkit.evals.loglikelihood vs lm-evaluation-harness 0.4.13 ``HFLM.loglikelihood``.

SmolLM2-135M-Instruct in float32 on CPU, 100 four-option multiple-choice items (50 Korean + 50
English from the book's koen_parallel set, 0-shot cloze prompts by default: 400 identical requests
for all rows), measured side by side in one run. Reports items/s, the speed-up over lm-eval's
fastest row, and max |Δ log-likelihood|. Rows:

* labkit's packed scorer (token budget, and batch_size=1);
* the same scorer behind lm-eval's ``TemplateLM`` interface (:func:`labkit.evals.lmeval.lm_eval_model`),
  called the way lm-eval's evaluator calls a model (``lm.loglikelihood(instances)``);
* lm-eval's ``HFLM`` at the batch sizes given (default 16, its fastest on the 2-core CPU used).

Then generation throughput: greedy decoding of 16 prompts × 32 new tokens, labkit's
``generate_until`` against transformers' ``model.generate`` called directly (same batch, left
padding), in generated tokens per second.

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
from labkit.evals.lm import generate_until
from labkit.evals.prompts import select_shots
from labkit.evals.tasks import take_balanced
from labkit.models import load_causal_lm


def requests(n_items: int, shots: int = 0) -> list[tuple[str, str]]:
    cfg = PromptConfig(style="cloze", shots=shots)
    reqs = []
    for lang in ("ko", "en"):
        # the first n/2 items of each language, round-robin over its categories (not paired)
        items = take_balanced(load_task("koen_parallel", lang=lang), n_items // 2)
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
    ap.add_argument("--lm-eval-batch-sizes", default="16", help="comma-separated HFLM batch sizes, e.g. 1,16")
    ap.add_argument("--skip-generation", action="store_true", help="only the log-likelihood table")
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
        if not args.skip_generation:
            generation(model, tok)
        return
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from labkit.evals.lmeval import lm_eval_model

    logging.getLogger("lm-eval").setLevel(logging.ERROR)
    adapter = lm_eval_model(model, tok)
    inst = [Instance("loglikelihood", {}, r, i) for i, r in enumerate(reqs)]
    vals, sec = timed(lambda: adapter.loglikelihood(inst, disable_tqdm=True))
    rows.append(("labkit as lm-eval TemplateLM", sec, vals))
    print(f"  {rows[-1][0]}: {sec:.1f} s", flush=True)
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
    if not args.skip_generation:
        generation(model, tok)


def generation(model, tok, n_prompts: int = 16, new_tokens: int = 32) -> None:
    """Greedy tokens/s: labkit's generate_until vs transformers' generate on the same left-padded batch."""
    items = take_balanced(load_task("koen_parallel", lang="en"), n_prompts)
    prompts = [build_prompt(it, "generic", PromptConfig(style="cloze")).context for it in items]
    # labkit: no stop strings, so both generate exactly `new_tokens` tokens unless EOS comes first
    outs, sec_lk = timed(
        lambda: generate_until(
            model, tok, prompts, max_new_tokens=new_tokens, batch_size=n_prompts, progress=False
        )
    )
    n_lk = sum(len(tok.encode(o[0], add_special_tokens=False)) for o in outs)
    side = tok.padding_side
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    tok.padding_side = side
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.inference_mode():
        gen, sec_hf = timed(
            lambda: model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
        )
    n_hf = int((gen[:, enc["input_ids"].shape[1] :] != pad).sum())
    print(f"\ngeneration, {n_prompts} prompts x {new_tokens} new tokens (greedy, one batch):")
    print(f"  labkit generate_until : {n_lk:5d} tokens in {sec_lk:6.2f} s = {n_lk / sec_lk:7.1f} tokens/s")
    print(f"  transformers generate : {n_hf:5d} tokens in {sec_hf:6.2f} s = {n_hf / sec_hf:7.1f} tokens/s")


if __name__ == "__main__":
    main()
