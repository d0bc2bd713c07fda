"""Run profiles: one switch, ``LABKIT_PROFILE``, sizes every chapter from one place.

Profiles
--------
``smoke``
    CI and ``make test`` (nbval): small budgets so that the whole book executes in minutes
    on a 2-core machine. Same code paths as the other profiles.
``cpu`` (default)
    The book as a reader builds it on a laptop: real budgets (e.g. LaDiMo's 100K
    distillation tokens) with the real SmolLM2-135M-Instruct model.
``gpu``
    A CUDA workstation: LLaMA2-7B for Part I, full public benchmarks for Part II, higher
    resolutions for Part III.
``gpu-tiny``
    The gpu profile's Part I code path on a CPU, for CI: a random, seeded LLaMA2-7B-shaped model
    (d = 4096, f = 11008, 2 layers) in bfloat16 with tiny budgets, so that a chapter claim that
    holds only for SmolLM2 fails in ``make test``. Parts II and III run their smoke sizes.

Chapters call :func:`get_profile` and read the section for their part (``profile.moe``,
``profile.evals``, ``profile.flagella``); they never hard-code a size.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "PROFILE_ENV",
    "PROFILES",
    "ConversionSizes",
    "GPU_KMMLU_SUBJECTS",
    "GPU_PUBLIC_TASKS",
    "MOE_RECIPE",
    "EvalSizes",
    "FlagellaSizes",
    "MoESizes",
    "Profile",
    "ProfileError",
    "get_profile",
    "profile_name",
    "distill_lr",
]

PROFILE_ENV = "LABKIT_PROFILE"
DEFAULT_PROFILE = "cpu"


class ProfileError(ValueError):
    """An unknown or malformed ``LABKIT_PROFILE`` value."""


def distill_lr(hidden_size: int, base: float = 1e-3, base_width: int = 576) -> float:
    """AdamW learning rate of stage-1 distillation at model width ``hidden_size`` (d).

    ``base · base_width / d``: Adam moves every weight by about ``lr`` per step whatever its
    gradient, so one step shifts a d-wide dot product by about ``lr · Σ_i |x_i|``, which grows
    with d; scaling the rate as 1/fan-in keeps that shift the same at every width (μP's rule for
    Adam on hidden weights, Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466). Anchored at
    SmolLM2's d = 576, where 1e-3 trains well; LLaMA2-7B's d = 4096 gets 1.4e-4.
    """
    if not isinstance(hidden_size, int) or isinstance(hidden_size, bool) or hidden_size < 1:
        raise ProfileError(f"hidden_size={hidden_size!r} must be a positive integer")
    return base * base_width / hidden_size


@dataclass(frozen=True)
class ConversionSizes:
    """The Part I (LaDiMo dense→MoE) budgets that determine a conversion's result.

    :class:`labkit.moe.pipeline.ConversionConfig` extends this class, so each field is one
    setting of the conversion and enters its cache key.

    Attributes
    ----------
    model:
        Model-zoo name or hub id of the dense model to convert.
    num_experts:
        Experts per FFN.
    method:
        Expert-construction method (``contiguous``, ``kmeans``, ``coactivation``).
    train_tokens:
        Distillation budget in tokens (the paper: 100K).
    valid_tokens:
        Tokens of the validation split used by the stage-2 routing search (never trained on).
    seq_len:
        Tokens per calibration sequence.
    epochs:
        Passes over each layer's captured activations during distillation.
    batch_tokens:
        Tokens per optimiser step in distillation.
    lr:
        AdamW learning rate for distillation.
    target_reduction:
        Activated-parameter reduction the stage-2 policy must reach (LaDiMo: >20 %).
    front_evals:
        Pareto-front points whose end-to-end validation perplexity is measured.
    shared_fraction:
        Fraction of each FFN's neurons in the always-on shared expert (0 = none).
    sensitivity:
        Stage 2 weighs each layer's error by its measured end-to-end sensitivity.
    min_k_fraction:
        Stage 2's floor: no layer runs fewer than this fraction of its routed experts per token
        (mean over validation tokens); 0 = no floor.
    allocate_first:
        Allocate, then train: a first stage-2 search on the untrained MoE (its ridge-initialised
        routers) plans each layer's k, stage 1 trains each layer around its planned k, and the
        final search reuses the first one's sensitivities (see :mod:`labkit.moe.pipeline`).
    """

    model: str = "smollm2-135m"
    num_experts: int = 8
    method: str = "kmeans"
    train_tokens: int = 100_000
    valid_tokens: int = 4096
    seq_len: int = 512
    epochs: int = 1
    batch_tokens: int = 1024
    lr: float = 1e-3
    target_reduction: float = 0.2
    front_evals: int = 3
    shared_fraction: float = 0.0
    sensitivity: bool = False
    min_k_fraction: float = 0.0
    allocate_first: bool = False


@dataclass(frozen=True)
class MoESizes(ConversionSizes):
    """Part I (LaDiMo dense→MoE) budgets: those of the conversion (:class:`ConversionSizes`) and
    those of its evaluation below.

    Attributes
    ----------
    heldout_tokens:
        Tokens of held-out text for perplexity; never used for training.
    eval_items:
        Multiple-choice items used for zero-shot accuracy (``None`` = all).
    latency_tokens:
        Prefill length (tokens) for latency measurements.
    bench_task:
        Registry task of Part II (:mod:`labkit.evals.tasks`) on which the converted model is scored
        next to its dense parent: the book's Korean/English set, or MMLU (LaDiMo's metric, read
        through ``datasets``) in the gpu profile.
    bench_items:
        Items of ``bench_task`` per language (pairs, for the parallel set; ``None`` = all).
    ablation_train_tokens:
        Distillation budget (tokens) of every row of the ablation table
        (:mod:`labkit.moe.ablation`), smaller than ``train_tokens`` so that the table's several
        conversions stay cheap; at least ``seq_len``.
    ablation_valid_tokens:
        Validation tokens of every ablation row's stage 2 (search, sensitivity probes, front
        evaluations); at least ``seq_len``.
    """

    heldout_tokens: int = 16_384
    eval_items: int | None = 100
    latency_tokens: int = 512
    bench_task: str = "koen_parallel"
    bench_items: int | None = None
    ablation_train_tokens: int = 24_576
    ablation_valid_tokens: int = 4096


@dataclass(frozen=True)
class EvalSizes:
    """Part II (bilingual evaluation) budgets.

    Attributes
    ----------
    model:
        Model-zoo name or hub id of the model evaluated.
    max_items:
        Items per task and language (``None`` = all).
    bootstrap:
        Bootstrap resamples for confidence intervals.
    use_datasets:
        Whether chapters may load public benchmarks through ``datasets`` (workstation only).
    shots:
        Few-shot examples per item on the book's parallel set (from its ``fewshot.jsonl``).
    public_tasks:
        Public benchmarks (registry names, ``task:config``) the chapters run when ``use_datasets``
        (read from the local ``datasets`` cache unless ``LABKIT_OFFLINE=0``; empty in smoke and cpu,
        which never need the network).
    public_max_items:
        Items per public benchmark (``None`` = all).
    tokenizers:
        Extra tokenizers (model names) for the fertility chapter, besides ``model``'s.
    batch_size:
        Contexts per forward pass (``None``: a token budget).
    """

    model: str = "smollm2-135m"
    max_items: int | None = None
    bootstrap: int = 2000
    use_datasets: bool = False
    shots: int = 0
    public_tasks: tuple[str, ...] = ()
    public_max_items: int | None = None
    tokenizers: tuple[str, ...] = ()
    batch_size: int | None = None


@dataclass(frozen=True)
class FlagellaSizes:
    """Part III (flagellar hydrodynamics) resolutions. Every profile runs the same cells; only these change.

    Attributes
    ----------
    population_cells:
        Simulated cells in the population "experiment" (the chapter asks for ≥ 1e5).
    stokeslet_points:
        Blobs on the largest sphere of the regularized-Stokeslet validation (the sweep runs from 200
        up to this; the 0.5 % accuracy target is reached at 2000).
    bundle_points_per_turn:
        Stokeslet segments per helical turn of each filament in the chapters' bundle tables (cached on
        disk). Convergence is first order: the Richardson-estimated error of D is 1.4–1.7 % at 32 and
        about 4.5 % at 16 (N = 8); labkit's default bundle model uses 64 (≤ 0.5 %; chapter 4).
    max_flagella:
        Largest bundle in the Stokeslet sweep (must cover N(L) = L + 2 up to L = 6 µm, i.e. ≥ 8).
    """

    population_cells: int = 100_000
    stokeslet_points: int = 2000
    bundle_points_per_turn: int = 32
    max_flagella: int = 10


@dataclass(frozen=True)
class Profile:
    """A named set of sizes for every part of the book."""

    name: str
    description: str
    device: str = "cpu"
    dtype: str = "float32"
    moe: MoESizes = field(default_factory=MoESizes)
    evals: EvalSizes = field(default_factory=EvalSizes)
    flagella: FlagellaSizes = field(default_factory=FlagellaSizes)

    def as_dict(self) -> dict:
        """All settings as a plain nested dict (for reports and cache keys)."""
        return asdict(self)

    def summary(self) -> str:
        """One line naming the profile, for the top of each chapter."""
        return f"LABKIT_PROFILE={self.name}: {self.description} (device={self.device}, dtype={self.dtype})"


#: KMMLU's 45 subjects (Hugging Face configs of ``HAERAE-HUB/KMMLU``), all run by the gpu profile so its
#: KMMLU score is the whole benchmark, micro- and macro-averaged as lm-eval's groups (``kmmlu``,
#: ``kmmlu_macro`` in ``labkit.evals.tasks.GROUPS``). Spelled out here because importing
#: ``labkit.evals`` would load torch; ``tests/test_evals_tasks.py`` checks that it equals
#: ``labkit.evals.tasks.KMMLU_SUBJECTS``.
GPU_KMMLU_SUBJECTS: tuple[str, ...] = (
    "Accounting",
    "Agricultural-Sciences",
    "Aviation-Engineering-and-Maintenance",
    "Biology",
    "Chemical-Engineering",
    "Chemistry",
    "Civil-Engineering",
    "Computer-Science",
    "Construction",
    "Criminal-Law",
    "Ecology",
    "Economics",
    "Education",
    "Electrical-Engineering",
    "Electronics-Engineering",
    "Energy-Management",
    "Environmental-Science",
    "Fashion",
    "Food-Processing",
    "Gas-Technology-and-Engineering",
    "Geomatics",
    "Health",
    "Industrial-Engineer",
    "Information-Technology",
    "Interior-Architecture-and-Design",
    "Korean-History",
    "Law",
    "Machine-Design-and-Manufacturing",
    "Management",
    "Maritime-Engineering",
    "Marketing",
    "Materials-Engineering",
    "Math",
    "Mechanical-Engineering",
    "Nondestructive-Testing",
    "Patent",
    "Political-Science-and-Sociology",
    "Psychology",
    "Public-Safety",
    "Railway-and-Automotive-Engineering",
    "Real-Estate",
    "Refrigerating-Machinery",
    "Social-Welfare",
    "Taxation",
    "Telecommunications-and-Wireless-Technology",
)

#: The public benchmarks the gpu profile runs, each without an item cap. Every member of the KMMLU,
#: HAE-RAE (lm-eval's five subsets) and KoBEST groups and CLIcK (with the registry's HCX subset), so
#: the comparison with the model card's numbers differs only where its row says why, and ARC (Easy
#: and Challenge, group ``arc_all``) with the registry's HCX protocol (25 shots, shuffled options,
#: the answer generated and prefix-matched).
GPU_PUBLIC_TASKS: tuple[str, ...] = (
    *(f"kmmlu:{s}" for s in GPU_KMMLU_SUBJECTS),
    "haerae:general_knowledge",
    "haerae:history",
    "haerae:loan_word",
    "haerae:rare_word",
    "haerae:standard_nomenclature",
    "click",
    "kobest_boolq",
    "kobest_copa",
    "kobest_hellaswag",
    "kobest_sentineg",
    "kobest_wic",
    "arc:ARC-Easy",
    "arc:ARC-Challenge",
)

_SMOKE_EVALS = EvalSizes(max_items=30, bootstrap=500, shots=0)
_SMOKE_FLAGELLA = FlagellaSizes(
    population_cells=100_000, stokeslet_points=800, bundle_points_per_turn=16, max_flagella=8
)

#: The book's conversion recipe for SmolLM2 (smoke and cpu profiles; issue #26's measurements are
#: in ``benchmarks/NOTES_moe.md``): an always-on shared expert of the most active quarter of each
#: FFN's neurons, 48 fine-grained routed experts clustered by their contribution profiles, a
#: stage 2 weighted by measured layer sensitivity, with a floor of 1/6 of the routed experts, run
#: once before stage 1 to plan each layer's k and again after it (allocate, then train). The
#: gpu profiles keep 8 k-means experts until the recipe's stage-1 learning rate is checked at
#: LLaMA2-7B's width on a GPU (at ``distill_lr(4096)`` a random 7B-shaped layer's error rose).
MOE_RECIPE: dict[str, Any] = {
    "num_experts": 48,
    "method": "activation",
    "shared_fraction": 0.25,
    "sensitivity": True,
    "min_k_fraction": 1 / 6,
    "allocate_first": True,
}

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI-sized budgets; every chapter in minutes on 2 CPU cores",
        moe=MoESizes(
            **MOE_RECIPE,
            train_tokens=4_096,
            heldout_tokens=1_024,
            valid_tokens=512,
            seq_len=256,
            epochs=1,
            front_evals=2,
            eval_items=24,
            latency_tokens=128,
            bench_items=30,  # Part II's smoke budget: the statistics chapter reuses these runs
            ablation_train_tokens=512,
            ablation_valid_tokens=256,
        ),
        evals=_SMOKE_EVALS,
        flagella=_SMOKE_FLAGELLA,
    ),
    "cpu": Profile(
        name="cpu",
        description="the default book build: real budgets on a laptop CPU",
        moe=MoESizes(**MOE_RECIPE),
    ),
    "gpu-tiny": Profile(
        name="gpu-tiny",
        description=(
            "the gpu profile's Part I code path on a CPU, for CI: a random LLaMA2-7B-shaped model "
            "(d=4096, f=11008, 2 layers) in bfloat16 with tiny budgets"
        ),
        dtype="bfloat16",
        moe=MoESizes(
            model="llama2-7b-shape",
            train_tokens=1_024,
            heldout_tokens=512,
            valid_tokens=256,
            seq_len=128,
            batch_tokens=512,
            lr=distill_lr(4096),
            front_evals=2,
            eval_items=8,
            latency_tokens=32,
            bench_items=2,
            ablation_train_tokens=128,  # one block each: five 7B-shaped rows in CI minutes
            ablation_valid_tokens=128,
        ),
        evals=_SMOKE_EVALS,
        flagella=_SMOKE_FLAGELLA,
    ),
    "gpu": Profile(
        name="gpu",
        description="CUDA workstation: LLaMA2-7B and full public benchmarks",
        device="cuda",
        dtype="bfloat16",
        moe=MoESizes(
            model="meta-llama/Llama-2-7b-hf",
            train_tokens=100_000,
            heldout_tokens=30_720,
            valid_tokens=8_192,
            seq_len=2048,
            batch_tokens=4096,
            lr=distill_lr(4096),  # LLaMA2-7B's width
            latency_tokens=2048,
            bench_task="mmlu",  # every test item, with the registry's protocol (5 shots)
        ),
        evals=EvalSizes(
            model="naver-hyperclovax/HyperCLOVAX-SEED-Text-Instruct-0.5B",
            bootstrap=10_000,
            use_datasets=True,
            shots=5,
            public_tasks=GPU_PUBLIC_TASKS,
            public_max_items=None,  # whole benchmarks, as the model card's numbers
            tokenizers=("smollm2-135m",),
            batch_size=16,
        ),
        flagella=FlagellaSizes(
            population_cells=1_000_000, stokeslet_points=4000, bundle_points_per_turn=48, max_flagella=12
        ),
    ),
}


def profile_name(value: str | None = None) -> str:
    """Return the validated profile name (from ``value`` or ``$LABKIT_PROFILE``).

    Raises
    ------
    ProfileError
        If the value is not one of ``smoke``, ``cpu``, ``gpu``, ``gpu-tiny``.
    """
    raw = os.environ.get(PROFILE_ENV, DEFAULT_PROFILE) if value is None else value
    name = raw.strip().lower()
    if not name:
        name = DEFAULT_PROFILE
    if name not in PROFILES:
        raise ProfileError(f"{PROFILE_ENV}={raw!r} is not a known profile; choose one of {sorted(PROFILES)}")
    return name


def get_profile(value: str | None = None) -> Profile:
    """Return the active :class:`Profile` (``LABKIT_PROFILE``, default ``cpu``).

    Parameters
    ----------
    value:
        A profile name to use instead of the environment variable.
    """
    return PROFILES[profile_name(value)]
