"""The deadline queue: priority then EDF order, admission control, shedding, deadline accounting."""

import asyncio
from types import SimpleNamespace

import pytest

from aimds_ray.core.scheduler import DeadlineQueue, Priority, Task


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_priority_then_earliest_deadline() -> None:
    c = Clock()
    q = DeadlineQueue(capacity=10, service_time_s=0.0001, clock=c)
    q.submit(Task("low", Priority.LOW, c.t + 5))
    q.submit(Task("high-late", Priority.HIGH, c.t + 3))
    q.submit(Task("high-early", Priority.HIGH, c.t + 1))
    q.submit(Task("crit", Priority.CRITICAL, c.t + 9))
    assert [q.pop().id for _ in range(4)] == ["crit", "high-early", "high-late", "low"]
    assert q.pop() is None


def test_full_queue_sheds_lowest_never_critical() -> None:
    c = Clock()
    q = DeadlineQueue(capacity=2, service_time_s=0.0001, clock=c)
    assert q.submit(Task("l1", Priority.LOW, c.t + 5)).accepted
    assert q.submit(Task("l2", Priority.LOW, c.t + 5)).accepted
    adm = q.submit(Task("c", Priority.CRITICAL, c.t + 5))
    assert adm.accepted and [t.id for t in adm.shed] == ["l2"]
    assert not q.submit(Task("l3", Priority.LOW, c.t + 5)).accepted  # lowest newcomer is refused
    q.submit(Task("c2", Priority.CRITICAL, c.t + 5))  # sheds l1
    assert not q.submit(Task("c3", Priority.CRITICAL, c.t + 5)).accepted  # never sheds critical
    assert q.snapshot()["shed_by_priority"]["low"] == 2


def test_admission_refuses_unmeetable_deadlines_except_critical() -> None:
    c = Clock()
    q = DeadlineQueue(capacity=100, service_time_s=0.01, clock=c)
    for i in range(10):
        q.submit(Task(f"h{i}", Priority.HIGH, c.t + 10))
    assert not q.submit(Task("m", Priority.MEDIUM, c.t + 0.05)).accepted  # 10 x 10 ms ahead of it
    assert q.submit(Task("crit", Priority.CRITICAL, c.t + 0.001)).accepted


def test_expired_low_work_is_shed_and_misses_counted() -> None:
    c = Clock()
    q = DeadlineQueue(capacity=10, service_time_s=0.0001, clock=c)
    q.submit(Task("low", Priority.LOW, c.t + 0.01))
    q.submit(Task("crit", Priority.CRITICAL, c.t + 0.01))
    c.t += 1.0
    t = q.pop()
    assert t.id == "crit"
    assert q.complete(t, started=c.t) is False
    assert q.pop() is None  # the expired low task was shed, not run late
    s = q.snapshot()
    assert s["deadline_misses"] == 1 and s["misses_by_priority"]["critical"] == 1 and s["shed"] == 1


def test_bad_priority() -> None:
    with pytest.raises(ValueError):
        Priority.parse("urgent")
    assert Priority.parse("Critical") is Priority.CRITICAL


def test_session_sequencer_releases_in_order_and_skips_dropped() -> None:
    from aimds_ray.core.scheduler import SessionSequencer

    s = SessionSequencer()
    a, b, c = (s.issue("s1") for _ in range(3))
    assert s.ready("s1", a) and not s.ready("s1", b)
    s.finish("s1", c)  # finished out of order: nothing released yet
    assert not s.ready("s1", b)
    s.finish("s1", a)
    assert s.ready("s1", b)
    s.finish("s1", b)  # b was shed: finishing it releases everything after it
    assert s.ready("s1", s.issue("s1"))
    assert s.ready("s2", s.issue("s2"))  # sessions are independent


# --- the scheduler actor's class in-process, with stand-ins for the actors it calls ---------------------------------

REPORT = {"score": 0.9, "categories": {}, "is_threat": True, "threat_type": "jailbreak", "action": "block",
          "evidence": [], "latency_us": 100.0}


class _Now:
    """An actor method stand-in that answers `fn(*args)` at once."""

    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(self.fn(*args))
        return fut


class _Never:
    """An actor method stand-in that never answers: the task stays in flight."""

    def remote(self, *args):
        return asyncio.get_running_loop().create_future()


def _handles(observe) -> dict:
    """One analyzer whose `observe` is the given stand-in, a verifier that finds nothing, no graph, no shards."""
    return {"analyzers": [SimpleNamespace(observe=observe)],
            "verifiers": [SimpleNamespace(step=_Now(lambda sid, events: []))], "graph": None, "shards": []}


def _scheduler_class():
    from aimds_ray.distributed.actors import DeadlineScheduler

    return DeadlineScheduler.__ray_metadata__.modified_class


