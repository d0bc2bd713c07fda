"""Fused CPU kernels for the MoE block, compiled on first use (``_kernels.c``; float32, SiLU experts).

Why: on a CPU a decode step of a small MoE FFN is a few dozen microseconds of arithmetic, so a
dozen PyTorch calls (each several microseconds of dispatch, allocation and thread wake-up) cost
more than the experts themselves, and a long prefill spends a fifth of its time gathering tokens
into a large buffer and scattering results back. The C kernels do each in one call:

* :meth:`MoEKernels.decode`: one token through the chosen experts, both stages streamed by all
  threads; :meth:`MoEKernels.rule_decoder` does the routing (top-k, top-p or switch) in the same
  call;
* :meth:`MoEKernels.prefill`: tokens in blocks, one block per thread at a time, experts as
  single-threaded BLAS GEMMs on the block's gathered rows (MKL's ``sgemm_``, which PyTorch's x86
  builds export), results added into the block's own output rows; a thread with no block left
  takes expert chunks from the back of another's (work stealing: the owner adds their outputs in
  expert order, so the result does not depend on the thread count); :meth:`MoEKernels.prefill_topk`
  routes each block in the kernel;
* :meth:`MoEKernels.pack`: the experts' weights in MKL's packed GEMM layout
  (``cblas_sgemm_pack``), so that the prefill GEMMs (``cblas_sgemm_compute``) do not re-pack
  them on every call, for a copy about the experts' size. Small experts (gate/up ≤ 1 MiB,
  AVX-512 CPUs) are packed instead in labkit's own panels for register-tile kernels (8 tokens ×
  48 columns) that read the tokens' rows where they are and add the results straight into the
  output rows: no gather and no scatter pass.

The library is built with the system C compiler (``$CC``, else ``cc``) with ``-O3 -march=native
-fopenmp`` (512-bit vectors where accepted) into ``$LABKIT_CACHE/kernels/<key>/`` (key: source,
compiler, CPU, flags), written to a temporary file and renamed, then checked once against a NumPy
reference. Without a compiler, when the build or the check fails, or with
``LABKIT_MOE_KERNELS=0``, :func:`get` returns ``None`` and the block keeps its pure-PyTorch paths
(same results to float32 rounding). Prefill needs MKL's ``sgemm_`` (PyTorch's x86 builds) and
experts of at most ``PREFILL_MAX_EXPERT_BYTES``; otherwise only the decode kernels are used. Thread
count: ``torch.get_num_threads()`` at call time. Measurements behind these choices:
``benchmarks/NOTES_moe.md``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import threading
import warnings
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import torch

from ..storage import atomic_file

__all__ = ["MoEKernels", "PackedExperts", "RuleDecode", "StalePackError", "dispatch", "get", "prefill_block"]

_SOURCE = Path(__file__).with_name("_kernels.c")
_ABI = 8
RULE_TOPK, RULE_TOPP, RULE_SWITCH = 0, 1, 2  # lk_moe_decode_rule's kinds
MAX_TOPK_EXPERTS = 1024  # LK_MAX_EXPERTS in _kernels.c (routed decode)
_LOCK = threading.Lock()
_STATE: dict = {}
_OFF = ("0", "false", "no", "off")
# The prefill kernel re-reads each expert's weights once per token block, through single-threaded
# GEMMs; that pays while an expert's weights are cache-sized (SmolLM2's FFN split into experts),
# not when every block re-streams them from DRAM (LLaMA2-7B's). Larger experts take the PyTorch
# path (one threaded GEMM per expert).
PREFILL_MAX_EXPERT_BYTES = 8 << 20
# Most rows per expert GEMM in the prefill kernels (a chunk's rows, gate/up and outputs stay in a
# core's L2 cache).
PREFILL_CHUNK = 128
_VP, _I64, _INT, _DBL = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
# Tried in order. On AVX-512 CPUs gcc defaults to 256-bit vectors; 512-bit ones are faster for
# the SiLU loop. Compilers for other architectures reject the flags.
_FLAG_SETS = (("-march=native", "-mprefer-vector-width=512"), ("-march=native",), ())


class StalePackError(RuntimeError):
    """The packed weights given to a prefill kernel no longer equal the weights: before computing
    anything the kernel compares 128 evenly spaced elements of each of ``w1``, ``w2`` with those
    packed, bit for bit (a cheap check for edits that PyTorch's version counters miss,
    ``param.data.mul_(...)``; an edit of a few weights can pass it). Repack and call again."""


class RuleDecode(Protocol):
    """The one-token decoder of :meth:`MoEKernels.rule_decoder`; ``weights`` keeps its tensors alive."""

    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    def __call__(
        self, x: torch.Tensor, kind: int, lo: int, hi: int, tau: float, softmax: int
    ) -> torch.Tensor: ...


class MoEKernels:
    """A loaded kernel library; use :func:`get`. ``has_prefill`` is False without MKL's sgemm."""

    def __init__(self, lib: ctypes.CDLL, path: Path) -> None:
        self.lib = lib
        self.path = path
        lib.lk_abi.restype = _INT
        lib.lk_has_blas.restype = _INT
        lib.lk_set_blas.argtypes = [_VP, _VP]
        lib.lk_set_blas.restype = None
        lib.lk_moe_decode.argtypes = [_VP, _VP, _VP, _I64, _I64, _VP, _I64, _VP, _VP, _INT]
        lib.lk_moe_decode.restype = _INT
        lib.lk_moe_decode_rule.argtypes = [_VP, _VP, _VP, _VP, _I64, _I64, _I64, _INT, _I64, _I64, _DBL, _INT]
        lib.lk_moe_decode_rule.argtypes += [_VP, _VP, _INT]
        lib.lk_moe_decode_rule.restype = _INT
        lib.lk_moe_prefill.argtypes = [_VP, _I64, _I64, _VP, _VP, _VP, _I64, _I64, _VP, _VP, _VP, _I64, _I64]
        lib.lk_moe_prefill.argtypes += [_INT]
        lib.lk_moe_prefill.restype = _INT
        lib.lk_moe_prefill_topk.argtypes = [_VP, _I64, _I64, _VP, _VP, _VP, _VP, _I64, _I64, _I64, _INT, _VP]
        lib.lk_moe_prefill_topk.argtypes += [_I64, _I64, _INT]
        lib.lk_moe_prefill_topk.restype = _INT
        if lib.lk_abi() != _ABI:
            raise RuntimeError(f"kernel ABI {lib.lk_abi()} != {_ABI}")
        lib.lk_set_pack.argtypes = [_VP, _VP, _VP]
        lib.lk_set_pack.restype = None
        lib.lk_has_pack.restype = _INT
        lib.lk_pack_experts.argtypes = [_VP, _VP, _I64, _I64, _I64, _I64, _INT]
        lib.lk_pack_experts.restype = _VP
        lib.lk_pack_free.argtypes = [_VP]
        lib.lk_pack_free.restype = None
        lib.lk_pack_resident.argtypes = [_VP]
        lib.lk_pack_resident.restype = _I64
        lib.lk_pack_own.argtypes = [_VP]
        lib.lk_pack_own.restype = _INT
        lib.lk_has_own.restype = _INT
        lib.lk_stolen_items.restype = _I64
        syms = _mkl_symbols()
        lib.lk_set_blas(syms["sgemm_"], syms["MKL_Set_Num_Threads_Local"])
        self.has_prefill = bool(lib.lk_has_blas())
        lib.lk_set_pack(*(syms[f"cblas_sgemm_{s}"] for s in ("pack_get_size", "pack", "compute")))
        self.has_pack = bool(lib.lk_has_pack())
        self.has_own_layout = bool(lib.lk_has_own())

    def decode(
        self,
        x: torch.Tensor,
        w1: torch.Tensor,
        w2: torch.Tensor,
        idx: ctypes.Array,
        k: int,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``y[d] = Σ_j w_j E_{idx[j]}(x)`` for one token ``x[d]`` (float32, contiguous; unchecked).

        ``idx`` is a ctypes ``int64`` array of ``k`` expert ids (the caller caches it per selection);
        ``weights`` a contiguous float32 ``[k]`` (or ``[k, 1]``) tensor, or None for unit weights.
        """
        d, m = w1.shape[1], w2.shape[1]
        y = torch.empty(d, dtype=torch.float32)
        rc = self.lib.lk_moe_decode(
            x.data_ptr(),
            w1.data_ptr(),
            w2.data_ptr(),
            d,
            m,
            idx,
            k,
            None if weights is None else weights.data_ptr(),
            y.data_ptr(),
            torch.get_num_threads(),
        )
        _check(rc, "decode")
        return y

    def decode_topk(
        self,
        x: torch.Tensor,
        router: torch.Tensor,
        w1: torch.Tensor,
        w2: torch.Tensor,
        k: int,
        softmax: bool = False,
    ) -> torch.Tensor:
        """One token ``x`` (float32, contiguous, ``d`` elements, any shape) under top-``k`` routing,
        router included (``router [N, d]``): the output has ``x``'s shape. Unit weights, or with
        ``softmax`` the mean-one renormalised softmax over the chosen experts."""
        return self.rule_decoder(router, w1, w2)(x, RULE_TOPK, k, k, 0.0, int(softmax))

    def rule_decoder(self, router: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> RuleDecode:
        """One-token decode with the routing in the kernel, weights bound:
        ``f(x, kind, k_min, k_max, tau, softmax: int) -> y`` (``y`` has ``x``'s shape).

        The rule (``kind``, see :meth:`labkit.moe.policies.Policy.kernel_rule`) is top-k
        (``RULE_TOPK``: k = k_max), top-p (``RULE_TOPP``) or switch (``RULE_SWITCH``), computed as
        the policies' ``select_one`` computes it. The decode step of a small FFN is tens of
        microseconds, so the few Python operations saved here (shape reads, attribute lookups)
        are measurable; and routing in the same call leaves no gap between the router's product
        and the experts' kernel (Python work between two threaded kernel calls costs more than its
        own time). The returned function keeps the weight tensors alive (``f.weights``); rebuild it
        when they are replaced.
        """
        fn = self.lib.lk_moe_decode_rule
        d, m, n = w1.shape[1], w2.shape[1], router.shape[0]
        rp, p1, p2 = router.data_ptr(), w1.data_ptr(), w2.data_ptr()
        empty_like, nt = torch.empty_like, torch.get_num_threads

        def decode(x: torch.Tensor, kind: int, lo: int, hi: int, tau: float, softmax: int) -> torch.Tensor:
            y = empty_like(x)  # x is float32 and contiguous; empty(x.shape) would parse the Size
            rc = fn(x.data_ptr(), rp, p1, p2, d, m, n, kind, lo, hi, tau, softmax, y.data_ptr(), None, nt())
            if rc < 0:
                _check(rc, "routed decode")
            return y

        out = cast(RuleDecode, decode)  # a function takes attributes; mypy cannot type them on a def
        out.weights = (router, w1, w2)
        return out

    def prefill(
        self,
        x: torch.Tensor,
        w1: torch.Tensor,
        w2: torch.Tensor,
        mask: torch.Tensor,
        weights: torch.Tensor | None,
        block: int,
        chunk: int = PREFILL_CHUNK,
        packed: PackedExperts | None = None,
        threads: int | None = None,
    ) -> torch.Tensor:
        """``y[T, d]`` for tokens ``x[T, d]`` with a bool selection ``mask[T, N]`` (all contiguous,
        float32; unchecked) and optional float32 weights ``[T, N]``; ``block`` tokens per task,
        at most ``chunk`` rows per expert GEMM, on ``threads`` threads (default
        ``torch.get_num_threads()``). ``packed``: :meth:`pack` of these ``w1, w2``
        (:class:`StalePackError` when its sampled weights differ from them). Threads that run out
        of tasks take expert chunks from the others' (:meth:`stolen_items`); the result is
        bit-identical for any number of threads."""
        t, d = x.shape
        n, m = w2.shape[0], w2.shape[1]
        y = torch.empty(t, d, dtype=torch.float32)
        rc = self.lib.lk_moe_prefill(
            x.data_ptr(),
            t,
            d,
            w1.data_ptr(),
            w2.data_ptr(),
            None if packed is None else packed.handle,
            n,
            m,
            mask.data_ptr(),
            None if weights is None else weights.data_ptr(),
            y.data_ptr(),
            block,
            chunk,
            threads or torch.get_num_threads(),
        )
        _check(rc, "prefill")
        return y

    def stolen_items(self) -> int:
        """Work items (one expert's chunk of a token block) that prefill threads have taken from
        other threads' blocks since the library was loaded. A thread that finishes its own blocks
        takes items from the back of blocks still running and leaves their outputs in the owner's
        buffer; the owner adds them in expert order, so every token's expert outputs are summed
        in the same order whichever thread ran them."""
        return int(self.lib.lk_stolen_items())

    def prefill_topk(
        self,
        x: torch.Tensor,
        router: torch.Tensor,
        w1: torch.Tensor,
        w2: torch.Tensor,
        k: int,
        softmax: bool,
        block: int,
        chunk: int = PREFILL_CHUNK,
        packed: PackedExperts | None = None,
        threads: int | None = None,
    ) -> torch.Tensor:
        """Top-``k`` prefill with the routing done in the kernel (``router [N, d]``): ``y`` of
        ``x``'s shape for the ``T`` tokens of ``x[..., d]`` (float32, CPU; unchecked; copied when not
        contiguous); unit or mean-one softmax weights; ``threads`` as :meth:`prefill`.
        ``packed``: :meth:`pack` of these ``w1, w2`` (:class:`StalePackError` when they differ).
        No reshapes, and the packed weights' check is inside the kernel call: right after a dense
        FFN's call every tensor op or ctypes call is slow (cold caches)."""
        if not x.is_contiguous():
            x = x.contiguous()
        d = x.shape[-1]
        n, m = w2.shape[0], w2.shape[1]
        y = torch.empty_like(x)
        ptrs: tuple[int | None, ...] = (x.data_ptr(), x.numel() // d, d, router.data_ptr(), w1.data_ptr())
        ptrs += (w2.data_ptr(), None if packed is None else packed.handle)
        rc = self.lib.lk_moe_prefill_topk(
            *ptrs, n, m, k, int(softmax), y.data_ptr(), block, chunk, threads or torch.get_num_threads()
        )
        _check(rc, "top-k prefill")
        return y

    def pack(
        self, w1: torch.Tensor, w2: torch.Tensor, rows: int = PREFILL_CHUNK, own: bool | None = None
    ) -> PackedExperts | None:
        """The experts' weights (``w1 [N, d, 2m]``, ``w2 [N, m, d]``, float32, contiguous) packed
        for :meth:`prefill` / :meth:`prefill_topk` (GEMMs of ≤ ``rows`` rows).

        Two layouts: MKL's packed GEMM layout (the kernel gathers each expert's tokens, runs MKL's
        GEMMs and adds the outputs back in a pass of its own), or labkit's own panels for AVX-512
        register-tile kernels that read the tokens' rows in place and add the outputs straight into
        them (``own``; AVX-512 builds only, see ``has_own_layout``). ``own=None`` picks the own
        layout while an expert's gate/up panels take ≤ 1 MiB, where it is at least as fast as
        MKL's: at the SmolLM2 FFN shape that is N = 8 and 16 experts, not N = 4. ``.own`` tells
        which one was used.

        A copy: it costs about as much memory as the weights, is not updated when they change (the
        caller rebuilds it) and is freed with the returned object. None when MKL's packed GEMM is
        missing, allocation fails, or the packed copy takes more than twice the weights' memory.
        """
        if not self.has_pack:
            return None
        n, d, m = w1.shape[0], w1.shape[1], w2.shape[1]
        layout = -1 if own is None else int(own)
        handle = self.lib.lk_pack_experts(w1.data_ptr(), w2.data_ptr(), n, d, m, rows, layout)
        if not handle:
            return None
        packed = PackedExperts(self.lib, handle, (n, d, m))
        weight_bytes = (w1.numel() + w2.numel()) * 4
        if not 0 <= packed.resident_bytes <= 2 * weight_bytes + (1 << 20):
            packed.free()
            return None
        return packed


class PackedExperts:
    """A block's expert weights packed by :meth:`MoEKernels.pack` (freed when this is collected)."""

    def __init__(self, lib: ctypes.CDLL, handle: int, shape: tuple[int, int, int]) -> None:
        self._lib = lib
        self.handle: int | None = handle
        self.shape = shape  # (N, d, m)
        self.resident_bytes = int(lib.lk_pack_resident(handle))
        self.own = bool(lib.lk_pack_own(handle))  # labkit's own panel layout, not MKL's

    def free(self) -> None:
        """Release the packed buffers now (idempotent)."""
        if self.handle:
            self._lib.lk_pack_free(self.handle)
            self.handle = None

    def __del__(self) -> None:
        self.free()


def _check(rc: int, what: str) -> None:
    if rc == -2:
        raise MemoryError(f"labkit MoE {what} kernel: scratch allocation failed")
    if rc == -4:
        raise ValueError(f"labkit MoE {what} kernel: the packed weights are of other experts (shape)")
    if rc == -5:
        raise StalePackError(f"labkit MoE {what} kernel: the weights changed since they were packed; repack")
    if rc:
        raise RuntimeError(f"labkit MoE {what} kernel failed (code {rc})")


def prefill_block(tokens: int, num_experts: int, mean_k: float, threads: int | None = None) -> int:
    """Tokens per prefill task: ``max(2048, 128·N/k̄)``, but at least one task per thread.

    A task's expert GEMMs then get 128 rows or more (k̄/N of the block), run back to back while
    the expert's packed weights are still in cache; gathered rows, gate/up and outputs (at most 128
    rows per GEMM) stay in a core's L2 cache. With one block per thread the threads can finish
    apart; rather than with smaller blocks, the kernel balances them by letting one that has
    finished take expert chunks from the back of another's block
    (:meth:`MoEKernels.stolen_items`).
    """
    threads = threads or torch.get_num_threads()
    block = max(2048, int(128 * num_experts / max(mean_k, 1e-6)))
    return max(16, min(block, -(-tokens // max(1, threads))))


def dispatch(
    device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32", expert_bytes: int | None = None
) -> str:
    """In words, which code runs a no-gradient MoE block (SiLU experts) on ``device`` in ``dtype``;
    ``expert_bytes`` (one expert's float32 weights, ``3·d·m·4``) tells whether the prefill kernel
    takes them (at most ``PREFILL_MAX_EXPERT_BYTES``); None: assume it does."""
    dev = torch.device(device)
    dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if dev.type != "cpu":
        return f"PyTorch's grouped matrix products on {dev.type}"
    if dt != torch.float32:
        return f"the pure-PyTorch paths (the C kernels are float32-only, this is {str(dt).split('.')[-1]})"
    kern = get()
    if kern is None:
        return "the pure-PyTorch paths (C kernels unavailable or switched off)"
    if not kern.has_prefill:
        return "labkit's C decode kernel and the PyTorch prefill (no MKL GEMM for the prefill kernel)"
    if expert_bytes is not None and expert_bytes > PREFILL_MAX_EXPERT_BYTES:
        mb = PREFILL_MAX_EXPERT_BYTES / 2**20
        return f"labkit's C decode kernel and the PyTorch prefill (experts above {mb:.0f} MB)"
    return "labkit's compiled C kernels for both prefill and decode"


_MKL_NAMES = (
    "sgemm_",
    "MKL_Set_Num_Threads_Local",
    "cblas_sgemm_pack_get_size",
    "cblas_sgemm_pack",
    "cblas_sgemm_compute",
)


def _mkl_symbols() -> dict[str, int | None]:
    """Addresses of MKL's ``sgemm_``, ``MKL_Set_Num_Threads_Local`` and packed-GEMM functions (C
    interface) in libtorch_cpu; None for each one that is missing."""
    found: dict[str, int | None] = dict.fromkeys(_MKL_NAMES)
    if not torch.backends.mkl.is_available():
        return found
    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        path = lib_dir / name
        if path.exists():
            try:
                lib = ctypes.CDLL(str(path))
            except OSError:
                return found
            for sym in _MKL_NAMES:
                try:
                    found[sym] = ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value
                except AttributeError:
                    pass
            return found
    return found


def _compiler() -> str | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return cc


def _cpu_id() -> str:
    info = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags"))][:2]
        info += "".join(lines)
    except OSError:
        info += platform.processor()
    return info


class _CompileError(RuntimeError):
    """The compiler rejected one flag set (its command line and the end of its stderr)."""


def _build(cc: str) -> Path:
    src = _SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    digest = hashlib.sha256(src + version.encode() + _cpu_id().encode() + repr(_FLAG_SETS).encode())
    key = digest.hexdigest()[:16]
    from ..paths import cache_dir

    out_dir = cache_dir() / "kernels" / key
    lib = out_dir / "lk_moe.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for march in _FLAG_SETS:
        try:
            with atomic_file(lib, ".so", what="write the compiled MoE kernels to") as tmp:
                cmd = [cc, "-O3", *march, "-fopenmp", "-pthread", "-fPIC", "-shared", "-o", str(tmp)]
                cmd += [str(_SOURCE), "-lm"]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:  # leaves the block: the temporary is removed, lib untouched
                    raise _CompileError(f"{' '.join(cmd)}\n{proc.stderr.strip()[-2000:]}")
            return lib
        except _CompileError as err:
            errors.append(str(err))
    raise RuntimeError("compiling the MoE kernels failed:\n" + "\n".join(errors))


def _self_test(k: MoEKernels) -> None:
    """Compare every kernel with a NumPy reference on a small random problem (odd sizes)."""
    rng = np.random.default_rng(0)
    n, d, m, t = 5, 37, 11, 29
    w1 = torch.from_numpy(rng.standard_normal((n, d, 2 * m), dtype=np.float32))
    w2 = torch.from_numpy(rng.standard_normal((n, m, d), dtype=np.float32))
    x = torch.from_numpy(rng.standard_normal((t, d), dtype=np.float32))
    mask = torch.from_numpy(rng.random((t, n)) < 0.5)
    wts = torch.from_numpy(rng.random((t, n), dtype=np.float32)) * mask

    def expert(xr: np.ndarray, e: int) -> np.ndarray:
        h = xr.astype(np.float64) @ w1[e].numpy().astype(np.float64)
        g = h[:m] / (1 + np.exp(-h[:m])) * h[m:]
        return g @ w2[e].numpy().astype(np.float64)

    ref = np.zeros((t, d))
    for i in range(t):
        for e in range(n):
            ref[i] += wts[i, e].item() * expert(x[i].numpy(), e)
    scale = np.abs(ref).max()
    ids = [e for e in range(n) if mask[0, e]]
    arr = (ctypes.c_int64 * max(1, len(ids)))(*ids)
    got = k.decode(x[0].contiguous(), w1, w2, arr, len(ids), wts[0, ids].contiguous()).numpy()
    if np.abs(got - ref[0]).max() > 1e-4 * scale:
        raise RuntimeError("decode kernel self-test mismatch")
    packed = k.pack(w1, w2, rows=4, own=False) if k.has_prefill else None
    own = k.pack(w1, w2, rows=4, own=True) if k.has_prefill and k.has_own_layout else None
    if k.has_prefill:
        cases: tuple[tuple[int, int, PackedExperts | None], ...]
        cases = ((1, 1, None), (7, 3, None), (64, 128, None), (7, 3, packed), (64, 128, packed))
        cases += ((7, 3, own), (64, 128, own)) if own is not None else ()
        for block, chunk, pk in cases:
            got = k.prefill(x, w1, w2, mask, wts, block, chunk, pk).numpy()
            if np.abs(got - ref).max() > 1e-4 * scale:
                what = f"block {block}, chunk {chunk}, packed {pk is not None}"
                raise RuntimeError(f"prefill kernel self-test mismatch ({what})")
    # top-2 routing inside the kernels: logits from a router with well-separated rows
    wr = torch.from_numpy(rng.standard_normal((n, d), dtype=np.float32))
    logits = x.double().numpy() @ wr.double().numpy().T
    top = np.sort(np.argsort(-logits, axis=1, kind="stable")[:, :2], axis=1)
    ref2 = np.zeros((t, d))
    for i in range(t):
        p = np.exp(logits[i, top[i]] - logits[i, top[i]].max())
        for e, w in zip(top[i], 2 * p / p.sum(), strict=True):
            ref2[i] += w * expert(x[i].numpy(), int(e))
    scale2 = np.abs(ref2).max()
    got = k.decode_topk(x[0].contiguous(), wr, w1, w2, 2, True).numpy()
    if np.abs(got - ref2[0]).max() > 1e-4 * scale2:
        raise RuntimeError("top-k decode kernel self-test mismatch")
    if k.has_prefill:
        for pk in (None, packed):
            got = k.prefill_topk(x, wr, w1, w2, 2, True, 7, 3, pk).numpy()
            if np.abs(got - ref2).max() > 1e-4 * scale2:
                raise RuntimeError(f"top-k prefill kernel self-test mismatch (packed {pk is not None})")
    if packed is not None:
        packed.free()


def get() -> MoEKernels | None:
    """The compiled kernels, or None when disabled (``LABKIT_MOE_KERNELS=0``) or unavailable.

    The first call compiles (about a second) or loads the cached library and self-tests it;
    a failure is reported once as a warning and the pure-PyTorch paths are used from then on.
    """
    if "LABKIT_MOE_KERNELS" in os.environ and os.environ["LABKIT_MOE_KERNELS"].strip().lower() in _OFF:
        return None
    state = _STATE.get("kernels", False)
    if state is not False:
        return state
    with _LOCK:
        if "kernels" in _STATE:
            return _STATE["kernels"]
        result = None
        cc = _compiler()
        if cc is None:
            warnings.warn(
                "labkit.moe: no C compiler found (set CC); using the slower pure-PyTorch MoE dispatch",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            try:
                path = _build(cc)
                result = MoEKernels(ctypes.CDLL(str(path)), path)
                _self_test(result)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                warnings.warn(
                    f"labkit.moe: fused CPU kernels unavailable ({exc}); using the pure-PyTorch MoE dispatch",
                    RuntimeWarning,
                    stacklevel=2,
                )
                result = None
        _STATE["kernels"] = result
        return result
