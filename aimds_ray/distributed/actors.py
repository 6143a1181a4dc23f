"""Ray actors. Each owns one core object and forwards to it; no algorithm lives here.

* `DeadlineScheduler` – a `core.scheduler.DeadlineQueue`, plus the dispatch loop that runs deep-path tasks on the
  analyzer / verifier / matcher actors, at most `scheduler_concurrency` at a time; admitted tasks are journaled to
  `$AIMDS_HOME/state/scheduler.journal` (`core.scheduler.TaskJournal`) and replayed by a restarted scheduler.
* `AttractorAnalyzer` – a `core.behaviour.BehaviourModel` for the sessions hashed to it; checkpointed to
  `$AIMDS_HOME/state/` so a restart restores it (the state call says `restored` or `rebuilt`).
* `PolicyVerifier` – one `core.ltl.SessionPolicyMonitor` per session (LRU-bounded).
* `PatternMatcherShard` – one shard of a `core.vector_index.VectorIndex`.
* `Learner` – the `core.learner.Learner` (feedback log, model versions); replicas long-poll it for new versions.
* `GraphWriterActor` – a `graph.GraphWriter`: batched, spooled writes off the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import ray

from aimds_ray.core.wire import MAX_EVENTS
from aimds_ray.distributed.runtime import HashRing, RuntimeConfig, with_retries


def _state_dir() -> Path:
    from aimds_ray.core.config import aimds_home

    p = aimds_home() / "state"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@ray.remote(max_restarts=-1, max_task_retries=0)
class AttractorAnalyzer:
    """Behaviour state of the sessions hashed to this actor, checkpointed every `checkpoint_every` observations."""

    def __init__(self, index: int, cfg: dict[str, Any]) -> None:
        from aimds_ray.core.behaviour import BehaviourConfig, BehaviourModel

        self.cfg = RuntimeConfig.from_dict(cfg)
        self.path = _state_dir() / f"analyzer-{index}.bin"
        self.origin = "new"
        self.model = None
        if self.path.exists():
            try:
                self.model = BehaviourModel.loads(self.path.read_bytes())
                self.origin = "restored"
            except Exception:  # a damaged checkpoint: start clean and say so
                self.origin = "rebuilt"
        if self.model is None:
            self.model = BehaviourModel(BehaviourConfig(max_sessions=self.cfg.max_sessions_per_actor))
            if ray.get_runtime_context().was_current_actor_reconstructed:
                self.origin = "rebuilt"  # restarted before any checkpoint: earlier sessions are gone
        self.model.warm_up()
        self._since = 0

    def observe(self, session_id: str, t: float, score: float, text_len: int, entropy: float | None,
                categories: dict[str, float]) -> dict[str, Any]:
        r = self.model.observe(session_id, t, score=score, length=text_len, entropy=entropy, categories=categories)
        self._since += 1
        if self._since >= self.cfg.checkpoint_every:
            self.checkpoint()
        return r.to_dict()

    def checkpoint(self) -> None:
        _atomic_write(self.path, self.model.dumps())
        self._since = 0

    def state(self, session_id: str) -> dict[str, Any] | None:
        st = self.model.state(session_id)
        if st is not None:
            st = {**st, "state_origin": self.origin}
        return st

    def info(self) -> dict[str, Any]:
        return {"sessions": len(self.model), "memory_bytes": self.model.memory_bytes(), "origin": self.origin,
                "pid": os.getpid()}


@ray.remote(max_restarts=-1, max_task_retries=0)
class PolicyVerifier:
    """LTL runtime monitors per session; violations (with witnesses) go back to the scheduler for the audit."""

    def __init__(self, index: int, cfg: dict[str, Any], policy_dir: str | None = None) -> None:
        from aimds_ray.core.ltl import load_policies

        self.cfg = RuntimeConfig.from_dict(cfg)
        self.policies = load_policies(policy_dir)
        self.sessions: OrderedDict[str, Any] = OrderedDict()
        self.violations: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, list[str]] = {}
        self.last_t: dict[str, float] = {}

    def step(self, session_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        mon = self.sessions.get(session_id)
        if mon is None:
            mon = self.policies.session(session_id)
            self.sessions[session_id] = mon
            while len(self.sessions) > self.cfg.max_sessions_per_actor:
                old, _ = self.sessions.popitem(last=False)
                self.violations.pop(old, None)
                self.errors.pop(old, None)
                self.last_t.pop(old, None)
        else:
            self.sessions.move_to_end(session_id)
        out: list[dict[str, Any]] = []
        last = self.last_t.get(session_id, float("-inf"))
        for ev in events:
            # a session's events reach the monitor in arrival order; timestamps taken on different replicas can
            # still step back by clock skew, which a trace must never do: clamp to the last time seen
            ev = {**ev, "t": max(float(ev.get("t", last)), last)}
            last = ev["t"]
            try:
                out.extend(r for r in mon.step(ev) if r.get("verdict") == "violated")
            except Exception as e:  # one bad event must not drop the rest of the session's events
                errs = self.errors.setdefault(session_id, [])
                if len(errs) < 20:
                    errs.append(f"{type(e).__name__}: {e}")
        self.last_t[session_id] = last
        if out:
            self.violations.setdefault(session_id, []).extend(out)
        return out

    def state(self, session_id: str) -> dict[str, Any] | None:
        mon = self.sessions.get(session_id)
        if mon is None:
            return None
        errors = self.errors.get(session_id, []) + [f"{name}: {why}" for name, why in mon.failed.items()]
        return {"verdicts": mon.verdicts(), "action": mon.action(),
                "violations": self.violations.get(session_id, []), "errors": errors}


@ray.remote(max_restarts=-1, max_task_retries=-1)
class PatternMatcherShard:
    """One shard of the attack-exemplar index. `rebuild` swaps in a new shard when the learner publishes one."""

    def __init__(self, index: int, n_shards: int) -> None:
        self.index, self.n = index, n_shards
        self.version = "shipped"
        from aimds_ray.core.signals.similarity import shipped_index

        self.shard = shipped_index().shard(n_shards)[index]
        self._warm_up()
        self.calls = 0
        self.queries = 0

    def _warm_up(self) -> None:
        """Load the featuriser's and the index's kernels now (see `Detector.warm_up`), not on the first query."""
        from aimds_ray.core.detector import WARM_UP_TEXTS

        self.shard.find_similar_batch(list(WARM_UP_TEXTS), 1)

    def find_similar(self, texts: list[str], k: int) -> list[list[Any]]:
        self.calls += 1
        self.queries += len(texts)
        return [[_hit(h) for h in hits] for hits in self.shard.find_similar_batch(texts, k)]

    def rebuild(self, shard_bytes: bytes, version: str) -> int:
        import tempfile

        from aimds_ray.core.vector_index import VectorIndex

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "idx.npz"
            p.write_bytes(shard_bytes)
            self.shard = VectorIndex.load(p)
        self._warm_up()
        self.version = version
        return len(self.shard)

    def info(self) -> dict[str, Any]:
        return {"index": self.index, "size": len(self.shard), "version": self.version, "pid": os.getpid(),
                "calls": self.calls, "queries": self.queries}


def _hit(h: Any) -> dict[str, Any]:
    """A vector-index hit `(row id, cosine, metadata)` as the dict the scheduler reads (`score`, `family`, ...)."""
    i, score, meta = h
    return {**meta, "id": int(i), "score": float(score)}


SEEN_IDS = 100_000  # task ids the scheduler remembers to drop re-submissions
OBSERVE_MAX_CHARS = 20_000  # longer allowed texts are not kept as recent traffic (memory: 2,000 texts are kept)


@ray.remote(max_restarts=-1, max_task_retries=0)
class Learner:
    """The one learner: durable feedback and model versions. Replicas long-poll `wait_for_version`."""

    def __init__(self) -> None:
        from aimds_ray.core.learner import Learner as CoreLearner

        self.learner = CoreLearner()
        self._changed = asyncio.Event()
        # every publish counts, not only those that rename the version: feedback that is "already correct" still
        # adds a pattern or an exemplar (or raises exemplar thresholds) under the same version name
        self._gen = time.time_ns()  # unique across actor restarts, so a replica's held number never matches by chance
        self.learner.add_listener(self._published)
        self._timer: asyncio.Task | None = None

    def _ensure_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._checkpoint_timer())

    async def _checkpoint_timer(self) -> None:
        """Commit updates that wait for `checkpoint_seconds` even when no more feedback arrives (the core learner
        only checks as feedback comes in), so `aimds scan` / `aimds rescore` on the same $AIMDS_HOME see them."""
        every = self.learner.cfg.checkpoint_seconds
        if not every:
            return
        while True:
            await asyncio.sleep(max(1.0, every / 4))
            before = self._gen
            try:
                await asyncio.to_thread(self.learner.checkpoint_if_due)
            except Exception as e:  # a failed commit is retried on the next tick; feedback keeps working
                print(f"learner: checkpoint failed: {type(e).__name__}: {e}", flush=True)
            self._notify_if_published(before)

    def _notify_if_published(self, before: int) -> None:
        if self._gen != before:
            self._changed.set()
            self._changed = asyncio.Event()

    def _published(self, bundle: Any) -> None:
        self._gen += 1  # in the feedback thread; read on the loop after the thread returns

    def _version(self) -> str:
        b = self.learner.current_bundle()
        return b.version if b is not None else "rules-only"

    async def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        """Durable before it returns. Runs in a thread so the long polls on this actor's loop keep answering."""
        from aimds_ray.core.feedback import FeedbackConflict, FeedbackError

        self._ensure_timer()
        before = self._gen
        kw = {k: body[k] for k in ("text", "label", "category", "source", "request_id", "feedback_id")
              if body.get(k) is not None}
        kw.setdefault("source", "local")
        try:
            ack = await asyncio.to_thread(self.learner.submit, **kw)
        except FeedbackError as e:
            return {"error": str(e), "status": 409 if isinstance(e, FeedbackConflict) else 422}
        self._notify_if_published(before)
        return ack

    async def remember_many(self, items: list[tuple[str, str, bool]]) -> int:
        """(request id, text, allowed) of requests the replicas answered: feedback may then name a request by its
        id, and what was let through is the recent benign traffic the learner's FPR guard and threshold refit use
        (texts up to OBSERVE_MAX_CHARS). In a thread: the learner's lock may be held by a feedback update, and the
        long polls must keep answering."""

        def put() -> None:
            for rid, text, _ in items:
                self.learner.remember(rid, text)
            self.learner.observe([t for _, t, allowed in items if allowed and len(t) <= OBSERVE_MAX_CHARS])

        await asyncio.to_thread(put)
        return len(items)

    async def wait_for_version(self, known: str, timeout_s: float = 30.0,
                               known_gen: int | None = None) -> tuple[str, Any, int]:
        """Long poll: (version, bundle, generation) as soon as the version differs from `known` or, when the caller
        passes the generation it holds, anything was published since (bundle None on timeout). A caller without a
        generation (a replica just started) gets the current bundle at once."""
        if known_gen is None:
            return self._version(), self.learner.current_bundle(), self._gen
        deadline = time.monotonic() + timeout_s
        while self._version() == known and self._gen == known_gen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return known, None, self._gen
            ev = self._changed
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except TimeoutError:
                pass
        return self._version(), self.learner.current_bundle(), self._gen

    async def checkpoint(self) -> str | None:
        """Commit pending updates now (a clean stop of the service); the new version, or None if nothing was
        pending."""
        before = self._gen
        v = await asyncio.to_thread(self.learner.checkpoint)
        self._notify_if_published(before)
        return v

    def version(self) -> str:
        return self._version()

    def info(self) -> dict[str, Any]:
        return {"version": self._version(), "pid": os.getpid(), "startup": self.learner.startup}


