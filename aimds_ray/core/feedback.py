"""The durable feedback log: append-only JSONL under `$AIMDS_HOME/feedback/`, fsynced before anything is acknowledged.

Why JSONL and not Parquet: a record must be durable the moment it is acknowledged, one at a time, and an append of one
line plus `fsync` is the cheapest way to get that; Parquet wants batches. Every line is one JSON object with a `seq`
(strictly increasing) and a `kind`:

- `feedback`: one labelled text and what the learner did with it (`status` accepted | rejected | refused, `reason`,
  the version it was applied on top of (`base`), which detectors fired on it, scores before/after, the size of the
  weight change). Texts are stored PII-redacted; refused records keep only a hash of the text.
- `checkpoint`: a model version was committed (`version`, `upto` = last feedback seq it includes).
- `rollback`: the current version was switched back (`to`, `from`); accepted feedback applied on top of the old
  version but not checkpointed is dropped by it.
- `recalibration`: the meta-level refit (thresholds, fusion weights) and whether it was accepted.

A crash can tear only the last line (records are written with one `write`); `FeedbackLog` cuts such a tail when
it opens the file, so the next append starts on a clean line. Nothing acknowledged is ever in a torn line, because
the acknowledgement comes after `fsync` returned. The cut bytes are kept beside the log (`torn-<time>.jsonl.part`)
and the repair, like any line that is no record (disk damage, a hand edit), is logged as a warning and counted
(`torn_bytes`, `skipped`), so an operator can see it happened.

`FileLock` serialises writers across processes (the CLI and an embedded learner on the same `$AIMDS_HOME`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("aimds.feedback")


class FeedbackError(ValueError):
    """Invalid feedback (bad label, unknown category, no text). Edges map it to 4xx / exit code 2."""


class FeedbackConflict(FeedbackError):
    """A feedback_id re-sent with other feedback than it was first used for (HTTP 409): answering the first
    acknowledgement would silently drop the correction."""


class LockTimeout(RuntimeError):
    """Another process holds the learner lock for longer than we are willing to wait."""


class FileLock:
    """An exclusive `flock` on a file; released by the OS when the process dies (so a SIGKILL never wedges it)."""

    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise LockTimeout(f"{self.path} is held by another learner process") from None
                time.sleep(0.02)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def feedback_dir(home: Path | None = None) -> Path:
    if home is None:
        from aimds_ray.core.config import aimds_home

        home = aimds_home()
    return Path(home) / "feedback"


class FeedbackLog:
    """Append-only JSONL log with fsync per record. Not thread-safe by itself: the learner holds its own lock."""

    FILENAME = "log.jsonl"

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = Path(directory) if directory is not None else feedback_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / self.FILENAME
        self.torn_bytes = self._repair()
        self.skipped = 0  # lines that are no record of this log (see `_read`)
        self._records: list[dict[str, Any]] = list(self._read())
        if self.torn_bytes or self.skipped:
            log.warning("feedback log %s: %d bytes of a torn last line cut (kept as %s), %d lines that are no record "
                        "skipped", self.path, self.torn_bytes, self.torn_copy or "-", self.skipped)
        self.next_seq = max((int(r.get("seq", 0)) for r in self._records), default=0) + 1
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open for the life of the log

    def _repair(self) -> int:
        """Cut a torn (newline-less) tail left by a crash mid-write, after copying it to `torn-<time>.jsonl.part`
        (best effort: it was never acknowledged); return how many bytes were cut."""
        self.torn_copy: Path | None = None
        if not self.path.exists():
            return 0
        size = self.path.stat().st_size
        if size == 0:
            return 0
        with open(self.path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            # scan back to the last newline (records are small; read the tail in blocks)
            pos = size
            block = 1 << 16
            keep = 0
            while pos > 0:
                start = max(0, pos - block)
                f.seek(start)
                chunk = f.read(pos - start)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    keep = start + i + 1
                    break
                pos = start
            f.seek(keep)
            tail = f.read()
            copy = self.dir / f"torn-{time.strftime('%Y%m%dT%H%M%S')}-{keep}.jsonl.part"
            try:
                copy.write_bytes(tail)
                self.torn_copy = copy
            except OSError:
                pass  # a full disk must not keep the log from opening; the warning still says what was cut
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
            return size - keep

    def _read(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:  # bytes: a damaged line may not even be UTF-8
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)  # UTF-8, as `append` writes it
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self.skipped += 1  # a corrupt line in the middle (disk damage): skip it, keep the rest
                    continue
                # a record this log wrote has an int seq; anything else (a line edited by hand) is skipped like a
                # corrupt one, not a KeyError at every start
                if isinstance(rec, dict) and isinstance(rec.get("seq"), int) and not isinstance(rec["seq"], bool):
                    yield rec
                else:
                    self.skipped += 1

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self._records if kind is None or r.get("kind") == kind]

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Give `record` the next seq, write it as one line, flush and fsync; only then return it."""
        rec = dict(record)
        rec["seq"] = self.next_seq
        rec.setdefault("ts", time.time())
        line = (json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = self._fh.fileno()
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:  # os.write may write less than asked (a nearly full disk) without raising
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # no torn line left for the next record to run into
                os.ftruncate(fd, end)
            raise
        self.next_seq += 1
        self._records.append(rec)
        return rec

    def find(self, feedback_id: str) -> dict[str, Any] | None:
        for r in reversed(self._records):
            if r.get("kind") == "feedback" and r.get("id") == feedback_id:
                return r
        return None

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __len__(self) -> int:
        return len(self._records)


class RecentRequests:
    """The texts of recent requests by request id, so feedback may name a request instead of re-sending its text
    (`POST /v1/feedback {"request_id", "label"}`). Bounded by count and by total characters (the oldest go first);
    `pending` holds what was added since the last `drain` - (id, text, allowed) - for forwarding to the learner,
    which every replica feeds (feedback may reach another replica than the request did, and the learner keeps the
    allowed ones as recent benign traffic)."""

    def __init__(self, max_items: int = 10_000, max_chars: int = 16_000_000, *, forward: bool = True) -> None:
        self.forward = forward  # keep `pending` (a replica) or not (the learner itself)
        self.max_items = max_items
        self.max_chars = max_chars
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._ambiguous: set[str] = set()  # ids a client sent with more than one text: feedback must name the text
        self._chars = 0
        self._pending: list[tuple[str, str, bool]] = []
        self._pending_chars = 0

    def add(self, request_id: str, text: str, allowed: bool = False) -> None:
        if not request_id or not isinstance(text, str) or len(text) > self.max_chars:
            return
        old = self._texts.pop(request_id, None)
        if old is not None:
            self._chars -= len(old)
            if old != text:  # a client-chosen id reused: which request would feedback by it mean?
                self._ambiguous.add(request_id)
        self._texts[request_id] = text
        self._chars += len(text)
        while len(self._texts) > self.max_items or self._chars > self.max_chars:
            rid, gone = self._texts.popitem(last=False)
            self._chars -= len(gone)
            self._ambiguous.discard(rid)
        if not self.forward:
            return
        self._pending.append((request_id, text, allowed))
        self._pending_chars += len(text)
        self._trim_pending()

    def get(self, request_id: str) -> str | None:
        """The text of the request with this id; None when unknown or `ambiguous`."""
        return None if request_id in self._ambiguous else self._texts.get(request_id)

    def ambiguous(self, request_id: str) -> bool:
        """The id came with more than one text (clients may choose request ids): feedback must give the text."""
        return request_id in self._ambiguous

    def drain(self) -> list[tuple[str, str, bool]]:
        out, self._pending, self._pending_chars = self._pending, [], 0
        return out

    def requeue(self, items: list[tuple[str, str, bool]]) -> None:
        """Put back what a failed forward took (ahead of what came since), within the same bounds."""
        self._pending = items + self._pending
        self._pending_chars += sum(len(t) for _, t, _ in items)
        self._trim_pending()

    def _trim_pending(self) -> None:
        """The oldest go first when the learner stays unreachable: the same bounds as the texts."""
        while len(self._pending) > self.max_items or self._pending_chars > self.max_chars:
            self._pending_chars -= len(self._pending.pop(0)[1])

    def __len__(self) -> int:
        return len(self._texts)
