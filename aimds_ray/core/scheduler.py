"""Deadline scheduling of deep-path work: priority classes, earliest deadline first, admission and shedding.

Order: critical > high > medium > low; within a class, earliest deadline first (EDF is optimal for one server
when the load is feasible). Admission control estimates when a new task would start (work queued ahead of it times
the running mean service time); a non-critical task that cannot meet its deadline is refused at the door rather
than queued to miss it. When the queue is full, the newest task of the lowest non-empty class below the newcomer's
is shed; a newcomer that is itself the lowest is refused. Critical work is never shed by lower work.

Plain Python (heapq per class): the Ray `DeadlineScheduler` actor hosts one of these; its decision cost is
measured in `benchmarks/scheduler.py`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any


class Priority(IntEnum):
    CRITICAL = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3

    @classmethod
    def parse(cls, v: str | int | Priority) -> Priority:
        if isinstance(v, Priority):
            return v
        if isinstance(v, int):
            return cls(v)
        try:
            return cls[v.upper()]
        except KeyError:
            raise ValueError(f"unknown priority {v!r} (critical|high|medium|low)") from None


@dataclass(slots=True)
class Task:
    id: str
    priority: Priority
    deadline: float  # absolute, time.monotonic() seconds
    payload: Any = None
    submitted: float = 0.0
    seq: int = 0


@dataclass(slots=True)
class Admission:
    accepted: bool
    reason: str = ""
    shed: list[Task] = field(default_factory=list)


@dataclass
class SchedulerStats:
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    shed: int = 0
    completed: int = 0
    deadline_misses: int = 0
    misses_by_priority: dict[str, int] = field(default_factory=lambda: {p.name.lower(): 0 for p in Priority})
    completed_by_priority: dict[str, int] = field(default_factory=lambda: {p.name.lower(): 0 for p in Priority})
    shed_by_priority: dict[str, int] = field(default_factory=lambda: {p.name.lower(): 0 for p in Priority})
    wait_sum: float = 0.0
    wait_max: float = 0.0


class DeadlineQueue:
    def __init__(self, capacity: int = 1024, service_time_s: float = 0.001, clock: Any = time.monotonic,
                 on_shed: Any = None, workers: int = 1) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        if workers <= 0:
            raise ValueError("workers must be > 0")
        self.capacity = capacity
        self.workers = workers  # tasks served at once: the queue ahead drains that many times faster
        self._heaps: list[list[tuple[float, int, Task]]] = [[] for _ in Priority]
        self._seq = itertools.count()
        self._len = 0
        self.service_ewma = service_time_s  # running mean service time, for admission
        self.clock = clock
        self.on_shed = on_shed  # called with each task dropped after admission
        self.stats = SchedulerStats()

    def __len__(self) -> int:
        return self._len

    def depth(self) -> dict[str, int]:
        return {p.name.lower(): len(self._heaps[p]) for p in Priority}

    def _ahead(self, prio: Priority) -> int:
        return sum(len(self._heaps[p]) for p in Priority if p <= prio)

    def submit(self, task: Task, force: bool = False) -> Admission:
        """Admit `task`, refuse it, or shed lower work for it. `force` skips admission (the deadline estimate and
        the capacity bound): for work already promised, a restarted scheduler's replay of its journal."""
        now = self.clock()
        self.stats.submitted += 1
        task.submitted = now
        task.seq = next(self._seq)
        if force:
            heapq.heappush(self._heaps[task.priority], (task.deadline, task.seq, task))
            self._len += 1
            self.stats.accepted += 1
            return Admission(True)
        if task.priority != Priority.CRITICAL:
            start_eta = now + self._ahead(task.priority) * self.service_ewma / self.workers
            if start_eta + self.service_ewma > task.deadline:
                self.stats.rejected += 1
                return Admission(False, "deadline cannot be met at the current load")
        shed: list[Task] = []
        if self._len >= self.capacity:
            victim = self._evict_below(task.priority)
            if victim is None:
                self.stats.rejected += 1
                return Admission(False, "queue full")
            shed.append(victim)
        heapq.heappush(self._heaps[task.priority], (task.deadline, task.seq, task))
        self._len += 1
        self.stats.accepted += 1
        return Admission(True, "", shed)

    def _evict_below(self, prio: Priority) -> Task | None:
        for p in reversed(Priority):
            if p <= prio:
                return None
            h = self._heaps[p]
            if h:
                # the newest (largest seq) of the lowest class: it has waited least
                i = max(range(len(h)), key=lambda k: h[k][1])
                item = h[i]
                h[i] = h[-1]
                h.pop()
                heapq.heapify(h)
                self._len -= 1
                self._count_shed(item[2])
                return item[2]
        return None

    def _count_shed(self, t: Task) -> None:
        self.stats.shed += 1
        self.stats.shed_by_priority[t.priority.name.lower()] += 1
        if self.on_shed is not None:
            self.on_shed(t)

    def pop(self) -> Task | None:
        """Next task to run. Low/medium tasks that can no longer finish by their deadline are shed here instead of
        run late."""
        now = self.clock()
        for p in Priority:
            h = self._heaps[p]
            while h:
                _, _, t = heapq.heappop(h)
                self._len -= 1
                if t.deadline < now + self.service_ewma and p >= Priority.MEDIUM:  # cannot finish in time
                    self._count_shed(t)
                    continue
                wait = now - t.submitted
                self.stats.wait_sum += wait
                self.stats.wait_max = max(self.stats.wait_max, wait)
                return t
        return None

    def complete(self, task: Task, started: float, finished: float | None = None) -> bool:
        """Record a finished task; returns True when it met its deadline."""
        finished = self.clock() if finished is None else finished
        self.service_ewma = 0.9 * self.service_ewma + 0.1 * max(finished - started, 1e-6)
        self.stats.completed += 1
        name = task.priority.name.lower()
        self.stats.completed_by_priority[name] += 1
        met = finished <= task.deadline
        if not met:
            self.stats.deadline_misses += 1
            self.stats.misses_by_priority[name] += 1
        return met

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        popped = s.completed or 1
        return {
            "queue_depth": self._len,
            "depth_by_priority": self.depth(),
            "submitted": s.submitted,
            "accepted": s.accepted,
            "rejected": s.rejected,
            "shed": s.shed,
            "shed_by_priority": dict(s.shed_by_priority),
            "completed": s.completed,
            "completed_by_priority": dict(s.completed_by_priority),
            "deadline_misses": s.deadline_misses,
            "misses_by_priority": dict(s.misses_by_priority),
            "mean_wait_ms": round(1000 * s.wait_sum / popped, 3),
            "max_wait_ms": round(1000 * s.wait_max, 3),
            "service_ewma_ms": round(1000 * self.service_ewma, 4),
        }


