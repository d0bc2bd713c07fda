"""Benchmark: ``labkit eval run`` / ``labkit moe convert`` in 2 processes × 1 thread (torchrun, gloo) vs
1 process × 2 threads.

The same work both ways: SmolLM2-135M in float32 on CPU scoring the cpu profile's item set of the
book's parallel set (``koen_parallel``, every item of both languages, 0-shot, the registry's protocol),
each configuration into a fresh results cache. Each command is run twice on its cache: the first run
scores everything, the second finds every record cached and measures the fixed cost (interpreter,
imports, model load, weights fingerprint, reading the cache). Scoring time = first − second.

Printed per configuration: wall seconds of the first run, the fixed cost, the scoring time and items/s;
then the ratios 2×1 over 1×2 (end to end and scoring only), and whether the results agree: byte
equality of ``items.jsonl`` and ``summary.json``, the largest |Δ log-likelihood| and whether every
prediction is the same. Optionally (``--one-thread``) a 1 process × 1 thread run, which scores with
the same per-process thread count as the ranks and should give byte-identical files.

Timings mean something only on a quiet machine: the script prints the load average before and after
and refuses to start when the 1-minute load is above ``--max-load`` (default 1.5) unless ``--force``.

Run: ``python benchmarks/bench_distributed.py`` (``--lang ko``, ``--max-items N``, ``--chunk-size N``).

``--what distill``: the conversion of SmolLM2-135M (the cpu profile's config; ``--tokens N`` for
another calibration budget) in each configuration, into a fresh cache and output folder; printed
per configuration are the stages the processes share (capture, distill: rank 0's wall time of the
stage, which waits for the slowest rank and loads the others' layers), the wall time of the whole
command, and whether the saved weights are byte-identical. With ``--one-thread`` the 1 × 1 weights
must equal the 2 × 1 weights (same threads per process); 1 × 2 rounds differently.

``--quick``: a functional check at a tiny setting (the tiny LLaMA, 8192 tokens; 8 items for
``eval``) that ignores the load check; its timings mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labkit.evals.results import compare_runs
from labkit.paths import cache_root


def _cmd(args: argparse.Namespace, cache: Path) -> list[str]:
    cmd = ["eval", "run", "--task", "koen_parallel", "--model", args.model, "--cache", str(cache), "--quiet"]
    cmd += ["--chunk-size", str(args.chunk_size), "--dtype", "float32", "--device", "cpu"]
    if args.lang:
        cmd += ["--lang", args.lang]
    if args.max_items:
        cmd += ["--max-items", str(args.max_items)]
    return cmd


def _launch(procs: int, threads: int, labkit_args: list[str]) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), LABKIT_PROFILE="cpu")
    if procs == 1:
        cmd = [sys.executable, "-m", "labkit", *labkit_args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
        cmd += ["-m", "labkit", *labkit_args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({' '.join(cmd)}):\n{p.stderr[-4000:]}")
    return sec, json.loads(p.stdout)


def _compare(a: Path, b: Path) -> str:
    agree = compare_runs(a, b)
    return (
        f"items.jsonl identical={agree.items_identical}, summary.json identical={agree.summary_identical}, "
        f"max|dll|={agree.max_abs_dll:.2e}, same predictions={agree.same_predictions}"
    )


def _convert_cmd(args: argparse.Namespace, out: Path) -> list[str]:
    cmd = ["moe", "convert", "--profile", "cpu", "--model", args.model, "--out", str(out), "--no-progress"]
    cmd += ["--device", "cpu", "--dtype", "float32"]
    if args.tokens:
        cmd += ["--tokens", str(args.tokens)]
    if args.quick:
        cmd += ["--experts", "4", "--seq-len", "128", "--target", "0.1"]
    return cmd


def _launch_convert(procs: int, threads: int, labkit_args: list[str], cache: Path) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), LABKIT_CACHE=str(cache))
    if procs == 1:
        cmd = [sys.executable, "-m", "labkit", *labkit_args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
        cmd += ["-m", "labkit", *labkit_args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({' '.join(cmd)}):\n{p.stderr[-4000:]}")
    out = Path(labkit_args[labkit_args.index("--out") + 1])
    return sec, json.loads((out / "report.json").read_text())


def _distill_bench(args: argparse.Namespace, configs: list[tuple[str, int, int]]) -> None:
    rows, outs = [], {}
    with tempfile.TemporaryDirectory(prefix="labkit-bench-dist-") as tmp:
        for label, procs, threads in configs:
            out = Path(tmp) / f"out-p{procs}t{threads}"
            cache = Path(tmp) / f"cache-p{procs}t{threads}"
            cache.mkdir()
            for shared in ("models", "kernels"):  # the dense model and compiled kernels, built once
                if (cache_root() / shared).is_dir():
                    (cache / shared).symlink_to(cache_root() / shared, target_is_directory=True)
            wall, rep = _launch_convert(procs, threads, _convert_cmd(args, out), cache)
            assert rep["world_size"] == procs and not rep["from_cache"], rep["world_size"]
            outs[label] = (out / "model.safetensors").read_bytes()
            st = rep["stages_s"]
            rows.append((label, rep["tokens"]["train"], st["capture"], st["distill"], wall))
            print(f"  {label}: distill {st['distill']:.1f} s, command {wall:.1f} s", flush=True)
        hdr = f"{'configuration':<24} {'tokens':>7} {'capture s':>10} {'distill s':>10} {'command s':>10}"
        print("\n" + hdr + "\n" + "-" * len(hdr))
        for label, tokens, cap, dis, wall in rows:
            print(f"{label:<24} {tokens:7d} {cap:10.1f} {dis:10.1f} {wall:10.1f}")
        (l1, _, c1, d1, w1), (l2, _, c2, d2, w2) = rows[:2]
        print(f"\n2x1 vs 1x2: distill {d1 / d2:.2f}x, capture {c1 / c2:.2f}x, command {w1 / w2:.2f}x")
        for label, _, _, _, _ in rows:
            if label != l2:
                print(f"weights of {l2} and {label} byte-identical: {outs[label] == outs[l2]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument(
        "--lang", choices=["ko", "en"], default=None, help="default: both (the cpu profile's set)"
    )
    ap.add_argument("--max-items", type=int, default=None, help="default: all (the cpu profile's set)")
    ap.add_argument("--chunk-size", type=int, default=32)
    ap.add_argument("--one-thread", action="store_true", help="also 1 process x 1 thread")
    ap.add_argument("--max-load", type=float, default=1.5)
    ap.add_argument("--force", action="store_true", help="time even on a busy machine")
    ap.add_argument("--what", choices=["eval", "distill"], default="eval", help="what to time")
    ap.add_argument("--tokens", type=int, default=None, help="distill: calibration tokens")
    ap.add_argument("--quick", action="store_true", help="tiny functional check, no load check")
    args = ap.parse_args()
    if args.quick:
        args.force = True
        if args.what == "distill":
            args.model, args.tokens = "tiny-llama-deep", args.tokens or 8192
        else:
            args.lang, args.max_items, args.chunk_size = "ko", args.max_items or 8, 4
    load = os.getloadavg()
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cpus={os.cpu_count()}", flush=True
    )
    if load[0] > args.max_load and not args.force:
        sys.exit(f"the machine is busy (1-minute load {load[0]:.2f} > {args.max_load}); rerun when quiet")
    configs = [("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1)]
    if args.one_thread:
        configs.append(("1 process x 1 thread", 1, 1))
    if args.what == "distill":
        _distill_bench(args, configs)
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        return
    rows, folders = [], {}
    with tempfile.TemporaryDirectory(prefix="labkit-bench-dist-") as tmp:
        for label, procs, threads in configs:
            cache = Path(tmp) / f"p{procs}t{threads}"
            first, out = _launch(procs, threads, _cmd(args, cache))
            fixed, again = _launch(procs, threads, _cmd(args, cache))
            assert out["scored_now"] == out["n"] and again["scored_now"] == 0, (out, again)
            folders[label] = Path(out["folder"])
            rows.append((label, out["n"], first, fixed, first - fixed))
            print(f"  {label}: {first:.1f} s ({fixed:.1f} s fixed)", flush=True)
        hdr = f"{'configuration':<24} {'items':>5} {'wall s':>7} {'fixed s':>8} {'scoring s':>10}"
        hdr += f" {'items/s':>8}"
        print("\n" + hdr + "\n" + "-" * len(hdr))
        for label, n, first, fixed, scoring in rows:
            print(f"{label:<24} {n:5d} {first:7.1f} {fixed:8.1f} {scoring:10.1f} {n / scoring:8.2f}")
        (_, _, w1, _, s1), (_, _, w2, _, s2) = rows[:2]
        print(f"\n2x1 vs 1x2: end to end {w1 / w2:.2f}x, scoring only {s1 / s2:.2f}x")
        print(f"2x1 vs 1x2 results: {_compare(folders[rows[0][0]], folders[rows[1][0]])}")
        if args.one_thread:
            print(f"2x1 vs 1x1 results: {_compare(folders[rows[2][0]], folders[rows[1][0]])}")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
