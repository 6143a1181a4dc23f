"""Signature families (data files in `aimds_ray/data/patterns/`) matched over every normalised view."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from aimds_ray.core import multimatch as M
from aimds_ray.core.normalize import Normalized, fold_text
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
    requires: tuple[str, ...] = ()  # substrings of which one must occur for a match to be possible at all
    word_start: bool = False  # the regex starts with \b, so an anchor after a letter cannot start a match


def _anchors(regex: str) -> tuple[tuple[str, ...] | None, bool]:
    r"""The literal prefix of each top-level alternative of `\b(?:a|b|...)...` and whether `\b` precedes them
    all; (None, False) when some alternative does not start with a literal of 2+ characters (then the pattern
    is searched normally)."""
    import re._constants as C
    import re._parser as P

    try:
        seq = list(P.parse(regex))
    except re.error:
        return None, False
    boundary = bool(seq) and seq[0][0] is C.AT and seq[0][1] is C.AT_BOUNDARY
    if seq and seq[0][0] is C.AT:
        seq = seq[1:]
    if not seq:
        return None, False
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
        return None, False
    out = []
    for alt in alts:
        lit = []
        for o, a in alt:
            if o is not C.LITERAL:
                break
            lit.append(chr(a))
        if len(lit) < 2:
            return None, False
        out.append("".join(lit))
    return tuple(sorted(set(out))), boundary


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
        kws = tuple(dict.fromkeys(fold_text(k) for k in keywords))  # as the folded views spell them
        words, syms = set(), []
        for k in kws:
            parts = re.findall(r"[a-z]+", k)
            if parts and " ".join(parts) == k.strip():
                words.add(max(parts, key=len)[:5])  # a phrase is keyed by its longest word
            else:
                syms.append(k)
        return cls(name, category, kws, patterns, frozenset(words), tuple(syms))


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
                    anchors, boundary = _anchors(p["regex"])
                    pats.append(Pattern(p["id"], fam["family"], fam["category"], float(p["score"]), rx,
                                        anchors, tuple(fold_text(x) for x in p.get("requires", ())), boundary))
                families.append(Family.make(fam["family"], fam["category"], fam["keywords"], tuple(pats)))
            except KeyError as e:
                raise PatternFileError(f"{where}: missing key {e}") from None
    return tuple(families)


class SignatureIndex:
    """Every literal the families need (family keywords, pattern anchors, required substrings) in one
    `multimatch.Automaton`, so a view is read once; regexes then run only where an anchor occurs, and only for
    families whose keywords occur. Equivalent to the per-literal `Family.triggered` / `Pattern.search` tests
    (anchors are tried wherever they occur, without the word-set shortcut)."""

    def __init__(self, families: tuple[Family, ...]) -> None:
        self.families = families
        ids: dict[tuple[str, int], int] = {}

        def lit(text: str, flags: int) -> int:
            return ids.setdefault((text, flags), len(ids))

        self.family_keys: list[frozenset[int]] = []
        self.patterns: list[tuple[Family, Pattern, frozenset[int], int]] = []  # (family, pattern, requires, fam#)
        self.anchor_patterns: dict[int, list[int]] = {}  # literal id -> indexes into self.patterns
        self.unanchored: list[int] = []
        for fi, fam in enumerate(families):
            keys = {lit(k, M.WORD_START | (0 if len(k) >= 5 else M.WORD_END)) for k in fam.word_keys}
            keys |= {lit(k, 0) for k in fam.sym_keys}
            self.family_keys.append(frozenset(keys))
            for p in fam.patterns:
                pi = len(self.patterns)
                self.patterns.append((fam, p, frozenset(lit(r, 0) for r in p.requires), fi))
                if p.anchors is None:
                    self.unanchored.append(pi)
                else:
                    for a in p.anchors:
                        ws = M.WORD_START if p.word_start and "a" <= a[0] <= "z" else 0
                        self.anchor_patterns.setdefault(lit(a, M.POSITIONS | ws), []).append(pi)
        literals = [t for t, _ in ids]
        bad = [t for t in literals if not t.isascii()]
        if bad:
            raise PatternFileError(f"literals must be ASCII once folded (the views are): {bad}")
        self.automaton = M.Automaton.build(literals, [f for _, f in ids])

    def search(self, text: str) -> list[tuple[Family, Pattern, re.Match[str]]]:
        """Leftmost match of every pattern that matches `text`, in family/pattern order."""
        return self._matches(text, *self.automaton.find(text))

    def search_many(self, texts: list[str]) -> list[list[tuple[Family, Pattern, re.Match[str]]]]:
        return [self._matches(t, *f) for t, f in zip(texts, self.automaton.find_many(texts), strict=True)]

    def _matches(self, text: str, seen: set[int], occ: list[tuple[int, int]]
                 ) -> list[tuple[Family, Pattern, re.Match[str]]]:
        triggered = [not keys.isdisjoint(seen) for keys in self.family_keys]
        at: dict[int, list[int]] = {}
        for lid, i in occ:
            at.setdefault(lid, []).append(i)
        starts: dict[int, list[int]] = {}
        for lid, pos in at.items():
            for pi in self.anchor_patterns[lid]:
                if triggered[self.patterns[pi][3]]:
                    starts.setdefault(pi, []).extend(pos)
        out = []
        for pi in sorted(set(starts).union(self.unanchored)):
            fam, p, requires, fi = self.patterns[pi]
            if not triggered[fi] or (requires and requires.isdisjoint(seen)):
                continue
            if p.anchors is None:
                m = p.regex.search(text)
            else:
                m = None
                match = p.regex.match
                for i in sorted(set(starts[pi])):
                    m = match(text, i)
                    if m is not None:
                        break
            if m is not None:
                out.append((fam, p, m))
        return out


@lru_cache(maxsize=4)
def signature_index(directory: str = str(PATTERN_DIR)) -> SignatureIndex:
    return SignatureIndex(load_families(directory))


@register
class SignatureSignal(Signal):
    """Hand-written attack-family regexes. High precision; the learned model covers paraphrases."""

    name = "signatures"

    def __init__(self, ctx: SignalContext) -> None:
        super().__init__(ctx)
        self.index = signature_index()
        self.families = self.index.families

    def scan(self, doc: Normalized) -> list[Evidence]:
        return self._evidence(doc, [self.index.search(v.text) for v in doc.variants])

    def scan_batch(self, docs: Sequence[Normalized]) -> list[list[Evidence]]:
        """All views of all documents through the automaton in one call."""
        views = [v.text for doc in docs for v in doc.variants]
        found = self.index.search_many(views)
        out = []
        k = 0
        for doc in docs:
            n = len(doc.variants)
            out.append(self._evidence(doc, found[k:k + n]))
            k += n
        return out

    @staticmethod
    def _evidence(doc: Normalized, per_view: list[list[tuple[Family, Pattern, re.Match[str]]]]) -> list[Evidence]:
        out: list[Evidence] = []
        seen: set[tuple[str, int, int]] = set()
        for v, matches in zip(doc.variants, per_view, strict=True):
            for fam, p, m in matches:
                s, e = v.span(*m.span())
                key = (p.id, s, e)
                if key in seen:
                    continue
                seen.add(key)
                out.append(Evidence("signatures", p.category, p.score, s, e, m.group()[:200], v.kind,
                                    f"{fam.name}/{p.id}"))
        return out
