"""Session behaviour model: is this client's stream of requests drifting away from its own normal?

Why: a single prompt can look harmless while the client behind it is probing (bursts of small variations, rising
scores, new kinds of text). Per session we keep a bounded ring buffer of per-request feature vectors and a baseline
of that session's own behaviour, and score each request by

- **deviation**: robust z-scores of the request's features against the session baseline (EWMA of the level and
  of the absolute deviation, seeded from population priors so the first requests are judged too). Each feature
  counts in the direction that matters (a *higher* threat score, a *shorter* gap; length, entropy and novelty
  both ways). The baseline is updated slowly, and barely at all while the session looks anomalous, so an attacker
  cannot drag it along.
- **regime change**: a one-sided CUSUM over the per-request deviation, which accumulates sustained shifts that no
  single request shows and forgets isolated oddities (a long pause, one unusual question).

anomaly = 1 - (1 - w_dev * a_dev) * (1 - a_cusum), in [0, 1]. When the window has enough points the attractor of
the session's feature stream (`aimds_ray.core.attractor.analyze` on the standardised window) is reported too; it is
evidence for the audit, not part of the score (on <= a few hundred points its exponent is too noisy to gate on).

Memory per session is fixed (`window` x features floats + a `window` x `sketch_dim` novelty sketch); sessions idle
for `ttl_seconds` (on the caller's clock `t`) are evicted, and the least recently used ones beyond `max_sessions`.
`snapshot()`/`restore()` give plain dicts (and `dumps()`/`loads()` bytes) for checkpointing by an actor.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

FEATURES = ("score", "log_gap", "log_length", "entropy", "category_shift", "novelty")
N_FEATURES = len(FEATURES)
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class BehaviourConfig:
    """Knobs of the behaviour model (defaults set by hand from the feature definitions, checked on the tuning
    seeds of benchmarks/traffic_sim.py; the alarm threshold there is fixed on those seeds)."""

    window: int = 64
    max_sessions: int = 10_000
    ttl_seconds: float = 1800.0
    sketch_dim: int = 32
    # population priors (mean, scale) per feature; prior_weight = how many pseudo-requests they count for
    prior_mean: tuple[float, ...] = (0.05, 2.5, 4.0, 4.2, 0.1, 0.5)
    prior_scale: tuple[float, ...] = (0.1, 1.5, 1.0, 0.5, 0.2, 0.3)
    prior_weight: float = 4.0
    # smallest scale per feature: a perfectly steady session must not turn every tiny change into a huge z
    scale_floor: tuple[float, ...] = (0.05, 0.3, 0.3, 0.15, 0.1, 0.1)
    # +1: only increases are suspicious, -1: only decreases, 0: both
    direction: tuple[int, ...] = (1, -1, 0, 0, 1, 0)
    weights: tuple[float, ...] = (1.5, 1.0, 0.7, 0.7, 1.0, 1.0)
    z_clip: float = 6.0
    alpha: float = 0.05
    alpha_anomalous: float = 0.005
    gate: float = 2.5
    cusum_k: float = 1.0
    cusum_h: float = 6.0
    dev_scale: float = 3.0
    dev_weight: float = 0.5
    attractor_min_points: int = 48
    attractor_every: int = 16

    def __post_init__(self) -> None:
        for name in ("prior_mean", "prior_scale", "scale_floor", "direction", "weights"):
            if len(getattr(self, name)) != N_FEATURES:
                raise ValueError(f"behaviour.{name}: expected {N_FEATURES} values ({', '.join(FEATURES)})")
        if self.window < 4 or self.max_sessions < 1 or self.sketch_dim < 4:
            raise ValueError("behaviour: window >= 4, max_sessions >= 1, sketch_dim >= 4 required")
        if self.ttl_seconds <= 0 or not 0 < self.alpha <= 1 or not 0 <= self.alpha_anomalous <= 1:
            raise ValueError("behaviour: ttl_seconds > 0 and alphas in (0, 1] required")
        if self.cusum_h <= 0 or self.dev_scale <= 0:
            raise ValueError("behaviour: cusum_h and dev_scale must be > 0")


def char_entropy(text: str) -> float:
    """Shannon entropy of the characters of `text` in bits per character (0 for empty)."""
    if not text:
        return 0.0
    _, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def text_sketch(text: str, dim: int) -> np.ndarray:
    """L2-normalised hashed character-trigram counts: a small fixed-size fingerprint for novelty."""
    v = np.zeros(dim, np.float32)
    t = text.lower()
    if len(t) < 3:
        t = t + "   "
    codes = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    h = (codes[:-2] * np.uint64(1000003) ^ codes[1:-1] * np.uint64(8191) ^ codes[2:] * np.uint64(131)) % np.uint64(dim)
    np.add.at(v, h.astype(np.int64), 1.0)
    nrm = float(np.linalg.norm(v))
    return v / nrm if nrm > 0 else v


@dataclass
class BehaviourResult:
    """One observation's verdict. `drivers` are the features with the largest signed deviations."""

    session_id: str
    n: int
    anomaly: float
    deviation: float
    regime: float
    warming_up: bool
    features: dict[str, float]
    drivers: list[dict[str, float | str]] = field(default_factory=list)
    attractor: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Session:
    """Fixed-size per-session state (numpy arrays; nothing grows with the number of requests)."""

    __slots__ = ("feats", "sketches", "n", "last_t", "mean", "scale", "cat_mix", "cusum", "attractor", "last")

    def __init__(self, cfg: BehaviourConfig) -> None:
        self.feats = np.zeros((cfg.window, N_FEATURES), np.float64)
        self.sketches = np.zeros((cfg.window, cfg.sketch_dim), np.float32)
        self.n = 0
        self.last_t = math.nan
        self.mean = np.asarray(cfg.prior_mean, np.float64).copy()
        self.scale = np.asarray(cfg.prior_scale, np.float64).copy()
        self.cat_mix: dict[str, float] = {}
        self.cusum = 0.0
        self.attractor: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None  # the latest observation's verdict (anomaly, drivers), for state()

    def nbytes(self) -> int:
        return int(self.feats.nbytes + self.sketches.nbytes + self.mean.nbytes + self.scale.nbytes
                   + 64 * max(1, len(self.cat_mix)))

    def window(self, cfg: BehaviourConfig) -> np.ndarray:
        """Buffered feature rows in arrival order."""
        if self.n <= cfg.window:
            return self.feats[: self.n]
        s = self.n % cfg.window
        return np.concatenate([self.feats[s:], self.feats[:s]])


