"""Incremental runtime monitor with 3-valued verdicts (satisfied / violated / pending).

How it works (why it is O(|formula|) per event, amortised):

* **Past part, exactly and forward.** Every maximal sub-formula without future operators (a "leaf": atoms,
  booleans, Y O H S, O[a,b] H[a,b]) is computed per event from O(1) state per node (O[a,b] with a > 0 keeps the
  timestamps inside its window in a deque: amortised O(1)). The leaf code is generated Python, compiled once per
  formula, so a step is a handful of local-variable operations.
* **Future part, by progression.** The future skeleton is put in negation normal form over the leaves and
  *progressed* through each event (Bacchus & Kabanza; for LTLf: X = strong next, N = weak next). The residual
  obligation is a boolean combination of "next" terms, simplified and canonicalised. Untimed residuals form a
  finite set, so they are interned and the transition (state, leaf bits) -> state is memoised in a table shared by
  every monitor of the same formula: after warm-up a step is one dict lookup. Timed obligations F[a,b]/G[a,b]
  carry the timestamp of the event that opened them; obligations of the same shape whose window has already
  opened are merged (a conjunction of pending F[0,10ms] deadlines keeps only the earliest), so a steady stream of
  "critical -> F[0,10ms] mitigated" costs O(1) per event.
* **Finish.** `finish()` evaluates the residual on the empty continuation (strong next false, weak next true),
  which is exactly the LTLf verdict at position 0 of the whole trace.

What is decided early (`verdict` before `finish()`): a verdict is reported as final only when *every* finite
extension of the events seen so far gives the same LTLf verdict. Concretely:

* the residual simplified to true/false (e.g. a violated invariant `G ψ` with ψ past-only is reported at the
  first event where ψ fails; `F p` is satisfied at the first p; a formula without future operators is decided by
  the first event, since LTLf evaluates it at position 0);
* for untimed residuals, an exhaustive search over the residual's successor states (treating its leaf bits as
  independent, which over-approximates the real extensions and so never claims a verdict that some extension
  could overturn) finds verdicts that no longer depend on the future: e.g. `G p & F !p` is violated at the
  first event, `G (a -> X b) | F c`-like residuals stay pending (bounded: at most 8 leaf bits and 256 states,
  otherwise "pending");
* timed residuals are decided only when they simplify to true/false (a missed F[0,10ms] deadline becomes
  "violated" at the first event after the deadline, or at `finish()`).

Formulas with a future operator *under* a past operator (e.g. `O F p`) are monitored by buffering the events
and verifying at `finish()`; they stay "pending" until then (O(1) per event, O(n) memory).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from typing import Any

from .syntax import PAST_OPS, Formula, compare, parse
from .trace import check_time

__all__ = ["Monitor", "CompiledMonitor", "SATISFIED", "VIOLATED", "PENDING", "compile_monitor"]

SATISFIED, VIOLATED, PENDING = "satisfied", "violated", "pending"
TRUE_T: tuple = ("true",)
FALSE_T: tuple = ("false",)
_MAX_DECIDE_BITS = 8
_MAX_DECIDE_STATES = 256
_MAX_MEMO = 1 << 20
_MAX_STATES = 100_000


# ------------------------------------------------------------------------------ residual formulas (tuples)

def _mk(op: str, args: list) -> tuple:
    """Flatten, simplify and canonicalise a conjunction (op='and') or disjunction ('or'). Timed obligations of
    the same shape whose window is open are merged: for F the earliest (and) / latest (or) origin wins, for G the
    reverse."""
    unit, zero = (TRUE_T, FALSE_T) if op == "and" else (FALSE_T, TRUE_T)
    flat: list = []
    for a in args:
        if a[0] == op:
            flat.extend(a[1])
        elif a == zero:
            return zero
        elif a != unit:
            flat.append(a)
    if len(flat) > 1:
        timed: dict[tuple, tuple] = {}
        rest: dict[tuple, None] = {}
        for a in flat:
            if a[0] in ("X", "N") and a[1][0] in ("FT", "GT") and a[1][5]:
                _, (kind, t0, lo, hi, psi, _s) = a
                key = (a[0], kind, lo, hi, psi)
                old = timed.get(key)
                if old is None:
                    timed[key] = a
                else:
                    earliest = (kind == "FT") == (op == "and")
                    o = old[1][1]
                    if (t0 < o) if earliest else (t0 > o):
                        timed[key] = a
            else:
                rest[a] = None
        flat = list(rest) + list(timed.values())
    if not flat:
        return unit
    if len(flat) == 1:
        return flat[0]
    flat.sort(key=hash)
    return (op, tuple(flat))


def _next(kind: str, psi: tuple) -> tuple:
    if kind == "X" and psi == FALSE_T:
        return FALSE_T
    if kind == "N" and psi == TRUE_T:
        return TRUE_T
    return (kind, psi)


def _prog(f: tuple, m: int, t: float) -> tuple:  # noqa: C901 - one case per operator
    """Progress formula f through an event with leaf bits m at time t: the obligation on the rest of the trace,
    a boolean combination of ("X", g) / ("N", g) terms."""
    op = f[0]
    if op == "lit":
        return TRUE_T if ((m >> f[1]) & 1) == f[2] else FALSE_T
    if op == "and" or op == "or":
        return _mk(op, [_prog(a, m, t) for a in f[1]])
    if op == "true" or op == "false" or op == "X" or op == "N":
        return f
    if op == "F":
        return _mk("or", [_prog(f[1], m, t), ("X", f)])
    if op == "G":
        return _mk("and", [_prog(f[1], m, t), ("N", f)])
    if op == "U":
        return _mk("or", [_prog(f[2], m, t), _mk("and", [_prog(f[1], m, t), ("X", f)])])
    if op == "R":
        return _mk("and", [_prog(f[2], m, t), _mk("or", [_prog(f[1], m, t), ("N", f)])])
    if op == "Ft" or op == "Gt":
        return _prog(("FT" if op == "Ft" else "GT", t, f[1], f[2], f[3], False), m, t)
    if op == "FT":
        _, t0, lo, hi, psi, _started = f
        d = t - t0
        if d > hi:
            return FALSE_T
        if d >= lo:
            return _mk("or", [_prog(psi, m, t), ("X", ("FT", t0, lo, hi, psi, True))])
        return ("X", f)
    if op == "GT":
        _, t0, lo, hi, psi, _started = f
        d = t - t0
        if d > hi:
            return TRUE_T
        if d >= lo:
            return _mk("and", [_prog(psi, m, t), ("N", ("GT", t0, lo, hi, psi, True))])
        return ("N", f)
    raise ValueError(f"bad residual {op}")


def _step_state(s: tuple, m: int, t: float) -> tuple:
    """Consume one event: every next-term of the residual is replaced by its progressed body."""
    op = s[0]
    if op == "X" or op == "N":
        return _prog(s[1], m, t)
    if op == "and" or op == "or":
        return _mk(op, [_step_state(a, m, t) for a in s[1]])
    return s  # true / false


def _end(s: tuple) -> bool:
    """Truth on the empty continuation: LTLf's end of trace."""
    op = s[0]
    if op == "and":
        return all(_end(a) for a in s[1])
    if op == "or":
        return any(_end(a) for a in s[1])
    return op == "N" or op == "true"