def test_session_order_waits_do_not_hold_concurrency_slots() -> None:
    """The scheduler actor's class, in-process, with recording stand-ins for the analyzer and verifier. One
    session sends a low-priority task and then more critical ones than there are slots: the critical ones are
    popped first and must wait for the low one. Waiting must not hold a slot (it did: the low task could not be
    popped, the deep path stalled for session_order_wait_s, then ran the session out of order)."""
    import time

    seen: list[tuple[str, float]] = []

    class Call:
        def __init__(self, fn):
            self.fn = fn

        def remote(self, *args):
            async def run():
                await asyncio.sleep(0.005)  # an actor round trip
                return self.fn(*args)
            return asyncio.ensure_future(run())

    cls = _scheduler_class()
    cfg = {"scheduler_concurrency": 4, "session_order_wait_s": 30.0, "graph": False}

    def task(i: int, sid: str, prio: str) -> dict:
        return {"id": f"{sid}{i}", "priority": prio, "session_id": sid, "t": float(i), "text_len": 10,
                "report": dict(REPORT)}

    async def go() -> float:
        handles = _handles(Call(lambda sid, t, *rest: seen.append((sid, t))))
        handles["verifiers"][0].step = Call(lambda sid, events: [])  # every call takes a round trip here
        sched = cls(cfg, handles)
        t0 = time.monotonic()
        await sched.submit_many([task(0, "s", "low")] + [task(i, "s", "critical") for i in range(1, 9)]
                                + [task(0, "u", "critical")])
        while len(seen) < 10 and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.01)
        return time.monotonic() - t0

    took = asyncio.run(go())
    assert len(seen) == 10, seen
    assert [t for sid, t in seen if sid == "s"] == [float(i) for i in range(9)]  # the session in arrival order
    assert took < 5.0  # not the 30 s order wait


def test_admission_counts_parallel_workers() -> None:
    """With several tasks served at once, the queue ahead drains that many times faster."""
    for workers, accepted in ((1, False), (4, True)):
        clock = Clock()
        q = DeadlineQueue(capacity=100, service_time_s=1.0, clock=clock, workers=workers)
        for i in range(8):
            assert q.submit(Task(f"a{i}", Priority.LOW, clock.t + 1000)).accepted
        # 8 ahead: one worker starts it at +8 s, four at +2 s (done at +3 s)
        assert q.submit(Task("x", Priority.LOW, clock.t + 3.5)).accepted is accepted
    with pytest.raises(ValueError):
        DeadlineQueue(workers=0)


def test_resubmitted_tasks_run_once() -> None:
    """A replica re-submits a batch whose acknowledgement timed out; tasks that had landed must not run twice."""
    seen: list[float] = []
    cls = _scheduler_class()
    tasks = [{"id": f"r{i}", "priority": "critical", "session_id": "s", "t": float(i), "text_len": 5,
              "report": dict(REPORT)} for i in range(3)]

    async def go() -> list[dict]:
        sched = cls({"graph": False}, _handles(_Now(lambda sid, t, *rest: seen.append(t))))
        await sched.submit_many([dict(t) for t in tasks])
        again = await sched.submit_many([dict(t) for t in tasks])
        for _ in range(200):
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        return again

    again = asyncio.run(go())
    assert [a["reason"] for a in again] == ["duplicate"] * 3 and seen == [0.0, 1.0, 2.0]


def _jtask(i: int, sid: str = "s") -> dict:
    return {"id": f"{sid}{i}", "priority": "low", "session_id": sid, "t": float(i), "_ticket": i,
            "report": {"score": 0.5, "categories": {"jailbreak": 0.5}}}


def test_journal_replays_unfinished_tasks_in_admission_order(tmp_path) -> None:
    from aimds_ray.core.scheduler import TaskJournal

    j = TaskJournal(tmp_path / "q.journal")
    j.add_many([_jtask(i) for i in range(5)])
    j.done("s1")
    j.done("s3")
    j.done("unknown")  # never admitted: nothing to forget, nothing written
    j.close()
    j2 = TaskJournal(tmp_path / "q.journal")
    assert [t["id"] for t in j2.pending()] == ["s0", "s2", "s4"]
    assert j2.seen == ["s0", "s1", "s2", "s3", "s4"]
    assert "_ticket" not in j2.pending()[0] and j2.pending()[0]["report"]["categories"] == {"jailbreak": 0.5}
    j2.close()


