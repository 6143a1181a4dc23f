"""Signature families (data files in `aimds_ray/data/patterns/`) matched over every normalised view."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from aimds_ray.core.normalize import Normalized
from aimds_ray.core.report import Evidence
from aimds_ray.core.signals.base import Signal, SignalContext, register

PATTERN_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "patterns"


@dataclass(frozen=True, slots=True)
class Pattern:
    id: str
    family: str
    category: str
    score: float
    regex: re.Pattern[str]
    anchors: tuple[str, ...] | None = None  # literal prefixes every match starts with (None: not anchorable)
    anchor_keys: tuple[tuple[str, bool, str], ...] = ()  # (anchor, is_whole_word, word or 5-letter prefix)
    requires: tuple[str, ...] = ()  # substrings of which one must occur for a match to be possible at all

    def search(self, text: str, words: frozenset[str] | set[str] | None = None,
               prefixes: set[str] | None = None) -> re.Match[str] | None:
        """Leftmost match. An anchored pattern is tried only where one of its literal prefixes occurs (found with
        str.find, which is far cheaper than letting the regex engine try every position), and an anchor is looked
        for only when the text's word set says its first word is there."""
        if self.requires and not any(r in text for r in self.requires):
            return None
        if self.anchors is None:
            return self.regex.search(text)
        positions: list[int] = []
        for a, whole, key in self.anchor_keys:
            if words is not None and key:
                if whole:
                    if key not in words:
                        continue
                elif prefixes is not None and key not in prefixes:
                    continue
            i = text.find(a)
            while i >= 0:
                positions.append(i)
                i = text.find(a, i + 1)
        if not positions:
            return None
        positions.sort()
        match = self.regex.match
        for i in positions:
            m = match(text, i)
            if m is not None:
                return m
        return None


def anchor_keys(anchors: tuple[str, ...] | None) -> tuple[tuple[str, bool, str], ...]:
    """For each anchor, the word-set test that must pass before it is searched: its first word exactly when the
    anchor's first word is complete (followed by a space or the end of a multi-character word), else its 5-letter
    prefix. Anchors that do not start with 2+ letters get no test."""
    out = []
    for a in anchors or ():
        m = re.match(r"[a-z]+", a)
        if not m or len(m.group()) < 2:
            out.append((a, False, ""))
            continue
        w = m.group()
        whole = len(w) < len(a) and a[len(w)] == " "
        out.append((a, whole, w if whole else (w[:5] if len(w) >= 5 else "")))
    return tuple(out)


def literal_anchors(regex: str) -> tuple[str, ...] | None:
    """The literal prefix of each top-level alternative of `\b(?:a|b|...)...`, or None when some alternative
    does not start with a literal of 2+ characters (then the pattern is searched normally)."""
    import re._constants as C
    import re._parser as P

    try:
        seq = list(P.parse(regex))
    except re.error:
        return None
    if seq and seq[0][0] is C.AT:
        seq = seq[1:]
    if not seq:
        return None
    op, av = seq[0]
    if op is C.SUBPATTERN:
        inner = list(av[-1])
        if len(inner) != 1 or inner[0][0] is not C.BRANCH:
            alts = [inner]
        else:
            alts = inner[0][1][1]
    elif op is C.BRANCH:
        alts = av[1]
    elif op is C.LITERAL:
        alts = [seq]
    else:
        return None
    out = []
    for alt in alts:
        lit = []
        for o, a in alt:
            if o is not C.LITERAL:
                break
            lit.append(chr(a))
        if len(lit) < 2:
            return None
        out.append("".join(lit))
    return tuple(sorted(set(out)))


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    category: str
    keywords: tuple[str, ...]
    patterns: tuple[Pattern, ...]
    word_keys: frozenset[str] = frozenset()  # 5-letter prefixes of the alphabetic keywords
    sym_keys: tuple[str, ...] = ()  # keywords with symbols, checked as substrings

    @classmethod
    def make(cls, name: str, category: str, keywords: list[str], patterns: tuple[Pattern, ...]) -> Family:
        kws = tuple(k.lower() for k in keywords)
        words, syms = set(), []
        for k in kws:
            parts = re.findall(r"[a-z]+", k)
            if parts and " ".join(parts) == k.strip():
                words.add(max(parts, key=len)[:5])  # a phrase is keyed by its longest word
            else:
                syms.append(k)
        return cls(name, category, kws, patterns, frozenset(words), tuple(syms))

    def triggered(self, prefixes: frozenset[str] | set[str], text: str) -> bool:
        return not self.word_keys.isdisjoint(prefixes) or any(k in text for k in self.sym_keys)


_WORD = re.compile(r"[a-z]{2,}")


def prefixes_of(words: frozenset[str] | set[str] | list[str]) -> set[str]:
    return {w[:5] for w in words}


class PatternFileError(ValueError):
    pass


@lru_cache(maxsize=4)
def load_families(directory: str = str(PATTERN_DIR)) -> tuple[Family, ...]:
    """Read and compile every `*.yaml` family file; errors name the file and the pattern id."""
    families: list[Family] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        for i, fam in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")) or []):
            where = f"{path.name}[{i}]"
            try:
                pats = []
                for p in fam["patterns"]:
                    try:
                        rx = re.compile(p["regex"], re.DOTALL)
                    except re.error as e:
                        raise PatternFileError(f"{where} pattern {p.get('id')!r}: bad regex: {e}") from None
                    anchors = literal_anchors(p["regex"])
                    pats.append(Pattern(p["id"], fam["family"], fam["category"], float(p["score"]), rx,
                                        anchors, anchor_keys(anchors),
                                        tuple(x.lower() for x in p.get("requires", ()))))
                families.append(Family.make(fam["family"], fam["category"], fam["keywords"], tuple(pats)))
            except KeyError as e:
                raise PatternFileError(f"{where}: missing key {e}") from None
    return tuple(families)


@register
class SignatureSignal(Signal):
    """Hand-written attack-family regexes. High precision; the learned model covers paraphrases."""

    name = "signatures"

    def __init__(self, ctx: SignalContext) -> None:
        super().__init__(ctx)
        self.families = load_families()

    def scan(self, doc: Normalized) -> list[Evidence]:
        out: list[Evidence] = []
        seen: set[tuple[str, int, int]] = set()
        for vi, v in enumerate(doc.variants):
            text = v.text
            words = doc.words if vi == 0 else frozenset(_WORD.findall(text))
            prefixes = prefixes_of(words)
            for fam in self.families:
                if not fam.triggered(prefixes, text):
                    continue
                for p in fam.patterns:
                    m = p.search(text, words, prefixes)
                    if m is None:
                        continue
                    s, e = v.span(*m.span())
                    key = (p.id, s, e)
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(Evidence("signatures", p.category, p.score, s, e, m.group()[:200], v.kind,
                                        f"{fam.name}/{p.id}"))
        return out