@ray.remote(max_restarts=-1, max_task_retries=0)
class GraphWriterActor:
    """Batched, spooled graph writes; `write` acknowledges once the record is spooled to disk."""

    def __init__(self, uri: str | None = None) -> None:
        from aimds_ray.graph import GraphWriter, open_graph_store

        self.writer = GraphWriter(lambda: open_graph_store(uri))

    def write(self, items: list[dict[str, Any]]) -> int:
        """Deep-path results -> graph records (request, detections, response, violations); spooled on return."""
        import json

        from aimds_ray.core.report import ThreatReport
        from aimds_ray.graph.model import ViolationRecord, records_from_report

        recs: list[Any] = []
        for it in items:
            sid, cid, t = it["session_id"], it.get("client_id") or "", float(it["t"])  # "": no client given
            if it.get("role", "request") == "request":  # a screened response adds only its violations
                recs.extend(records_from_report(ThreatReport.from_dict(it["report"]), sid, cid, t))
            for v in it.get("violations") or []:
                pol = str(v.get("policy", "unknown"))
                recs.append(ViolationRecord(violation_id=f"{sid}/{pol}/{v.get('position', t)}", session_id=sid,
                                            t=t, policy=pol, witness=json.dumps(v, default=str)[:4000],
                                            client_id=cid))
        return self.writer.submit(recs)

    def flush(self) -> None:
        self.writer.flush()


