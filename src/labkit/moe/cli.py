"""``labkit moe …`` command line: ``labkit moe convert --model M --out DIR`` runs stages 1–2.

Examples::

    labkit moe convert --model smollm2-135m --out smol-moe --experts 8 --tokens 100000
    labkit moe convert --profile smoke --out /tmp/smol-moe --mixtral /tmp/smol-mixtral
    torchrun --standalone --nproc-per-node=2 -m labkit moe convert \\
        --profile smoke --out /tmp/smol-moe
    labkit moe convert --model meta-llama/Llama-2-70b-hf --device-map auto --out llama70-moe

Under ``torchrun`` the capture and the layers are shared between the processes
(:func:`labkit.moe.pipeline.convert`); rank 0 writes ``--out`` and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``moe`` command group to the ``labkit`` parser."""
    moe = subparsers.add_parser("moe", help="LaDiMo dense→MoE conversion (Part I)")
    sub = moe.add_subparsers(dest="moe_command", required=True)
    conv = sub.add_parser(
        "convert", help="convert a dense LLaMA into an MoE (distillation + adaptive routing)"
    )
    conv.add_argument("--model", help="zoo name, local folder or hub id (default: the profile's model)")
    conv.add_argument(
        "--out", required=True, help="output folder for the converted model (safetensors + JSON)"
    )
    conv.add_argument("--profile", help="labkit profile supplying defaults (smoke, cpu, gpu)")
    conv.add_argument("--experts", type=int, help="experts per FFN")
    conv.add_argument("--method", choices=["contiguous", "kmeans", "coactivation", "activation"])
    conv.add_argument("--shared", type=float, help="fraction of FFN neurons in an always-on shared expert")
    conv.add_argument(
        "--sensitivity",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stage 2 weighs layers by their measured end-to-end sensitivity",
    )
    conv.add_argument(
        "--min-k-fraction",
        type=float,
        help="stage 2's floor: fewest routed experts per token, as a fraction of --experts",
    )
    conv.add_argument(
        "--allocate-first",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="plan each layer's k by a stage-2 search before stage 1, and train each layer around it",
    )
    conv.add_argument("--tokens", type=int, help="distillation token budget (paper: 100000)")
    conv.add_argument("--seq-len", type=int)
    conv.add_argument("--epochs", type=int)
    conv.add_argument("--target", type=float, help="activated-parameter reduction to reach, e.g. 0.2")
    conv.add_argument("--seed", type=int)
    conv.add_argument("--device")
    conv.add_argument("--dtype")
    conv.add_argument(
        "--device-map",
        help="place the dense model with accelerate instead of --device: 'auto' spreads a model "
        "larger than one GPU over the GPUs (then CPU memory); one process only",
    )
    conv.add_argument("--mixtral", help="also export a Mixtral checkpoint here (uniform top-k only)")
    conv.add_argument("--no-progress", action="store_true")
    conv.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..config import get_profile

    # one process: nothing to start; under torchrun: join the others (or a clear error) before any work
    with distributed.session(args.device or get_profile(args.profile).device) as info:
        return _convert_ranks(args, info.rank)


def _convert_ranks(args: argparse.Namespace, rank: int) -> int:
    from ..paths import cache_root
    from ..storage import check_output_dir, check_writable
    from .errors import MoEError
    from .io import export_mixtral, save_moe
    from .pipeline import ConversionConfig, convert

    out = check_output_dir(args.out, label="--out")  # before any work: never a user's folder
    if args.mixtral:
        mx = check_output_dir(args.mixtral, label="--mixtral")
        if mx == out or out in mx.parents or mx in out.parents:
            raise ValueError(f"--mixtral={args.mixtral} and --out={args.out} must be separate folders")
    check_writable(cache_root(), label="LABKIT_CACHE (labkit's cache folder)")
    try:
        cfg = ConversionConfig.from_profile(args.profile)
        fields = {
            "model": args.model,
            "num_experts": args.experts,
            "method": args.method,
            "shared_fraction": args.shared,
            "sensitivity": args.sensitivity,
            "min_k_fraction": args.min_k_fraction,
            "allocate_first": args.allocate_first,
            "train_tokens": args.tokens,
            "seq_len": args.seq_len,
            "epochs": args.epochs,
            "target_reduction": args.target,
            "seed": args.seed,
            "device": args.device,
            "dtype": args.dtype,
        }
        cfg = replace(cfg, **{k: v for k, v in fields.items() if v is not None})
        model, tok, report = convert(cfg, progress=not args.no_progress, device_map=args.device_map)
        if rank != 0:  # rank 0 writes and reports for every rank
            return 0
        save_moe(
            model, out, tok, extra={"key": report["key"]}, files={"report.json": json.dumps(report, indent=1)}
        )
        if args.mixtral:
            from .construct import set_policy

            # Mixtral needs one uniform top-k: the smallest k covering the chosen policy's mean usage
            k = math.ceil(report["activated_measured"]["ffn_active_fraction"] * cfg.num_experts - 1e-9)
            set_policy(model, f"top{max(1, min(cfg.num_experts, k))}")
            export_mixtral(model, args.mixtral, tok)
            print(f"Mixtral checkpoint (uniform top{k}) written to {args.mixtral}")
    except MoEError as err:
        print(f"labkit moe convert: error: {err}", file=sys.stderr)
        return 2
    print(
        f"converted {cfg.model}: {report['reduction']:.1%} fewer activated parameters, "
        f"valid perplexity {report['valid_ppl']['dense']:.2f} → {report['valid_ppl']['moe']:.2f}, "
        f"{report['wall_s']:.0f} s; saved to {out}"
    )
    return 0