def test_journal_survives_a_torn_last_line_and_keeps_appending_after_it(tmp_path) -> None:
    from aimds_ray.core.scheduler import TaskJournal

    path = tmp_path / "q.journal"
    j = TaskJournal(path)
    j.add_many([_jtask(0), _jtask(1)])
    j.close()
    with open(path, "ab") as f:
        f.write(b'{"op":"add","id":"s2","task":{"id":"s')  # a crash mid-write
    j = TaskJournal(path)
    assert [t["id"] for t in j.pending()] == ["s0", "s1"] and j.torn_lines == 1
    j.add_many([_jtask(3)])
    j.done("s0")
    j.close()
    j = TaskJournal(path)
    assert [t["id"] for t in j.pending()] == ["s1", "s3"]
    j.close()


def test_journal_compaction_keeps_exactly_the_pending_tasks(tmp_path) -> None:
    from aimds_ray.core.scheduler import TaskJournal

    path = tmp_path / "q.journal"
    j = TaskJournal(path, compact_bytes=4096)
    for i in range(2000):
        j.add_many([_jtask(i)])
        if i % 10:
            j.done(f"s{i}")
    full = sum(len(line) for line in j._pending.values()) * 10 + 1800 * 25  # every add and done kept
    assert path.stat().st_size < full / 2  # compacted as it went
    j.close()
    j = TaskJournal(path)
    assert [t["id"] for t in j.pending()] == [f"s{i}" for i in range(0, 2000, 10)]
    assert "s1999" in j.seen and "s1" not in j.seen  # the latest finished ids survive compaction, not all
    j.close()


def test_journal_refuses_nothing_it_replays() -> None:
    """A restarted scheduler replays more than its queue would admit (capacity 4, six promised tasks): all run."""
    seen: list[float] = []
    cls = _scheduler_class()
    cfg = {"graph": False, "call_timeout_s": 60.0, "scheduler_concurrency": 2, "scheduler_capacity": 4}

    async def first() -> None:
        sched = cls(cfg, _handles(_Never()))
        for i in range(6):  # two run (and hang), four wait: six promised
            await sched.submit({"id": f"r{i}", "priority": "high", "session_id": f"s{i}", "t": float(i),
                                "text_len": 5, "report": dict(REPORT)})
            await asyncio.sleep(0.01)
        sched.journal.close()

    async def second() -> dict:
        sched = cls(cfg, _handles(_Now(lambda sid, t, *rest: seen.append(t))))
        for _ in range(300):
            if len(seen) >= 6:
                break
            await asyncio.sleep(0.01)
        return sched.stats()

    asyncio.run(first())
    st = asyncio.run(second())
    assert sorted(seen) == [float(i) for i in range(6)] and st["journal"]["replayed"] == 6


def test_a_second_journal_on_the_same_file_is_refused(tmp_path) -> None:
    from aimds_ray.core.feedback import LockTimeout
    from aimds_ray.core.scheduler import TaskJournal

    j = TaskJournal(tmp_path / "q.journal")
    with pytest.raises(LockTimeout):
        TaskJournal(tmp_path / "q.journal", lock_timeout_s=0.2)
    j.close()
    TaskJournal(tmp_path / "q.journal", lock_timeout_s=0.2).close()  # free again once the first let go


def test_restarted_scheduler_runs_what_its_predecessor_had_queued() -> None:
    """The scheduler actor's class, in-process: the first incarnation admits a session's tasks and dies before
    running them (its analyzer never answers); the second, on the same $AIMDS_HOME, runs them in order and drops
    the replica's re-submission of the same ids."""
    seen: list[float] = []
    cls = _scheduler_class()
    cfg = {"graph": False, "call_timeout_s": 60.0, "scheduler_concurrency": 1}
    tasks = [{"id": f"r{i}", "priority": "high", "session_id": "s", "t": float(i), "text_len": 5,
              "report": dict(REPORT)} for i in range(4)]

    async def first() -> dict:
        sched = cls(cfg, _handles(_Never()))
        acks = await sched.submit_many([dict(t) for t in tasks])
        assert all(a["accepted"] for a in acks)
        await asyncio.sleep(0.05)
        st = sched.stats()
        sched.journal.close()  # the process dies: its lock goes with it
        return st

    async def second() -> tuple[list[dict], dict]:
        sched = cls(cfg, _handles(_Now(lambda sid, t, *rest: seen.append(t))))
        again = await sched.submit_many([dict(t) for t in tasks])  # the replica's retry of the unacknowledged batch
        for _ in range(300):
            if len(seen) >= 4:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return again, sched.stats()

    st1 = asyncio.run(first())
    assert st1["journal"]["pending"] == 4 and seen == []
    again, st2 = asyncio.run(second())
    assert seen == [0.0, 1.0, 2.0, 3.0]  # each once, in the session's order
    assert [a["reason"] for a in again] == ["duplicate"] * 4
    assert st2["journal"] == {"pending": 0, "replayed": 4, "error": ""}
