"""Runtime configuration of the distributed layer and how replicas find its actors.

Actors are named and detached in the `aimds` namespace, created on first use by whichever replica gets there
first (`get_if_exists=True`), so `serve run`, `serve deploy` and `aimds serve` need no extra bootstrap step and a
replica restart reattaches to the same actors. Sessions map to analyzer / verifier actors by consistent hashing, so
a session's state lives in exactly one actor and growing the pool moves only ~1/n of the sessions.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

NAMESPACE = "aimds"


@dataclass(frozen=True)
class RuntimeConfig:
    analyzers: int = 2
    verifiers: int = 2
    matcher_shards: int = 2
    actor_cpus: float = 0.1  # helper actors are mostly idle: a small share keeps a 2-CPU laptop schedulable
    scheduler_capacity: int = 4096
    scheduler_concurrency: int = 32  # deep-path tasks in flight at once (their similarity queries share one call per shard)
    deadlines_ms: dict[str, float] = field(
        default_factory=lambda: {"critical": 50.0, "high": 250.0, "medium": 1000.0, "low": 5000.0}
    )
    uncertain_band: float = 0.5  # scores in [band * threshold, threshold) are "uncertain" -> deep path
    call_timeout_s: float = 2.0  # a deep-path or state call that takes longer marks the component degraded
    session_order_wait_s: float = 120.0  # longest a session's task waits for its predecessors (cold starts are slow)
    checkpoint_every: int = 200  # analyzer state checkpoint every N observations
    max_sessions_per_actor: int = 50_000
    graph: bool = True  # write requests/detections/violations to the graph store (off the hot path)
    deep_match_score: float = 0.6  # an uncertain request whose nearest attack exemplar scores this is flagged
    health_poll_s: float = 1.0  # how often replicas read the scheduler's view of degraded components

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RuntimeConfig:
        if not d:
            return cls()
        from aimds_ray.core.config import from_dict

        return from_dict(cls, d, "runtime")


class HashRing:
    """Consistent hashing with virtual nodes."""

    def __init__(self, n: int, vnodes: int = 64) -> None:
        pts = []
        for i in range(n):
            for v in range(vnodes):
                pts.append((_h(f"{i}:{v}"), i))
        pts.sort()
        self._keys = [p for p, _ in pts]
        self._owners = [o for _, o in pts]

    def owner(self, key: str) -> int:
        i = bisect.bisect(self._keys, _h(key)) % len(self._keys)
        return self._owners[i]


def _h(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "big")


def actor_names(cfg: RuntimeConfig) -> dict[str, list[str]]:
    return {
        "scheduler": ["aimds-scheduler"],
        "learner": ["aimds-learner"],
        "graph": ["aimds-graph-writer"],
        "analyzers": [f"aimds-analyzer-{i}" for i in range(cfg.analyzers)],
        "verifiers": [f"aimds-verifier-{i}" for i in range(cfg.verifiers)],
        "shards": [f"aimds-matcher-{i}" for i in range(cfg.matcher_shards)],
    }


async def with_retries(call: Callable[[], Awaitable[Any]], attempts: int, *,
                       on_error: Callable[[Exception], None] | None = None, max_sleep_s: float = 8.0) -> Any:
    """`await call()`, tried up to `attempts` times with doubling pauses (0.5 s, 1 s, ... at most `max_sleep_s`):
    a named actor killed mid-call restarts (max_restarts=-1) within seconds. The last error is raised. Only for
    calls that are safe to repeat: graph writes merge, and the scheduler drops task ids it has admitted."""
    for attempt in range(attempts):
        try:
            return await call()
        except Exception as e:
            if on_error is not None:
                on_error(e)
            if attempt + 1 == attempts:
                raise
            await asyncio.sleep(min(max_sleep_s, 0.5 * 2**attempt))
    raise ValueError("attempts must be >= 1")
