"""Attractor analysis of a time series: delay embedding, largest Lyapunov exponent, attractor class.

Why: a client's request stream is treated as a dynamical system. A steady client sits near a fixed point or cycles;
a probing client becomes erratic. This module measures that from a plain numeric series (no Ray, no text).

Pipeline (`analyze`):

1. **Lag** (`choose_lag`): 1 if the series decorrelates within one step (|acf(1)| < 1/e: maps and noise have
   nothing to unfold); otherwise the first local minimum of the average mutual information (equiprobable bins);
   if MI has no minimum up to `max_lag`, the lag where the autocorrelation first decays below 1/e.
2. **Dimension** (`choose_dim`): false nearest neighbours (Kennel, Brown & Abarbanel 1992) with both criteria
   (distance ratio > `fnn_rtol`, or the grown distance > `fnn_atol` times the attractor size); the smallest
   dimension whose false-neighbour fraction is <= `fnn_threshold`. Never below 2 (a 1-D "embedding" folds flows
   onto themselves). If no dimension qualifies up to `max_dim` (typical of noise) `max_dim` is used and that is
   recorded as evidence.
3. **Largest Lyapunov exponent** (`lyapunov_rosenstein`, Rosenstein, Collins & De Luca 1993): each reference point's
   nearest neighbours (`neighbours` of them, all with |i - j| > Theiler window, default the mean period from the
   power spectrum as Rosenstein suggests, at least 10 steps when the series is long enough) are followed for k
   steps; y(k) = mean log distance. The slope of y(k) is the exponent **per sample step**. For a flow sampled
   every dt, divide by dt to get it per time unit (Lorenz at dt=0.01: 0.00906/step = 0.906/time unit).
   Two neighbours per reference point (not one) is the same estimator with slightly lower variance; more bias it
   low, because farther neighbours saturate sooner.
4. **Fit region** (`fit_divergence`): y(k) rises linearly, then saturates at the attractor size. The upper end is
   where y first reaches `fit_upper_fraction` (0.8) of its total rise; within [0, upper], local least-squares slopes
   over windows of upper/8 steps are computed and the longest run of consecutive windows whose slopes agree within
   `fit_slope_tolerance` (20%) of one another is taken as the linear region (this skips the bend into saturation
   and, on long series, the steep initial transient of flows). Runs are only searched after the **steep start**:
   the first windows whose slope is still above (1 + tolerance/2) times the chord slope (y(upper) - y(0)) / upper
   are that transient (a curve concave from k = 0: nearest neighbours are picked for being unusually close, and
   first separate faster than the exponent). On short flow windows it is smooth enough to form the longest run
   itself (Lorenz x at 2,000 points: runs over k = 0-80 at 2-3x the exponent gave +100-160%). Straight map
   curves and curves that start slowly never exceed the chord by that much and keep k = 0. End windows whose
   slope is an outlier against the run's own scatter (> `fit_trim_sigmas` robust
   sd, `_trim_run`) are then dropped: on nearly noise-free map curves the 20% tolerance keeps the first step of the
   bend into saturation, which biased the logistic map low by ~0.5%. The exponent is the least-squares slope over
   that region. **Scale cap**: before that, the curve is cut where the mean separation first exceeds
   `fit_scale_fraction` (1%) of the attractor size (sqrt(2 x total variance)), if at least 4 points remain: the
   linearisation behind the method only holds for separations small against the attractor, and on maps, whose
   neighbours start at ~1e-4 of it, the steps past that carry the growing fold/saturation error (logistic map,
   n=2,000: per-step increments drift from +-0.13% at k=0-1 to -1.5% at k=7). Flows whose neighbours start above
   1% of the size (Lorenz at 2,000-5,000 points starts at ~1.5%) are not cut. **Constant population**: the
   slope is then refitted on a second pass whose references and neighbours all lie before m - fit_end, so every
   pair is followed through the whole fit region and y(k) averages the same pairs at every k (as nolds does);
   pairs dropping out at the end of the series otherwise shift y(k) by their own initial distance.
   Uncapped curves (flows, short series) fit the whole span from the end of the steep start to the upper point
   instead of the run search (`fit_divergence(span=True)`): their local slopes scatter too much for it.
   Measured limits: Lorenz single 5,000-point windows scatter ~8.5% (sd), 2,000-point windows ~22-27% (the curve
   itself is noisy there: even a fixed fit region k = 75-200 gives sd ~17-19%, and the slope is uncorrelated with
   the window's exact finite-time exponent, whose own sd is 8%), see the test docstring.
5. **Local maps** (`lyapunov_local`, `refine_lyapunov`; Eckmann & Ruelle 1985, Bryant, Brown & Abarbanel 1990):
   when the series is classed chaotic, the next delay coordinate is fitted around every point by a local quadratic
   in the delay vector (dimension 1, 2, 3 in turn), and the exponent is the growth rate of a tangent vector under
   the product of the fitted Jacobians. It is reported instead of the slope when the fits predict out of sample
   within 1% of the persistence error and agree with the slope within 25%: noise-free maps (logistic, Henon, sine
   map: errors < 1e-4). There it is the trajectory's own finite-time exponent (logistic: mean log |4 - 8x| to
   1e-5), which the slope misses by ~0.1% (neighbours' fold error); 50 logistic series of 2,000 points: mean
   error 0.05% vs 0.11% (slope) and 0.10% (nolds). Noisy data and flows keep the slope (see `refine_lyapunov`).
   **Step-ahead maps for flows** (`lyapunov_jacobian`; Sano & Sawada 1985): when the local maps are not used and
   the lag is >= 4 samples (a finely sampled flow), local *linear* maps from each delay vector to the one a lag
   later are fitted (16 neighbours, whole delay vector) and a tangent vector carried through their product. The
   fits are ridge-regularised, with the ridge chosen per series by the out-of-sample error of the fitted step
   (half-decade grid 1e-8 .. 1e-1): the attractor is locally thin, the unregularised slope across it is noise, and
   noise in a matrix product inflates its growth. When the maps predict better than persistence
   (RMS error ratio <= `jacobian_max_error`) and give a positive exponent, it is reported (Rosenstein's slope is
   kept as evidence). Diagnosis on Lorenz x, 2,000 points (tuning seed 1, 60 windows): the window's own exact
   finite-time exponent is within 10% of 0.906 in 67% of windows (sd 9.8%; 88% at 3,000, 97% at 5,000), so that is
   roughly the ceiling; the error was variance, not bias: slope -3% mean / sd 27%, old step-ahead maps (a quarter
   lag, ridge 1e-10) +20% / 21%, their mean +7% / 19%, and neither correlated with the window's exact exponent
   (0.05, 0.09). Ensembles of the slope over lags and dimensions do not help (their errors correlate 0.86), more
   or temporally spread neighbours make the slope worse. The maps one lag ahead with the chosen ridge: +6% / 13%.
   `benchmarks/lorenz_windows.py --seed 1` (tuning), within 10%: 2,000 points 42 -> 57%, 3,000 67 -> 77% (60
   windows), 5,000 95%, 10,000 100% (40 windows). Fresh seed 777 (100 windows each, not tuned on), before -> after:
   2,000 points 41 -> 63% (sd 21 -> 14%), 3,000 66 -> 74% (10 -> 7%), 5,000 91 -> 92% (6.4 -> 5.8%), 10,000
   96 -> 93% (4.8 -> 5.6%: the maps see only the last `jacobian_max_points` = 5,000 samples, where the old mean
   with the slope used all 10,000; a cap of 10,000 gives sd 2.7% on the tuning seed but costs +35-50 ms per 10k
   window). Cost ~30-40 ms per window at 5,000+ points.
6. **Class** (`classify`):
   - `fixed_point`: no variation, or the last quarter has converged to a constant.
   - `periodic` / `quasi_periodic`: the series is *recurrent* (trajectories that start close stay close for the
     whole horizon: the divergence curve grows by < 30% of its depth) or the spectrum is dominated by narrow lines
     (>= 90% of the variance above the local background); periodic when every line is a harmonic (aliasing
     allowed) of the lowest one, quasi-periodic otherwise.
   - `chaotic` vs `stochastic`: noise also gives a positive exponent, so a surrogate-data test decides: the
     nearest-neighbour prediction error of the series is compared with that of `surrogates` IAAFT surrogates
     (same spectrum and amplitude distribution, no nonlinear determinism). Deterministic when the original
     predicts better than every surrogate (p <= 1/(S+1)) by a margin of z >= 3; chaotic when deterministic and the
     exponent is positive per mean period, stochastic otherwise. A cycle buried in noise is deterministic too and
     its noise gives a positive exponent: when narrow lines carry >= 70% of the variance, the test is repeated
     with the lines cut out of the spectrum, and a residual that is indistinguishable from noise makes it a noisy
     cycle (periodic / quasi-periodic), not chaos (a sine plus noise at 0.3-0.4 of its amplitude, 10,000 points;
     Lorenz x windows of 2,000 points have up to ~63% of their variance in lines (160 windows), and stay chaotic).
   **2-D input** (one row per time step): the rows, standardised, are the state vectors for Rosenstein's slope;
   the scalar view (first principal component) is embedded as a 1-D series would be (lag, FNN dimension) for the
   surrogate test, and for a finely sampled flow (scalar lag >= 4) the step-ahead maps run on its delay vectors.
   Before, the test ran one step ahead at lag 1 only, where a flow is smooth: Lorenz (x, y, z) windows were called
   stochastic (10 of 30 at 5,000 points), and the slope on the state ran low (30 windows within 10% at 2,000 /
   5,000 points: 20 / 60%, now 53 / 77%, all 60 chaotic).
   The result lists the reasons and the measured evidence; `confidence` in [0, 1] is how clearly the deciding test
   passed, scaled down for short series.

Numba kernels (`_knn_kernel`, `_divergence_kernel`, `_mi_kernel`, `_local_fit_kernel`, `_tangent_kernel`,
`_jacobian_fit_kernel`, `_jacobian_cv_kernel`, `_flow_tangent_kernel`) each
have a numpy reference (`*_ref`) that the tests compare them against. Nearest neighbours are found by sorting on
the first coordinate and scanning outwards with pruning: memory is linear in n (no n x n matrix).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numba import njit

KINDS = ("fixed_point", "periodic", "quasi_periodic", "chaotic", "stochastic")
MIN_POINTS = 16


@dataclass(frozen=True)
class AttractorConfig:
    """Knobs of `analyze`; the defaults are the ones the tests and benchmarks use."""

    max_lag: int = 64
    max_dim: int = 6
    min_dim: int = 2
    fnn_rtol: float = 15.0
    fnn_atol: float = 2.0
    fnn_threshold: float = 0.01
    fnn_queries: int = 2000
    neighbours: int = 2
    min_theiler: int = 10
    max_references: int = 5000
    fit_upper_fraction: float = 0.8
    fit_trim_sigmas: float = 3.0
    fit_slope_tolerance: float = 0.2
    fit_scale_fraction: float = 0.01
    local_max_dim: int = 3
    local_max_error: float = 0.01
    local_agreement: float = 0.25
    jacobian_neighbours: int = 16
    jacobian_max_error: float = 1.0
    jacobian_max_points: int = 5000  # the step-ahead maps use the last this-many samples (their cost is per point)
    surrogates: int = 19
    surrogate_early_after: int = 5  # sequential test: stop after this many surrogates when the verdict is certain ...
    surrogate_early_z: float = 10.0  # ... (the series beats each by at least this many sd: z >= 6 is confidence 1)
    surrogate_points: int = 2048
    prediction_queries: int = 1000
    surrogate_z: float = 3.0
    recurrence_growth: float = 0.3
    line_fraction: float = 0.9
    residual_line_fraction: float = 0.7  # lines carrying this much variance: is the determinism only the cycle's?
    chaos_per_period: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_lag < 1 or self.max_dim < 1 or self.min_dim < 1 or self.neighbours < 1:
            raise ValueError("max_lag, max_dim, min_dim and neighbours must be >= 1")
        if self.min_dim > self.max_dim:
            raise ValueError("min_dim must be <= max_dim")
        if not 0.0 < self.fit_upper_fraction <= 1.0 or self.fit_slope_tolerance <= 0.0:
            raise ValueError("fit_upper_fraction must be in (0, 1] and fit_slope_tolerance > 0")
        if not 0.0 <= self.fit_scale_fraction < 1.0:
            raise ValueError("fit_scale_fraction must be in [0, 1) (0 disables the cap)")
        if self.surrogates < 1:
            raise ValueError("surrogates must be >= 1")


DEFAULT_CONFIG = AttractorConfig()


# ---------------------------------------------------------------------------------------------------------------
# kernels (numba) and their numpy references


@njit(cache=True)
def _knn_kernel(emb: np.ndarray, queries: np.ndarray, n_lib: int, theiler: int, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """k nearest library points (rows < n_lib, |i - j| > theiler) of each query row; squared distances.

    Library rows are sorted by their first coordinate; each query scans outwards from its position and stops in a
    direction once the first-coordinate gap alone exceeds the current k-th best distance. O(n) memory.
    """
    n_lib = min(n_lib, emb.shape[0])
    d = emb.shape[1]
    order = np.argsort(emb[:n_lib, 0], kind="mergesort")
    key = np.empty(n_lib)
    for t in range(n_lib):
        key[t] = emb[order[t], 0]
    nq = queries.shape[0]
    idx = np.full((nq, k), -1, np.int64)
    dist = np.full((nq, k), np.inf)
    bd = np.empty(k)
    bi = np.empty(k, np.int64)
    for qi in range(nq):
        q = queries[qi]
        x0 = emb[q, 0]
        p = np.searchsorted(key, x0)
        for r in range(k):
            bd[r] = np.inf
            bi[r] = -1
        for direction in (1, -1):
            j = p if direction == 1 else p - 1
            while 0 <= j < n_lib:
                dx = key[j] - x0
                worst = bd[k - 1]
                if dx * dx > worst:
                    break
                c = order[j]
                if abs(c - q) > theiler:
                    s = 0.0
                    for t in range(d):
                        u = emb[c, t] - emb[q, t]
                        s += u * u
                    if s < worst or (s == worst and bi[k - 1] >= 0 and c < bi[k - 1]):
                        m = k - 1
                        while m > 0 and (bd[m - 1] > s or (bd[m - 1] == s and bi[m - 1] > c)):
                            bd[m] = bd[m - 1]
                            bi[m] = bi[m - 1]
                            m -= 1
                        bd[m] = s
                        bi[m] = c
                j += direction
        for r in range(k):
            idx[qi, r] = bi[r]
            dist[qi, r] = bd[r]
    return idx, dist


def knn_ref(emb: np.ndarray, queries: np.ndarray, n_lib: int, theiler: int, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference of `_knn_kernel` (blocked brute force, ties broken by the lower index)."""
    emb = np.asarray(emb, dtype=np.float64)
    n_lib = min(n_lib, emb.shape[0])
    lib = emb[:n_lib]
    nq = len(queries)
    idx = np.full((nq, k), -1, np.int64)
    dist = np.full((nq, k), np.inf)
    for s in range(0, nq, 256):
        q = np.asarray(queries[s:s + 256], dtype=np.int64)
        d2 = ((emb[q][:, None, :] - lib[None, :, :]) ** 2).sum(-1)
        d2[np.abs(q[:, None] - np.arange(n_lib)[None, :]) <= theiler] = np.inf
        order = np.argsort(d2, axis=1, kind="stable")[:, :k]
        dd = np.take_along_axis(d2, order, axis=1)
        order = np.where(np.isinf(dd), -1, order)
        kk = order.shape[1]
        idx[s:s + len(q), :kk] = order
        dist[s:s + len(q), :kk] = dd
    return idx, dist


