"""Reference dynamical systems with known largest Lyapunov exponents, for validating `core.attractor`.

Used by the tests and `benchmarks/attractor.py` (and by anyone checking the analyzer on their machine):
logistic map r=4 (ln 2 per step), Henon a=1.4 b=0.3 (0.419 per step), Lorenz sigma=10 rho=28 beta=8/3
(0.906 per time unit, RK4).
"""

from __future__ import annotations

import math

import numpy as np

LYAPUNOV = {"logistic": math.log(2.0), "henon": 0.4189, "lorenz": 0.9056}


def logistic(n: int, x0: float = 0.1, burn: int = 500) -> np.ndarray:
    x, out = x0, np.empty(n)
    for i in range(n + burn):
        x = 4.0 * x * (1.0 - x)
        if i >= burn:
            out[i - burn] = x
    return out


def henon(n: int, burn: int = 500, x0: float = 0.1, y0: float = 0.1) -> np.ndarray:
    x, y, out = x0, y0, np.empty(n)
    for i in range(n + burn):
        x, y = 1.0 - 1.4 * x * x + y, 0.3 * x
        if i >= burn:
            out[i - burn] = x
    return out


def lorenz(n: int, dt: float = 0.01, burn: int = 2000, s0: tuple[float, float, float] = (1.0, 1.0, 1.0)
           ) -> np.ndarray:
    """Lorenz (sigma=10, rho=28, beta=8/3) state (n, 3) integrated with RK4 from s0 after `burn` steps."""

    def f(s: np.ndarray) -> np.ndarray:
        return np.array([10.0 * (s[1] - s[0]), s[0] * (28.0 - s[2]) - s[1], s[0] * s[1] - 8.0 / 3.0 * s[2]])

    s, out = np.array(s0, dtype=np.float64), np.empty((n, 3))
    for i in range(n + burn):
        k1 = f(s)
        k2 = f(s + dt / 2 * k1)
        k3 = f(s + dt / 2 * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i >= burn:
            out[i - burn] = s
    return out


def lorenz_x(n: int, dt: float = 0.01, burn: int = 2000, s0: tuple[float, float, float] = (1.0, 1.0, 1.0)
             ) -> np.ndarray:
    """x component of `lorenz`."""
    return lorenz(n, dt, burn, s0)[:, 0]
