"""MoE dispatch efficiency: labkit's MoEBlock vs transformers' MixtralSparseMoeBlock vs the dense FFN.

SmolLM2-135M MLP shape (d=576, f=1536), a 4096-token prefill and a 1-token decode, for
N ∈ {4, 8, 16} experts and k/N ∈ {1/4, 1/2, 3/4}, then a 1-token decode under the adaptive
policies (top-p, switch; the per-token expert count varies); ``--shape llama2-7b`` repeats it at one
LLaMA2-7B FFN (d=4096, f=11008; 512-token prefill by default), where the fixed per-token cost of
routing is small next to the matrix-vector products. Efficiency = (k/N) · t_dense / t_moe: 1.0 means
the MoE is exactly as much faster than dense as its activated fraction predicts. All timings are
measured side by side in one run, on whatever device is present: each row runs 21 rounds (``--repeats``)
in which every variant is called in turn; times are medians over rounds, and an efficiency is the
median of the rounds' own ratios (dense and MoE, called back to back, share the host's phase, which
on a shared VM can change the speed of both by tens of percent for seconds at a time), printed for
labkit with a 95 % bootstrap interval of that median.
On a CPU labkit's block runs its fused C kernels (``labkit.moe.kernels``, compiled on first use);
the ``labkit-pt`` column is the same block with them switched off (``use_kernels=False``), i.e. the
pure-PyTorch fallback. The decode efficiency can exceed 1: the dense FFN's three matrix-vector
products are separate calls whose per-call costs add up, and on some CPUs a BLAS gemv uses one
core, while labkit's decode streams the chosen experts' rows on all cores.

    python benchmarks/bench_moe.py             # the table (about two minutes on 2 CPU cores)
    python benchmarks/bench_moe.py --shape llama2-7b   # one 7B-sized FFN (~1.7 GB RAM, minutes)
    python benchmarks/bench_moe.py --convert   # + end-to-end SmolLM2-135M conversion at the cpu
                                               #   profile budget (100K tokens), from scratch in a
                                               #   temporary folder: wall time, peak RSS
    python benchmarks/bench_moe.py --steady-malloc   # glibc keeps freed memory (see below)

The memory allocator weighs on the prefill ratios. Each call frees its output (9.4 MB at 4096
tokens) and the dense FFN also four 25 MB intermediates; when glibc hands such memory back to the
kernel, the next call page-faults it in again, which in a VM that reports free pages to its host
is slow. The dense FFN pays that several times per call, so the default allocator flatters the
MoE's ratio. ``--steady-malloc`` sets glibc's trim and mmap thresholds (``mallopt``; the same as
``MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_MMAP_THRESHOLD_=33554432``) so that freed memory is kept
and reused by both.

Results measured with this script, and the measurements behind the kernels' design, are in
``benchmarks/NOTES_moe.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from labkit.moe import kernels
from labkit.moe.block import MoEBlock

SHAPES = {"smollm2-135m": (576, 1536), "llama2-7b": (4096, 11008)}
D, F = SHAPES["smollm2-135m"]


def dense_mlp(d: int = D, f: int = F) -> nn.Module:
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    torch.manual_seed(0)
    return LlamaMLP(LlamaConfig(hidden_size=d, intermediate_size=f)).eval()


def labkit_block(mlp: nn.Module, n: int, k: int, use_kernels: bool = True) -> MoEBlock:
    groups = list(torch.arange(mlp.gate_proj.weight.shape[0]).chunk(n))
    block = MoEBlock.from_dense(mlp, groups).eval()
    nn.init.normal_(block.router.weight, std=0.05)
    block.set_policy(f"top{k}")
    block.use_kernels = use_kernels
    return block


def mixtral_block(n: int, k: int, d: int = D, f: int = F) -> nn.Module:
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    cfg = MixtralConfig(hidden_size=d, intermediate_size=f // n, num_local_experts=n, num_experts_per_tok=k)
    block = MixtralSparseMoeBlock(cfg).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.02)
    return block


def _time(fn, x, inner: int) -> float:
    t = time.perf_counter()
    for _ in range(inner):
        fn(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / inner


def measure(fns: dict, x: torch.Tensor, inner: int, repeats: int) -> dict[str, list[float]]:
    """Round-robin timing of every function on ``x``: seconds per call, one sample per repeat
    (sample ``r`` of every function comes from the same round: the calls run back to back)."""
    for fn in fns.values():
        fn(x)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_time(fn, x, inner))
    return samples


def paired_ratios(frac: float, dense: list[float], moe: list[float]) -> list[float]:
    """Each round's own efficiency ``frac · t_dense / t_moe``. A round's dense and MoE calls run
    back to back, so a slow phase of the host (on a shared VM they last seconds) slows both and
    cancels in the ratio; medians taken separately mix rounds from different phases."""
    return [frac * a / b for a, b in zip(dense, moe, strict=True)]


def median_interval(values: list[float], boot: int = 2000) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median of ``values`` (seeded: the same data give
    the same interval)."""
    import random

    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(boot))
    return meds[int(0.025 * boot)], meds[int(0.975 * boot) - 1]