@njit(cache=True)
def _divergence_kernel(emb: np.ndarray, refs: np.ndarray, nn: np.ndarray, horizon: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Sum of log distances between each reference trajectory and its neighbours' after k = 0..horizon steps.

    Pairs are used at step k while both trajectories still exist; zero distances (exact repeats) are skipped.
    The log is the cost here (one per pair and step), so a reference's squared distances at step k are multiplied
    first and logged once (sum of logs = log of the product; a product leaving [1e-150, 1e150] is logged early).
    """
    m, d = emb.shape
    sums = np.zeros(horizon + 1)
    counts = np.zeros(horizon + 1, np.int64)
    kn = nn.shape[1]
    for a in range(refs.shape[0]):
        i = refs[a]
        kmax_a = -1
        for r in range(kn):
            j = nn[a, r]
            if j >= 0:
                kmax_a = max(kmax_a, min(horizon, m - 1 - max(i, j)))
        for k in range(kmax_a + 1):
            prod = 1.0
            acc = 0.0
            for r in range(kn):
                j = nn[a, r]
                if j < 0 or max(i, j) + k > m - 1:
                    continue
                s = 0.0
                for c in range(d):
                    t = emb[i + k, c] - emb[j + k, c]
                    s += t * t
                if s > 0.0:
                    prod *= s
                    counts[k] += 1
                    if prod < 1e-150 or prod > 1e150:
                        acc += math.log(prod)
                        prod = 1.0
            sums[k] += 0.5 * (acc + math.log(prod))
    return sums, counts


def divergence_ref(emb: np.ndarray, refs: np.ndarray, nn: np.ndarray, horizon: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference of `_divergence_kernel`."""
    m = emb.shape[0]
    sums = np.zeros(horizon + 1)
    counts = np.zeros(horizon + 1, np.int64)
    i = np.repeat(np.asarray(refs, np.int64), nn.shape[1])
    j = np.asarray(nn, np.int64).reshape(-1)
    ok = j >= 0
    i, j = i[ok], j[ok]
    for k in range(horizon + 1):
        live = np.maximum(i, j) + k <= m - 1
        if not live.any():
            continue
        s = ((emb[i[live] + k] - emb[j[live] + k]) ** 2).sum(-1)
        s = s[s > 0]
        sums[k] = 0.5 * np.log(s).sum()
        counts[k] = s.size
    return sums, counts


@njit(cache=True)
def _mi_kernel(codes: np.ndarray, nbins: int, max_lag: int) -> np.ndarray:
    """Average mutual information (nats) between codes[t] and codes[t + lag] for lag = 0..max_lag."""
    n = codes.shape[0]
    out = np.zeros(max_lag + 1)
    joint = np.zeros((nbins, nbins))
    pa = np.zeros(nbins)
    pb = np.zeros(nbins)
    for lag in range(max_lag + 1):
        m = n - lag
        if m <= 0:
            break
        joint[:, :] = 0.0
        pa[:] = 0.0
        pb[:] = 0.0
        for t in range(m):
            a = codes[t]
            b = codes[t + lag]
            joint[a, b] += 1.0
            pa[a] += 1.0
            pb[b] += 1.0
        mi = 0.0
        for a in range(nbins):
            for b in range(nbins):
                c = joint[a, b]
                if c > 0.0:
                    mi += c / m * math.log(c * m / (pa[a] * pb[b]))
        out[lag] = mi
    return out


def mi_ref(codes: np.ndarray, nbins: int, max_lag: int) -> np.ndarray:
    """numpy reference of `_mi_kernel`."""
    codes = np.asarray(codes, np.int64)
    out = np.zeros(max_lag + 1)
    for lag in range(max_lag + 1):
        m = len(codes) - lag
        if m <= 0:
            break
        joint = np.zeros((nbins, nbins))
        np.add.at(joint, (codes[:m], codes[lag:lag + m]), 1.0)
        p = joint / m
        pa, pb = p.sum(1), p.sum(0)
        nz = p > 0
        out[lag] = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    return out


@njit(cache=True, inline="always")
def _neighbour_scale(x: np.ndarray, lag: int, dim: int, t: int, nbrs: np.ndarray) -> tuple[int, float]:
    """(number of neighbours, largest coordinate offset of a neighbour's delay vector from v_t)."""
    cnt = 0
    s = 0.0
    for r in range(nbrs.shape[0]):
        j = nbrs[r]
        if j < 0:
            continue
        cnt += 1
        for c in range(dim):
            s = max(s, abs(x[j + c * lag] - x[t + c * lag]))
    return cnt, s


@njit(cache=True, inline="always")
def _ridge_cholesky(ata: np.ndarray, p: int, ridge: float = 1e-10) -> bool:
    """In place: add a relative ridge (`ridge` x trace / p) to the normal matrix and factor its lower triangle
    (L L^T); False when it is not positive definite. Only the lower triangle of `ata` is read."""
    tr = 0.0
    for a in range(p):
        tr += ata[a, a]
    for a in range(p):
        ata[a, a] += ridge * tr / p
    for a in range(p):
        for b in range(a + 1):
            v = ata[a, b]
            for c in range(b):
                v -= ata[a, c] * ata[b, c]
            if a == b:
                if v <= 0.0:
                    return False
                ata[a, a] = math.sqrt(v)
            else:
                ata[a, b] = v / ata[b, b]
    return True


@njit(cache=True, inline="always")
def _cholesky_solve(chol: np.ndarray, rhs: np.ndarray, p: int) -> None:
    """In place: rhs <- (L L^T)^-1 rhs for the factor of `_ridge_cholesky`."""
    for a in range(p):
        v = rhs[a]
        for c in range(a):
            v -= chol[a, c] * rhs[c]
        rhs[a] = v / chol[a, a]
    for a in range(p - 1, -1, -1):
        v = rhs[a]
        for c in range(a + 1, p):
            v -= chol[c, a] * rhs[c]
        rhs[a] = v / chol[a, a]


@njit(cache=True)
def _local_fit_kernel(x: np.ndarray, lag: int, dim: int, queries: np.ndarray, nn: np.ndarray, degree: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Local polynomial fit of x[t + dim*lag] on the delay vector v_t = (x[t], ..., x[t + (dim-1)lag]) from the
    neighbours nn[i] of each query point t = queries[i]; returns the gradient at v_t and the fitted value there.

    The design is centred on v_t and scaled by the largest neighbour offset, so the linear coefficients are the
    gradient at v_t itself (degree 2 absorbs the curvature that would bias a linear fit over the neighbourhood).
    Normal equations with a 1e-10 relative ridge (a neighbourhood on a lower-dimensional curve makes the
    quadratic terms collinear); NaN where fewer neighbours than coefficients or all offsets are zero.
    """
    q, k = nn.shape
    p = 1 + dim + (dim * (dim + 1) // 2 if degree >= 2 else 0)
    grad = np.full((q, dim), np.nan)
    pred = np.full(q, np.nan)
    row = np.empty(p)
    u = np.empty(dim)
    ata = np.empty((p, p))
    atb = np.empty(p)
    for i in range(q):
        t = queries[i]
        cnt, s = _neighbour_scale(x, lag, dim, t, nn[i])
        if cnt < p or s == 0.0:
            continue
        ata[:, :] = 0.0
        atb[:] = 0.0
        for r in range(k):
            j = nn[i, r]
            if j < 0:
                continue
            for c in range(dim):
                u[c] = (x[j + c * lag] - x[t + c * lag]) / s
            row[0] = 1.0
            for c in range(dim):
                row[1 + c] = u[c]
            if degree >= 2:
                h = 1 + dim
                for a in range(dim):
                    for b in range(a, dim):
                        row[h] = u[a] * u[b]
                        h += 1
            yv = x[j + dim * lag]
            for a in range(p):
                atb[a] += row[a] * yv
                for b in range(a + 1):
                    ata[a, b] += row[a] * row[b]  # lower triangle: all the Cholesky step reads
        if not _ridge_cholesky(ata, p):
            continue
        _cholesky_solve(ata, atb, p)
        pred[i] = atb[0]
        for c in range(dim):
            grad[i, c] = atb[1 + c] / s
    return grad, pred


def local_fit_ref(x: np.ndarray, lag: int, dim: int, queries: np.ndarray, nn: np.ndarray, degree: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference of `_local_fit_kernel` (same centred, scaled, ridged normal equations)."""
    x = np.asarray(x, np.float64)
    q = nn.shape[0]
    grad = np.full((q, dim), np.nan)
    pred = np.full(q, np.nan)
    cols = [(a, b) for a in range(dim) for b in range(a, dim)] if degree >= 2 else []
    p = 1 + dim + len(cols)
    offs = np.arange(dim) * lag
    for i, t in enumerate(np.asarray(queries, np.int64)):
        j = nn[i][nn[i] >= 0]
        if len(j) < p:
            continue
        du = x[j[:, None] + offs] - x[t + offs]
        s = float(np.abs(du).max())
        if s == 0.0:
            continue
        u = du / s
        design = np.column_stack([np.ones(len(j)), u] + [u[:, a] * u[:, b] for a, b in cols])
        ata = design.T @ design
        ata += np.eye(p) * 1e-10 * np.trace(ata) / p
        try:
            coef = np.linalg.solve(ata, design.T @ x[j + dim * lag])
        except np.linalg.LinAlgError:
            continue
        pred[i] = coef[0]
        grad[i] = coef[1:1 + dim] / s
    return grad, pred


@njit(cache=True)
def _tangent_kernel(grad: np.ndarray, lag: int, skip: int) -> tuple[float, int]:
    """Sum of log growth of a tangent vector under the companion Jacobians of the lag-step delay map.

    v_t -> v_{t+lag} shifts the delay vector and appends the fitted x[t + dim*lag], so its Jacobian is the shift
    plus the gradient as last row. Each of the `lag` interleaved chains t = c, c + lag, ... carries one unit
    vector (the product/QR method for the largest exponent); its first `skip` steps, while the vector aligns with
    the most expanding direction, are not counted. Returns (sum of log growth, counted steps); a chain stops at
    the first non-finite or zero growth.
    """
    q, dim = grad.shape
    total = 0.0
    count = 0
    w = np.empty(dim)
    for c in range(lag):
        for a in range(dim):
            w[a] = 1.0 / math.sqrt(dim)
        step = 0
        for t in range(c, q, lag):
            nxt = 0.0
            for a in range(dim):
                nxt += grad[t, a] * w[a]
            for a in range(dim - 1):
                w[a] = w[a + 1]
            w[dim - 1] = nxt
            nrm = 0.0
            for a in range(dim):
                nrm += w[a] * w[a]
            nrm = math.sqrt(nrm)
            if not (nrm > 0.0 and math.isfinite(nrm)):
                break
            for a in range(dim):
                w[a] /= nrm
            if step >= skip:
                total += math.log(nrm)
                count += 1
            step += 1
    return total, count


def tangent_ref(grad: np.ndarray, lag: int, skip: int) -> tuple[float, int]:
    """numpy reference of `_tangent_kernel`."""
    q, dim = grad.shape
    total, count = 0.0, 0
    for c in range(lag):
        w = np.full(dim, 1.0 / math.sqrt(dim))
        for step, t in enumerate(range(c, q, lag)):
            w = np.append(w[1:], grad[t] @ w)
            nrm = float(np.linalg.norm(w))
            if not (nrm > 0.0 and math.isfinite(nrm)):
                break
            w = w / nrm
            if step >= skip:
                total += math.log(nrm)
                count += 1
    return total, count


@njit(cache=True, inline="always")
def _step_normal_equations(x: np.ndarray, lag: int, dim: int, step: int, t: int, nbrs: np.ndarray, s: float,
                           row: np.ndarray, ata: np.ndarray, atb: np.ndarray) -> None:
    """In place: the lower triangle of the normal matrix of the design (1, (v_j - v_t) / s) over the neighbours j of
    t (entries < 0 skipped), and its right-hand sides for the displacements v_{j+step} - v_j (one per coordinate)."""
    p = 1 + dim
    ata[:, :] = 0.0
    atb[:, :] = 0.0
    for r in range(nbrs.shape[0]):
        j = nbrs[r]
        if j < 0:
            continue
        row[0] = 1.0
        for c in range(dim):
            row[1 + c] = (x[j + c * lag] - x[t + c * lag]) / s
        for a in range(p):
            for o in range(dim):
                atb[a, o] += row[a] * (x[j + step + o * lag] - x[j + o * lag])
            for b in range(a + 1):
                ata[a, b] += row[a] * row[b]


@njit(cache=True)
def _jacobian_fit_kernel(x: np.ndarray, lag: int, dim: int, step: int, queries: np.ndarray, nn: np.ndarray,
                         ridge: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Local linear map from the delay vector v_t = (x[t], ..., x[t + (dim-1)lag]) to v_{t+step}, fitted from the
    neighbours nn[i] of each query point t = queries[i]; returns the Jacobians (q, dim, dim) and the predicted
    v_{t+step} (q, dim).

    For a flow sampled finely, `step` < lag: v_{t+step} is no shift of v_t, so every coordinate is fitted (one
    design, dim right-hand sides). The targets are the neighbours' displacements v_{j+step} - v_j, so the
    Jacobian is the identity plus the fitted slopes. Design centred on v_t, scaled by the largest neighbour
    offset, normal equations with a relative ridge (`ridge` x trace / (dim + 1): it shrinks the slopes towards 0,
    the Jacobian towards the identity), Cholesky; NaN where fewer neighbours than dim + 1 or all offsets are zero.
    """
    q = nn.shape[0]
    p = 1 + dim
    jac = np.full((q, dim, dim), np.nan)
    pred = np.full((q, dim), np.nan)
    row = np.empty(p)
    ata = np.empty((p, p))
    atb = np.empty((p, dim))
    for i in range(q):
        t = queries[i]
        cnt, s = _neighbour_scale(x, lag, dim, t, nn[i])
        if cnt < p or s == 0.0:
            continue
        _step_normal_equations(x, lag, dim, step, t, nn[i], s, row, ata, atb)
        if not _ridge_cholesky(ata, p, ridge):
            continue
        for o in range(dim):
            _cholesky_solve(ata, atb[:, o], p)
            pred[i, o] = x[t + o * lag] + atb[0, o]
            for c in range(dim):
                jac[i, o, c] = atb[1 + c, o] / s + (1.0 if o == c else 0.0)
    return jac, pred


def jacobian_fit_ref(x: np.ndarray, lag: int, dim: int, step: int, queries: np.ndarray, nn: np.ndarray,
                     ridge: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference of `_jacobian_fit_kernel` (same centred, scaled, ridged normal equations)."""
    x = np.asarray(x, np.float64)
    q = nn.shape[0]
    jac = np.full((q, dim, dim), np.nan)
    pred = np.full((q, dim), np.nan)
    offs = np.arange(dim) * lag
    for i, t in enumerate(np.asarray(queries, np.int64)):
        j = nn[i][nn[i] >= 0]
        if len(j) < dim + 1:
            continue
        du = x[j[:, None] + offs] - x[t + offs]
        s = float(np.abs(du).max())
        if s == 0.0:
            continue
        design = np.column_stack([np.ones(len(j)), du / s])
        ata = design.T @ design
        ata += np.eye(dim + 1) * ridge * np.trace(ata) / (dim + 1)
        try:
            coef = np.linalg.solve(ata, design.T @ (x[j[:, None] + step + offs] - x[j[:, None] + offs]))
        except np.linalg.LinAlgError:
            continue
        pred[i] = x[t + offs] + coef[0]
        jac[i] = coef[1:].T / s + np.eye(dim)
    return jac, pred


@njit(cache=True)
def _jacobian_cv_kernel(x: np.ndarray, lag: int, dim: int, step: int, queries: np.ndarray, nn: np.ndarray,
                        ridges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-sample check of `_jacobian_fit_kernel` for each relative ridge in `ridges`: the sum over queries and
    coordinates of the squared error of the predicted v_{t+step}, and the number of queries whose fit failed
    (too few neighbours, zero offsets, not positive definite). The query point is never its own neighbour (Theiler
    window), so each prediction is out of sample. The normal equations are built once per query and factored once
    per ridge.
    """
    q = nn.shape[0]
    p = 1 + dim
    nr = ridges.shape[0]
    sse = np.zeros(nr)
    fails = np.zeros(nr, np.int64)
    row = np.empty(p)
    ata = np.empty((p, p))
    atb = np.empty((p, dim))
    work = np.empty((p, p))
    rhs = np.empty(p)
    for i in range(q):
        t = queries[i]
        cnt, s = _neighbour_scale(x, lag, dim, t, nn[i])
        if cnt < p or s == 0.0:
            for g in range(nr):
                fails[g] += 1
            continue
        _step_normal_equations(x, lag, dim, step, t, nn[i], s, row, ata, atb)
        for g in range(nr):
            work[:, :] = ata
            if not _ridge_cholesky(work, p, ridges[g]):
                fails[g] += 1
                continue
            for o in range(dim):
                for a in range(p):
                    rhs[a] = atb[a, o]
                _cholesky_solve(work, rhs, p)
                e = x[t + step + o * lag] - (x[t + o * lag] + rhs[0])
                sse[g] += e * e
    return sse, fails


def jacobian_cv_ref(x: np.ndarray, lag: int, dim: int, step: int, queries: np.ndarray, nn: np.ndarray,
                    ridges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference of `_jacobian_cv_kernel` (one `jacobian_fit_ref` per ridge)."""
    x = np.asarray(x, np.float64)
    offs = np.arange(dim) * lag
    target = x[np.asarray(queries, np.int64)[:, None] + step + offs]
    sse = np.zeros(len(ridges))
    fails = np.zeros(len(ridges), np.int64)
    for g, rg in enumerate(ridges):
        _, pred = jacobian_fit_ref(x, lag, dim, step, queries, nn, float(rg))
        ok = np.isfinite(pred).all(1)
        fails[g] = int((~ok).sum())
        sse[g] = float(((target[ok] - pred[ok]) ** 2).sum())
    return sse, fails


@njit(cache=True)
def _flow_tangent_kernel(jac: np.ndarray, step: int, skip: int) -> tuple[float, int]:
    """Sum of log growth of a tangent vector under the Jacobians jac[t] of the step-ahead maps along each of the
    `step` interleaved chains t = c, c + step, ... (renormalised every step; the first `skip` steps of a chain are
    not counted). Returns (sum of log growth, counted steps); a chain stops at the first non-finite or zero growth.
    """
    q, dim, _ = jac.shape
    total = 0.0
    count = 0
    w = np.empty(dim)
    w2 = np.empty(dim)
    for c in range(step):
        for a in range(dim):
            w[a] = 1.0 / math.sqrt(dim)
        n_steps = 0
        for t in range(c, q, step):
            nrm = 0.0
            for a in range(dim):
                v = 0.0
                for b in range(dim):
                    v += jac[t, a, b] * w[b]
                w2[a] = v
                nrm += v * v
            nrm = math.sqrt(nrm)
            if not (nrm > 0.0 and math.isfinite(nrm)):
                break
            for a in range(dim):
                w[a] = w2[a] / nrm
            if n_steps >= skip:
                total += math.log(nrm)
                count += 1
            n_steps += 1
    return total, count


def flow_tangent_ref(jac: np.ndarray, step: int, skip: int) -> tuple[float, int]:
    """numpy reference of `_flow_tangent_kernel`."""
    q, dim, _ = jac.shape
    total, count = 0.0, 0
    for c in range(step):
        w = np.full(dim, 1.0 / math.sqrt(dim))
        for n_steps, t in enumerate(range(c, q, step)):
            w = jac[t] @ w
            nrm = float(np.linalg.norm(w))
            if not (nrm > 0.0 and math.isfinite(nrm)):
                break
            w = w / nrm
            if n_steps >= skip:
                total += math.log(nrm)
                count += 1
    return total, count


# ---------------------------------------------------------------------------------------------------------------
# building blocks


def embed(x: np.ndarray, dim: int, lag: int) -> np.ndarray:
    """Delay vectors (x[t], x[t+lag], ..., x[t+(dim-1)lag]) as a contiguous (m, dim) array."""
    m = len(x) - (dim - 1) * lag
    if m <= 0:
        raise ValueError(f"series too short for dim={dim} lag={lag}")
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(x, (dim - 1) * lag + 1)[:, ::lag][:m])


def knn(emb: np.ndarray, queries: np.ndarray, n_lib: int, theiler: int, k: int = 1
        ) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (indices, Euclidean distances) excluding |i - j| <= theiler; -1/inf when none."""
    idx, d2 = _knn_kernel(np.ascontiguousarray(emb, np.float64), np.asarray(queries, np.int64), int(n_lib),
                          int(theiler), int(k))
    return idx, np.sqrt(d2)


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Biased autocorrelation for lags 0..max_lag via FFT (0 variance -> zeros)."""
    x = x - x.mean()
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return ac / ac[0] if ac[0] > 0 else np.zeros(max_lag + 1)


def mutual_information(x: np.ndarray, max_lag: int, nbins: int | None = None) -> np.ndarray:
    """Average mutual information by lag with equiprobable (rank) bins."""
    n = len(x)
    nbins = nbins or int(np.clip(round(math.sqrt(n / 5)), 4, 32))
    ranks = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    codes = (ranks * nbins // n).astype(np.int64)
    return _mi_kernel(codes, nbins, int(min(max_lag, n - 2)))


def mean_period(x: np.ndarray) -> float:
    """1 / power-weighted mean frequency (Rosenstein's Theiler window)."""
    x = x - x.mean()
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x))
    tot = p[1:].sum()
    if tot <= 0:
        return 1.0
    return float(1.0 / max((f[1:] * p[1:]).sum() / tot, 1e-12))


def choose_lag(x: np.ndarray, max_lag: int) -> tuple[int, str]:
    """Embedding lag and the rule that chose it (see module docstring)."""
    max_lag = max(1, min(max_lag, len(x) // 4))
    ac = autocorrelation(x, max_lag)
    if abs(ac[1]) < 1 / math.e:
        return 1, "acf(1) < 1/e: decorrelates within one step"
    mi = mutual_information(x, max_lag)
    for k in range(2, len(mi) - 1):
        if mi[k] < mi[k - 1] and mi[k] <= mi[k + 1]:
            return k, "first minimum of mutual information"
    below = np.nonzero(ac < 1 / math.e)[0]
    if below.size:
        return int(below[0]), "autocorrelation decays below 1/e (no MI minimum)"
    return max_lag, "max_lag (neither MI minimum nor acf decay found)"


def false_neighbour_fractions(x: np.ndarray, lag: int, max_dim: int, theiler: int, rtol: float, atol: float,
                              n_queries: int, stop_at: float | None = None) -> list[float]:
    """Kennel's false-nearest-neighbour fraction for dim = 1..max_dim (queries subsampled evenly).

    With `stop_at`, stops after the first dimension whose fraction is <= stop_at: `choose_dim` takes that one, and
    the higher dimensions are the expensive searches (Lorenz x at 10,000 points: 13 -> 6 ms)."""
    size = float(x.std()) or 1.0
    out: list[float] = []
    for d in range(1, max_dim + 1):
        m_next = len(x) - d * lag
        if m_next < 8:
            break
        emb = embed(x, d, lag)[:m_next]
        q = np.unique(np.linspace(0, m_next - 1, min(n_queries, m_next)).astype(np.int64))
        idx, dist = knn(emb, q, m_next, theiler, 1)
        j = idx[:, 0]
        ok = j >= 0
        if not ok.any():
            break
        qi, j, r = q[ok], j[ok], dist[ok, 0]
        extra = np.abs(x[qi + d * lag] - x[j + d * lag])
        with np.errstate(divide="ignore", invalid="ignore"):
            false = (extra > rtol * r) | (np.sqrt(r * r + extra * extra) > atol * size)
        false &= ~((r == 0) & (extra == 0))
        out.append(float(false.mean()))
        if stop_at is not None and out[-1] <= stop_at:
            break
    return out


def choose_dim(x: np.ndarray, lag: int, cfg: AttractorConfig, theiler: int) -> tuple[int, list[float], bool]:
    """Smallest dimension with few false neighbours; (dim, fractions, found)."""
    fr = false_neighbour_fractions(x, lag, cfg.max_dim, theiler, cfg.fnn_rtol, cfg.fnn_atol, cfg.fnn_queries,
                                   cfg.fnn_threshold)
    for d, f in enumerate(fr, start=1):
        if f <= cfg.fnn_threshold:
            return max(d, cfg.min_dim), fr, True
    return max(cfg.min_dim, min(cfg.max_dim, len(fr) or cfg.min_dim)), fr, False


def _trim_run(s: np.ndarray, a: int, b: int, sigmas: float) -> tuple[int, int]:
    """Drop end windows of the run s[a..b] whose slope is an outlier against the run's own scatter.

    Why: a fixed relative tolerance cannot see the first step of the bend into saturation when the curve is
    nearly noise-free (a discrete map bends within one or two steps: ln 2, ln 2, ..., 0.96 ln 2 at the logistic
    map), while on noisy flow curves it is the tolerance that matters. Outlier = more than `sigmas` robust
    standard deviations (1.4826 MAD) from the run's median slope, with a floor of 0.1% of the median.
    """
    while b - a >= 2:
        run = s[a:b + 1]
        med = float(np.median(run))
        lim = max(sigmas * 1.4826 * float(np.median(np.abs(run - med))), 1e-3 * abs(med))
        end, start = abs(s[b] - med), abs(s[a] - med)
        if end > lim and end >= start:
            b -= 1
        elif start > lim:
            a += 1
        else:
            break
    return a, b


def fit_divergence(y: np.ndarray, upper_fraction: float = 0.8, tolerance: float = 0.2, trim_sigmas: float = 3.0,
                   span: bool = False) -> tuple[float, int, int]:
    """Slope of the linear region of a divergence curve y(k) and that region [a, b] (see module docstring).

    `span=True` fits the whole span from the end of the steep start to the upper point instead of searching for
    the longest run of agreeing local slopes. Why: on coarse curves (flows, short series) the local slopes scatter
    by 25-30% from window to window, so the "longest stable run" is mostly picked by noise and is short; the full
    span averages that noise (Lorenz x, 100 windows of 5,000 points: 67% -> 76% within 10%, sd 10.1% -> 8.9%).
    """
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 3:
        return 0.0, 0, max(0, len(y) - 1)
    y0 = y[0]
    rise = float(np.max(y) - y0)
    if not rise > 0:
        k_hi = len(y) - 1
        return float(np.polyfit(np.arange(k_hi + 1), y, 1)[0]), 0, k_hi
    k_hi = max(int(np.argmax(y >= y0 + upper_fraction * rise)), 2)
    w = max(1, int(round(k_hi / 8)))
    nloc = k_hi - w + 1
    # local least-squares slopes over [k, k + w] for every k, from cumulative sums
    ks = np.arange(len(y), dtype=np.float64)
    cy, cky = np.concatenate([[0.0], np.cumsum(y)]), np.concatenate([[0.0], np.cumsum(ks * y)])
    ck, ckk = np.concatenate([[0.0], np.cumsum(ks)]), np.concatenate([[0.0], np.cumsum(ks * ks)])
    a = np.arange(nloc)
    b = a + w + 1
    npts = w + 1
    sy, sky, sk, skk = cy[b] - cy[a], cky[b] - cky[a], ck[b] - ck[a], ckk[b] - ckk[a]
    s = (npts * sky - sk * sy) / (npts * skk - sk * sk)
    # steep start: while the local slope is still above the mean slope up to k_hi (the chord) by more than half the
    # tolerance, the curve is in its initial transient (neighbours chosen as nearest are closer than their
    # trajectories typically are and separate fast at first); the linear region is searched after it
    steep = np.nonzero(s <= (1 + tolerance / 2) * (y[k_hi] - y0) / k_hi)[0]
    t0 = int(steep[0]) if steep.size and steep[0] < nloc - 2 else 0
    if span:
        lo = min(t0, k_hi - 2)
        return float(np.polyfit(ks[lo:k_hi + 1], y[lo:k_hi + 1], 1)[0]), lo, k_hi
    best_len, best_a, best_b = 0, t0, nloc - 1
    for ref in s[t0:][s[t0:] > 0]:
        ok = np.abs(s - ref) <= tolerance * ref
        ok[:t0] = False
        # longest run of True
        edges = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        lens = ends - starts
        t = int(np.argmax(lens))
        if lens[t] > best_len:
            best_len, best_a, best_b = int(lens[t]), int(starts[t]), int(ends[t] - 1)
    if best_len > 2:
        best_a, best_b = _trim_run(s, best_a, best_b, trim_sigmas)
    lo, hi = best_a, min(best_b + w, len(y) - 1)
    if best_len == 0:
        lo, hi = 0, k_hi
    slope = float(np.polyfit(ks[lo:hi + 1], y[lo:hi + 1], 1)[0])
    return slope, lo, hi


@dataclass
class Divergence:
    """Result of the Rosenstein step: exponent per step, curve, fit region, settings."""

    lyapunov: float
    curve: np.ndarray
    fit_start: int
    fit_end: int
    theiler: int
    horizon: int
    references: int
    depth: float  # log(attractor size) - y(0): how close neighbours start, in nats
    growth: float  # (max y - y(0)) / depth: ~0 recurrent, ~1 diverges to the attractor size
    exact_repeats: float = 0.0  # fraction of reference points whose nearest neighbour is an exact repeat


def lyapunov_rosenstein(emb: np.ndarray, theiler: int, horizon: int | None = None, neighbours: int = 2,
                        max_references: int = 5000, upper_fraction: float = 0.8, tolerance: float = 0.2,
                        period: float | None = None, recurrence_growth: float = 0.3, trim_sigmas: float = 3.0,
                        scale_fraction: float = 0.01, refit: bool = True, stride: int = 1) -> Divergence:
    """Largest Lyapunov exponent per step of an embedded trajectory (Rosenstein 1993, see module docstring).

    `refit=False` skips the constant-population second pass (about half the time; enough for a plausibility check).
    `stride`: references every `stride` points. Why: on a densely sampled flow, consecutive references follow nearly
    the same pair of trajectories, so every point costs time without adding information (Lorenz x at 5,000 points:
    the exponent moves by ~0.1% between 4,968 and 1,500 references); `analyze` uses a quarter of the lag.

    `horizon` defaults to 4 mean periods (at least 30 steps) and is doubled (up to a third of the series) while the
    curve is still rising at its end, so flows reach saturation without a hand-set trajectory length.
    """
    emb = np.ascontiguousarray(emb, np.float64)
    m = emb.shape[0]
    refs = np.arange(0, m, max(1, int(stride)), dtype=np.int64)
    if len(refs) > max_references:
        refs = np.unique(np.linspace(0, m - 1, max_references).astype(np.int64))
    nn, nd = knn(emb, refs, m, theiler, neighbours)
    exact = float(np.mean(nd[:, 0] == 0.0)) if len(refs) else 0.0
    limit = max(3, m // 3)
    if horizon is None:
        horizon = int(min(limit, max(30, 4 * (period or 1.0))))
        auto = True
    else:
        horizon = int(min(horizon, m - 2))
        auto = False
    while True:
        sums, counts = _divergence_kernel(emb, refs, nn, horizon)
        valid = counts > 0
        last = int(np.nonzero(valid)[0].max()) if valid.any() else 0
        y = sums[: last + 1] / np.maximum(counts[: last + 1], 1)
        if not auto or horizon >= limit or len(y) < 8:
            break
        tail = y[int(len(y) * 0.8):]
        rise = y.max() - y[0]
        if rise <= 0 or tail[-1] - tail[0] < 0.1 * rise:
            break
        horizon = min(limit, 2 * horizon)
    if len(y) == 0 or exact >= 0.5:
        # most neighbours repeat exactly (a discrete periodic orbit): nothing diverges
        return Divergence(0.0, y, 0, max(0, len(y) - 1), theiler, horizon, len(refs), math.inf, 0.0, exact)
    size = math.log(float(np.sqrt(2 * emb.var(0).sum())) or 1.0)
    depth = size - float(y[0])
    growth = float((y.max() - y[0]) / depth) if depth > 1e-9 else 1.0
    if depth > 1.0 and growth < recurrence_growth:
        # recurrent: close trajectories stay close, there is no divergence region; the trend over the whole
        # horizon is the estimate (~0 for cycles and tori)
        slope, a, b = float(np.polyfit(np.arange(len(y)), y, 1)[0]), 0, len(y) - 1
    else:
        yy = y
        capped = scale_fraction > 0 and y[0] <= size + math.log(scale_fraction / 10)
        if capped:
            # linearisation holds while separations are small against the attractor: fit only the steps whose mean
            # separation is below scale_fraction of its size, when that leaves at least 4 points. Only for curves
            # that start well below the cap (maps: ~1e-4 of the size); a flow starting near it (a Lorenz window at
            # 0.95%) would keep just its first, transient steps
            above = np.nonzero(y > size + math.log(scale_fraction))[0]
            k_cap = int(above[0]) - 1 if above.size else len(y) - 1
            if 3 <= k_cap < len(y) - 1:
                yy = y[: k_cap + 1]
        # an uncapped curve (neighbours start within 10x the cap: a flow or a short series) is too coarse for the
        # run search; fit its whole span after the steep start (see `fit_divergence`)
        slope, a, b = fit_divergence(yy, upper_fraction if yy is y else 1.0, tolerance, trim_sigmas,
                                     span=not capped)
        if refit and 0 < b and m - b > 2 * theiler + 8:
            # constant population: refit on pairs that all live through the fit region (references and neighbours
            # < m - b), so y(k) averages the same pairs at every k instead of losing the ones that run off the end
            r2 = refs[refs <= m - 1 - b]
            nn2, _ = knn(emb, r2, m - b, theiler, neighbours)
            s2, c2 = _divergence_kernel(emb, r2, nn2, b)
            if np.all(c2[a:b + 1] > 0):
                y2 = s2 / c2
                slope = float(np.polyfit(np.arange(a, b + 1), y2[a:b + 1], 1)[0])
    return Divergence(slope, y, a, b, theiler, horizon, len(refs), depth, growth, exact)


@dataclass
class LocalExponent:
    """Result of the local-map step: exponent per step and how well the local maps predict (out of sample)."""

    lyapunov: float
    prediction_error: float  # RMS one-step error of the local fits / RMS error of "no change" (persistence)
    dim: int
    lag: int
    neighbours: int
    steps: int  # tangent-space steps counted
    ridge: float = 1e-10  # relative ridge of the local fits (`lyapunov_jacobian` chooses it by prediction error)


def lyapunov_local(x: np.ndarray, lag: int, dim: int, theiler: int, degree: int = 2,
                   neighbours: int | None = None, screen: float | None = None) -> LocalExponent:
    """Largest Lyapunov exponent per step from local polynomial maps (Eckmann & Ruelle 1985; Bryant, Brown &
    Abarbanel 1990 for the degree-2 fits) and the product of their Jacobians along the trajectory.

    Why: Rosenstein's slope measures the divergence of finite separations, which saturates within a few steps on a
    map and carries the fold error of its neighbours; when the dynamics is a smooth deterministic map of the delay
    vector, the derivatives themselves give the exponent as a time average over every point (for a 1-D map the
    mean log |slope|). Each point's map is fitted from its `neighbours` (default coefficients + 2, at least 6)
    outside the Theiler window, so the fitted value at the point is an out-of-sample prediction:
    `prediction_error` says how far the local maps can be trusted. With `screen`, a subsample is checked first and
    the attempt abandoned (NaN) when its error already exceeds `screen`.
    """
    x = np.ascontiguousarray(x, np.float64)
    p = 1 + dim + (dim * (dim + 1) // 2 if degree >= 2 else 0)
    k = int(neighbours or max(6, p + 2))
    q = len(x) - dim * lag
    if q < 4 * k or q <= 2 * theiler + k:
        return LocalExponent(math.nan, math.inf, dim, lag, k, 0)
    emb = embed(x, dim, lag)
    t = np.arange(q, dtype=np.int64)
    target = x[t + dim * lag]
    base = float(np.sqrt(np.mean((target - x[t + (dim - 1) * lag]) ** 2)))
    if base == 0.0:
        return LocalExponent(math.nan, math.inf, dim, lag, k, 0)
    if screen is not None and q >= 16 * 64:
        # cheap rejection: the out-of-sample error on every 16th point (the Jacobian product needs them all)
        sub = t[::16]
        nn, _ = knn(emb, sub, q, theiler, k)
        _, pred = _local_fit_kernel(x, int(lag), int(dim), sub, nn, int(degree))
        err = float(np.sqrt(np.mean((target[sub] - pred) ** 2))) / base if np.isfinite(pred).all() else math.inf
        if not err <= screen:
            return LocalExponent(math.nan, err, dim, lag, k, 0)
    nn, _ = knn(emb, t, q, theiler, k)
    grad, pred = _local_fit_kernel(x, int(lag), int(dim), t, nn, int(degree))
    if not np.isfinite(pred).all():
        return LocalExponent(math.nan, math.inf, dim, lag, k, 0)
    err = float(np.sqrt(np.mean((target - pred) ** 2))) / base
    total, steps = _tangent_kernel(grad, int(lag), 0 if dim == 1 else 10)
    lam = total / (steps * lag) if steps else math.nan
    return LocalExponent(float(lam), err, dim, lag, k, int(steps))


JACOBIAN_RIDGES = tuple(10.0 ** (-e / 2) for e in range(2, 17))  # 1e-1 .. 1e-8, half a decade apart


def lyapunov_jacobian(x: np.ndarray, lag: int, dim: int, theiler: int, step: int | None = None,
                      neighbours: int = 16, ridges: tuple[float, ...] | None = None, skip: int | None = None
                      ) -> LocalExponent:
    """Largest exponent per sample step from local linear maps `step` samples ahead (Sano & Sawada 1985, Eckmann &
    Ruelle 1985), for finely sampled flows.

    Each delay vector's map to the one `step` samples later (default: one lag) is fitted from its `neighbours`
    nearest points outside the Theiler window; the tangent vector is carried through the product of the fitted
    Jacobians along `step` interleaved chains, renormalised every step; its first 2*lag/step steps (alignment) are
    not counted. **Ridge chosen by out-of-sample prediction**: the fits are ridge-regularised (relative ridge,
    slopes shrunk towards 0, i.e. the Jacobian towards the identity) and the ridge is the one of `ridges` (default
    1e-8 .. 1e-1, half-decade steps) whose fitted v_{t+step} predicts best; the query point is never among its own
    neighbours, so that error is out of sample (`_jacobian_cv_kernel`, on at most 2,000 evenly spread points).
    Why: a flow's attractor is locally thin
    (Lorenz: ~2-D in a 3-D embedding), so the slope across the sheet is fitted from almost no spread and the
    unregularised fit (1e-10) puts noise into every Jacobian; the noise in a product of matrices inflates its
    growth (Lorenz x, 2,000 points, lag/4 ahead: +23% mean, sd 23%). `prediction_error`: RMS error of the fitted
    v_{t+step} over the RMS displacement |v_{t+step} - v_t| (persistence), at the chosen ridge; `ridge` records it.
    Why one lag ahead (was a quarter lag): fewer, larger steps put less estimation noise into the product per unit
    time; measured on Lorenz x tuning windows (seed 1), 2,000 points, with the chosen ridge: a quarter lag +17%
    mean / sd 17%, half a lag +12% / 14%, one lag +6% / 13%, two lags +24% / 16% (the map becomes too nonlinear
    for a linear fit from 16 neighbours).
    """
    x = np.ascontiguousarray(x, np.float64)
    step = max(1, int(step if step is not None else lag))
    k = int(neighbours)
    q = len(x) - (dim - 1) * lag - step
    if dim < 1 or q < 4 * k or q <= 2 * theiler + k:
        return LocalExponent(math.nan, math.inf, dim, lag, k, 0)
    emb = embed(x, dim, lag)
    t = np.arange(q, dtype=np.int64)
    nn, _ = knn(emb, t, q, theiler, k)
    grid = np.asarray(ridges if ridges is not None else JACOBIAN_RIDGES, np.float64)
    cv = np.unique(np.linspace(0, q - 1, min(q, 2000)).astype(np.int64))  # at most 2,000 checks (cost; 5k: 2x less)
    sse, fails = _jacobian_cv_kernel(x, int(lag), int(dim), step, t[cv], nn[cv], grid)
    usable = np.nonzero((fails == 0) & np.isfinite(sse))[0]
    if usable.size == 0:
        return LocalExponent(math.nan, math.inf, dim, lag, k, 0)
    ridge = float(grid[usable[np.argmin(sse[usable])]])  # first (largest) ridge among equal errors
    jac, pred = _jacobian_fit_kernel(x, int(lag), int(dim), step, t, nn, ridge)
    ok = np.isfinite(pred).all(1)
    if not ok.all():
        return LocalExponent(math.nan, math.inf, dim, lag, k, 0, ridge)
    target = emb[step:step + q]
    base = float(np.sqrt(np.mean((target - emb[:q]) ** 2)))
    if base == 0.0:
        return LocalExponent(math.nan, math.inf, dim, lag, k, 0, ridge)
    err = float(np.sqrt(np.mean((target - pred) ** 2))) / base
    total, steps = _flow_tangent_kernel(jac, step, max(1, 2 * lag // step) if skip is None else int(skip))
    lam = total / (steps * step) if steps else math.nan
    return LocalExponent(float(lam), err, dim, lag, k, int(steps), ridge)


def refine_lyapunov(x: np.ndarray, lag: int, theiler: int, rosenstein: float | Callable[[], float], max_dim: int,
                    cfg: AttractorConfig = DEFAULT_CONFIG) -> tuple[LocalExponent | None, list[LocalExponent]]:
    """The local-map exponent when the data vouch for it, else None; also every attempt made.

    Why a data-driven switch: the local maps beat Rosenstein's slope only where they actually describe the
    dynamics. Dimensions 1..max_dim are tried in order; the first whose local maps predict the next delay
    coordinate out of sample within `local_max_error` of the persistence error (noise-free maps: < 1e-5; 0.1%
    observation noise on the logistic map: 3e-3; 1%: 3e-2; Lorenz x through its lag of 17 steps: > 0.4), whose
    exponent is positive and within `local_agreement` of the Rosenstein slope, is used. `rosenstein` may be a
    callable, evaluated only once a candidate needs the check.
    """
    tried: list[LocalExponent] = []
    ref: float | None = None
    for d in range(1, max_dim + 1):
        loc = lyapunov_local(x, lag, d, theiler, screen=2 * cfg.local_max_error)
        tried.append(loc)
        if not (loc.prediction_error <= cfg.local_max_error and loc.lyapunov > 0):
            continue
        if ref is None:
            ref = float(rosenstein() if callable(rosenstein) else rosenstein)
        if ref > 0 and abs(loc.lyapunov / ref - 1) <= cfg.local_agreement:
            return loc, tried
    return None, tried


def lyapunov_exponent(x: np.ndarray, lag: int = 1, dim: int = 2, theiler: int = 10,
                      cfg: AttractorConfig = DEFAULT_CONFIG) -> tuple[float, str]:
    """Largest exponent per step of a scalar series at a given embedding, as `analyze` reports it for chaos.

    The local-map exponent when `refine_lyapunov` accepts one (local dimension <= dim), else Rosenstein's slope on
    the (dim, lag) embedding; returns (exponent, "local" or "rosenstein"). The agreement check uses the slope
    without its constant-population refit: a 25% plausibility check does not need it, and it halves the cost.
    """
    x = np.asarray(x, np.float64)
    emb = embed(x, dim, lag)

    def ros(refit: bool) -> float:
        return lyapunov_rosenstein(emb, theiler, neighbours=cfg.neighbours, max_references=cfg.max_references,
                                   upper_fraction=cfg.fit_upper_fraction, tolerance=cfg.fit_slope_tolerance,
                                   trim_sigmas=cfg.fit_trim_sigmas, scale_fraction=cfg.fit_scale_fraction,
                                   refit=refit).lyapunov

    loc, _ = refine_lyapunov(x, lag, theiler, lambda: ros(False), min(cfg.local_max_dim, dim), cfg)
    return (loc.lyapunov, "local") if loc is not None else (ros(True), "rosenstein")


def iaaft(x: np.ndarray, rng: np.random.Generator, iterations: int = 8) -> np.ndarray:
    """Iterated amplitude-adjusted Fourier-transform surrogate (Schreiber & Schmitz 1996)."""
    amp = np.abs(np.fft.rfft(x))
    sorted_x = np.sort(x)
    s = rng.permutation(x)
    for _ in range(iterations):
        f = np.fft.rfft(s)
        s = np.fft.irfft(amp * np.exp(1j * np.angle(f)), len(x))
        out = np.empty_like(s)
        out[np.argsort(s)] = sorted_x  # rank order by one sort and a scatter (same as sorted_x[ranks], half the cost)
        s = out
    return s


def prediction_error(x: np.ndarray, dim: int, lag: int, horizon: int, theiler: int, n_queries: int,
                     k: int = 4) -> float:
    """Normalised RMS error of the k-nearest-neighbour ("analogue") prediction `horizon` steps ahead."""
    emb = embed(x, dim, lag)
    m = emb.shape[0] - horizon
    if m < 8:
        return 1.0
    q = np.unique(np.linspace(0, m - 1, min(n_queries, m)).astype(np.int64))
    idx, _ = knn(emb, q, m, theiler, k)
    off = (dim - 1) * lag + horizon
    fut = np.where(idx >= 0, x[np.clip(idx, 0, None) + off], np.nan)
    pred = np.nanmean(fut, axis=1)
    err = pred - x[q + off]
    sd = float(x.std()) or 1.0
    ok = np.isfinite(err)
    return float(np.sqrt(np.mean(err[ok] ** 2)) / sd) if ok.any() else 1.0


def line_spectrum(x: np.ndarray, max_lines: int = 16) -> tuple[float, list[float]]:
    """Fraction of variance in narrow spectral lines (above the local background) and their frequencies."""
    n = len(x)
    w = np.hanning(n)
    p = np.abs(np.fft.rfft((x - x.mean()) * w)) ** 2
    p[0] = 0.0
    total = p.sum()
    if total <= 0 or n < 16:
        return 0.0, []
    half = 2
    bg_half = 12
    peaks = np.nonzero((p[1:-1] >= p[:-2]) & (p[1:-1] > p[2:]))[0] + 1
    peaks = peaks[np.argsort(p[peaks])[::-1]]
    taken = np.zeros(len(p), bool)
    line_power = 0.0
    freqs: list[float] = []
    for pk in peaks[: 4 * max_lines]:
        if len(freqs) >= max_lines or taken[pk]:
            continue
        lo, hi = max(1, pk - half), min(len(p), pk + half + 1)
        band = p[lo:hi].sum()
        blo, bhi = max(1, pk - bg_half), min(len(p), pk + bg_half + 1)
        neigh = np.concatenate([p[blo:lo], p[hi:bhi]])
        bg = float(np.median(neigh)) * (hi - lo) if neigh.size else 0.0
        excess = band - bg
        if excess <= 0.01 * total or band < 8 * bg:
            continue
        taken[lo:hi] = True
        line_power += excess
        # parabolic interpolation on log power for a sub-bin frequency
        if 1 <= pk < len(p) - 1 and p[pk - 1] > 0 and p[pk + 1] > 0:
            a_, b_, c_ = np.log(p[pk - 1]), np.log(p[pk]), np.log(p[pk + 1])
            den = a_ - 2 * b_ + c_
            delta = 0.5 * (a_ - c_) / den if den != 0 else 0.0
        else:
            delta = 0.0
        freqs.append(float((pk + np.clip(delta, -0.5, 0.5)) / n))
    return float(min(1.0, line_power / total)), freqs


def remove_lines(x: np.ndarray, freqs: list[float], half: int = 3) -> np.ndarray:
    """`x` with its narrow spectral lines (at `freqs`, cycles per sample) cut out of the spectrum."""
    n = len(x)
    f = np.fft.rfft(x - x.mean())
    for fr in freqs:
        k = int(round(fr * n))
        f[max(1, k - half): k + half + 1] = 0.0
    return np.fft.irfft(f, n)


def surrogate_errors(xs: np.ndarray, dim: int, lag: int, horizon: int, theiler: int, cfg: AttractorConfig
                     ) -> tuple[float, np.ndarray]:
    """Analogue prediction error of `xs` and of up to `cfg.surrogates` IAAFT surrogates of it (same seed every call).

    Sequential: after `surrogate_early_after` surrogates, when the series predicts better than every one of them by
    at least `surrogate_early_z` standard deviations of theirs, the rest cannot change the verdict (deterministic,
    confidence 1 from z >= 6), so they are not computed; a clean map or flow needs 5 instead of 19 (Lorenz x,
    10,000 points: ~75 -> ~20 ms). Undecided series (noise, noisy cycles) always get all of them."""
    e0 = prediction_error(xs, dim, lag, horizon, theiler, cfg.prediction_queries)
    rng = np.random.default_rng(cfg.seed)
    es: list[float] = []
    for _ in range(cfg.surrogates):
        es.append(prediction_error(iaaft(xs, rng), dim, lag, horizon, theiler, cfg.prediction_queries))
        if len(es) == cfg.surrogate_early_after < cfg.surrogates:
            a = np.asarray(es)
            if e0 < a.min() and (a.mean() - e0) >= cfg.surrogate_early_z * (float(a.std()) or 1e-12):
                break
    return e0, np.asarray(es)


def harmonic(freqs: list[float], n: int, max_harmonic: int = 16) -> bool:
    """True when every line is (up to aliasing) one of the first `max_harmonic` multiples of the lowest one.

    The tolerance is half a bin plus the interpolation error of the fundamental times k; harmonics are bounded so
    that an incommensurate line is not "explained" by some high aliased multiple.
    """
    if len(freqs) <= 1:
        return True
    f0 = min(freqs)
    for f in freqs:
        ok = False
        for k in range(1, max_harmonic + 1):
            kf = (k * f0) % 1.0
            alias = min(kf, 1.0 - kf)
            if abs(alias - f) <= (0.5 + 0.05 * k) / n:
                ok = True
                break
        if not ok:
            return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# the result and the entry point


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


@dataclass
class AttractorResult:
    """What `analyze` found. `lyapunov` is per sample step (divide by dt for per time unit)."""

    lyapunov: float
    kind: str
    confidence: float
    lag: int
    dim: int
    n: int
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (non-finite numbers become null)."""
        return _clean(asdict(self))


def _as_series(series: Any) -> np.ndarray:
    try:
        if np.iscomplexobj(series):
            raise ValueError("got complex values")
        a = np.asarray(series, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"expected a series of real numbers: {e}") from None
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D series or a 2-D array (one row per time step), got shape {a.shape}")
    if a.shape[0] < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} points, got {a.shape[0]}")
    if not np.all(np.isfinite(a)):
        raise ValueError("series contains NaN or infinite values")
    big = float(np.abs(a).max())
    if big > 1e150:  # squares and differences would overflow: rescale by a power of two (exact; every result here
        a = np.ldexp(a, -math.frexp(big)[1])  # is scale-free), leaving ordinary series untouched
    return a


def _fixed_point(a: np.ndarray) -> tuple[bool, float, str]:
    scale = float(np.abs(a).max()) + 1e-300
    spread = float(np.ptp(a, axis=0).max())
    if spread <= 1e-12 * max(scale, 1.0):
        return True, 1.0, "no variation: constant series"
    tail = a[-max(8, len(a) // 4):]
    tail_spread = float(np.ptp(tail, axis=0).max())
    if tail_spread <= 1e-6 * spread:
        return True, 0.9, "the last quarter has converged to a constant (transient decays to a fixed point)"
    return False, 0.0, ""


def analyze(series: Any, *, lag: int | None = None, dim: int | None = None, theiler: int | None = None,
            config: AttractorConfig | None = None) -> AttractorResult:
    """Embed, measure the largest Lyapunov exponent and classify the attractor of `series`.

    `series`: 1-D array, or 2-D with one row per time step (columns are standardised and used directly as the
    state vector; `lag` is then 1 and `dim` the number of columns). Raises ValueError on unusable input.
    """
    cfg = config or DEFAULT_CONFIG
    a = _as_series(series)
    n = a.shape[0]
    reasons: list[str] = []
    ev: dict[str, Any] = {}
    is_fixed, conf, why = _fixed_point(a)
    if is_fixed:
        return AttractorResult(0.0, "fixed_point", conf, lag or 1, dim or (a.shape[1] if a.ndim == 2 else 1), n,
                               [why, "exponent not measurable: reported as 0"], {"std": float(a.std())})

    # scalar view for the lag, the spectrum and the surrogate test: the series, or the first principal component
    if a.ndim == 2:
        z = (a - a.mean(0)) / np.where(a.std(0) > 0, a.std(0), 1.0)
        _, _, vt = np.linalg.svd(z[: min(n, 4096)], full_matrices=False)
        x = z @ vt[0]
    else:
        x = (a - a.mean()) / a.std()
    period = mean_period(x)
    ev["mean_period"] = period

    if a.ndim == 2:
        lag_used, dim_used = 1, a.shape[1]
        emb = np.ascontiguousarray(z)
        reasons.append("2-D input: standardised rows used as state vectors")
        fnn: list[float] = []
        # the scalar view is embedded as a 1-D series would be: a finely sampled flow given as its state (Lorenz
        # x, y, z at dt=0.01) is smooth over one sample, so a one-step test at lag 1 cannot tell it from its
        # surrogates (10 of 30 Lorenz state windows of 5,000 points were called stochastic). Only for a state that moves by less than a quarter of its spread per step (Lorenz
        # at dt=0.01: 0.08; maps and noise: 1.4-1.6): a map's scalar view may show a long "lag" (Henon (x, y):
        # 17, from a mutual information without structure), and maps one lag ahead along it are meaningless
        step_ratio = float(np.sqrt((np.diff(z, axis=0) ** 2).sum(1).mean() / max((z**2).sum(1).mean(), 1e-300)))
        ev["state_step_ratio"] = step_ratio
        x_lag, x_dim = 1, 2
        if step_ratio < 0.25:
            x_lag = choose_lag(x, cfg.max_lag)[0]
            x_dim = choose_dim(x, x_lag, cfg, _theiler(theiler, period, x_lag, n, cfg))[0]
            ev.update(scalar_lag=x_lag, scalar_dim=x_dim)
        th_x = _theiler(theiler, period, x_lag * max(1, x_dim - 1), n, cfg)
    else:
        if lag is None:
            lag_used, lag_why = choose_lag(x, cfg.max_lag)
        else:
            lag_used, lag_why = int(lag), "given"
        if lag_used < 1:
            raise ValueError("lag must be >= 1")
        ev["lag_rule"] = lag_why
        th_fnn = _theiler(theiler, period, lag_used, n, cfg)
        if dim is None:
            dim_used, fnn, found = choose_dim(x, lag_used, cfg, th_fnn)
            ev["fnn_fractions"] = fnn
            if not found:
                reasons.append(f"false neighbours stay above {cfg.fnn_threshold:.0%} up to dim {len(fnn)} "
                               "(typical of noise)")
        else:
            dim_used, fnn = int(dim), []
        if dim_used < 1:
            raise ValueError("dim must be >= 1")
        if n - (dim_used - 1) * lag_used < MIN_POINTS:
            dim_used = max(1, min(dim_used, (n - MIN_POINTS) // lag_used + 1))
        emb = embed(x, dim_used, lag_used)

    th = _theiler(theiler, period, lag_used * max(1, dim_used - 1) if a.ndim == 1 else 1, emb.shape[0], cfg)
    div = lyapunov_rosenstein(emb, th, None, cfg.neighbours, cfg.max_references, cfg.fit_upper_fraction,
                              cfg.fit_slope_tolerance, period, cfg.recurrence_growth, cfg.fit_trim_sigmas,
                              cfg.fit_scale_fraction, stride=max(1, lag_used // 4))
    lam = div.lyapunov
    ev.update(theiler=div.theiler, horizon=div.horizon, references=div.references,
              fit_range=[div.fit_start, div.fit_end], depth=div.depth, growth=div.growth,
              lyapunov_per_period=lam * period)

    lines, freqs = line_spectrum(x)
    ev["line_fraction"] = lines
    ev["line_frequencies"] = freqs[:8]
    size_factor = min(1.0, math.sqrt(n / 500.0))
    recurrent = div.depth > 1.0 and div.growth < cfg.recurrence_growth
    ev["exact_repeats"] = div.exact_repeats
    if recurrent or lines >= cfg.line_fraction:
        harm = harmonic(freqs, n) if freqs else True
        kind = "periodic" if harm else "quasi_periodic"
        if div.exact_repeats >= 0.5:
            reasons.append(f"exact repeats: {div.exact_repeats:.0%} of states recur exactly (discrete cycle)")
        elif recurrent:
            reasons.append(f"recurrent: neighbours stay close (growth {div.growth:.2f} of depth {div.depth:.1f} nats)")
        if lines >= cfg.line_fraction:
            reasons.append(f"line spectrum: {lines:.0%} of the variance in {len(freqs)} narrow lines")
        reasons.append("lines are harmonics of one frequency" if harm
                       else "lines are not harmonics of one frequency (incommensurate)")
        c_rec = float(np.clip(1 - div.growth / cfg.recurrence_growth, 0, 1)) if recurrent else 0.0
        c_line = float(np.clip((lines - 0.5) / (cfg.line_fraction - 0.5), 0, 1))
        conf = max(c_rec, c_line)
        if len(freqs) == 0 and kind == "periodic":
            conf *= 0.8
        return AttractorResult(lam, kind, round(conf * size_factor, 3), lag_used, dim_used, n, reasons, ev)

    # chaos or noise: surrogate-data test on the analogue prediction error
    ns = min(n, cfg.surrogate_points)
    xs = x[:ns]
    th_s = min(th, max(1, ns // 10))
    # 1-D: the embedding chosen above. 2-D: one step at lag 1 in two dimensions (maps given as their state), and,
    # when the scalar view's own lag is longer (a finely sampled flow), also its lag and dimension; either passing
    # is enough (two tests at p <= 1/(S+1) each: at most twice the false-alarm rate of one)
    tests = ([(lag_used, min(dim_used, 4))] if a.ndim == 1
             else [(1, 2)] + ([(x_lag, min(x_dim, 4))] if x_lag > 1 else []))
    best: tuple[float, float, np.ndarray, int, int] | None = None
    for s_lag, s_dim in tests:
        e0, es = surrogate_errors(xs, s_dim, s_lag, max(1, s_lag), th_s, cfg)
        z_t = float((es.mean() - e0) / (float(es.std()) or 1e-12))
        cand = (z_t if e0 < es.min() else -math.inf, e0, es, s_lag, s_dim)
        if best is None or cand[0] > best[0]:
            best = cand
    assert best is not None
    _, e0, es, s_lag, s_dim = best
    h = max(1, s_lag)
    sd = float(es.std()) or 1e-12
    zscore = float((es.mean() - e0) / sd)
    rank_ok = bool(e0 < es.min())
    if a.ndim == 2:
        ev["surrogate_embedding"] = [s_lag, s_dim]
    ev.update(prediction_error=e0, surrogate_error_mean=float(es.mean()), surrogate_error_min=float(es.min()),
              surrogate_z=zscore, surrogates=len(es))
    deterministic = rank_ok and zscore >= cfg.surrogate_z
    cycle_only = False
    if deterministic and lines >= cfg.residual_line_fraction and freqs and a.ndim == 1:
        # a cycle buried in noise also predicts better than its surrogates, and the noise gives a positive
        # exponent: test again with the lines cut out of the spectrum; chaos stays deterministic there
        r0, rs = surrogate_errors(remove_lines(xs, freqs), s_dim, s_lag, h, th_s, cfg)
        rz = float((rs.mean() - r0) / (float(rs.std()) or 1e-12))
        ev["residual_surrogate_z"] = rz
        cycle_only = not (r0 < rs.min() and rz >= cfg.surrogate_z)
    if deterministic and cycle_only:
        reasons.append(f"deterministic (z={zscore:.1f}), but only through its spectral lines ({lines:.0%} of the "
                       f"variance): without them it is indistinguishable from noise (z={ev['residual_surrogate_z']:.1f});"
                       f" a noisy cycle, its positive exponent reflects the noise")
        harm = harmonic(freqs, n)
        kind = "periodic" if harm else "quasi_periodic"
        return AttractorResult(lam, kind, round(0.5 * size_factor, 3), lag_used, dim_used, n, reasons, ev)
    if deterministic and lam * period > cfg.chaos_per_period:
        reasons.append(f"deterministic: predicts better than all {len(es)} IAAFT surrogates tried "
                       f"(error {e0:.3f} vs {es.mean():.3f}, z={zscore:.1f})")
        reasons.append(f"positive exponent: {lam:.4g}/step ({lam * period:.2f} per mean period)")
        conf = float(np.clip((zscore - cfg.surrogate_z) / 6 + 0.5, 0, 1))
        conf *= float(np.clip(lam * period / (3 * cfg.chaos_per_period), 0, 1))
        loc = None
        if a.ndim == 1:
            # local quadratic maps one lag ahead suit maps and coarsely sampled flows; a finely sampled flow (lag of
            # 4+ samples) is strongly nonlinear over a lag (Lorenz x: > 40% of the persistence error, never
            # accepted, ~20 ms at 10k points) and gets the step-ahead linear maps below instead
            loc, tried = (refine_lyapunov(x, lag_used, th, lam, min(cfg.local_max_dim, dim_used), cfg)
                          if lag_used < 4 else (None, []))
            ev["local_prediction_errors"] = [t.prediction_error for t in tried]
            if loc is not None:
                ev.update(lyapunov_rosenstein=lam, lyapunov_local=loc.lyapunov, local_dim=loc.dim)
                reasons.append(f"exponent from local quadratic maps (dim {loc.dim}): they predict one step ahead "
                               f"with {loc.prediction_error:.1e} of the persistence error; Rosenstein's slope "
                               f"{lam:.4g} agrees within {abs(loc.lyapunov / lam - 1):.1%}")
                lam = loc.lyapunov
        # a flow given as its state (2-D) gets the step-ahead maps on the scalar view's delay vectors, not on the
        # state rows. Measured on Lorenz (x, y, z) windows (30 each, random initial conditions), within 10% of
        # 0.906 at 2,000 / 5,000 points: Rosenstein's slope on the state 20 / 60% (mean -17 / -9%), these maps
        # 53 / 73%; maps on the state rows themselves depend on the neighbour count (8: 30 / 83%, 12: 37 / 43%,
        # 16: biased -10%), so they are not used
        j_lag, j_dim, j_th = (lag_used, dim_used, th) if a.ndim == 1 else (x_lag, x_dim, th_x)
        if loc is None and j_lag >= 4:
            jd = min(j_dim, cfg.local_max_dim)
            jac = lyapunov_jacobian(x[-cfg.jacobian_max_points:], j_lag, jd, j_th, neighbours=cfg.jacobian_neighbours)
            ev["jacobian_prediction_error"] = jac.prediction_error
            if jac.prediction_error <= cfg.jacobian_max_error and jac.lyapunov > 0:
                ev.update(lyapunov_rosenstein=lam, lyapunov_jacobian=jac.lyapunov, jacobian_dim=jd,
                          jacobian_step=j_lag, jacobian_ridge=jac.ridge)
                view = "" if a.ndim == 1 else " of the scalar view's delay vectors"
                reasons.append(f"exponent from local linear maps one lag ({j_lag} samples) ahead{view} (dim {jd}, "
                               f"ridge {jac.ridge:.0e} chosen by out-of-sample prediction; they predict with "
                               f"{jac.prediction_error:.2f} of the persistence error); Rosenstein's slope "
                               f"{lam:.4g} kept as evidence")
                lam = jac.lyapunov
        ev["lyapunov_method"] = ("local" if "lyapunov_local" in ev
                                 else "jacobian" if "lyapunov_jacobian" in ev else "rosenstein")
        return AttractorResult(lam, "chaotic", round(conf * size_factor, 3), lag_used, dim_used, n, reasons, ev)
    if deterministic:
        reasons.append(f"deterministic (z={zscore:.1f}) but exponent ~0 per mean period: treated as a noisy cycle")
        harm = harmonic(freqs, n) if freqs else True
        kind = "periodic" if harm else "quasi_periodic"
        return AttractorResult(lam, kind, round(0.5 * size_factor, 3), lag_used, dim_used, n, reasons, ev)
    reasons.append(f"not distinguishable from linear noise: prediction error {e0:.3f} vs surrogates "
                   f"{es.mean():.3f} (z={zscore:.1f}); a positive exponent here reflects noise, not chaos")
    conf = float(np.clip(1 - max(zscore, 0.0) / cfg.surrogate_z, 0, 1)) * 0.5 + 0.5 * (1 - rank_ok)
    return AttractorResult(lam, "stochastic", round(conf * size_factor, 3), lag_used, dim_used, n, reasons, ev)


def _theiler(given: int | None, period: float, span: int, m: int, cfg: AttractorConfig) -> int:
    """Theiler window: given, else max(mean period, embedding span, min_theiler), at most m // 8."""
    if given is not None:
        return max(0, int(given))
    floor = cfg.min_theiler if m >= 20 * cfg.min_theiler else 1
    return int(max(1, min(max(math.ceil(period), span, floor), m // 8)))
