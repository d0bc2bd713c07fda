"""The prepared GPU check of Part I: a LLaMA2-7B-shaped conversion and MoE throughput, in one run.

On a CUDA machine (no internet needed)::

    python benchmarks/gpu_check.py            # 32 layers, d = 4096, f = 11008, bfloat16, 100K tokens
    python benchmarks/gpu_check.py --tiny     # the same stages at a tiny shape, on CPU, in seconds

Stages, each with its wall time and peak GPU memory (``torch.cuda.max_memory_allocated``):

1. **build**: a random, seeded LLaMA2-7B-shaped ``LlamaForCausalLM`` made on the meta device and
   materialised on the GPU (no checkpoint: the machine has no internet; the conversion's cost does
   not depend on the weights' values) with labkit's byte tokenizer.
2. **convert**: :func:`labkit.moe.convert` on it, the book's pipeline: capture of the calibration
   tokens, k-means experts, stage 1 (layer-wise distillation), stage 2 (routing search), evaluation.
3. **throughput**: one FFN of that shape as the dense ``LlamaMLP``, as labkit's ``MoEBlock`` (N = 8
   experts, top-2, backend ``grouped_mm``) and as transformers' ``MixtralSparseMoeBlock`` with the
   same experts (its default experts implementation and ``grouped_mm``), timed with
   ``torch.utils.benchmark`` for a prefill of 2048 tokens and a decode step, at batch 1 and 32.
   Efficiency = (dense time × k / N) / MoE time: 1.0 means the MoE is as fast as its share of FLOPs.
4. **sync**: a decode step of the MoE block under ``torch.cuda.set_sync_debug_mode("error")``
   (a device-to-host synchronisation raises), and whether two distillations of one layer give the
   same bits (the determinism statement of chapter 5).

Targets (issue #27): whole check ≤ 8 min on one H100 and < 40 GB of GPU memory; MoE prefill
efficiency ≥ 0.8 at N = 8, k = 2 in bfloat16 and faster than the Mixtral block. The results are
printed as tables and written to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    "tiny": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4),
}


def _gpu_mb() -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def build_model(shape: str, device: str, dtype: torch.dtype, seed: int = 0):
    """A random LLaMA-shaped model (normal(0, 0.02) weights, unit norms) and the byte tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from labkit.models import byte_tokenizer

    tok = byte_tokenizer()
    cfg = LlamaConfig(
        vocab_size=32000 if shape == "7b" else 512,
        num_key_value_heads=SHAPES[shape]["num_attention_heads"],
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        **SHAPES[shape],
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg).to(device)  # meta init left it empty
    return model.eval(), tok


