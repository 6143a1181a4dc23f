"""Temporal-logic policy engine speed, with the peer (`reelay`, C++ core) in the same run on the same trace.

1. Per-event runtime monitoring of a past-time formula with a timed bound: ours `G (a -> O[0,10s] b)` (the invariant
   whose body is reelay's `{a} -> once[0:10]{b}`), one Python call per event for both, after warm-up. Timestamps
   are 1 s apart, so reelay's discrete-time bound [0:10] and our [0,10s] mean the same; the trace keeps the
   invariant true so our monitor never short-circuits on a final verdict. Per-event values are cross-checked.
2. Offline verification of a 100,000-event session trace against 10 policies (the shipped set plus two), one
   batch pass; trace construction (JSON objects -> columns) and compilation reported separately.

Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aimds_ray.core.ltl import Monitor, Trace, load_policies, parse, verify_many  # noqa: E402
from aimds_ray.core.ltl.evaluator import Program  # noqa: E402
from aimds_ray.core.ltl.monitor import CompiledMonitor  # noqa: E402


def best_rate(fn, n_events: int, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_events / min(times)


def monitor_bench(n: int, reps: int) -> dict:
    rng = random.Random(1)
    # invariant holds: b every 5 steps, a random
    # "time" duplicates "t": reelay's dense monitor reads the key "time" whatever t_name says (reelay 25.0)
    events = [{"t": float(i), "time": float(i), "type": "x", "a": rng.random() < 0.5, "b": i % 5 == 0}
              for i in range(n)]
    out: dict = {"events": n, "formula_ours": "G (a -> O[0,10s] b)", "formula_reelay": "{a} -> once[0:10]{b}"}

    t0 = time.perf_counter()
    cm = CompiledMonitor("G (a -> O[0,10s] b)")
    out["compile_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
    Monitor(cm).feed(events[:1000])  # warm the shared transition table

    def ours() -> None:
        m = Monitor(cm)
        step = m.step
        for ev in events:
            step(ev)
        assert m.finish() == "satisfied"

    out["ours_events_per_s"] = round(best_rate(ours, n, reps))
    try:
        import reelay
    except ImportError:
        out["reelay"] = "not installed (pip install -e '.[bench]')"
        return out
    for name, make in [
        ("reelay_discrete_condensing", lambda: reelay.discrete_timed_monitor(
            pattern="{a} -> once[0:10]{b}", t_name="t", condense=True)),
        ("reelay_discrete", lambda: reelay.discrete_timed_monitor(
            pattern="{a} -> once[0:10]{b}", t_name="t", condense=False)),
        ("reelay_dense", lambda: reelay.dense_timed_monitor(pattern="{a} -> once[0:10]{b}", t_name="t")),
    ]:
        make().update(events[0])

        def run(make=make) -> None:
            upd = make().update
            for ev in events:
                upd(ev)

        out[f"{name}_events_per_s"] = round(best_rate(run, n, reps))
    base = out["reelay_discrete_condensing_events_per_s"]
    out["ours_vs_reelay_discrete_condensing"] = round(out["ours_events_per_s"] / base, 3)
    out["ours_vs_reelay_fastest"] = round(out["ours_events_per_s"] / max(
        out[k] for k in out if k.startswith("reelay_") and k.endswith("_per_s")), 3)

    # semantic cross-check on a random trace with violations: reelay's per-event value == our body's value
    chk = [{"t": float(i), "type": "x", "a": rng.random() < 0.5, "b": rng.random() < 0.08} for i in range(20000)]
    rm = reelay.discrete_timed_monitor(pattern="{a} -> once[0:10]{b}", t_name="t", condense=False)
    theirs = [bool(rm.update(ev)["value"]) for ev in chk]
    body = parse("a -> O[0,10s] b")
    prog = Program([body])
    mine = [bool(x) for x in prog.table(Trace(chk))[prog.index[body]]]
    out["crosscheck_events"] = len(chk)
    out["crosscheck_agree"] = sum(x == y for x, y in zip(mine, theirs, strict=True))
    first_false = next((i for i, x in enumerate(mine) if not x), None)
    m = Monitor(cm)
    verdicts = [m.step(ev) for ev in chk]
    out["crosscheck_monitor_violated_at"] = m.certain_at[0] if m.certain_at else None
    out["crosscheck_first_false_body"] = first_false
    assert verdicts[-1] == "violated" and m.certain_at and m.certain_at[0] == first_false
    return out


EXTRA = [
    'G (detect & threat_type == "jailbreak" -> G[0,2s] !tool_call)',
    "G (tool_call -> O[0,30s] request)",
]


def session_trace(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = []
    t = 0.0
    threats = ["prompt_injection", "jailbreak", "prompt_extraction", "data_exfiltration"]
    while len(out) < n:
        t += rng.uniform(0.001, 0.5)
        out.append({"t": t, "type": "request", "session_id": "s1"})
        t += 0.0005
        thr = rng.random() < 0.2
        score = round(rng.uniform(0.5, 1.0) if thr else rng.uniform(0.0, 0.4), 3)
        action = ("block" if score >= 0.8 else "escalate") if thr else "allow"
        pii = rng.random() < 0.1
        out.append({"t": t, "type": "detect", "is_threat": thr, "score": score, "action": action, "pii": pii,
                    "threat_type": rng.choice(threats) if thr else "none"})
        if thr and score >= 0.9:
            t += rng.uniform(0.0005, 0.012)
            out.append({"t": t, "type": "mitigated"})
        if pii:
            t += 0.001
            out.append({"t": t, "type": "redacted"})
        if action != "block":
            if rng.random() < 0.3:
                t += 0.002
                out.append({"t": t, "type": "tool_call", "tool": "search"})
            t += rng.uniform(0.01, 0.2)
            out.append({"t": t, "type": "response", "system_prompt_leak": rng.random() < 0.0005})
    return out[:n]


def offline_bench(n: int, reps: int) -> dict:
    events = session_trace(n)
    pols = load_policies()
    formulas = [p.formula for p in pols] + [parse(x) for x in EXTRA]
    formulas = formulas[:10]
    out: dict = {"events": n, "policies": len(formulas)}
    t0 = time.perf_counter()
    for f in formulas:
        parse(str(f))
    prog = Program(formulas)
    out["compile_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
    verify_many(formulas, Trace(events[:1000]))  # warm-up (numba kernel loaded)
    build, check, kernel = [], [], []
    results = None
    for _ in range(reps):
        t0 = time.perf_counter()
        tr = Trace(events)  # validation + timestamps; columns/atoms are built lazily inside verify
        t1 = time.perf_counter()
        results = verify_many(formulas, tr)  # atoms (dict fields -> bool arrays) + numba pass
        t2 = time.perf_counter()
        verify_many(formulas, tr)  # same trace again: atom arrays cached, i.e. the evaluation alone
        t3 = time.perf_counter()
        build.append(t1 - t0)
        check.append(t2 - t1)
        kernel.append(t3 - t2)
    assert results is not None
    out["verify_10_policies_on_atomised_trace_ms_median"] = round(statistics.median(kernel) * 1e3, 2)
    out["trace_build_ms_median"] = round(statistics.median(build) * 1e3, 2)
    out["verify_10_policies_ms_median"] = round(statistics.median(check) * 1e3, 2)
    out["verify_10_policies_ms_min"] = round(min(check) * 1e3, 2)
    out["verify_plus_build_ms_median"] = round(statistics.median([a + b for a, b in zip(build, check, strict=True)])
                                               * 1e3, 2)
    out["program_nodes"] = len(prog)
    out["verdicts"] = {str(i): r.verdict for i, r in enumerate(results)}
    viol = next((r for r in results if not r.satisfied), None)
    if viol is not None:
        t0 = time.perf_counter()
        w = viol.witness
        out["witness_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        out["witness_slice_events"] = w["slice"]["n_events"]

    # all shipped policies monitored per session, per event
    s = pols.session("bench")
    t0 = time.perf_counter()
    for ev in events:
        s.step(ev)
    out["session_monitor_default_policies"] = len(pols)
    out["session_monitor_events_per_s"] = round(n / (time.perf_counter() - t0))
    fin = {r["policy"]: r["verdict"] for r in s.finish()}
    off = {p.name: r.verdict for p, r in zip(pols, verify_many([p.formula for p in pols], Trace(events)),
                                             strict=True)}
    out["session_monitor_agrees_with_offline"] = fin == off
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--monitor-events", type=int, default=200_000)
    ap.add_argument("--offline-events", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    res = {"benchmark": "ltl", "monitor": monitor_bench(a.monitor_events, a.reps),
           "offline": offline_bench(a.offline_events, a.reps)}
    res["targets"] = {
        "monitor_at_least_reelay": res["monitor"].get("ours_vs_reelay_discrete_condensing", 0) >= 1.0,
        "offline_under_50ms": res["offline"]["verify_10_policies_ms_median"] < 50.0,  # from Python dicts
        "offline_on_atomised_trace_under_50ms":
            res["offline"]["verify_10_policies_on_atomised_trace_ms_median"] < 50.0,
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