def _is_timed(s: tuple) -> bool:
    op = s[0]
    if op == "FT" or op == "GT":
        return True
    if op == "lit" or op == "true" or op == "false":
        return False
    if op == "and" or op == "or":
        return any(_is_timed(a) for a in s[1])
    return any(isinstance(a, tuple) and _is_timed(a) for a in s[1:])


def _bits(s: tuple, out: set[int]) -> set[int]:
    op = s[0]
    if op == "lit":
        out.add(s[1])
    elif op == "and" or op == "or":
        for a in s[1]:
            _bits(a, out)
    else:
        for a in s[1:]:
            if isinstance(a, tuple):
                _bits(a, out)
    return out


def _canon(x: Any) -> Any:
    """Lists (from JSON) back to canonical residual tuples (hash order differs between processes)."""
    if not isinstance(x, list | tuple):
        return x
    if x and x[0] in ("and", "or"):
        return _mk(x[0], [_canon(a) for a in x[1]])
    return tuple(_canon(a) for a in x)


def _plain(x: Any) -> Any:
    return [_plain(a) for a in x] if isinstance(x, tuple) else x


# --------------------------------------------------------------------------------------- compiled formula

class CompiledMonitor:
    """Per-formula compiled artefacts shared by every Monitor of that formula: generated leaf code, the residual
    skeleton, the interned untimed residuals, the memoised transition table and the early-decision cache."""

    def __init__(self, formula: Formula | str, atoms: Any = None) -> None:
        self.formula = parse(formula, atoms) if isinstance(formula, str) else formula
        f = self.formula
        self.buffered = any(s.op in PAST_OPS and any(a.has_future for a in s.args) for s in f.subformulas())
        self.leaves: dict[Formula, int] = {}
        self.skeleton: tuple = self._nnf(f, True) if not self.buffered else TRUE_T
        self.nbits = len(self.leaves)
        self.M = 1 << self.nbits
        self.initial: tuple = _next("N", self.skeleton)
        self.ids: dict[tuple, int] = {}
        self.states: list[tuple] = []
        self.decided: dict[int, str] = {}
        self.memo: dict[int, tuple] = {}
        self._n_slots, self._init_slots, src = self._codegen()
        self.source = src
        ns: dict[str, Any] = {}
        exec(compile(src, f"<ltl monitor {str(f)[:60]}>", "exec"), ns)  # noqa: S102 - our own generated code
        self._make = ns["_make"]

    # -- residual skeleton
    def _leaf(self, f: Formula, pol: bool) -> tuple:
        bit = self.leaves.setdefault(f, len(self.leaves))
        return ("lit", bit, 1 if pol else 0)

    def _nnf(self, f: Formula, pol: bool) -> tuple:  # noqa: C901 - one case per operator
        if not f.has_future:
            if f.op == "true" or f.op == "false":
                return TRUE_T if (f.op == "true") == pol else FALSE_T
            return self._leaf(f, pol)
        op, a = f.op, f.args
        if op == "not":
            return self._nnf(a[0], not pol)
        if op in ("and", "or"):
            real = op if pol else ("or" if op == "and" else "and")
            return _mk(real, [self._nnf(a[0], pol), self._nnf(a[1], pol)])
        if op == "implies":
            return _mk("or" if pol else "and", [self._nnf(a[0], not pol), self._nnf(a[1], pol)])
        if op == "iff":
            p, q, np_, nq = (self._nnf(a[0], True), self._nnf(a[1], True),
                             self._nnf(a[0], False), self._nnf(a[1], False))
            if pol:
                return _mk("or", [_mk("and", [p, q]), _mk("and", [np_, nq])])
            return _mk("or", [_mk("and", [p, nq]), _mk("and", [np_, q])])
        dual = {"X": "N", "N": "X", "F": "G", "G": "F", "U": "R", "R": "U", "Ft": "Gt", "Gt": "Ft"}
        k = op if pol else dual[op]
        if k in ("X", "N"):
            return _next(k, self._nnf(a[0], pol))
        if k in ("F", "G"):
            body = self._nnf(a[0], pol)
            if body in (TRUE_T, FALSE_T):
                return body
            return (k, body)
        if k in ("U", "R"):
            return (k, self._nnf(a[0], pol), self._nnf(a[1], pol))
        return (k, f.lo, f.hi, self._nnf(a[0], pol))

    # -- generated per-event code for the leaves
    def _codegen(self) -> tuple[int, list, str]:
        nodes: dict[Formula, str] = {}
        lines: list[str] = []
        slots: list[Any] = []
        atom_vars: dict[Any, str] = {}

        def var(f: Formula) -> str:
            if f in nodes:
                return nodes[f]
            op = f.op
            args = [var(x) for x in f.args]
            v = f"v{len(nodes)}"
            nodes[f] = v
            if op == "true" or op == "false":
                lines.append(f"{v} = {op == 'true'}")
            elif op == "atom":
                a = f.atom
                assert a is not None
                if a in atom_vars:
                    nodes[f] = atom_vars[a]
                    return atom_vars[a]
                atom_vars[a] = v
                if a.op is None:
                    lines.append(f"{v} = ty == {a.name!r} or ev.get({a.name!r}) is True")
                elif isinstance(a.value, int | float) and not isinstance(a.value, bool):
                    lines.append(f"_x = ev.get({a.name!r})")
                    lines.append(f"{v} = (type(_x) is float or type(_x) is int) and _x {a.op} {a.value!r}")
                else:
                    lines.append(f"{v} = _cmp(ev.get({a.name!r}), {a.op!r}, {a.value!r})")
            elif op == "not":
                lines.append(f"{v} = not {args[0]}")
            elif op == "and":
                lines.append(f"{v} = {args[0]} and {args[1]}")
            elif op == "or":
                lines.append(f"{v} = {args[0]} or {args[1]}")
            elif op == "implies":
                lines.append(f"{v} = (not {args[0]}) or {args[1]}")
            elif op == "iff":
                lines.append(f"{v} = {args[0]} == {args[1]}")
            else:
                j = len(slots)
                s = f"S[{j}]"
                c = args[0]
                if op == "Y":
                    slots.append(False)
                    lines.extend([f"{v} = {s}", f"{s} = {c}"])
                elif op == "O":
                    slots.append(False)
                    lines.append(f"{v} = {s} = {s} or {c}")
                elif op == "H":
                    slots.append(True)
                    lines.append(f"{v} = {s} = {s} and {c}")
                elif op == "S":
                    slots.append(False)
                    lines.append(f"{v} = {s} = {args[1]} or ({c} and {s})")
                elif op in ("Ot", "Ht"):
                    hit = c if op == "Ot" else f"not {c}"
                    neg = "" if op == "Ot" else "not "
                    if f.lo == 0.0:  # only the latest hit matters
                        slots.append(None)
                        lines.extend([f"if {hit}: {s} = t",
                                      f"{v} = {neg}({s} is not None and t - {s} <= {f.hi!r})"])
                    else:
                        slots.append("deque")
                        lines.extend([f"_d = {s}", f"if {hit}: _d.append(t)",
                                      f"while _d and t - _d[0] > {f.hi!r}: _d.popleft()",
                                      f"{v} = {neg}(bool(_d) and t - _d[0] >= {f.lo!r})"])
                else:
                    raise AssertionError(op)
            return v

        leaf_vars = [var(leaf) for leaf in self.leaves]
        mask = " | ".join(f"({lv} << {i})" if i else lv for i, lv in enumerate(leaf_vars)) or "0"
        body = "\n".join("        " + ln for ln in lines)
        src = f"""
def _make(S, ST, memo, slow, badtime, _cmp, M, PENDING, INF):
    def step(ev):
        if ST[5]:
            ST[2] += 1
            return ST[4]
        t = ev.get('t') if type(ev) is dict else None
        if (type(t) is not float and type(t) is not int) or not (ST[3] <= t < INF):
            t = badtime(ev)
        ST[3] = t
        ty = ev.get('type')
{body}
        m = {mask}
        sid = ST[1]
        if sid >= 0:
            r = memo.get(sid * M + m)
            if r is not None:
                ST[0] = r[0]
                ST[1] = r[1]
                v = ST[4] = r[2]
                i = ST[2]
                ST[2] = i + 1
                if v is not PENDING:
                    ST[5] = True
                    ST[6] = i
                    ST[7] = t
                return v
        return slow(m, t)
    return step
"""
        return len(slots), slots, src

    # -- residual bookkeeping
    def intern(self, s: tuple) -> int:
        sid = self.ids.get(s)
        if sid is not None:
            return sid
        if len(self.states) >= _MAX_STATES or _is_timed(s):
            return -1
        sid = self.ids[s] = len(self.states)
        self.states.append(s)
        return sid

    def verdict_of(self, s: tuple, sid: int) -> str:
        if s == TRUE_T:
            return SATISFIED
        if s == FALSE_T:
            return VIOLATED
        if sid < 0:
            return PENDING
        v = self.decided.get(sid)
        if v is None:
            v = self.decided[sid] = self._decide(s)
        return v

    def _decide(self, s: tuple) -> str:
        """Exhaustive look-ahead over successor residuals with the leaf bits treated as free: a verdict only if
        every reachable residual has the same end-of-trace value. Bounded; gives up as "pending"."""
        bits = sorted(_bits(s, set()))
        if len(bits) > _MAX_DECIDE_BITS:
            return PENDING
        masks = [sum(1 << b for b, on in zip(bits, combo, strict=True) if on)
                 for combo in itertools.product((0, 1), repeat=len(bits))]
        seen = {s}
        todo = [s]
        ends: set[bool] = set()
        while todo:
            x = todo.pop()
            ends.add(_end(x))
            if len(ends) == 2:
                return PENDING
            if x == TRUE_T or x == FALSE_T:
                continue
            for m in masks:
                y = _step_state(x, m, 0.0)
                if y in seen:
                    continue
                if _is_timed(y) or len(seen) >= _MAX_DECIDE_STATES:
                    return PENDING
                seen.add(y)
                todo.append(y)
        return SATISFIED if ends == {True} else VIOLATED

    def monitor(self) -> Monitor:
        return Monitor(self)


