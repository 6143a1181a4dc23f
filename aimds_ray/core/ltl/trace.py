"""Traces: validated, columnar views of event lists so atoms become boolean arrays once and are shared by every
formula checked against the same trace.

An event is a JSON object with `t` (seconds, a finite number, non-decreasing along the trace) and any other
fields; `type` names the event kind. Atom `name` holds at an event when `event["type"] == name` or
`event[name] is True`; a comparison atom `field op value` follows `syntax.compare`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .syntax import Atom, compare

__all__ = ["Trace", "TraceError", "load_jsonl", "event_atom", "trace_vocabulary"]

_NUM = (int, float)


class TraceError(ValueError):
    """The trace is malformed; `index` is the 0-based event (line = index + 1 in JSONL)."""

    def __init__(self, message: str, index: int | None = None, source: str = "event") -> None:
        self.index = index
        where = f"{source} {index + 1 if source == 'line' else index}: " if index is not None else ""
        super().__init__(where + message)


def check_time(ev: object, i: int, prev: float, source: str = "event") -> float:
    """The event's timestamp, validated; why: every timed operator assumes finite, non-decreasing `t`."""
    if not isinstance(ev, dict):
        raise TraceError(f"expected a JSON object, got {type(ev).__name__}", i, source)
    t = ev.get("t")
    if isinstance(t, bool) or not isinstance(t, _NUM):
        raise TraceError("missing or non-numeric timestamp 't' (seconds)", i, source)
    t = float(t)
    if not math.isfinite(t):
        raise TraceError(f"timestamp t={t} is not finite", i, source)
    if t < prev:
        raise TraceError(f"timestamp t={t} goes back in time (previous {prev})", i, source)
    return t


def event_atom(ev: dict, atom: Atom) -> bool:
    """Does `atom` hold at `ev`? (The definition every evaluator agrees with.)"""
    if atom.op is None:
        return ev.get("type") == atom.name or ev.get(atom.name) is True
    return compare(ev.get(atom.name), atom.op, atom.value)


def load_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL trace; errors name the line. Blank lines are skipped."""
    events: list[dict] = []
    prev = -math.inf
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError as e:
                raise TraceError(f"invalid JSON ({e.msg}, column {e.colno})", lineno, "line") from None
            prev = check_time(ev, lineno, prev, "line")
            events.append(ev)
    return events


def trace_vocabulary(events: Iterable[dict]) -> set[str]:
    """Names an atom could refer to in this trace: event types and field names."""
    names: set[str] = set()
    for ev in events:
        names.update(k for k in ev if k != "t")
        ty = ev.get("type")
        if isinstance(ty, str):
            names.add(ty)
    return names


class Trace:
    """Column store of a validated trace. `atom(a)` is a cached bool array over events."""

    __slots__ = ("events", "t", "n", "_cols", "_types", "_cache", "_vocab")

    def __init__(self, events: Sequence[dict], validate: bool = True) -> None:
        n = len(events)
        self.events = events
        self.n = n
        t = np.empty(n, dtype=np.float64)
        cols: dict[str, tuple[list[int], list[Any]]] = {}
        prev = -math.inf
        for i, ev in enumerate(events):
            if validate:
                prev = t[i] = check_time(ev, i, prev)
            else:
                t[i] = ev["t"]
            for k, v in ev.items():
                c = cols.get(k)
                if c is None:
                    c = cols[k] = ([], [])
                c[0].append(i)
                c[1].append(v)
        self.t = t
        self._cols = cols
        self._cache: dict[Atom, np.ndarray] = {}
        self._types: dict[str, np.ndarray] | None = None
        self._vocab: set[str] | None = None

    @property
    def vocabulary(self) -> set[str]:
        if self._vocab is None:
            v = set(self._cols) - {"t"}
            v.update(k for k in self._type_index() if isinstance(k, str))
            self._vocab = v
        return self._vocab

    def _type_index(self) -> dict[str, np.ndarray]:
        if self._types is None:
            groups: dict[str, list[int]] = {}
            c = self._cols.get("type")
            if c is not None:
                for i, v in zip(c[0], c[1], strict=True):
                    if isinstance(v, str):
                        groups.setdefault(v, []).append(i)
            self._types = {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}
        return self._types

    def atom(self, a: Atom) -> np.ndarray:
        r = self._cache.get(a)
        if r is not None:
            return r
        out = np.zeros(self.n, dtype=np.bool_)
        col = self._cols.get(a.name)
        if a.op is None:
            idx = self._type_index().get(a.name)
            if idx is not None:
                out[idx] = True
            if col is not None:
                out[[i for i, v in zip(col[0], col[1], strict=True) if v is True]] = True
        elif col is not None:
            out[self._compare(col, a)] = True
        self._cache[a] = out
        return out

    @staticmethod
    def _compare(col: tuple[list[int], list[Any]], a: Atom) -> np.ndarray | list[int]:
        idx, vals = col
        lit = a.value
        if isinstance(lit, _NUM) and not isinstance(lit, bool):
            # vectorised when every numeric value converts to float64 exactly
            num = [(i, v) for i, v in zip(idx, vals, strict=True) if type(v) in _NUM]
            if num and all(type(v) is float or abs(v) < 2**53 for _, v in num) and abs(lit) < 2**53:
                ii = np.fromiter((i for i, _ in num), dtype=np.int64, count=len(num))
                vv = np.fromiter((v for _, v in num), dtype=np.float64, count=len(num))
                x = float(lit)
                m = {"==": vv == x, "!=": vv != x, "<": vv < x, "<=": vv <= x, ">": vv > x, ">=": vv >= x}[a.op]
                return ii[m]
        assert a.op is not None
        return [i for i, v in zip(idx, vals, strict=True) if compare(v, a.op, lit)]

    def atoms_matrix(self, atoms: Sequence[Atom]) -> np.ndarray:
        m = np.empty((len(atoms), self.n), dtype=np.bool_)
        for k, a in enumerate(atoms):
            m[k] = self.atom(a)
        return m

    def slice(self, start: int, stop: int) -> Trace:
        return Trace(self.events[start:stop], validate=False)
