"""One Aho-Corasick pass over a document's main view for every literal set that a stage counts per text.

Why: the normaliser (words in a cipher, reversed or split), the payload lexicon (harm and wrapper terms) and the
PII rules (hint literals) each asked "which of my literals occur in this text", with an automaton of its own: three
walks over the same 2 KB, each ~3.5 us, plus ~3.5 us of call overhead each. A set registered here joins one shared
automaton; `normalize` runs it once over the main view (`Normalized.counts`), and a stage whose set is in the
result reads its slice instead of walking the text again. The counts are those of `Automaton.group_counts` with
the set's own automaton, literal for literal (distinct literals per group, word boundaries per literal).

Sets are registered when their module loads (or, for a lexicon file, when it is read); the shared automaton is
rebuilt at the next call after a registration (~50 ms, once per process in practice).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aimds_ray.core.multimatch import Automaton


@dataclass(frozen=True)
class LiteralSet:
    literals: tuple[str, ...]
    flags: tuple[int, ...]  # multimatch WORD_START / WORD_END per literal
    group: tuple[int, ...]  # literal -> group (0 .. ngroups - 1)
    ngroups: int


@dataclass(frozen=True)
class _Built:
    automaton: Automaton
    group: np.ndarray  # literal of the shared automaton -> group, each set's groups after the sets before it
    ngroups: int
    slices: dict[str, tuple[int, int, LiteralSet]]  # set name -> its groups in the shared counts, and the set


class Counts:
    """The group counts of every set registered when the pass ran, over one text."""

    __slots__ = ("_values", "_slices")

    def __init__(self, values: list[int], slices: dict[str, tuple[int, int, LiteralSet]]) -> None:
        self._values = values
        self._slices = slices

    def of(self, name: str, expect: LiteralSet | None = None) -> list[int] | None:
        """The counts of set `name` (one per group); None if it was not registered when the pass ran, or if it was
        another set than `expect` (the one `register` returned to the caller: a set registered again under the same
        name with other literals must not answer for the old one)."""
        ab = self._slices.get(name)
        if ab is None or (expect is not None and ab[2] is not expect):
            return None
        return self._values[ab[0] : ab[1]]


_lock = threading.Lock()
_sets: dict[str, LiteralSet] = {}
_built: _Built | None = None


def register(name: str, literals: Sequence[str], flags: Sequence[int], group: Sequence[int], ngroups: int
             ) -> LiteralSet:
    """Add (or replace) the set `name` and return it, to pass as `Counts.of(name, expect=...)`. Literals must be as
    the main view reads them: lower-case ASCII. Sets stay registered for the process's life (a program that reads
    many payload lexicon files makes the shared automaton larger: slower, never wrong)."""
    global _built
    s = LiteralSet(tuple(literals), tuple(int(f) for f in flags), tuple(int(g) for g in group), int(ngroups))
    if not len(s.literals) == len(s.flags) == len(s.group):
        raise ValueError(f"literal set {name!r}: literals, flags and groups differ in length")
    if any(not 0 <= g < s.ngroups for g in s.group):
        raise ValueError(f"literal set {name!r}: a group is outside 0..{s.ngroups - 1}")
    bad = [x for x in s.literals if not x or not x.isascii() or x != x.lower()]
    if bad:
        raise ValueError(f"literal set {name!r}: literals must be non-empty lower-case ASCII, got {bad[:5]}")
    with _lock:
        old = _sets.get(name)
        if old == s:
            return old
        _sets[name] = s
        _built = None
        return s


def _current() -> _Built:
    b = _built
    if b is not None:
        return b
    return _build()


def _build() -> _Built:
    global _built
    with _lock:
        if _built is not None:
            return _built
        literals: list[str] = []
        flags: list[int] = []
        group: list[int] = []
        slices: dict[str, tuple[int, int, LiteralSet]] = {}
        base = 0
        for name, s in _sets.items():
            literals += s.literals
            flags += s.flags
            group += [base + g for g in s.group]
            slices[name] = (base, base + s.ngroups, s)
            base += s.ngroups
        _built = _Built(Automaton.build(literals, flags), np.array(group, dtype=np.int64), base, slices)
        return _built


def counts(text: str) -> Counts:
    """One pass of the shared automaton over `text` (a main view: case folded)."""
    b = _current()
    return Counts(b.automaton.group_counts(text, b.group, b.ngroups), b.slices)


def registered() -> tuple[str, ...]:
    return tuple(_sets)
