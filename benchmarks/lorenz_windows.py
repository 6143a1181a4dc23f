"""Lorenz x windows: how often `analyze` lands within 10% of 0.906 per time unit (issue 4's bar).

Each window is a fresh trajectory: RK4 dt=0.01 (as `dynsys.lorenz`, compiled here for speed) from a random initial
condition (seeded), after a random transient of 20-40 time units; x coordinate only. Prints a progress line per n
(stderr) and, last, one JSON object keyed by n: fraction within 10%, mean, sd, worst relative error, and the
spread of lag / dim.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from numba import njit

from aimds_ray.core.attractor import analyze

TRUE = 0.9056


@njit(cache=True)
def _lorenz_x(n: int, dt: float, burn: int, x0: float, y0: float, z0: float) -> np.ndarray:
    out = np.empty(n)
    x, y, z = x0, y0, z0
    for i in range(n + burn):
        k1x, k1y, k1z = 10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z
        ax, ay, az = x + dt / 2 * k1x, y + dt / 2 * k1y, z + dt / 2 * k1z
        k2x, k2y, k2z = 10.0 * (ay - ax), ax * (28.0 - az) - ay, ax * ay - 8.0 / 3.0 * az
        bx, by, bz = x + dt / 2 * k2x, y + dt / 2 * k2y, z + dt / 2 * k2z
        k3x, k3y, k3z = 10.0 * (by - bx), bx * (28.0 - bz) - by, bx * by - 8.0 / 3.0 * bz
        cx, cy, cz = x + dt * k3x, y + dt * k3y, z + dt * k3z
        k4x, k4y, k4z = 10.0 * (cy - cx), cx * (28.0 - cz) - cy, cx * cy - 8.0 / 3.0 * cz
        x += dt / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        y += dt / 6 * (k1y + 2 * k2y + 2 * k3y + k4y)
        z += dt / 6 * (k1z + 2 * k2z + 2 * k3z + k4z)
        if i >= burn:
            out[i - burn] = x
    return out


def windows(n: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [_lorenz_x(n, 0.01, int(rng.integers(2000, 4000)), *rng.uniform([-15, -20, 5], [15, 20, 40]))
            for _ in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out: dict[str, dict] = {}
    for n in args.n:
        ws = windows(n, args.count, args.seed + n)
        t = time.perf_counter()
        rs = [analyze(w) for w in ws]
        el = time.perf_counter() - t
        v = np.array([r.lyapunov / 0.01 for r in rs])
        e = v / TRUE - 1
        out[str(n)] = {
            "windows": len(ws), "seed": args.seed + n,
            "within_10pct": round(float(np.mean(np.abs(e) <= 0.1)), 3),
            "mean": round(float(v.mean()), 4), "sd_rel": round(float(np.std(e)), 4),
            "median": round(float(np.median(v)), 4), "worst_rel": round(float(e[np.argmax(np.abs(e))]), 3),
            "kinds": {k: sum(r.kind == k for r in rs) for k in {r.kind for r in rs}},
            "lags": np.unique([r.lag for r in rs], return_counts=True)[0].tolist(),
            "dims": np.unique([r.dim for r in rs], return_counts=True)[0].tolist(),
            "ms_per_window": round(el / len(ws) * 1e3, 1)}
        print(f"n={n}: {out[str(n)]}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