class BehaviourModel:
    """Per-session behaviour baselines and anomaly scores (bounded memory, TTL + LRU eviction)."""

    def __init__(self, config: BehaviourConfig | None = None) -> None:
        self.config = config or BehaviourConfig()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._clock = -math.inf
        self.evicted = 0

    def warm_up(self) -> float:
        """Run one attractor analysis on a throwaway model of the same config: its numba kernels load on their first
        call (about 0.16 s from the cache, seconds without one), which would otherwise fall on a real session's
        request. This model's sessions are untouched; returns the seconds it took."""
        t0 = time.perf_counter()
        scratch = BehaviourModel(self.config)
        rng = np.random.default_rng(0)
        for i in range(self.config.attractor_min_points):
            scratch.observe("warm-up", float(i), score=float(rng.uniform(0, 0.3)), length=int(rng.integers(20, 2000)),
                            entropy=float(rng.uniform(3.5, 5.0)), categories={"prompt_injection": float(rng.random())})
        return time.perf_counter() - t0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    # -- features -------------------------------------------------------------------------------------------
    def _features(self, s: _Session, t: float, score: float, text: str | None, length: int | None,
                  entropy: float | None, categories: Mapping[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        gap = t - s.last_t if math.isfinite(s.last_t) else math.nan
        length = len(text) if length is None and text is not None else (length or 0)
        if entropy is None:
            entropy = char_entropy(text) if text is not None else cfg.prior_mean[3]
        sketch = text_sketch(text, cfg.sketch_dim) if text is not None else np.zeros(cfg.sketch_dim, np.float32)
        k = min(s.n, cfg.window)
        if k and text is not None:
            novelty = 1.0 - float(np.max(s.sketches[:k] @ sketch))
        else:
            novelty = cfg.prior_mean[5]
        shift = 0.0
        if categories:
            keys = set(categories) | set(s.cat_mix)
            a = np.array([float(categories.get(c, 0.0)) for c in keys])
            b = np.array([s.cat_mix.get(c, 0.0) for c in keys])
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            shift = 1.0 - float(a @ b) / (na * nb) if na > 0 and nb > 0 else (1.0 if na > 0 else 0.0)
            shift *= min(1.0, na)  # a faint category signal is a small shift
        x = np.array([float(score), math.log1p(max(gap, 0.0)) if math.isfinite(gap) else math.nan,
                      math.log1p(max(length, 0)), float(entropy), shift, novelty], np.float64)
        return x, sketch

    def _update_categories(self, s: _Session, categories: Mapping[str, float] | None, alpha: float) -> None:
        if not categories:
            return
        for c in set(categories) | set(s.cat_mix):
            s.cat_mix[c] = (1 - alpha) * s.cat_mix.get(c, 0.0) + alpha * float(categories.get(c, 0.0))
        if len(s.cat_mix) > 32:  # keep the strongest: bounded memory
            for c in sorted(s.cat_mix, key=s.cat_mix.get)[: len(s.cat_mix) - 32]:
                del s.cat_mix[c]

    # -- the main call --------------------------------------------------------------------------------------
    def observe(self, session_id: str, t: float, *, score: float = 0.0, text: str | None = None,
                length: int | None = None, entropy: float | None = None,
                categories: Mapping[str, float] | None = None) -> BehaviourResult:
        """Record one request of `session_id` at time `t` (seconds, any monotone clock) and score it.

        Pass what the report gives: `score` (threat score), `categories` (per-category scores), and `text` (for
        length, character entropy and novelty) or `length`/`entropy` directly when the text is not kept.
        """
        cfg = self.config
        t = float(t)
        self._clock = max(self._clock, t)
        self._evict_idle()
        s = self._sessions.get(session_id)
        if s is None:
            s = _Session(cfg)
            self._sessions[session_id] = s
            while len(self._sessions) > cfg.max_sessions:
                self._sessions.popitem(last=False)
                self.evicted += 1
        else:
            self._sessions.move_to_end(session_id)
        x, sketch = self._features(s, t, score, text, length, entropy, categories)

        # deviation against the session baseline
        floor = np.asarray(cfg.scale_floor)
        z = (x - s.mean) / np.maximum(s.scale, floor)
        z = np.where(np.isfinite(z), z, 0.0)
        d = np.asarray(cfg.direction)
        z_eff = np.where(d > 0, np.maximum(z, 0.0), np.where(d < 0, np.maximum(-z, 0.0), np.abs(z)))
        z_eff = np.minimum(z_eff, cfg.z_clip)
        w = np.asarray(cfg.weights)
        dev = float(np.sqrt((w * z_eff * z_eff).sum() / w.sum()))
        a_dev = 1.0 - math.exp(-max(0.0, dev - 1.0) / cfg.dev_scale)
        s.cusum = max(0.0, s.cusum + dev - cfg.cusum_k)
        a_reg = s.cusum / (s.cusum + cfg.cusum_h)
        anomaly = 1.0 - (1.0 - cfg.dev_weight * a_dev) * (1.0 - a_reg)

        # baseline update: prior-weighted mean early on, then slow EWMA; nearly frozen while anomalous
        alpha = cfg.alpha if dev < cfg.gate else cfg.alpha_anomalous
        alpha = max(alpha, 1.0 / (s.n + 1 + cfg.prior_weight)) if dev < cfg.gate else alpha
        ok = np.isfinite(x)
        resid = np.abs(x - s.mean)
        s.mean = np.where(ok, s.mean + alpha * (x - s.mean), s.mean)
        s.scale = np.where(ok, s.scale + alpha * (1.2533 * resid - s.scale), s.scale)
        self._update_categories(s, categories, alpha)

        slot = s.n % cfg.window
        s.feats[slot] = np.where(ok, x, s.mean)
        s.sketches[slot] = sketch
        s.n += 1
        s.last_t = t

        if s.n >= cfg.attractor_min_points and (s.n - cfg.attractor_min_points) % cfg.attractor_every == 0:
            s.attractor = self._attractor(s)
        order = np.argsort(-z_eff * w)[:3]
        drivers = [{"feature": FEATURES[i], "z": round(float(z[i]), 3), "value": round(float(x[i]), 4)}
                   for i in order if z_eff[i] > 1.0]
        feats = {f: (round(float(v), 6) if math.isfinite(v) else None) for f, v in zip(FEATURES, x, strict=True)}
        res = BehaviourResult(session_id, s.n, round(anomaly, 6), round(dev, 4), round(a_reg, 6),
                              s.n <= cfg.prior_weight, feats, drivers, s.attractor)
        s.last = {"t": t, "anomaly": res.anomaly, "deviation": res.deviation, "regime": res.regime,
                  "warming_up": res.warming_up, "drivers": drivers}
        return res

    def _attractor(self, s: _Session) -> dict[str, Any] | None:
        from aimds_ray.core.attractor import AttractorConfig, analyze

        win = s.window(self.config)
        sd = win.std(0)
        cols = sd > 1e-9
        try:
            if not cols.any():
                r = analyze(win[:, 0])
            else:
                r = analyze(win[:, cols], config=AttractorConfig(surrogates=9, prediction_queries=200))
        except ValueError:
            return None
        return {"kind": r.kind, "lyapunov": round(float(r.lyapunov), 6), "confidence": r.confidence,
                "n": r.n}

    # -- state, eviction, persistence -----------------------------------------------------------------------
    def _evict_idle(self) -> None:
        ttl = self.config.ttl_seconds
        while self._sessions:
            sid, s = next(iter(self._sessions.items()))
            if self._clock - s.last_t > ttl:
                self._sessions.popitem(last=False)
                self.evicted += 1
            else:
                break

    def evict_idle(self, now: float) -> int:
        """Evict sessions idle for more than the TTL at time `now`; returns how many."""
        before = self.evicted
        self._clock = max(self._clock, float(now))
        # LRU order is last-use order, so idle sessions are at the front (for a monotone clock)
        self._evict_idle()
        return self.evicted - before

    def state(self, session_id: str) -> dict[str, Any] | None:
        """The session's baseline, CUSUM, buffered window, last attractor verdict and the latest observation's
        anomaly and drivers (`last`); None if unknown."""
        s = self._sessions.get(session_id)
        if s is None:
            return None
        return {"n": s.n, "last_t": s.last_t, "baseline": dict(zip(FEATURES, s.mean.round(6).tolist(), strict=True)),
                "scale": dict(zip(FEATURES, s.scale.round(6).tolist(), strict=True)), "cusum": s.cusum,
                "window": s.window(self.config).tolist(), "attractor": s.attractor, "last": s.last,
                "bytes": s.nbytes()}

    def memory_bytes(self) -> int:
        """Bytes held by session state (arrays and category mix)."""
        return sum(s.nbytes() for s in self._sessions.values())

    def snapshot(self) -> dict[str, Any]:
        """All state as a plain dict (str/float/int/list/dict; arrays base64) in LRU order."""
        def b64(a: np.ndarray) -> str:
            return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")

        sessions = []
        for sid, s in self._sessions.items():
            sessions.append({"id": sid, "n": s.n, "last_t": s.last_t if math.isfinite(s.last_t) else None,
                             "feats": b64(s.feats), "sketches": b64(s.sketches), "mean": s.mean.tolist(),
                             "scale": s.scale.tolist(), "cat_mix": dict(s.cat_mix), "cusum": s.cusum,
                             "attractor": s.attractor, "last": s.last})
        return {"version": SNAPSHOT_VERSION, "config": asdict(self.config),
                "clock": self._clock if math.isfinite(self._clock) else None, "evicted": self.evicted,
                "sessions": sessions}

    @classmethod
    def restore(cls, snap: Mapping[str, Any]) -> BehaviourModel:
        """Rebuild a model from `snapshot()` output."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported behaviour snapshot version {snap.get('version')!r}")
        raw = dict(snap["config"])
        for k, v in raw.items():
            if isinstance(v, list):
                raw[k] = tuple(v)
        m = cls(BehaviourConfig(**raw))
        cfg = m.config
        m._clock = -math.inf if snap.get("clock") is None else float(snap["clock"])
        m.evicted = int(snap.get("evicted", 0))
        for d in snap["sessions"]:
            s = _Session(cfg)
            s.n = int(d["n"])
            s.last_t = math.nan if d["last_t"] is None else float(d["last_t"])
            s.feats = np.frombuffer(base64.b64decode(d["feats"]), np.float64).reshape(cfg.window, N_FEATURES).copy()
            s.sketches = np.frombuffer(base64.b64decode(d["sketches"]), np.float32).reshape(
                cfg.window, cfg.sketch_dim).copy()
            s.mean = np.asarray(d["mean"], np.float64)
            s.scale = np.asarray(d["scale"], np.float64)
            s.cat_mix = {str(k): float(v) for k, v in d["cat_mix"].items()}
            s.cusum = float(d["cusum"])
            s.attractor = d.get("attractor")
            s.last = d.get("last")  # absent in snapshots written before it was kept
            m._sessions[str(d["id"])] = s
        return m

    def dumps(self) -> bytes:
        """`snapshot()` as UTF-8 JSON bytes."""
        return json.dumps(self.snapshot(), separators=(",", ":")).encode()

    @classmethod
    def loads(cls, data: bytes) -> BehaviourModel:
        return cls.restore(json.loads(data))


SessionBehaviour = BehaviourModel
