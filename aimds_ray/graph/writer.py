"""`GraphWriter`: graph writes off the hot path, batched, bounded, and durable before they are acknowledged.

`submit(records)` validates the records, appends them to a spool segment (JSON lines, flushed and fsynced) and
queues them; when it returns the records are *acknowledged*: they survive a crash of this process and an outage of
the database. A background thread drains the queue in batches into the `GraphStore`, retrying with backoff while the
store fails; a segment file is deleted once every record in it is in the store. On start, segments left by an
earlier process are replayed first. Replaying something already written is harmless because every write is a MERGE
on stable ids. When the queue is full (the store has been down long enough), `submit` raises `WriterFull` without
acknowledging: callers shed load or retry instead of this process growing without bound.

No Ray here: the distributed layer wraps one `GraphWriter` in an actor.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aimds_ray.core.report import ThreatReport
from aimds_ray.graph.base import GraphStore
from aimds_ray.graph.model import (
    GraphError,
    Record,
    build_plan,
    record_from_dict,
    record_to_dict,
    records_from_report,
)

log = logging.getLogger(__name__)


class WriterFull(GraphError):
    """The bounded queue is full: nothing was spooled or acknowledged; retry later."""


class GraphWriter:
    """Batched background writer with a disk spool. `store` is a store or a zero-argument factory that opens one
    (called again after failures, so a server that is down at start-up is picked up when it comes back)."""

    def __init__(self, store: GraphStore | Callable[[], GraphStore], spool_dir: str | os.PathLike[str] | None = None,
                 *, max_queue: int = 100_000, batch_size: int = 500, flush_interval_s: float = 0.05,
                 segment_records: int = 20_000, retry_max_s: float = 2.0, fsync: bool = True) -> None:
        if spool_dir is None:
            from aimds_ray.core.config import aimds_home

            spool_dir = aimds_home() / "graph-spool"
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.spool_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise GraphError(f"graph spool {self.spool_dir} is in use by another writer") from None
        if isinstance(store, GraphStore):
            self._store: GraphStore | None = store
            self._factory: Callable[[], GraphStore] | None = None
        else:
            self._store, self._factory = None, store
        self.max_queue, self.batch_size = max_queue, batch_size
        self.flush_interval_s, self.retry_max_s = flush_interval_s, retry_max_s
        self.segment_records, self.fsync = segment_records, fsync

        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[int, Record]] = collections.deque()
        self._pending: dict[int, int] = {}  # segment -> records not yet in the store
        self._backlog = sorted(self._segments())  # left by an earlier process: replayed first
        self._seg = (max(self._backlog) + 1) if self._backlog else 1
        self._seg_count = 0
        self._seg_file = self._open_segment(self._seg)
        self._busy = False
        self._closing = False
        self._stop = threading.Event()
        self.stats: dict[str, Any] = {"submitted": 0, "written": 0, "replayed": 0, "write_failures": 0,
                                      "corrupt_lines": 0, "last_error": None}
        self._thread = threading.Thread(target=self._run, name="aimds-graph-writer", daemon=True)
        self._thread.start()

    # ---- spool files --------------------------------------------------------------------------------------------
    def _segments(self) -> list[int]:
        out = []
        for p in self.spool_dir.glob("seg-*.jsonl"):
            with contextlib.suppress(ValueError):
                out.append(int(p.stem[4:]))
        return out

    def _path(self, seg: int) -> Path:
        return self.spool_dir / f"seg-{seg:012d}.jsonl"

    def _open_segment(self, seg: int) -> Any:
        f = open(self._path(seg), "ab")
        if self.fsync:  # make the new directory entry durable too
            dfd = os.open(self.spool_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._pending.setdefault(seg, 0)
        return f

    def _retire(self, seg: int) -> None:
        """Delete a finished segment (caller holds the condition's lock)."""
        if seg != self._seg and self._pending.get(seg) == 0:
            self._pending.pop(seg, None)
            with contextlib.suppress(FileNotFoundError):
                self._path(seg).unlink()

    # ---- producer side ------------------------------------------------------------------------------------------
    def submit(self, records: Sequence[Record]) -> int:
        """Spool (fsync) and queue records; once this returns they are acknowledged. Raises WriterFull when the
        queue cannot take them all, ValueError / TypeError for invalid records (nothing is spooled then)."""
        recs = list(records)
        if not recs:
            return 0
        build_plan(recs)  # validate now: a bad record must never reach the spool and poison replays
        data = b"".join(json.dumps(record_to_dict(r), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                        + b"\n" for r in recs)
        with self._cond:
            if self._closing:
                raise GraphError("graph writer is closed")
            if len(self._queue) + len(recs) > self.max_queue:
                raise WriterFull(f"graph writer queue is full ({len(self._queue)}/{self.max_queue} records); "
                                 f"last store error: {self.stats['last_error']}")
            self._seg_file.write(data)
            self._seg_file.flush()
            if self.fsync:
                os.fsync(self._seg_file.fileno())
            seg = self._seg
            self._pending[seg] += len(recs)
            self._queue.extend((seg, r) for r in recs)
            self.stats["submitted"] += len(recs)
            self._seg_count += len(recs)
            if self._seg_count >= self.segment_records:
                self._seg_file.close()
                self._seg += 1
                self._seg_count = 0
                self._seg_file = self._open_segment(self._seg)
                self._retire(seg)
            self._cond.notify_all()
        return len(recs)

    def record_report(self, report: ThreatReport, session_id: str, client_id: str, t: float | None = None,
                      min_score: float = 0.5) -> list[Record]:
        """Turn a scan result into records and submit them; returns the acknowledged records."""
        recs = records_from_report(report, session_id, client_id, time.time() if t is None else t,
                                   min_score=min_score)
        self.submit(recs)
        return recs

    def pending(self) -> int:
        """Records acknowledged but not yet in the store (queued, plus any old spool not yet replayed)."""
        with self._cond:
            return len(self._queue) + (1 if self._backlog else 0)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything acknowledged is in the store; False on timeout (the spool still has it)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._backlog or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Stop accepting, try to drain for up to `timeout_s`, stop the thread. Whatever is not in the store stays
        in the spool for the next writer. Returns True if everything was written."""
        with self._cond:
            if self._closing and not self._thread.is_alive():
                return not self._queue and not self._backlog
            self._closing = True
            self._cond.notify_all()
        done = self.flush(timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(max(1.0, timeout_s))
        with self._cond:
            self._seg_file.close()
            if self._pending.get(self._seg) == 0:
                with contextlib.suppress(FileNotFoundError):
                    self._path(self._seg).unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
        return done

    def __enter__(self) -> GraphWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- consumer side ------------------------------------------------------------------------------------------
    def _write_with_retry(self, batch: list[Record]) -> bool:
        """Write one batch, retrying with backoff until it succeeds (True) or the writer stops (False)."""
        delay = 0.02
        while not self._stop.is_set():
            try:
                if self._store is None:
                    assert self._factory is not None
                    self._store = self._factory()
                self._store.write_batch(batch)
                return True
            except (GraphError, OSError) as e:
                self.stats["write_failures"] += 1
                self.stats["last_error"] = f"{type(e).__name__}: {e}"[:500]
                log.warning("graph writer: write of %d records failed (will retry): %s", len(batch), e)
                if self._factory is not None and self._store is not None and "closed" in str(e):
                    self._store = None
            self._stop.wait(delay)
            delay = min(self.retry_max_s, delay * 2)
        return False

    def _replay(self, seg: int) -> bool:
        path = self._path(seg)
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return True
        recs: list[Record] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                recs.append(record_from_dict(json.loads(line)))
            except (ValueError, TypeError):  # a torn last line: its submit never returned, so never acknowledged
                self.stats["corrupt_lines"] += 1
        for i in range(0, len(recs), self.batch_size):
            if not self._write_with_retry(recs[i : i + self.batch_size]):
                return False
            self.stats["replayed"] += len(recs[i : i + self.batch_size])
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True

    def _run(self) -> None:
        while self._backlog and not self._stop.is_set():
            with self._cond:
                self._busy = True
            ok = self._replay(self._backlog[0])
            with self._cond:
                self._busy = False
                if ok:
                    self._backlog.pop(0)
                self._cond.notify_all()
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(self.flush_interval_s * 4)
                if self._stop.is_set():
                    return
                if len(self._queue) < self.batch_size and not self._closing:
                    self._cond.wait(self.flush_interval_s)  # let a batch build up
                items = [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]
                self._busy = True
            ok = self._write_with_retry([r for _, r in items])
            with self._cond:
                self._busy = False
                if ok:
                    for _ in items:
                        self._queue.popleft()
                    for seg, _ in items:
                        self._pending[seg] -= 1
                    for seg in {s for s, _ in items}:
                        self._retire(seg)
                    self.stats["written"] += len(items)
                self._cond.notify_all()

    def store_for_reads(self) -> GraphStore | None:
        """The store the writer writes to (None until a factory succeeded)."""
        return self._store


def replay_spool(store: GraphStore, spool_dir: str | os.PathLike[str]) -> int:
    """Write every record in a spool directory to `store` (no writer running); returns how many were written."""
    n = 0
    for p in sorted(Path(spool_dir).glob("seg-*.jsonl")):
        recs: list[Record] = []
        for line in p.read_bytes().splitlines():
            with contextlib.suppress(ValueError, TypeError):
                recs.append(record_from_dict(json.loads(line)))
        for i in range(0, len(recs), 500):
            n += store.write_batch(recs[i : i + 500])
    return n


def iter_spooled(spool_dir: str | os.PathLike[str]) -> Iterable[Record]:
    """The records currently in a spool (for inspection and tests)."""
    for p in sorted(Path(spool_dir).glob("seg-*.jsonl")):
        for line in p.read_bytes().splitlines():
            with contextlib.suppress(ValueError, TypeError):
                yield record_from_dict(json.loads(line))
