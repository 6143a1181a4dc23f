"""Reference semantics, written straight from the definitions (LTLf: De Giacomo & Vardi 2013; past and
point-based MTL operators over event timestamps). Deliberately simple and slow: the oracle the fast evaluator and
the monitor are tested against. `holds(f, events, i)` is the truth of f at position i of a non-empty trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from .syntax import Formula
from .trace import event_atom

__all__ = ["holds", "verdict"]


def holds(f: Formula, events: Sequence[dict], i: int) -> bool:
    n = len(events)
    t = [float(e["t"]) for e in events]

    @cache
    def h(f: Formula, i: int) -> bool:  # noqa: C901 - one case per operator, as in the definitions
        op, a = f.op, f.args
        if op == "true":
            return True
        if op == "false":
            return False
        if op == "atom":
            assert f.atom is not None
            return event_atom(events[i], f.atom)
        if op == "not":
            return not h(a[0], i)
        if op == "and":
            return h(a[0], i) and h(a[1], i)
        if op == "or":
            return h(a[0], i) or h(a[1], i)
        if op == "implies":
            return (not h(a[0], i)) or h(a[1], i)
        if op == "iff":
            return h(a[0], i) == h(a[1], i)
        if op == "X":  # strong next: there is a next position and f holds there
            return i + 1 < n and h(a[0], i + 1)
        if op == "N":  # weak next: if there is a next position, f holds there
            return i + 1 >= n or h(a[0], i + 1)
        if op == "F":
            return any(h(a[0], j) for j in range(i, n))
        if op == "G":
            return all(h(a[0], j) for j in range(i, n))
        if op == "U":
            return any(h(a[1], j) and all(h(a[0], k) for k in range(i, j)) for j in range(i, n))
        if op == "R":  # q holds up to and including the first p, or forever (to the end)
            return all(h(a[1], j) or any(h(a[0], k) for k in range(i, j)) for j in range(i, n))
        if op == "Y":
            return i > 0 and h(a[0], i - 1)
        if op == "O":
            return any(h(a[0], j) for j in range(0, i + 1))
        if op == "H":
            return all(h(a[0], j) for j in range(0, i + 1))
        if op == "S":
            return any(h(a[1], j) and all(h(a[0], k) for k in range(j + 1, i + 1)) for j in range(0, i + 1))
        if op == "Ft":
            return any(f.lo <= t[j] - t[i] <= f.hi and h(a[0], j) for j in range(i, n))
        if op == "Gt":
            return all(h(a[0], j) for j in range(i, n) if f.lo <= t[j] - t[i] <= f.hi)
        if op == "Ot":
            return any(f.lo <= t[i] - t[j] <= f.hi and h(a[0], j) for j in range(0, i + 1))
        if op == "Ht":
            return all(h(a[0], j) for j in range(0, i + 1) if f.lo <= t[i] - t[j] <= f.hi)
        raise ValueError(f"unknown operator {op}")

    return h(f, i)


def verdict(f: Formula, events: Sequence[dict]) -> bool:
    """LTLf truth at position 0."""
    if not events:
        raise ValueError("LTLf is defined on non-empty traces")
    return holds(f, events, 0)