class SessionSequencer:
    """Per-session tickets, so a session's deep-path results reach its monitors in arrival order.

    Priority reorders work across sessions; within one session the policy monitors need events in time order (a
    tool call seen before the extraction attempt that preceded it would hide a violation). A ticket is finished
    when its task ran, failed, was refused or was shed; `ready` says whether every earlier ticket is finished.
    """

    def __init__(self, max_sessions: int = 100_000) -> None:
        self.max_sessions = max_sessions
        self._issued: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._finished: dict[str, set[int]] = {}

    def issue(self, sid: str) -> int:
        n = self._issued.get(sid, 0)
        self._issued[sid] = n + 1
        if len(self._issued) > self.max_sessions:  # forget the oldest idle session (dicts keep insertion order)
            for old in list(itertools.islice(self._issued, len(self._issued) - self.max_sessions)):
                if self._done.get(old, 0) >= self._issued[old]:
                    self._issued.pop(old, None)
                    self._done.pop(old, None)
                    self._finished.pop(old, None)
        return n

    def ready(self, sid: str, ticket: int) -> bool:
        return self._done.get(sid, 0) >= ticket

    def finish(self, sid: str, ticket: int) -> None:
        fin = self._finished.setdefault(sid, set())
        fin.add(ticket)
        d = self._done.get(sid, 0)
        while d in fin:
            fin.discard(d)
            d += 1
        self._done[sid] = d