def throughput(
    d: int, f: int, device: str, dtype: torch.dtype, *, n: int = 8, k: int = 2, quick: bool
) -> list:
    """Dense FFN vs labkit's MoE block vs transformers' Mixtral block, same shapes and experts."""
    from torch.utils import benchmark
    from transformers import MixtralConfig
    from transformers.models.llama.modeling_llama import LlamaMLP
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    from labkit import moe
    from labkit.moe.block import MoEBlock

    torch.manual_seed(0)
    lcfg = type("C", (), dict(hidden_size=d, intermediate_size=f, hidden_act="silu", mlp_bias=False))()
    dense = LlamaMLP(lcfg).to(device, dtype).eval()
    groups = [torch.arange(i * (f // n), (i + 1) * (f // n)) for i in range(n)]  # equal experts
    block = MoEBlock.from_dense(dense, groups).eval()
    block.set_policy(f"top{k}")
    block.set_weighting("softmax")  # Mixtral's weighting (× k), so both compute the same function
    if device != "cpu":
        moe.set_backend(block, "grouped_mm")
    rows = []
    mixtrals = {}
    for impl in ("eager", "grouped_mm"):
        mcfg = MixtralConfig(
            hidden_size=d, intermediate_size=f // n, num_local_experts=n, num_experts_per_tok=k
        )
        mcfg._experts_implementation = impl
        mix = MixtralSparseMoeBlock(mcfg).to(device, dtype).eval()
        with torch.no_grad():
            mix.gate.weight.copy_(block.router.weight)
            mix.experts.gate_up_proj.copy_(block.w1.transpose(1, 2))
            mix.experts.down_proj.copy_((block.w2 * k).transpose(1, 2))
        mixtrals[impl] = mix
    cases = [("prefill", 1, 256 if quick else 2048), ("prefill", 32, 32 if quick else 2048), ("decode", 1, 1)]
    cases.append(("decode", 32, 1))
    min_time = 0.05 if quick else 1.0
    for phase, batch, length in cases:
        x = torch.randn(batch, length, d, device=device, dtype=dtype)
        times = {}
        with torch.no_grad():
            for name, fn in [
                ("dense", dense),
                ("labkit", block),
                *(("mixtral-" + i, m) for i, m in mixtrals.items()),
            ]:
                try:
                    fn(x)  # warm-up (kernel selection, packed weights)
                    t = benchmark.Timer("fn(x)", globals={"fn": fn, "x": x}).blocked_autorange(
                        min_run_time=min_time
                    )
                    times[name] = t.median
                except Exception as err:  # a Mixtral implementation this torch lacks
                    times[name] = float("nan")
                    print(f"  {name} {phase} b{batch}: {type(err).__name__}: {err}", file=sys.stderr)
            ref = mixtrals["eager"](x)
            ref = ref[0] if isinstance(ref, tuple) else ref
            agree = float((block(x).float() - ref.float()).norm() / ref.float().norm())
        ideal = times["dense"] * k / n
        rows.append(
            dict(
                phase=phase,
                batch=batch,
                tokens=batch * length,
                dense_ms=times["dense"] * 1e3,
                labkit_ms=times["labkit"] * 1e3,
                mixtral_eager_ms=times["mixtral-eager"] * 1e3,
                mixtral_grouped_ms=times["mixtral-grouped_mm"] * 1e3,
                efficiency=ideal / times["labkit"],
                vs_mixtral=min(times["mixtral-eager"], times["mixtral-grouped_mm"]) / times["labkit"],
                rel_diff_vs_mixtral=agree,
            )
        )
    return rows


def sync_and_determinism(model, device: str) -> dict:
    """A decode step with host syncs made errors (CUDA); two distillations of one layer compared."""
    from labkit import moe
    from labkit.moe.distill import DistillConfig, reruns_bit_identical

    blocks = moe.moe_blocks(model)
    out: dict = {}
    block = blocks[0]
    x = torch.randn(1, 1, block.hidden_size, device=device, dtype=block.w1.dtype)
    if device.startswith("cuda"):
        moe.set_backend(block, "grouped_mm")
        torch.cuda.set_sync_debug_mode("error")
        try:
            with torch.no_grad():
                block(x)
            out["decode_host_sync"] = "none"
        except RuntimeError as err:
            out["decode_host_sync"] = f"found: {err}"
        finally:
            torch.cuda.set_sync_debug_mode(0)
    else:
        out["decode_host_sync"] = "not checked (CPU)"
    xs = torch.randn(512, block.hidden_size, device=device, generator=torch.Generator(device).manual_seed(1))
    out["distill_bit_identical"] = reruns_bit_identical(block, xs, DistillConfig(batch_tokens=128, lr=1e-4))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shape on CPU (CI)")
    ap.add_argument("--tokens", type=int, help="distillation tokens (default 100000; --tiny 1024)")
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--out", help="write the results here as JSON")
    args = ap.parse_args(argv)
    from labkit import moe
    from labkit.config import distill_lr

    shape = "tiny" if args.tiny else "7b"
    device = "cuda" if (torch.cuda.is_available() and not args.tiny) else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokens = args.tokens or (1024 if args.tiny else 100_000)
    results: dict = {"shape": shape, "device": device, "dtype": str(dtype), "tokens": tokens, "stages": {}}
    if device == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    t_all = time.perf_counter()

    _reset_peak()
    t = time.perf_counter()
    model, tok = build_model(shape, device, dtype)
    results["stages"]["build"] = dict(seconds=time.perf_counter() - t, peak_gpu_mb=_gpu_mb())
    _reset_peak()
    cfg = moe.ConversionConfig(
        model=f"random-llama2-7b-shape:{shape}",
        num_experts=args.experts,
        train_tokens=tokens,
        valid_tokens=256 if args.tiny else 4096,
        seq_len=512 if not args.tiny else 128,
        batch_tokens=1024 if not args.tiny else 256,
        lr=distill_lr(SHAPES[shape]["hidden_size"]) if not args.tiny else 1e-3,
        target_reduction=0.2 if not args.tiny else 0.1,
        front_evals=2,
        device=device,
        dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
    )
    with tempfile.TemporaryDirectory(prefix="labkit-gpu-check-") as tmp:
        _, _, report = moe.convert(cfg, dense=(model, tok), folder=tmp, progress=False)
    for name, sec in report["stages_s"].items():
        if name != "load":
            results["stages"][name] = dict(
                seconds=sec, peak_gpu_mb=report.get("peak_gpu_mb_by_stage", {}).get(name, float("nan"))
            )
    results["conversion"] = dict(
        reduction=report["reduction"], valid_ppl=report["valid_ppl"], peak_rss_mb=report["peak_rss_mb"]
    )
    _reset_peak()
    t = time.perf_counter()
    d, f = SHAPES[shape]["hidden_size"], SHAPES[shape]["intermediate_size"]
    results["throughput"] = throughput(d, f, device, dtype, n=8, quick=args.tiny)
    results["stages"]["throughput"] = dict(seconds=time.perf_counter() - t, peak_gpu_mb=_gpu_mb())
    t = time.perf_counter()
    results["checks"] = sync_and_determinism(model, device)
    results["stages"]["sync+determinism"] = dict(seconds=time.perf_counter() - t, peak_gpu_mb=_gpu_mb())
    results["total_seconds"] = time.perf_counter() - t_all

    print(f"gpu_check: {shape} shape on {results.get('gpu', device)}, {dtype}, {tokens} tokens")
    print(f"{'stage':<18}{'seconds':>10}{'peak GPU MB':>14}")
    for name, st in results["stages"].items():
        print(f"{name:<18}{st['seconds']:>10.1f}{st['peak_gpu_mb']:>14.0f}")
    print(
        f"total {results['total_seconds']:.1f} s; reduction {report['reduction']:.1%}; "
        f"valid ppl dense {report['valid_ppl']['dense']:.1f} -> MoE {report['valid_ppl']['moe']:.1f}"
    )
    print(
        f"{'phase':<8}{'batch':>6}{'tokens':>8}{'dense ms':>10}{'labkit ms':>11}{'mixtral ms':>12}"
        f"{'efficiency':>12}{'vs mixtral':>12}"
    )
    for r in results["throughput"]:
        mix = min(r["mixtral_eager_ms"], r["mixtral_grouped_ms"])
        print(
            f"{r['phase']:<8}{r['batch']:>6}{r['tokens']:>8}{r['dense_ms']:>10.3f}{r['labkit_ms']:>11.3f}"
            f"{mix:>12.3f}{r['efficiency']:>12.2f}{r['vs_mixtral']:>12.2f}"
        )
    print("checks:", json.dumps(results["checks"]))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
