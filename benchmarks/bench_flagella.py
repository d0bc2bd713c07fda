"""Benchmark of labkit.flagella: dense regularized-Stokeslet assembly/solve, population, bundle sweep.

Run: ``python benchmarks/bench_flagella.py`` (a few minutes on 2 cores; ``--quick`` for a smaller run).
Measures, side by side in one run:

1. the machine's bounds: dgemm GFLOP/s (``numpy.dot`` of two 3000² matrices) and copy bandwidth
   (``numpy.copyto`` of a 400 MB array, read + write bytes);
2. mobility assembly (time, GB/s of matrix written, fraction of copy bandwidth) and Cholesky solve with
   6 right-hand sides (time, GFLOP/s, fraction of dgemm; also with one BLAS thread when
   ``threadpoolctl`` is installed) for 500–4000 blobs, peak traced memory;
3. a 10⁴-unknown mobility solve (3334 blobs on a sphere, 6 right-hand sides): Cholesky against
   block conjugate gradients (``labkit.flagella.solve_mobility``), wall time and peak traced memory
   (targets: ≤ 10 s, ≤ 2 GB); ``--solve-only`` runs just this (and the load average before it);
4. the vectorised 1e5-cell population solve (target ≤ 1 s), with the thick-helix bundle and with a
   Stokeslet table built beforehand (the book's population chapter);
5. the Stokeslet bundle propulsion matrix for N = 1…10 at 64 segments per turn (Richardson-estimated
   error ≤ 0.5 % for N = 1 and 4, see chapter 4; target ≤ 2 min); the change from 32 per turn is printed.

Timings are only meaningful on an otherwise idle machine; the numbers in benchmarks/NOTES_flagella.md
say under which load they were taken.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import tracemalloc

import numpy as np
import scipy.linalg as sla

from labkit.flagella import (
    bundle_resistance_matrix,
    ecoli,
    fibonacci_sphere,
    mobility_matrix,
    population_experiment,
    solve_mobility,
    stokeslet_bundle,
)
from labkit.flagella.stokeslets import rigid_motion_basis

try:  # optional: compare the multi-threaded solve with one BLAS thread (robust under CPU contention)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def best(fn, repeat=3):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def machine_bounds() -> tuple[float, float]:
    a = np.random.default_rng(0).random((3000, 3000))
    t, _ = best(lambda: a @ a, 3)
    gflops = 2 * 3000**3 / t / 1e9
    big = np.ones(50_000_000)
    dst = np.empty_like(big)
    t, _ = best(lambda: np.copyto(dst, big), 5)
    gbs = 2 * big.nbytes / t / 1e9
    return gflops, gbs


def big_solve(n_big: int) -> None:
    """Mobility of ``n_big`` blobs on a sphere (3 unknowns each), 6 right-hand sides: CG and Cholesky."""
    print(f"\nMobility solve, {n_big} blobs = {3 * n_big} unknowns, 6 right-hand sides (assembly + solve)")
    pts = fibonacci_sphere(n_big)
    eps = 0.35 * math.sqrt(4 * math.pi / n_big)
    K = rigid_motion_basis(pts)
    for method in ("cg", "cholesky"):
        tracemalloc.start()
        t0 = time.perf_counter()
        M = mobility_matrix(pts, eps, 1.0)
        t_asm = time.perf_counter() - t0
        t0 = time.perf_counter()
        f, info = solve_mobility(M, K, method=method)
        t_sol = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        err = abs((K.T @ f)[0, 0] / (6 * math.pi) - 1)
        print(
            f"  {method:>8}: assembly {t_asm:.2f} s + solve {t_sol:.2f} s = {t_asm + t_sol:.2f} s "
            f"(target ≤ 10 s), {info.iterations} iterations, peak {peak / 1e9:.2f} GB (target ≤ 2 GB), "
            f"6πμa error {err:.2e}"
        )
        del M, f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke)")
    ap.add_argument("--solve-only", action="store_true", help="only the 10⁴-unknown mobility solve")
    args = ap.parse_args()
    if args.solve_only:
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        big_solve(1112 if args.quick else 3334)
        return
    sizes = [500, 1000, 2000] if args.quick else [500, 1000, 2000, 4000]
    nmax = 4 if args.quick else 10

    gflops, gbs = machine_bounds()
    print(f"machine bounds: dgemm {gflops:.1f} GFLOP/s, copy bandwidth {gbs:.1f} GB/s\n")

    print("Regularized Stokeslets, sphere of n blobs (eps = 0.35 h), float64")
    hdr = (
        f"{'blobs':>6} {'unknowns':>8} {'assembly s':>10} {'GB/s':>6} {'frac BW':>7} "
        f"{'cholesky s':>10} {'GFLOP/s':>8} {'frac FLOP':>9} {'1-thread s':>10} "
        f"{'peak MB':>8} {'6πμa err':>9}"
    )
    print(hdr)
    for n in sizes:
        pts = fibonacci_sphere(n)
        eps = 0.35 * math.sqrt(4 * math.pi / n)
        tracemalloc.start()
        t0 = time.perf_counter()
        M = mobility_matrix(pts, eps, 1.0)
        t_asm = time.perf_counter() - t0
        K = rigid_motion_basis(pts)
        t_one = float("nan")
        if threadpool_limits is not None:
            with threadpool_limits(1):
                Mc = M.copy()
                t0 = time.perf_counter()
                sla.cho_factor(Mc, lower=True, overwrite_a=True, check_finite=False)
                t_one = time.perf_counter() - t0
                del Mc
        t0 = time.perf_counter()
        cf = sla.cho_factor(M, lower=True, overwrite_a=True, check_finite=False)
        f = sla.cho_solve(cf, K, check_finite=False)
        t_sol = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        R = K.T @ f
        m = 3 * n
        asm_gbs = 8 * m * m / t_asm / 1e9
        sol_gflops = (m**3 / 3 + 2 * 6 * m * m) / t_sol / 1e9
        err = abs(R[0, 0] / (6 * math.pi) - 1)
        print(
            f"{n:>6} {m:>8} {t_asm:>10.3f} {asm_gbs:>6.2f} {asm_gbs / gbs:>7.2f} {t_sol:>10.3f} "
            f"{sol_gflops:>8.1f} {sol_gflops / gflops:>9.2f} {t_one:>10.3f} {peak / 1e6:>8.0f} {err:>9.2e}"
        )
        del M, cf, f

    big_solve(1112 if args.quick else 3334)

    p = ecoli()
    population_experiment(p, 1000)  # warm-up
    t_pop, _ = best(lambda: population_experiment(p, 100_000), 5)
    print(f"\npopulation: 1e5 cells (sampling + vectorised solve) {t_pop * 1e3:.1f} ms (target ≤ 1 s)")
    table = stokeslet_bundle(p, (), points_per_turn=16, extend=True)
    population_experiment(p, 100_000, bundle=table)  # builds (or loads) every N the population draws
    t_pop_rs, _ = best(lambda: population_experiment(p, 100_000, bundle=table), 5)
    print(f"population, Stokeslet table (16 per turn, built beforehand): {t_pop_rs * 1e3:.1f} ms")

    print(f"\nStokeslet bundle (cable, eps = √e·a), N = 1…{nmax}")
    print(
        f"{'N':>3} {'segments':>8} {'time 64/turn s':>14} {'A':>10} {'B':>10} {'D':>10} {'Δ vs 32/turn':>12}"
    )
    total = 0.0
    for n in range(1, nmax + 1):
        t0 = time.perf_counter()
        M64 = bundle_resistance_matrix(p, n, points_per_turn=64)
        dt = time.perf_counter() - t0
        total += dt
        M32 = bundle_resistance_matrix(p, n, points_per_turn=32)
        idx = [(2, 2), (2, 5), (5, 5)]
        rel = max(abs(M64[i, j] / M32[i, j] - 1) for i, j in idx)
        segs = n * math.ceil(p.helix().turns * 64)
        print(
            f"{n:>3} {segs:>8} {dt:>14.2f} {M64[2, 2]:>10.3e} {M64[2, 5]:>10.3e} {M64[5, 5]:>10.3e} "
            f"{rel:>12.2e}"
        )
    print(f"total bundle sweep N=1…{nmax} at 64/turn: {total:.1f} s (target ≤ 120 s)")


if __name__ == "__main__":
    main()