def run_table(
    device: str, prefill_tokens: int, repeats: int, d: int = D, f: int = F, pytorch_column: bool = True
) -> list[dict]:
    """One row per (N, k, phase); ``pytorch_column`` adds labkit's block without its C kernels."""
    mlp = dense_mlp(d, f).to(device)
    decode_inner = max(5, 50 * 576 * 1536 // (d * f))
    rows = []
    for n in (4, 8, 16):
        for frac in (0.25, 0.5, 0.75):
            k = int(n * frac)
            lab = labkit_block(mlp, n, k).to(device)
            fns = {"dense": mlp, "labkit": lab}
            if pytorch_column:
                fns["labkit_pt"] = labkit_block(mlp, n, k, use_kernels=False).to(device)
            fns["mixtral"] = mixtral_block(n, k, d, f).to(device)
            for phase, tokens, inner in (("prefill", prefill_tokens, 1), ("decode", 1, decode_inner)):
                x = torch.randn(1, tokens, d, device=device)
                with torch.inference_mode():
                    samples = measure(fns, x, inner, repeats)
                row = {"N": n, "k": k, "phase": phase}
                for name, v in samples.items():
                    ratios = paired_ratios(frac, samples["dense"], v)
                    row[f"t_{name}"], row[f"eff_{name}"] = statistics.median(v), statistics.median(ratios)
                    if name == "labkit":  # the only interval printed
                        row["ci_labkit"] = median_interval(ratios)
                rows.append(row)
                print(_fmt(row, pytorch_column), flush=True)
            del lab, fns
    return rows


def run_adaptive(device: str, repeats: int, d: int = D, f: int = F) -> list[dict]:
    """1-token decode under adaptive policies (top-p, switch), over 64 different tokens so that the
    number of experts varies: efficiency = (k̄/N) · t_dense / t_moe with k̄ the measured mean.

    Each N also gets a top-k row, k = top-p's k̄ rounded, with top-p's router, as a control. In the
    main table one token repeats, so its k experts' weights (0.66 MB each at N = 16) can stay in
    the cores' L2 caches while the dense FFN's 10.6 MB cannot; here the 64 tokens pick different
    experts, which then come from L3 like the dense weights (closer to a model's decode step, where
    the other layers evict them), and top-k measures lower too. The control tells that apart from
    any cost of the adaptive rule itself."""
    mlp = dense_mlp(d, f).to(device)
    xs = torch.randn(64, 1, 1, d, device=device)
    rows = []
    for n in (8, 16):
        blocks: dict[str, MoEBlock] = {}
        for spec in ("topp0.7", f"switch0.4:{n // 4}-{3 * n // 4}"):
            blocks[spec] = labkit_block(mlp, n, 1).to(device)
            blocks[spec].set_policy(spec)
        with torch.inference_mode():
            kbar = {
                s: statistics.mean(len(b.policy.select_one(b.router(x).reshape(-1))) for x in xs)
                for s, b in blocks.items()
            }
            k_ctl = max(1, round(kbar["topp0.7"]))
            ctl = labkit_block(mlp, n, k_ctl).to(device)
            ctl.router.weight.copy_(blocks["topp0.7"].router.weight)
            blocks[f"top{k_ctl} (control)"], kbar[f"top{k_ctl} (control)"] = ctl, float(k_ctl)
            fns = {"dense": lambda b: [mlp(x) for x in b]}
            fns.update({s: (lambda b, m=m: [m(x) for x in b]) for s, m in blocks.items()})
            samples = measure(fns, xs, 1, repeats)
        td = statistics.median(samples["dense"]) / len(xs)
        for spec in blocks:
            tl = statistics.median(samples[spec]) / len(xs)
            eff = statistics.median(paired_ratios(kbar[spec] / n, samples["dense"], samples[spec]))
            row = {"N": n, "policy": spec, "k_mean": kbar[spec], "t_dense": td, "t_labkit": tl, "eff": eff}
            rows.append(row)
            times = f"{td * 1e3:8.3f} | {tl * 1e3:9.3f}"
            print(f"| {n:>2} | {spec:<16} | {kbar[spec]:6.2f} | {times} | {eff:5.2f} |")
    return rows


def _fmt(r: dict, pytorch_column: bool = True) -> str:
    pt = pytorch_column and "t_labkit_pt" in r
    return (
        f"| {r['N']:>2} | {r['k']:>2} | {r['phase']:<7} | {r['t_dense'] * 1e3:9.3f} "
        f"| {r['t_labkit'] * 1e3:9.3f} "
        + (f"| {r['t_labkit_pt'] * 1e3:9.3f} " if pt else "")
        + f"| {r['t_mixtral'] * 1e3:9.3f} "
        + f"| {r['eff_labkit']:4.2f} ({r['ci_labkit'][0]:.2f}–{r['ci_labkit'][1]:.2f}) "
        + (f"| {r['eff_labkit_pt']:6.2f} " if pt else "")
        + f"| {r['eff_mixtral']:6.2f} |"
    )


def steady_malloc() -> bool:
    """Keep freed memory in the process (glibc ``mallopt``: no trimming, mmap only above 32 MB)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        trim = libc.mallopt(m_trim_threshold, 2**31 - 1)
        return bool(trim) and bool(libc.mallopt(m_mmap_threshold, 32 << 20))
    except (OSError, AttributeError):
        return False


def run_convert() -> None:
    """A conversion from scratch in a temporary folder (the cached one, and its layer checkpoints
    that a rerun would resume from, are neither used nor touched); the model comes from the cache."""
    import tempfile

    from labkit.moe import pipeline

    cfg = pipeline.ConversionConfig.from_profile("cpu")
    with tempfile.TemporaryDirectory(prefix="labkit-bench-convert-") as tmp:
        t = time.perf_counter()
        _, _, rep = pipeline.convert(cfg, progress=True, use_cache=False, folder=tmp)
        wall = time.perf_counter() - t
    assert not rep["resumed_layers"], rep["resumed_layers"]
    stages = {k: round(v) for k, v in rep["stages_s"].items()}
    print(
        f"\nSmolLM2-135M conversion from scratch, {rep['tokens']['train']} tokens: wall {wall:.0f} s, "
        f"peak RSS {rep['peak_rss_mb']:.0f} MB, stages {stages}"
    )
    print(
        f"activated-parameter reduction {rep['reduction']:.1%}; validation perplexity dense "
        f"{rep['valid_ppl']['dense']:.2f} vs MoE {rep['valid_ppl']['moe']:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m", help="FFN size")
    ap.add_argument("--tokens", type=int, default=None, help="prefill tokens (4096; 512 at llama2-7b)")
    ap.add_argument("--repeats", type=int, default=21, help="rounds per row (paired timings)")
    ap.add_argument("--convert", action="store_true", help="also time the SmolLM2 100K-token conversion")
    ap.add_argument("--no-pytorch-column", action="store_true", help="skip the block without its C kernels")
    ap.add_argument(
        "--steady-malloc", action="store_true", help="glibc keeps freed memory (no trimming; see above)"
    )
    args = ap.parse_args()
    malloc = "system default"
    if args.steady_malloc:
        malloc = "steady (glibc trim, mmap thresholds)" if steady_malloc() else "default (mallopt failed)"
    d, f = SHAPES[args.shape]
    tokens = args.tokens or (4096 if args.shape == "smollm2-135m" else 512)
    kern = kernels.get() if args.device == "cpu" else None
    where = f"C kernels: {kern.path}" if kern else "C kernels: not in use (pure PyTorch)"
    if kern and not kern.has_prefill:
        where += " (decode only: no MKL sgemm for prefill)"
    pt = kern is not None and not args.no_pytorch_column
    threads = torch.get_num_threads()
    print(f"device={args.device} threads={threads} d={d} f={f} prefill={tokens} tokens, malloc {malloc}")
    print(f"{where}\ntimes in ms; efficiency = (k/N)·t_dense/t_moe (1.0 = ideal)")
    if pt:
        print("labkit-pt: the same block with its C kernels switched off (the PyTorch fallback)")
    print()
    print(
        "|  N |  k | phase   |  dense ms | labkit ms |"
        + (" labkit-pt ms |" if pt else "")
        + " mixtral ms | eff labkit (95% CI) |"
        + (" eff labkit-pt |" if pt else "")
        + " eff mixtral |"
    )
    print(
        "|---:|---:|:--------|----------:|----------:|"
        + ("-------------:|" if pt else "")
        + "-----------:|-------------------:|"
        + ("--------------:|" if pt else "")
        + "------------:|"
    )
    rows = run_table(args.device, tokens, args.repeats, d, f, pytorch_column=pt)
    names = [("labkit", "labkit")] + ([("labkit_pt", "labkit-pt")] if pt else []) + [("mixtral", "Mixtral")]
    for phase in ("prefill", "decode"):
        sel = [r for r in rows if r["phase"] == phase]
        dense = [r["t_dense"] * 1e3 for r in sel]
        effs = ", ".join(
            f"{label} {min(r[f'eff_{key}'] for r in sel):.2f}–{max(r[f'eff_{key}'] for r in sel):.2f}"
            for key, label in names
        )
        low = min(sel, key=lambda r: r["ci_labkit"][0])
        print(
            f"\n{phase}: efficiency {effs} (the same dense FFN measured "
            f"{min(dense):.3f}–{max(dense):.3f} ms across rows); labkit's lowest 95% interval "
            f"{low['ci_labkit'][0]:.2f}–{low['ci_labkit'][1]:.2f} (N = {low['N']}, k = {low['k']})"
        )
    print("\nAdaptive policies, 1-token decode (64 different tokens; k̄ = mean experts used)\n")
    print("|  N | policy           |     k̄ | dense ms | labkit ms |   eff |")
    print("|---:|:-----------------|-------:|---------:|----------:|------:|")
    ad = run_adaptive(args.device, args.repeats, d, f)
    adaptive = [r["eff"] for r in ad if "control" not in r["policy"]]
    control = ", ".join(f"N = {r['N']} {r['eff']:.2f}" for r in ad if "control" in r["policy"])
    print(f"\nadaptive decode: efficiency {min(adaptive):.2f}–{max(adaptive):.2f}; top-k control: {control}")
    if args.convert:
        run_convert()


if __name__ == "__main__":
    main()