class TaskJournal:
    """The scheduler's queue on disk, so tasks admitted but not yet run survive the scheduler's process.

    Append-only JSON lines: `{"op": "add", "id", "task"}` when a task is admitted (written before the admission is
    acknowledged) and `{"op": "done", "id"}` when it ran, failed, or was shed. `pending()` is what a restarted
    scheduler replays: the adds without a done, in admission order (so per-session order holds). The file is
    rewritten with only those once it has grown past `compact_bytes` and is mostly finished work.

    Written with plain `write` calls, without fsync: a killed process loses nothing the kernel has accepted; a machine
    that loses power loses the queue of that moment (the deep path is advisory, the answers were already given). A
    line torn by a crash mid-write is skipped on reading. An `flock` keeps a second scheduler on the same
    `$AIMDS_HOME` from interleaving with the first (`LockTimeout` from `FileLock`).
    """

    def __init__(self, path: Path, compact_bytes: int = 8 << 20, lock_timeout_s: float = 10.0) -> None:
        from aimds_ray.core.feedback import FileLock

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.compact_bytes = compact_bytes
        self._lock = FileLock(self.path.with_name(self.path.name + ".lock"), timeout=lock_timeout_s).acquire()
        self._pending: dict[str, bytes] = {}  # id -> its add line, in admission order
        self.seen: list[str] = []  # every id in the file, in order (the scheduler drops their re-submissions)
        self._done_tail: list[str] = []  # ids finished lately: kept through compaction for the same reason
        self.torn_lines = 0
        self._size = 0
        self._fd = -1
        try:
            if self.path.exists():
                self._load()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            self._ensure_newline()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                    op, tid = rec["op"], str(rec["id"])
                except (ValueError, KeyError, TypeError):
                    self.torn_lines += 1
                    continue
                if op == "add" and isinstance(rec.get("task"), dict):
                    self._pending[tid] = raw if raw.endswith(b"\n") else raw + b"\n"
                    self.seen.append(tid)
                elif op == "done":
                    self._pending.pop(tid, None)
                    self._note_done(tid)
                elif op == "seen":
                    self.seen.append(tid)
                    self._note_done(tid)

    def _ensure_newline(self) -> None:
        """A torn last line must not swallow the next record: start it on a line of its own."""
        if self._size:
            with open(self.path, "rb") as f:
                f.seek(self._size - 1)
                if f.read(1) != b"\n":
                    self._write(b"\n")

    def _note_done(self, tid: str) -> None:
        self._done_tail.append(tid)
        if len(self._done_tail) > 2 * DONE_TAIL:
            del self._done_tail[:-DONE_TAIL]

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # os.write may write less than asked without raising
                view = view[os.write(self._fd, view):]
        except OSError:  # no torn line left for the next record to run into
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def pending(self) -> list[dict[str, Any]]:
        """Tasks admitted and not finished, in admission order."""
        return [json.loads(line)["task"] for line in self._pending.values()]

    def __len__(self) -> int:
        return len(self._pending)

    def add_many(self, tasks: list[dict[str, Any]]) -> None:
        """Record admitted tasks (their `id` and JSON-able fields; keys starting with "_" are the scheduler's own)."""
        lines = []
        for task in tasks:
            tid = str(task["id"])
            body = {k: v for k, v in task.items() if not k.startswith("_")}
            line = (json.dumps({"op": "add", "id": tid, "task": body}, separators=(",", ":"), default=str)
                    + "\n").encode("utf-8")
            self._pending[tid] = line
            lines.append(line)
        if lines:
            self._write(b"".join(lines))

    def done(self, task_id: str) -> None:
        if self._pending.pop(str(task_id), None) is None:
            return
        self._note_done(str(task_id))
        self._write((json.dumps({"op": "done", "id": str(task_id)}, separators=(",", ":")) + "\n").encode("utf-8"))
        if self._size > self.compact_bytes:
            live = sum(len(v) for v in self._pending.values()) + 64 * min(len(self._done_tail), DONE_TAIL)
            if live * 2 < self._size:  # mostly finished work (a compacted file holds the pending and the tail)
                self.compact()

    def compact(self) -> None:
        """Rewrite the file with the pending adds and the ids finished lately (atomically: a crash leaves the old
        file or the new one)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        seen = [(json.dumps({"op": "seen", "id": t}, separators=(",", ":")) + "\n").encode("utf-8")
                for t in self._done_tail[-DONE_TAIL:]]
        data = b"".join(seen) + b"".join(self._pending.values())
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._lock.release()


DONE_TAIL = 1000  # finished ids a compacted journal remembers (a replica's retry of an unacknowledged batch)
