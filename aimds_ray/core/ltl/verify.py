"""Offline verification of finished traces and the audit witness that explains each verdict.

A witness answers three questions an auditor asks:
  * `certain_at`: the first event after which the verdict could not change any more, whatever followed (found by
    running the runtime monitor; `early` is false when only the end of the trace decided it);
  * `focus`: the event and sub-formula that decide it (for `G ψ` violated: the first event where ψ fails; for
    `F ψ` satisfied: the first ψ; likewise for U, R, timed and boolean structure);
  * `slice`: a contiguous excerpt [start, end] of the trace, ending where the verdict became certain and starting
    at the focus minus the formula's look-back (Y steps, O[a,b]/H[a,b] windows). Re-verifying the formula on the
    slice alone reproduces the verdict (`reproduces: true`; checked, not assumed). When the look-back is unbounded
    (O, H, S) or mixes event and time steps, the slice starts at event 0: the prefix up to `certain_at` always
    reproduces the verdict, by definition of "certain".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .evaluator import Program
from .monitor import PENDING, CompiledMonitor
from .syntax import Formula, UnknownAtomError, atoms_of, parse
from .trace import Trace, TraceError

__all__ = ["VerifyResult", "verify", "verify_many", "DEFAULT_VOCABULARY", "MAX_WITNESS_EVENTS"]

MAX_WITNESS_EVENTS = 100

# event types and fields the system itself emits (detector reports, the serving path, the approval flow): atoms
# that are always declared, so a policy may mention an event that did not happen in a given trace
DEFAULT_VOCABULARY = frozenset({
    "detect", "response", "request", "tool_call", "redacted", "mitigated", "human_approval", "escalated",
    "blocked", "session_start", "session_end",
    "type", "is_threat", "threat_type", "score", "action", "pii", "severity", "category", "critical",
    "system_prompt_leak", "contains_system_prompt", "tool", "session_id", "model_version", "approved",
})


@lru_cache(maxsize=256)
def _program(formulas: tuple[Formula, ...]) -> Program:
    return Program(formulas)


@lru_cache(maxsize=256)
def _compiled_monitor(f: Formula) -> CompiledMonitor:
    return CompiledMonitor(f)


class VerifyResult:
    """`verdict` is "satisfied" or "violated" (LTLf at position 0); `witness` is computed on first access."""

    def __init__(self, formula: Formula, text: str, verdict: bool, trace: Trace,
                 table: np.ndarray | None = None, program: Program | None = None) -> None:
        self.formula = formula
        self.text = text
        self.verdict = "satisfied" if verdict else "violated"
        self.trace = trace
        self._unknown: list[str] | None = None
        self._table, self._program = table, program
        self._witness: dict | None = None

    @property
    def unknown_atoms(self) -> list[str]:
        """Atom names that are neither an event type nor a field anywhere in the trace (likely typos)."""
        if self._unknown is None:
            self._unknown = sorted({a.name for a in atoms_of(self.formula)} - self.trace.vocabulary)
        return self._unknown

    @property
    def satisfied(self) -> bool:
        return self.verdict == "satisfied"

    @property
    def witness(self) -> dict:
        if self._witness is None:
            self._witness = _explain(self)
        return self._witness

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"formula": self.text, "verdict": self.verdict, "n_events": self.trace.n,
                             "witness": self.witness}
        if self.unknown_atoms:
            d["atoms_not_in_trace"] = self.unknown_atoms
        return d

    def __repr__(self) -> str:
        return f"VerifyResult({self.text!r}, {self.verdict!r})"


def _as_formula(formula: str | Formula) -> tuple[Formula, str]:
    if isinstance(formula, Formula):
        return formula, str(formula)
    return parse(formula), formula


def _check_atoms(f: Formula, trace: Trace, atoms: Iterable[str] | None, strict: bool) -> None:
    if atoms is not None or strict:
        names = {a.name for a in atoms_of(f)}
        declared = set(atoms or ()) | DEFAULT_VOCABULARY
        if names - declared:
            declared |= trace.vocabulary
        unknown = names - declared
        if unknown:
            raise UnknownAtomError(unknown, declared)


def verify_many(formulas: Sequence[str | Formula], trace: Sequence[dict] | Trace, *,
                atoms: Iterable[str] | None = None, strict: bool = False) -> list[VerifyResult]:
    """Verify several formulas against one trace in a single pass (shared sub-formulas evaluated once)."""
    tr = trace if isinstance(trace, Trace) else Trace(trace)
    if tr.n == 0:
        raise TraceError("the trace is empty (LTLf is defined on non-empty traces)")
    parsed = [_as_formula(f) for f in formulas]
    atoms = list(atoms) if atoms is not None else None
    for f, _ in parsed:
        _check_atoms(f, tr, atoms, strict)
    prog = _program(tuple(f for f, _ in parsed))
    tab = prog.table(tr)
    return [VerifyResult(f, text, bool(tab[prog.index[f], 0]), tr, tab, prog) for f, text in parsed]


def verify(formula: str | Formula, trace: Sequence[dict] | Trace, *, atoms: Iterable[str] | None = None,
           strict: bool = False) -> VerifyResult:
    """LTLf verdict of `formula` at position 0 of `trace` (events with `t` in seconds, non-decreasing).

    Atoms: with `atoms=` (or `strict=True`) every atom must be declared: in `atoms`, an event type or field of the
    trace, or the system's default vocabulary; otherwise UnknownAtomError. By default any well-formed atom is
    accepted (an atom that never occurs is false everywhere) and such atoms are listed in `unknown_atoms`."""
    return verify_many([formula], trace, atoms=atoms, strict=strict)[0]


# ----------------------------------------------------------------------------------------------- witnesses

def _reach(f: Formula) -> tuple[int, float] | None:
    """How far back (events, seconds) evaluating f at a position may look; None = unbounded."""
    if f.op in ("O", "H", "S"):
        return None
    k, tau = 0, 0.0
    for a in f.args:
        r = _reach(a)
        if r is None:
            return None
        k, tau = max(k, r[0]), max(tau, r[1])
    if f.op == "Y":
        k += 1
    elif f.op in ("Ot", "Ht"):
        tau += f.hi
    return k, tau


def _first(mask: np.ndarray, start: int) -> int:
    hits = np.flatnonzero(mask[start:])
    return int(hits[0]) + start if hits.size else -1


def _focus(res: VerifyResult, f: Formula, i: int, val: bool) -> tuple[int, Formula]:  # noqa: C901
    tab, prog, tr = res._table, res._program, res.trace
    assert tab is not None and prog is not None

    def row(g: Formula) -> np.ndarray:
        return tab[prog.index[g]]

    op, a = f.op, f.args
    n = tr.n
    if op == "not":
        return _focus(res, a[0], i, not val)
    if op in ("and", "or"):
        decisive = (op == "and") != val  # a false conjunct / a true disjunct decides alone
        if decisive:
            for c in a:
                if bool(row(c)[i]) == val:
                    return _focus(res, c, i, val)
        return i, f
    if op == "implies":
        if val and not row(a[0])[i]:
            return _focus(res, a[0], i, False)
        if val:
            return _focus(res, a[1], i, True)
        return i, f
    if op == "G" and not val:
        return _first(~row(a[0]), i), a[0]
    if op == "F" and val:
        return _first(row(a[0]), i), a[0]
    if op in ("X", "N") and i + 1 < n:
        return i + 1, a[0]
    if op == "U":
        j = _first(row(a[1]), i)
        if val:
            return j, a[1]
        k = _first(~row(a[0]) & ~row(a[1]), i)
        return (k, f) if k >= 0 and (j < 0 or k < j) else (n - 1, f)
    if op == "R":
        if not val:
            return _first(~row(a[1]), i), a[1]
        j = _first(row(a[0]) & row(a[1]), i)
        return (j, a[0]) if j >= 0 else (n - 1, f)
    if op in ("Ft", "Gt") and (op == "Ft") == val:
        d = tr.t - tr.t[i]
        win = (d >= f.lo) & (d <= f.hi)
        win[:i] = False
        j = _first(win & (row(a[0]) if val else ~row(a[0])), i)
        return j, a[0]
    return i, f


def _explain(res: VerifyResult) -> dict:
    tr, f = res.trace, res.formula
    n = tr.n
    mon = _compiled_monitor(f).monitor()
    step = mon.step
    early = False
    for ev in tr.events:
        if step(ev) is not PENDING:
            early = True
            break
    if early:
        c, tc = mon.certain_at  # type: ignore[misc]
    else:
        c, tc = n - 1, float(tr.t[n - 1])
    fi, sub = _focus(res, f, 0, res.satisfied)
    if fi < 0:
        fi, sub = 0, f
    end = max(c, fi)
    r = _reach(sub)
    start = 0
    if r is not None:
        k, tau = r
        if tau == 0.0:
            start = max(0, fi - k)
        elif k == 0:
            slack = tau * (1 + 1e-9) + 1e-12
            start = fi
            while start > 0 and tr.t[fi] - tr.t[start - 1] <= slack:
                start -= 1
    reproduces = _reproduces(res, start, end)
    if not reproduces and start > 0:
        start = 0
        reproduces = _reproduces(res, start, end)
    events = list(tr.events[start:end + 1])
    omitted = 0
    if len(events) > MAX_WITNESS_EVENTS:
        half = MAX_WITNESS_EVENTS // 2
        omitted = len(events) - 2 * half
        events = events[:half] + events[-half:]
    return {
        "verdict": res.verdict,
        "certain_at": {"index": int(c), "t": float(tc), "early": early},
        "focus": {"index": int(fi), "t": float(tr.t[fi]), "subformula": str(sub),
                  "holds": bool(res._table[res._program.index[sub], fi])  # type: ignore[index,union-attr]
                  if res._program is not None and sub in res._program.index else None},
        "slice": {"start": int(start), "end": int(end), "n_events": int(end - start + 1),
                  "events": _jsonable(events), "omitted_middle_events": omitted, "reproduces": reproduces},
    }


def _reproduces(res: VerifyResult, start: int, end: int) -> bool:
    part = res.trace.slice(start, end + 1)
    return bool(_program((res.formula,)).evaluate(part)[0]) == res.satisfied


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, np.generic):
        return x.item()
    return x