@ray.remote(max_restarts=-1, max_task_retries=0)
class DeadlineScheduler:
    """Orders deep-path work by priority and deadline, runs it on the session actors, keeps the counters."""

    def __init__(self, cfg: dict[str, Any], handles: dict[str, Any]) -> None:
        from aimds_ray.core.scheduler import DeadlineQueue, SessionSequencer

        self.cfg = RuntimeConfig.from_dict(cfg)
        self.seq = SessionSequencer()
        self.q = DeadlineQueue(capacity=self.cfg.scheduler_capacity, service_time_s=0.002,
                               on_shed=lambda t: self._release(t.payload), workers=self.cfg.scheduler_concurrency)
        self.h = handles
        self.ring_a = HashRing(len(handles["analyzers"]))
        self.ring_v = HashRing(len(handles["verifiers"]))
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(self.cfg.scheduler_concurrency)
        self._order_changed = asyncio.Event()  # set (and replaced) whenever a session ticket finishes
        # task ids admitted lately: a replica re-submits a batch whose acknowledgement it did not get, and a task
        # that had landed must not run (and reach its session's monitors) twice
        self._seen_ids: OrderedDict[str, None] = OrderedDict()
        self._loop_task: asyncio.Task | None = None
        self.decision_ns: list[int] = []
        self.last_errors: OrderedDict[str, str] = OrderedDict()
        self.degraded: dict[str, float] = {}
        self.deep_matches = 0
        self._sim_pending: list[tuple[str, int, asyncio.Future[list[dict[str, Any]]]]] = []
        self._sim_flush: asyncio.Task | None = None
        self.journal: Any = None
        self.journal_error = ""
        self.replayed = 0
        self._open_journal()

    def _open_journal(self) -> None:
        """Replay what a previous incarnation admitted and did not finish (its tasks run again, in their order:
        at least once), then record every admission. Without a journal the scheduler still runs, and says so."""
        from aimds_ray.core.scheduler import TaskJournal

        try:
            self.journal = TaskJournal(_state_dir() / "scheduler.journal")
        except Exception as e:  # another scheduler holds it, or the state directory is not writable
            self.journal_error = f"{type(e).__name__}: {e}"
            return
        for tid in self.journal.seen[-SEEN_IDS:]:
            self._seen_ids[tid] = None
        for task in self.journal.pending():
            self._admit(task, force=True)  # promised work: neither a full queue nor a passed deadline refuses it
            self.replayed += 1
        if self.replayed:
            with contextlib.suppress(RuntimeError):  # an async actor's __init__ runs on its event loop
                loop = asyncio.get_event_loop()
                loop.call_soon_threadsafe(self._ensure_loop)

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, task: dict[str, Any]) -> dict[str, Any]:
        """Admit one deep-path task: {id, priority, deadline_ms, session_id, report, t, text_len, entropy}. It is
        in the journal before this returns."""
        self._ensure_loop()
        t0 = time.perf_counter_ns()
        task["id"] = str(task["id"])  # the journal keeps ids as strings: a restarted scheduler must match them
        if task["id"] in self._seen_ids:
            return {"accepted": True, "reason": "duplicate", "shed": []}
        self._seen_ids[task["id"]] = None
        if len(self._seen_ids) > SEEN_IDS:
            self._seen_ids.popitem(last=False)
        out = self._admit(task, journal=True)
        self.decision_ns.append(time.perf_counter_ns() - t0)
        if len(self.decision_ns) > 10_000:
            del self.decision_ns[:5000]
        return out

    def _admit(self, task: dict[str, Any], journal: bool = False, force: bool = False) -> dict[str, Any]:
        from aimds_ray.core.scheduler import Priority, Task

        pr = Priority.parse(task.get("priority", "low"))
        deadline = time.monotonic() + float(task.get("deadline_ms") or self.cfg.deadlines_ms[pr.name.lower()]) / 1e3
        sid = task.get("session_id")
        if sid:
            task["_ticket"] = self.seq.issue(sid)
        adm = self.q.submit(Task(task["id"], pr, deadline, task), force=force)
        if not adm.accepted:
            self._release(task)
        else:
            if journal and self.journal is not None:
                try:
                    self.journal.add_many([task])
                    self.degraded.pop("journal", None)
                except OSError as e:  # the task still runs; only its survival of a restart is in doubt
                    self.degraded["journal"] = time.time()
                    self.journal_error = f"{type(e).__name__}: {e}"
            self._wake.set()
        return {"accepted": adm.accepted, "reason": adm.reason, "shed": [t.id for t in adm.shed]}

    async def submit_many(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`submit` for each task of a batch request: one actor call instead of one per task."""
        return [await self.submit(t) for t in tasks]

    async def _run(self) -> None:
        while True:
            await self._sem.acquire()
            t = self.q.pop()
            while t is None:
                self._wake.clear()
                await self._wake.wait()
                t = self.q.pop()
            asyncio.get_running_loop().create_task(self._execute(t))

    def _release(self, task: dict[str, Any]) -> None:
        """A task is finished with (ran, failed, refused or shed): its session's next may go, the journal forgets it."""
        if self.journal is not None:
            try:
                self.journal.done(task["id"])
            except OSError as e:  # at worst the task runs again after a restart
                self.journal_error = f"{type(e).__name__}: {e}"
        if task.get("session_id") and "_ticket" in task:
            self.seq.finish(task["session_id"], task["_ticket"])
            self._order_changed.set()  # wake the tasks waiting for their session's turn
            self._order_changed = asyncio.Event()

    def _session_ready(self, task: dict[str, Any]) -> bool:
        sid = task.get("session_id")
        return not sid or "_ticket" not in task or self.seq.ready(sid, task["_ticket"])

    async def _in_session_order(self, task: dict[str, Any]) -> None:
        """Wait until the session's earlier tasks are done (bounded: a stuck task cannot block a session)."""
        # every task's own calls are bounded by call_timeout_s, so waiting for predecessors terminates; the bound
        # here only guards against a predecessor lost without release (e.g. a scheduler bug)
        deadline = time.monotonic() + self.cfg.session_order_wait_s
        while not self._session_ready(task):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._order_changed.wait(), left)

    async def _execute(self, t: Any) -> None:
        started = time.monotonic()
        try:
            if not self._session_ready(t.payload):
                # waiting for an earlier task of the same session must not hold a concurrency slot: that task may
                # still be queued (lower priority) and need the slot to run at all
                self._sem.release()
                try:
                    await self._in_session_order(t.payload)
                finally:
                    await self._sem.acquire()
                started = time.monotonic()  # service time, for admission, excludes the wait
            await self._deep(t.payload)
        except Exception as e:  # a failed component degrades the deep path, never the scheduler
            self.last_errors[t.id] = f"{type(e).__name__}: {e}"
            while len(self.last_errors) > 100:
                self.last_errors.popitem(last=False)
        finally:
            self._release(t.payload)
            self.q.complete(t, started)
            self._sem.release()

    async def _call(self, name: str, ref: Any) -> Any:
        try:
            out = await asyncio.wait_for(ref, self.cfg.call_timeout_s)
            self.degraded.pop(name, None)
            return out
        except Exception:
            self.degraded[name] = time.time()
            raise

    async def _similar(self, text: str, k: int = 3) -> list[dict[str, Any]]:
        """Top-k attack exemplars for `text` over every matcher shard. Queries of tasks running at the same time
        are coalesced into one call per shard (the shards take lists): under load, one actor round trip serves up
        to `scheduler_concurrency` tasks instead of one each."""
        fut: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._sim_pending.append((text, k, fut))
        if self._sim_flush is None or self._sim_flush.done():
            self._sim_flush = asyncio.get_running_loop().create_task(self._flush_similar())
        return await fut

    async def _flush_similar(self) -> None:
        await asyncio.sleep(0)  # tasks started in the same loop turn join this batch
        batch, self._sim_pending = self._sim_pending, []
        merged: list[list[dict[str, Any]]] = [[] for _ in batch]
        try:
            texts = [t for t, _, _ in batch]
            k = max(kk for _, kk, _ in batch)
            refs = [sh.find_similar.remote(texts, k) for sh in self.h.get("shards") or []]
            for r in refs:
                try:
                    res = await self._call("matcher", r)  # a shard that fails degrades, not the tasks
                except Exception:
                    continue
                for i, hits in enumerate(res):
                    merged[i].extend(hits)
        finally:
            for (_, kk, fut), hits in zip(batch, merged, strict=True):
                if not fut.done():
                    hits.sort(key=lambda h: -float(h.get("score", 0.0)))
                    fut.set_result(hits[:kk])
            if self._sim_pending:  # queries that arrived while this batch was in flight
                self._sim_flush = asyncio.get_running_loop().create_task(self._flush_similar())

    async def _deep(self, p: dict[str, Any]) -> None:
        sid = p.get("session_id")
        rep = p["report"]
        if p.get("uncertain") and self.h.get("shards"):
            top = await self._similar(rep.get("sanitized_text", ""))
            if top and float(top[0].get("score", 0.0)) >= self.cfg.deep_match_score:
                p.setdefault("events", []).append({"t": p["t"], "type": "deep_match",
                                                   "family": str(top[0].get("family", "")),
                                                   "score": float(top[0]["score"])})
                self.deep_matches += 1
        if not sid:
            return
        v = self.h["verifiers"][self.ring_v.owner(sid)]
        calls: list[tuple[str, Any]] = []
        if p.get("role") != "response":  # a response is no request: the behaviour model sees requests only
            a = self.h["analyzers"][self.ring_a.owner(sid)]
            cats = {k: float(x) for k, x in rep.get("categories", {}).items()}
            calls.append(("analyzer", a.observe.remote(sid, p["t"], float(rep["score"]), int(p.get("text_len", 0)),
                                                       p.get("entropy"), cats)))
        calls.append(("verifier", v.step.remote(sid, session_events(p))))
        failed: Exception | None = None
        violations: list[dict[str, Any]] = []
        for name, ref in calls:  # one failing must not cost the other, nor the
            try:                                                    # request its graph record
                out = await self._call(name, ref)
            except Exception as e:
                failed = failed or e
                continue
            if name == "verifier":
                violations = out
        if self.cfg.graph and self.h.get("graph") is not None:
            rec = {"kind": "report", "session_id": sid, "client_id": p.get("client_id") or "", "t": p["t"],
                   "report": rep, "violations": violations, "role": p.get("role", "request")}
            # acknowledged once spooled to disk; a writer that refuses (full spool) or is down shows as degraded.
            # Retried: a killed writer restarts in seconds, and replaying a record changes nothing
            graph = self.h["graph"]
            await with_retries(lambda: self._call("graph", graph.write.remote([rec])), 3)
        if failed is not None:
            raise failed

    def stats(self) -> dict[str, Any]:
        import numpy as np

        d = np.array(self.decision_ns[-5000:], dtype=np.float64) / 1000.0
        out = self.q.snapshot()
        out["decision_us_p50"] = round(float(np.percentile(d, 50)), 3) if d.size else None
        out["decision_us_p99"] = round(float(np.percentile(d, 99)), 3) if d.size else None
        out["degraded"] = sorted(self.degraded)
        out["deep_matches"] = self.deep_matches
        out["recent_errors"] = list(self.last_errors.values())[-5:]
        out["journal"] = {"pending": len(self.journal) if self.journal is not None else None,
                          "replayed": self.replayed, "error": self.journal_error}
        return out


