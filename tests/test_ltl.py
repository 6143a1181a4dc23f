"""Differential tests for the temporal-logic engine: fast evaluator == reference, monitor == offline, classic
equivalences, witnesses that re-verify, snapshot/restore."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimds_ray.core.ltl import PENDING, Monitor, Trace, parse, verify
from aimds_ray.core.ltl.evaluator import Program
from aimds_ray.core.ltl.reference import holds
from aimds_ray.core.ltl.reference import verdict as ref_verdict
from aimds_ray.core.ltl.syntax import Atom, Formula, to_str

ATOMS = [Formula("atom", atom=Atom(n)) for n in ("p", "q", "r")] + [Formula("atom", atom=Atom("s", ">=", 0.5))]
BOUNDS = [0.0, 0.5, 1.0, 2.0]
UNARY = ["not", "X", "N", "F", "G", "Y", "O", "H"]
BINARY = ["and", "or", "implies", "iff", "U", "R", "S"]
TIMED = ["Ft", "Gt", "Ot", "Ht"]

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def formulas(max_depth: int = 4) -> st.SearchStrategy[Formula]:
    leaf = st.sampled_from(ATOMS + [Formula("true"), Formula("false")])

    def extend(children: st.SearchStrategy[Formula]) -> st.SearchStrategy[Formula]:
        un = st.builds(lambda op, a: Formula(op, (a,)), st.sampled_from(UNARY), children)
        bi = st.builds(lambda op, a, b: Formula(op, (a, b)), st.sampled_from(BINARY), children, children)
        tm = st.builds(lambda op, lo, w, a: Formula(op, (a,), lo=lo, hi=lo + w), st.sampled_from(TIMED),
                       st.sampled_from(BOUNDS), st.sampled_from(BOUNDS), children)
        return st.one_of(un, bi, tm)

    return st.recursive(leaf, extend, max_leaves=6)


@st.composite
def traces(draw, min_size: int = 1, max_size: int = 30) -> list[dict]:
    n = draw(st.integers(min_size, max_size))
    t = 0.0
    out = []
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5]))
        ev: dict = {"t": t, "type": draw(st.sampled_from(["p", "q", "r", "x"]))}
        if draw(st.booleans()):
            ev["q"] = draw(st.sampled_from([True, False, "yes"]))
        if draw(st.booleans()):
            ev["s"] = draw(st.sampled_from([0, 0.25, 0.5, 0.75, 1, "high", True]))
        out.append(ev)
    return out


@SETTINGS
@given(formulas(), traces())
def test_fast_evaluator_matches_reference_everywhere(f: Formula, events: list[dict]) -> None:
    prog = Program([f])
    tab = prog.table(Trace(events))
    for g, row in prog.index.items():
        assert [bool(x) for x in tab[row]] == [holds(g, events, i) for i in range(len(events))], str(g)


@SETTINGS
@given(formulas(), traces())
def test_monitor_final_verdict_matches_offline_and_early_verdicts_are_sound(f: Formula, events: list) -> None:
    expected = "satisfied" if ref_verdict(f, events) else "violated"
    m = Monitor(f)
    for i, ev in enumerate(events):
        v = m.step(ev)
        if v is not PENDING:  # final: every extension agrees, so in particular every longer prefix does
            for j in range(i, len(events)):
                assert ("satisfied" if ref_verdict(f, events[: j + 1]) else "violated") == v, (str(f), j)
            break
    assert m.finish() == expected


@SETTINGS
@given(formulas(), traces(min_size=2))
def test_snapshot_restore_roundtrip(f: Formula, events: list) -> None:
    k = len(events) // 2
    m = Monitor(f)
    m.feed(events[:k])
    snap = json.loads(json.dumps(m.snapshot()))
    m2 = Monitor.restore(snap)
    assert [m2.step(e) for e in events[k:]] == [m.step(e) for e in events[k:]]
    assert m2.finish() == m.finish()


@settings(max_examples=150, deadline=None)
@given(formulas(3), formulas(3), traces())
def test_classic_equivalences(p: Formula, q: Formula, events: list) -> None:
    T = Formula("true")

    def neg(x: Formula) -> Formula:
        return Formula("not", (x,))

    pairs = [
        (Formula("F", (p,)), Formula("U", (T, p))),
        (Formula("G", (p,)), neg(Formula("F", (neg(p),)))),
        (Formula("R", (p, q)), neg(Formula("U", (neg(p), neg(q))))),
        (Formula("N", (p,)), neg(Formula("X", (neg(p),)))),
        (Formula("H", (p,)), neg(Formula("O", (neg(p),)))),
        (Formula("O", (p,)), Formula("S", (T, p))),
        (Formula("Gt", (p,), lo=0.5, hi=1.0), neg(Formula("Ft", (neg(p),), lo=0.5, hi=1.0))),
    ]
    prog = Program([x for pair in pairs for x in pair])
    tab = prog.table(Trace(events))
    for a, b in pairs:
        assert (tab[prog.index[a]] == tab[prog.index[b]]).all(), (str(a), str(b))


@settings(max_examples=100, deadline=None)
@given(formulas(3))
def test_printer_roundtrip(f: Formula) -> None:
    assert parse(to_str(f)) == f


@settings(max_examples=120, deadline=None)
@given(formulas(), traces())
def test_witness_slice_reproduces_verdict(f: Formula, events: list) -> None:
    r = verify(f, events)
    w = r.witness
    json.dumps(r.to_dict())
    s, e = w["slice"]["start"], w["slice"]["end"]
    assert 0 <= s <= e < len(events)
    assert w["slice"]["reproduces"]
    assert verify(f, events[s:e + 1]).verdict == r.verdict
    c = w["certain_at"]["index"]
    if w["certain_at"]["early"]:  # certain at c: the prefix up to c already has the final verdict
        assert verify(f, events[: c + 1]).verdict == r.verdict


def test_policy_shaped_witness_points_at_the_culprit() -> None:
    f = "G (detect & is_threat & score >= 0.9 -> F[0,10ms] mitigated)"
    events = [{"t": 0.0, "type": "request"}, {"t": 1.0, "type": "detect", "is_threat": True, "score": 0.95},
              {"t": 1.004, "type": "mitigated"}, {"t": 2.0, "type": "detect", "is_threat": True, "score": 0.97},
              {"t": 2.5, "type": "response"}, {"t": 3.0, "type": "mitigated"}]
    r = verify(f, events)
    assert r.verdict == "violated"
    w = r.witness
    assert w["certain_at"] == {"index": 4, "t": 2.5, "early": True}  # first event after the missed deadline
    assert w["focus"]["index"] == 3 and not w["focus"]["holds"]
    assert (w["slice"]["start"], w["slice"]["end"]) == (3, 4)
    assert verify(f, events[3:5]).verdict == "violated"
    ok = verify(f, events[:3])
    assert ok.verdict == "satisfied" and ok.to_dict()["witness"]["certain_at"]["early"] is False


def test_past_time_window_witness_includes_the_window() -> None:
    f = "G (response -> O[0,1s] detect)"
    events = [{"t": 0.0, "type": "detect"}, {"t": 0.5, "type": "response"}, {"t": 1.2, "type": "x"},
              {"t": 1.8, "type": "response"}]
    w = verify(f, events).witness
    assert w["certain_at"]["index"] == 3 and w["focus"]["index"] == 3
    assert w["slice"]["start"] == 2  # events within 1 s before the failing response