def compile_monitor(formula: Formula | str, atoms: Any = None) -> CompiledMonitor:
    return CompiledMonitor(formula, atoms)


# ------------------------------------------------------------------------------------------------ monitor

class Monitor:
    """One live trace (e.g. a session). `step(event)` returns the current verdict; `finish()` the LTLf verdict.

    `certain_at` is (index, t) of the event after which the verdict could no longer change (set by `step` for
    early verdicts, by `finish` otherwise)."""

    def __init__(self, compiled: CompiledMonitor | Formula | str, atoms: Any = None) -> None:
        self.c = compiled if isinstance(compiled, CompiledMonitor) else CompiledMonitor(compiled, atoms)
        self.reset()

    def reset(self) -> None:
        c = self.c
        self.S: list[Any] = [deque() if x == "deque" else x for x in c._init_slots]
        # ST: residual, residual id, events seen, last t, verdict, final?, certain index, certain t
        self.ST: list[Any] = [c.initial, c.intern(c.initial), 0, -math.inf, PENDING, False, None, None]
        self.buffer: list[dict] | None = [] if c.buffered else None
        self._finished: str | None = None
        if c.buffered:
            self.step = self._step_buffered  # type: ignore[method-assign]
        else:
            self.step = c._make(self.S, self.ST, c.memo, self._slow, self._badtime, compare, c.M,  # type: ignore[method-assign]
                                PENDING, math.inf)

    def _badtime(self, ev: Any) -> float:
        return check_time(ev, self.ST[2], self.ST[3])  # raises TraceError unless t is fine (e.g. a numpy float)

    def _slow(self, m: int, t: float) -> str:
        c, ST = self.c, self.ST
        ns = _step_state(ST[0], m, t)
        nsid = c.intern(ns)
        v = c.verdict_of(ns, nsid)
        if ST[1] >= 0 and nsid >= 0:
            if len(c.memo) >= _MAX_MEMO:
                c.memo.clear()
            c.memo[ST[1] * c.M + m] = (ns, nsid, v)
        ST[0], ST[1], ST[4] = ns, nsid, v
        i = ST[2]
        ST[2] = i + 1
        if v is not PENDING:
            ST[5], ST[6], ST[7] = True, i, t
        return v

    def _step_buffered(self, ev: dict) -> str:
        self.ST[3] = check_time(ev, self.ST[2], self.ST[3])
        assert self.buffer is not None
        self.buffer.append(ev)
        self.ST[2] += 1
        return PENDING

    def step(self, ev: dict) -> str:  # replaced per instance by generated code
        raise NotImplementedError

    def feed(self, events: Any) -> str:
        v = PENDING
        step = self.step
        for ev in events:
            v = step(ev)
        return v

    @property
    def verdict(self) -> str:
        return self._finished or self.ST[4]

    @property
    def n_events(self) -> int:
        return self.ST[2]

    @property
    def certain_at(self) -> tuple[int, float] | None:
        return None if self.ST[6] is None else (self.ST[6], self.ST[7])

    def finish(self) -> str:
        """LTLf verdict of the events seen so far (the monitor may keep stepping afterwards)."""
        ST = self.ST
        if ST[5]:
            return ST[4]
        if self.buffer is not None:
            if not self.buffer:
                v = SATISFIED
            else:
                from .evaluator import Program
                from .trace import Trace

                v = SATISFIED if Program([self.c.formula]).evaluate(Trace(self.buffer, validate=False))[0] \
                    else VIOLATED
        else:
            v = SATISFIED if _end(ST[0]) else VIOLATED
        if ST[2]:
            ST[6], ST[7] = ST[2] - 1, ST[3]
        return v

    # -- persistence
    def snapshot(self) -> dict:
        """Plain JSON-serialisable state (formula text included), e.g. for an actor checkpoint."""
        ST = self.ST
        return {
            "formula": str(self.c.formula),
            "residual": _plain(ST[0]),
            "slots": [list(x) if isinstance(x, deque) else x for x in self.S],
            "n": ST[2], "last_t": None if ST[3] == -math.inf else ST[3],
            "verdict": ST[4], "final": ST[5], "certain_index": ST[6], "certain_t": ST[7],
            "buffer": self.buffer,
        }

    @classmethod
    def restore(cls, snap: dict, compiled: CompiledMonitor | None = None) -> Monitor:
        c = compiled or CompiledMonitor(snap["formula"])
        m = cls(c)
        m.load(snap)
        return m

    def load(self, snap: dict) -> None:
        if len(snap["slots"]) != len(self.S):
            raise ValueError("snapshot does not match this formula")
        for i, x in enumerate(snap["slots"]):
            if isinstance(self.S[i], deque):
                self.S[i].clear()
                self.S[i].extend(x)
            else:
                self.S[i] = x
        res = _canon(snap["residual"])
        ST = self.ST
        ST[0], ST[1] = res, self.c.intern(res)
        ST[2] = int(snap["n"])
        ST[3] = -math.inf if snap["last_t"] is None else float(snap["last_t"])
        ST[4], ST[5], ST[6], ST[7] = snap["verdict"], bool(snap["final"]), snap["certain_index"], snap["certain_t"]
        if self.buffer is not None:
            self.buffer[:] = snap.get("buffer") or []