def session_events(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace events one answered request contributes to its session (the vocabulary policies speak); a screened
    response contributes the one event the Serve replica made of it (`core.response.trace_event`)."""
    if p.get("role") == "response":
        return list(p.get("events", []))
    rep = p["report"]
    t_in = float(p["t"])
    t_out = t_in + float(rep.get("latency_us", 0.0)) / 1e6
    pii = any(e.get("category") == "data_leakage" for e in rep.get("evidence", []))
    ev = {"t": t_in, "type": "detect", "is_threat": bool(rep["is_threat"]), "threat_type": rep["threat_type"],
          "score": float(rep["score"]), "action": rep["action"], "pii": pii,
          "critical": rep["action"] == "block", "request_id": rep.get("request_id", "")}
    # events the application reports with the request (tool calls, human approvals, ...) happened before it;
    # then the request itself arrives and is screened
    out = [*(e for e in p.get("events", []) if e.get("type") != "deep_match"), {"t": t_in, "type": "request"}, ev]
    if rep["action"] in ("block", "escalate"):
        out.append({"t": t_out, "type": "mitigated", "action": rep["action"]})
    if rep["action"] == "block":
        out.append({"t": t_out, "type": "blocked"})
    if pii and rep["action"] == "redact":
        out.append({"t": t_out, "type": "redacted"})
    out.extend(e for e in p.get("events", []) if e.get("type") == "deep_match")
    if rep["action"] != "block":  # the verdict let the request through: the application answers it
        out.append({"t": t_out, "type": "response", "redacted": rep["action"] == "redact"})
    return out


def client_events(metadata: Any, t: float) -> list[dict[str, Any]]:
    """`metadata.events`: [{"type": "tool_call", ...}] reported by the application (checked at the edge,
    `core.service.validate_detect_item`), scalar fields only: nested values are not given to the policies."""
    out: list[dict[str, Any]] = []
    evs = metadata.get("events") if isinstance(metadata, dict) else None
    if not isinstance(evs, list):
        return out
    for e in evs[:MAX_EVENTS]:
        if isinstance(e, dict) and isinstance(e.get("type"), str):
            ev = {k: v for k, v in e.items() if isinstance(v, str | int | float | bool) and k != "t"}
            ev["t"] = t
            out.append(ev)
    return out
