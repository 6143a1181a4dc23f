"""Fast offline LTLf/MTL evaluation: formulas compile once to a flat program (hash-consed sub-formulas, children
before parents); one numba kernel fills an events x sub-formulas boolean table, future operators scanning
backward and past operators forward, timed operators with two-pointer windows over the timestamps. Cost is
O(n * |program|) for n events, whatever the nesting. Several formulas compile into one program so sub-formulas
shared between policies are evaluated once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from .syntax import Atom, Formula
from .trace import Trace

__all__ = ["Program", "compile_program", "evaluate_all"]

OPC = {name: i for i, name in enumerate(
    ["true", "false", "atom", "not", "and", "or", "implies", "iff", "X", "N", "F", "G", "U", "R",
     "Y", "O", "H", "S", "Ft", "Gt", "Ot", "Ht"])}


class Program:
    """Flat program for one or more formulas. `roots[k]` is the row of formula k in the value table."""

    def __init__(self, formulas: Sequence[Formula]) -> None:
        index: dict[Formula, int] = {}
        atoms: dict[Atom, int] = {}
        ops: list[int] = []
        c1: list[int] = []
        c2: list[int] = []
        lo: list[float] = []
        hi: list[float] = []
        for f in formulas:
            for s in f.subformulas():
                if s in index:
                    continue
                index[s] = len(ops)
                ops.append(OPC[s.op])
                a = b = -1
                if s.op == "atom":
                    assert s.atom is not None
                    a = atoms.setdefault(s.atom, len(atoms))
                elif s.args:
                    a = index[s.args[0]]
                    b = index[s.args[1]] if len(s.args) > 1 else -1
                c1.append(a)
                c2.append(b)
                lo.append(s.lo)
                hi.append(s.hi)
        self.formulas = list(formulas)
        self.index = index
        self.atoms = list(atoms)
        self.ops = np.asarray(ops, dtype=np.int8)
        self.c1 = np.asarray(c1, dtype=np.int64)
        self.c2 = np.asarray(c2, dtype=np.int64)
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.roots = [index[f] for f in formulas]

    def __len__(self) -> int:
        return len(self.ops)

    def table(self, trace: Trace) -> np.ndarray:
        """Truth value of every sub-formula at every position: shape (len(program), n)."""
        if trace.n == 0:
            return np.zeros((len(self.ops), 0), dtype=np.bool_)
        am = trace.atoms_matrix(self.atoms) if self.atoms else np.zeros((1, trace.n), dtype=np.bool_)
        return _run(self.ops, self.c1, self.c2, self.lo, self.hi, am, trace.t)

    def evaluate(self, trace: Trace) -> list[bool]:
        """LTLf verdict of each formula at position 0 (the trace must be non-empty)."""
        if trace.n == 0:
            raise ValueError("LTLf is defined on non-empty traces")
        tab = self.table(trace)
        return [bool(tab[r, 0]) for r in self.roots]


def compile_program(formulas: Sequence[Formula]) -> Program:
    return Program(formulas)


def evaluate_all(formulas: Sequence[Formula], trace: Trace) -> list[bool]:
    return Program(formulas).evaluate(trace)


@njit(cache=True)
def _run(ops, c1, c2, lo, hi, am, t):  # noqa: C901 - one dispatch loop keeps the whole program in one call
    m = ops.shape[0]
    n = t.shape[0]
    v = np.zeros((m, n), dtype=np.bool_)
    idx = np.empty(n, dtype=np.int64)
    for k in range(m):
        op = ops[k]
        out = v[k]
        if op == 0:  # true
            out[:] = True
        elif op == 1:  # false
            pass
        elif op == 2:  # atom
            out[:] = am[c1[k]]
        elif op == 3:  # not
            a = v[c1[k]]
            for i in range(n):
                out[i] = not a[i]
        elif op <= 7:  # and or implies iff
            a = v[c1[k]]
            b = v[c2[k]]
            for i in range(n):
                if op == 4:
                    out[i] = a[i] and b[i]
                elif op == 5:
                    out[i] = a[i] or b[i]
                elif op == 6:
                    out[i] = (not a[i]) or b[i]
                else:
                    out[i] = a[i] == b[i]
        elif op == 8 or op == 9:  # X strong / N weak next
            a = v[c1[k]]
            for i in range(n - 1):
                out[i] = a[i + 1]
            out[n - 1] = op == 9
        elif op == 10 or op == 11:  # F / G: suffix or / and
            a = v[c1[k]]
            acc = op == 11
            for i in range(n - 1, -1, -1):
                acc = (acc or a[i]) if op == 10 else (acc and a[i])
                out[i] = acc
        elif op == 12 or op == 13:  # U / R
            a = v[c1[k]]
            b = v[c2[k]]
            acc = op == 13  # value "after the end": U false, R true
            for i in range(n - 1, -1, -1):
                if op == 12:
                    acc = b[i] or (a[i] and acc)
                else:
                    acc = b[i] and (a[i] or acc)
                out[i] = acc
        elif op == 14:  # Y
            a = v[c1[k]]
            out[0] = False
            for i in range(1, n):
                out[i] = a[i - 1]
        elif op == 15 or op == 16:  # O / H: prefix or / and
            a = v[c1[k]]
            acc = op == 16
            for i in range(n):
                acc = (acc or a[i]) if op == 15 else (acc and a[i])
                out[i] = acc
        elif op == 17:  # S
            a = v[c1[k]]
            b = v[c2[k]]
            acc = False
            for i in range(n):
                acc = b[i] or (a[i] and acc)
                out[i] = acc
        elif op == 18 or op == 19:  # F[a,b] / G[a,b] = !F[a,b]!
            a = v[c1[k]]
            neg = op == 19
            nxt = -1  # idx[j] = first j' >= j where the (possibly negated) child holds
            for j in range(n - 1, -1, -1):
                if a[j] != neg:
                    nxt = j
                idx[j] = nxt
            q = 0
            for i in range(n):
                if q < i:
                    q = i
                while q < n and t[q] - t[i] < lo[k]:
                    q += 1
                hit = False
                if q < n:
                    j = idx[q]
                    hit = j >= 0 and t[j] - t[i] <= hi[k]
                out[i] = hit != neg
        else:  # 20, 21: O[a,b] / H[a,b] = !O[a,b]!
            a = v[c1[k]]
            neg = op == 21
            prv = -1  # idx[j] = last j' <= j where the (possibly negated) child holds
            for j in range(n):
                if a[j] != neg:
                    prv = j
                idx[j] = prv
            p = -1  # last j <= i with t[i] - t[j] >= lo
            for i in range(n):
                while p + 1 <= i and t[i] - t[p + 1] >= lo[k]:
                    p += 1
                hit = False
                if p >= 0:
                    j = idx[p]
                    hit = j >= 0 and t[i] - t[j] <= hi[k]
                out[i] = hit != neg
    return v
