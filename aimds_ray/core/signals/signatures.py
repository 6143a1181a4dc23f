"""Signature families (data files in `aimds_ray/data/patterns/`) matched over every normalised view."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit

from aimds_ray.core import multimatch as M
from aimds_ray.core.config import load_yaml
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
    requires: tuple[str, ...] = ()  # the hand-written required substrings (all groups; see `factors`)
    bounded: frozenset[str] = frozenset()  # anchors the regex puts after \b: one after a letter cannot start a match
    clause: str = ""  # the regex may start with "(?:^|[<clause>]\s*)": a match can begin at the clause mark before
    # an anchor (`clause_starts`)
    factors: tuple[Factor, ...] = ()  # the requires and the regex's own: each holds a literal every match contains
    gate: re.Pattern[str] | None = None  # an unanchored pattern is searched only if this finds `gate_count` matches
    gate_count: int = 1
    skip_run: frozenset[str] = frozenset()  # see the pattern files: anchors inside a run after a failed try


# Factors kept per pattern, ranked by the strength of their weakest literal: its length, +2 if it must start a word,
# +1 if it must end one (many words end in "rm" or "off", few start with them). Each kept literal grows the automaton
# every view is read with, so weak ones are left out (`_weak`). Two factors per pattern: regex tries per 2 KB of
# benign prompts 122 -> 70, the signature signal's p50 127 -> ~100 us (~90 with the leaner try loop), prose +3 us;
# with common words and 2-letter substrings allowed, prompts gained ~10 us more and prose paid +10 us (their ~250
# extra automaton outputs per 2 KB).
MIN_FACTOR = 4
MAX_FACTORS = 2
Factor = tuple[tuple[str, int], ...]  # (literal, multimatch WORD_START / WORD_END flags); one of them occurs


# English function words: in nearly every text, so no use as a factor
_COMMON_WORDS = frozenset("""a about all also an and any are as at be but by can could do for from had has have he her
    his how i if in into is it its just me more my no not now of on one only or our out she so some than that the their
    them then there these they this those to up us was we were what when which who will with would you your""".split())


def _weak(lit: str, flags: int) -> bool:
    """A literal no use as a condition and costly to look for: a common English word (in nearly every text, and
    each occurrence is an automaton output to check), or under 3 characters unless it must stand as a whole word
    ("rm", "nc"; 2-letter substrings like "at" occur in most words)."""
    if lit.strip() in _COMMON_WORDS:
        return True
    return len(lit) < (2 if flags & M.WORD_START and flags & M.WORD_END else 3)


def _strength(lit: tuple[str, int]) -> int:
    return len(lit[0]) + 2 * bool(lit[1] & M.WORD_START) + bool(lit[1] & M.WORD_END)


def _factors(regex: str, anchors: tuple[str, ...] | None) -> tuple[Factor, ...]:
    r"""Literal sets one member of which every match of `regex` contains, read from its parse: a run of literals
    ("prompt" in "system\s+prompt"), the best set of each alternative of a mandatory alternation ("rules|guidelines"),
    the body of a group or of a repeat of at least one. They are the prefilter of RE2 and Hyperscan in small: the
    automaton already reports every literal of a view, so a regex whose factors are not all there is not tried.
    A literal behind "\b" (first character a-z) must start a word, one before "\b" or whitespace (last character
    a-z) must end one: as automaton flags these are necessary too (the automaton's words are [a-z] runs, the
    regex's \w runs are longer), and they make short words ("rm", "off") selective. Dropped: sets with a member
    weaker than MIN_FACTOR or outside ASCII, sets that every anchor already contains, anything under a
    case-insensitive flag; of the rest the MAX_FACTORS strongest are kept."""
    import re._constants as C
    import re._parser as P

    try:
        parsed = P.parse(regex)
    except re.error:
        return ()
    if parsed.state.flags & re.IGNORECASE:
        return ()
    boundary = (C.AT, C.AT_BOUNDARY)

    def ends_word(items: list, k: int, trail: bool) -> bool:
        r"""What follows items[:k] cannot be a letter: a \b, whitespace, or the end of a bounded context."""
        if k >= len(items):
            return trail
        op, av = items[k]
        if (op, av) == boundary:
            return True
        if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] >= 1:
            op, av = (list(av[2]) or [(None, None)])[0]
        return op is C.IN and list(av) == [(C.CATEGORY, C.CATEGORY_SPACE)]

    def lit(run: str, lead: bool, trail: bool) -> Factor:
        start = M.WORD_START if lead and "a" <= run[0] <= "z" else 0
        end = M.WORD_END if trail and "a" <= run[-1] <= "z" else 0
        return ((run, start | end),)

    def of(items: list, lead: bool, trail: bool) -> list[Factor]:
        out: list[Factor] = []
        run, run_lead = "", False
        for j, (op, av) in enumerate(items):
            before = items[j - 1] == boundary if j > 0 else lead
            if op is C.LITERAL:
                if not run:
                    run_lead = before
                run += chr(av)
                continue
            if run:
                out.append(lit(run, run_lead, ends_word(items, j, trail)))
                run = ""
            after = ends_word(items, j + 1, trail)
            if op is C.SUBPATTERN and not av[1] & re.IGNORECASE:
                out += of(list(av[-1]), before, after)
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] >= 1:
                once = av[1] == 1  # repeated, the body's ends meet each other
                out += of(list(av[2]), before and once, after and once)
            elif op is C.ASSERT and av[0] >= 0:  # a lookahead's text is there too
                out += of(list(av[1]), before, False)
            elif op is C.BRANCH:
                union: set[tuple[str, int]] = set()
                for alt in av[1]:
                    fs = of(list(alt), before, after)
                    if not fs:
                        break
                    union.update(max(fs, key=lambda f: min(map(_strength, f))))
                else:
                    out.append(tuple(sorted(union)))
        if run:
            out.append(lit(run, run_lead, trail))
        return out

    keep: list[Factor] = []
    for f in of(list(parsed), False, False):
        if min(map(_strength, f)) < MIN_FACTOR or any(_weak(x, fl) or not x.isascii() for x, fl in f):
            continue
        if anchors and all(any(x in a for x, _ in f) for a in anchors):
            continue  # implied by the anchor the match starts with
        if f not in keep:
            keep.append(f)
    keep.sort(key=lambda f: -min(map(_strength, f)))
    return tuple(keep[:MAX_FACTORS])


EXTEND_FANOUT = 24
EXTEND_BUDGET = 400
# a longer run is extended only into at most this many ways: "email " into "email assistant|agent|bot|copilot" (the
# words alone are in every business text: 26 regex tries per 2 KB of prose), but not into two dozen longer literals
# each, whose states would outgrow the int16 transition table (fanout 24: 33,089 states, a 7 MB int32 table instead
# of 1.8 MB; 4: 19,844 states, prose 0 tries, benign prompts 49.7 against 47.6)
LONG_EXTEND_FANOUT = 4


def _anchors(regex: str) -> tuple[tuple[str, ...] | None, frozenset[str], str]:
    r"""Literal prefixes (2+ characters) that every match of `regex` starts with, and those that `\b` precedes on
    every way into them; (None, {}) when some way into the pattern does not start with such a literal (then it is
    searched normally). Alternations are followed, nested or top-level, and so are the common prefixes the regex
    parser factors out of them ("each|every" is parsed as "e" + "ach|very")."""
    import re._constants as C
    import re._parser as P

    try:
        seq = list(P.parse(regex))
    except re.error:
        return None, False, ""
    clause: set[str] = set()  # characters of a leading clause mark "(?:^|[.!?:;\n]\s*)"

    def clause_mark(alt: list) -> str | None:
        """The characters of a clause-mark alternative (a class of literals then optional whitespace), "" for
        "^", None for anything else."""
        if alt and alt[0] == (C.AT, C.AT_BEGINNING) and (len(alt) == 1 or len(alt) == 2 and space_run(alt[1])):
            return "^"
        if len(alt) == 2 and alt[0][0] is C.IN and all(o is C.LITERAL for o, _ in alt[0][1]) \
                and space_run(alt[1]):
            return "".join(chr(c) for _, c in alt[0][1])
        if len(alt) == 2 and alt[0][0] is C.LITERAL and space_run(alt[1]):
            return chr(alt[0][1])
        return None

    def extendable(item: tuple) -> bool:  # an alternation, a group, or "(...)?"
        return item[0] in (C.BRANCH, C.SUBPATTERN) or item[0] is C.MAX_REPEAT and item[1][:2] == (0, 1)

    def space_run(item: tuple) -> bool:  # "\s*"
        return item[0] is C.MAX_REPEAT and item[1][0] == 0 and item[1][1] is C.MAXREPEAT \
            and list(item[1][2]) == [(C.IN, [(C.CATEGORY, C.CATEGORY_SPACE)])]

    # leading lookbehinds ("(?<!told me to )\bignore ...") consume nothing: a match still starts at the anchor,
    # and `Pattern.match(text, at)` sees the text before `at`
    while seq and seq[0][0] in (C.ASSERT, C.ASSERT_NOT) and seq[0][1][0] < 0:
        seq = seq[1:]

    def prefixes(seq: list, need: int, budget: list[int]) -> list[tuple[str, bool]] | None:
        r"""(literal prefix, preceded by \b) for every way into `seq`; None when one has no literal of `need`+."""
        budget[0] -= 1
        if budget[0] < 0 or not seq:
            return None
        op, av = seq[0]
        if op is C.AT and av is C.AT_BOUNDARY and need == 2:
            out = prefixes(seq[1:], need, budget)
            return None if out is None else [(lit, True) for lit, _ in out]
        if need == 2 and op is C.IN and len(seq) > 1 and (mark := clause_mark(seq[:2])):
            clause.update(mark)  # "[\[({]\s*" before the words, outside an alternation
            return prefixes(seq[2:], need, budget)
        if op in (C.ASSERT, C.ASSERT_NOT) and av[0] < 0 and need == 2:
            # a lookbehind consumes nothing, and `Pattern.match(text, at)` still sees the text before `at`: a
            # clause start written as "(?<![^.!?:;\n])" leaves the words after it as the anchors
            return prefixes(seq[1:], need, budget)
        if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] == 0:
            # optional: either the rest, or (for at most one repetition) the item followed by the rest
            skip = prefixes(seq[1:], need, budget)
            take = prefixes(list(av[2]) + (seq[1:] if av[1] == 1 else []), need, budget)
            return None if skip is None or take is None else skip + take
        if op is C.LITERAL:
            run = ""
            k = 0
            while k < len(seq) and seq[k][0] is C.LITERAL:
                run += chr(seq[k][1])
                k += 1
            if len(run) >= need:
                # a short common prefix the parser factored out ("re" + "ply|spond") or a common word ("what " +
                # "were|have") is extended into what may follow it (an alternation, an optional item), at most
                # EXTEND_FANOUT ways; other runs only where the regex starts, and into at most LONG_EXTEND_FANOUT
                weak = len(run) < 4 or run.strip() in _COMMON_WORDS
                if (weak or need == 2) and k < len(seq) and extendable(seq[k]):
                    more = prefixes(seq[k:], 1, [EXTEND_BUDGET])
                    if more and len(more) <= (EXTEND_FANOUT if weak else LONG_EXTEND_FANOUT):
                        return [(run + m, False) for m, _ in more]
                return [(run, False)]
            rest = prefixes(seq[k:], need - len(run), budget)
            return None if rest is None else [(run + lit, False) for lit, _ in rest]
        if op is C.SUBPATTERN:
            return prefixes(list(av[-1]) + seq[1:], need, budget)
        if op is C.BRANCH:
            out: list[tuple[str, bool]] = []
            for alt in av[1]:
                mark = clause_mark(list(alt)) if need == 2 else None
                if mark is not None:  # a clause mark before the words: they are the anchors (see clause_starts)
                    clause.update(mark)
                    alt = []
                r = prefixes(list(alt) + seq[1:], need, budget)
                if r is None:
                    return None
                out += r
            return out
        return None

    found = prefixes(seq, 2, [2000])
    if not found:
        return None, frozenset(), ""
    lits = sorted({lit for lit, _ in found})
    bare = {lit for lit, b in found if not b}  # a literal reached both with and without \b is not bounded
    return tuple(lits), frozenset(lit for lit in lits if lit not in bare), "".join(sorted(clause))


def clause_starts(text: str, at: int, marks: str) -> list[int]:
    r"""Where "(?:^|[marks]\s*)" can begin so that it ends at `at`, leftmost first (a regex search returns the
    leftmost match): the mark just before the whitespace run that ends at `at`, the text's start when the run
    begins it ("^" in `marks`), and the run's first newline when a newline is a mark. Empty if none."""
    j = at
    while j > 0 and text[j - 1].isspace():
        j -= 1
    out = []
    if j > 0 and text[j - 1] in marks:
        out.append(j - 1)
    elif j == 0 and "^" in marks:
        out.append(0)
    if "\n" in marks:
        k = text.find("\n", j, at)
        if k >= 0 and (not out or k > out[0]):
            out.append(k)
    return out


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    category: str
    keywords: tuple[str, ...]
    patterns: tuple[Pattern, ...]
    word_keys: frozenset[str] = frozenset()  # 5-letter prefixes of the alphabetic keywords
    sym_keys: tuple[str, ...] = ()  # keywords with symbols, checked as substrings
    script: str = ""  # one of SCRIPTS ("cjk", "cyrillic"): searched outside the automaton (see `SignatureIndex`)

    @classmethod
    def make(cls, name: str, category: str, keywords: list[str], patterns: tuple[Pattern, ...],
             script: str = "") -> Family:
        kws = tuple(dict.fromkeys(fold_text(k) for k in keywords))  # as the folded views spell them
        if script:
            return cls(name, category, kws, patterns, script=script)
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


# the scripts a family may be written in (`script:`); a family is searched only where one of its keywords (written in
# its script) occurs: a keyword wider than the text's characters is rejected without a scan, so Latin text with an
# accent costs ~1 us for all of them (a script-range regex gate cost ~800 us per 100 KB)
SCRIPTS = frozenset({"cjk", "cyrillic"})
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _fold_script_regex(source: str) -> str:
    """A script family's regex with its non-ASCII runs folded as the views fold them (NFKD drops the voiced marks
    of kana: "プ" reads "フ"; Cyrillic letters that look Latin read as Latin), so patterns are written in plain
    script. A run that folds to ASCII punctuation (full-width "！") would change the regex's syntax: an error."""
    def fold(m: re.Match[str]) -> str:
        f = fold_text(m.group())
        if any(c.isascii() and not c.isalnum() for c in f):
            raise ValueError(f"{m.group()!r} folds to {f!r}: write it as the views read it")
        return f
    return _NON_ASCII_RUN.sub(fold, source)


@lru_cache(maxsize=4)
def load_families(directory: str = str(PATTERN_DIR)) -> tuple[Family, ...]:
    """Read and compile every `*.yaml` family file; errors name the file and the pattern id."""
    families: list[Family] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        for i, fam in enumerate(load_yaml(path.read_text(encoding="utf-8")) or []):
            where = f"{path.name}[{i}]"
            try:
                script = fam.get("script", "")
                if script and script not in SCRIPTS:
                    raise PatternFileError(f"{where}: unknown script {script!r} (known: {sorted(SCRIPTS)})")
                pats = []
                for p in fam["patterns"]:
                    try:
                        rx = re.compile(_fold_script_regex(p["regex"]) if script else p["regex"], re.DOTALL)
                    except (re.error, ValueError) as e:
                        raise PatternFileError(f"{where} pattern {p.get('id')!r}: bad regex: {e}") from None
                    if script:  # searched whole, only in texts with the script, a family keyword and an anchor
                        pats.append(Pattern(p["id"], fam["family"], fam["category"], float(p["score"]), rx,
                                            _anchors(rx.pattern)[0]))
                        continue
                    anchors, boundary, clause = _anchors(p["regex"])
                    req = p.get("requires", ())  # one list (one of them must occur) or lists that all must
                    groups = [req] if all(isinstance(x, str) for x in req) else req
                    own = tuple(tuple((fold_text(x), 0) for x in g) for g in groups if g)
                    requires = tuple(x for g in own for x, _ in g)
                    written = {frozenset(g) for g in own}  # a factor the regex repeats is kept once
                    factors = own + tuple(f for f in _factors(p["regex"], anchors) if frozenset(f) not in written)
                    try:
                        gate = re.compile(p["gate"], re.DOTALL) if "gate" in p else None
                    except re.error as e:
                        raise PatternFileError(f"{where} pattern {p.get('id')!r}: bad gate: {e}") from None
                    pats.append(Pattern(p["id"], fam["family"], fam["category"], float(p["score"]), rx,
                                        anchors, requires, boundary, clause, factors, gate,
                                        int(p.get("gate_count", 1)), frozenset(p.get("skip_run", ""))))
                families.append(Family.make(fam["family"], fam["category"], fam["keywords"], tuple(pats), script))
            except KeyError as e:
                raise PatternFileError(f"{where}: missing key {e}") from None
    return tuple(families)


@njit(cache=True)
def _candidates(ndoc: int, seen_doc: np.ndarray, seen_lit: np.ndarray, seen_last: np.ndarray, pos_doc: np.ndarray,
                pos_lit: np.ndarray, pos_at: np.ndarray, n_lit: int, fam_ptr: np.ndarray, fam_lit: np.ndarray,
                pat_fam: np.ndarray, pat_fac: np.ndarray, fac_ptr: np.ndarray, fac_lit: np.ndarray,
                unanchored: np.ndarray, anc_ptr: np.ndarray, anc_pat: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each regex must be tried, from the automaton's output: (doc, pattern, start) rows sorted by doc,
    pattern and start, start -1 for an unanchored pattern (searched). A pattern is a candidate only when a keyword
    of its family and a literal of each of its factors occur in the doc (`pat_fac`: pattern -> its factor rows,
    `fac_ptr`/`fac_lit`: factor -> its literals), and an anchor only where each factor still occurs at or after it
    (a match starts at its anchor and holds a literal of every factor; lookbehinds give no factors): in prompts the
    object of "show ... your instructions" often stands before most of the verbs, and a third of the tries went.
    `SignatureIndex.candidates_ref` is the plain-Python definition."""
    n_fam = fam_ptr.shape[0] - 1
    n_pat = pat_fam.shape[0]
    cap = ndoc * unanchored.shape[0]
    for i in range(pos_lit.shape[0]):
        cap += anc_ptr[pos_lit[i] + 1] - anc_ptr[pos_lit[i]]
    out_doc = np.empty(cap, dtype=np.int64)
    out_pat = np.empty(cap, dtype=np.int32)
    out_at = np.empty(cap, dtype=np.int64)
    keys = np.empty(cap, dtype=np.int64)
    seen = np.zeros(n_lit, dtype=np.uint8)
    last = np.empty(n_lit, dtype=np.int64)  # where a seen literal's last occurrence starts
    trig = np.zeros(n_fam, dtype=np.uint8)
    ok = np.zeros(n_pat, dtype=np.uint8)
    reach = np.empty(n_pat, dtype=np.int64)  # the last anchor position each factor still occurs at or after
    n = 0
    si = 0
    pi = 0
    for d in range(ndoc):
        s0 = si
        while si < seen_doc.shape[0] and seen_doc[si] == d:
            seen[seen_lit[si]] = 1
            last[seen_lit[si]] = seen_last[si]
            si += 1
        p0 = pi
        while pi < pos_doc.shape[0] and pos_doc[pi] == d:
            pi += 1
        if si == s0:
            continue  # no literal at all: no family is triggered
        for f in range(n_fam):
            t = 0
            for k in range(fam_ptr[f], fam_ptr[f + 1]):
                if seen[fam_lit[k]]:
                    t = 1
                    break
            trig[f] = t
        for p in range(n_pat):
            o = trig[pat_fam[p]]
            r = np.int64(1) << 40
            f = pat_fac[p]
            while o and f < pat_fac[p + 1]:
                o = 0
                latest = np.int64(-1)
                for k in range(fac_ptr[f], fac_ptr[f + 1]):
                    if seen[fac_lit[k]]:
                        o = 1
                        latest = max(latest, last[fac_lit[k]])
                r = min(r, latest)
                f += 1
            ok[p] = o
            reach[p] = r
        m = 0
        for u in unanchored:
            if ok[u]:
                keys[m] = np.int64(u) << 40  # start -1 sorts first: (u << 40) + (-1 + 1)
                m += 1
        for i in range(p0, pi):
            lit = pos_lit[i]
            for k in range(anc_ptr[lit], anc_ptr[lit + 1]):
                q = anc_pat[k]
                if ok[q] and pos_at[i] <= reach[q]:
                    keys[m] = (np.int64(q) << 40) + pos_at[i] + 1
                    m += 1
        srt = np.sort(keys[:m])
        for i in range(m):
            if i > 0 and srt[i] == srt[i - 1]:
                continue
            out_doc[n] = d
            out_pat[n] = srt[i] >> 40
            out_at[n] = (srt[i] & ((np.int64(1) << 40) - 1)) - 1
            n += 1
        for i in range(s0, si):
            seen[seen_lit[i]] = 0
    return out_doc[:n], out_pat[:n], out_at[:n]


def _csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=ptr[1:])
    return ptr, np.array([x for r in rows for x in r], dtype=np.int32)


class SignatureIndex:
    """Every literal the families need (family keywords, pattern anchors, required substrings) in one
    `multimatch.Automaton`, so a view is read once; a compiled pass (`_candidates`) then keeps the anchor positions
    of patterns whose family keywords and required substrings occur, and the regexes run only there. 2 KB of
    benign prompts meets ~50 regex tries and 2 KB of business prose none (~59 and ~26 before longer anchors were
    extended and `\b` kept per anchor; ~70 on prompts before anchors starting with a common word were extended)."""

    def __init__(self, families: tuple[Family, ...]) -> None:
        self.families = families
        ids: dict[tuple[str, int], int] = {}

        def lit(text: str, flags: int) -> int:
            return ids.setdefault((text, flags), len(ids))

        self.family_keys: list[frozenset[int]] = []
        # (family, pattern, factors as literal ids, family index)
        self.patterns: list[tuple[Family, Pattern, tuple[frozenset[int], ...], int]] = []
        self.anchor_patterns: dict[int, list[int]] = {}  # literal id -> indexes into self.patterns
        self.unanchored: list[int] = []
        # families in another script: the automaton reads ASCII literals, so these are searched apart, only in a
        # text where a keyword of theirs occurs (most texts: one `isascii` call)
        self.script_families = [f for f in families if f.script]
        for fi, fam in enumerate(families):
            if fam.script:
                self.family_keys.append(frozenset())
                continue
            keys = {lit(k, M.WORD_START | (0 if len(k) >= 5 else M.WORD_END)) for k in fam.word_keys}
            keys |= {lit(k, 0) for k in fam.sym_keys}
            self.family_keys.append(frozenset(keys))
            for p in fam.patterns:
                pi = len(self.patterns)
                self.patterns.append((fam, p, tuple(frozenset(lit(x, fl) for x, fl in f) for f in p.factors), fi))
                if p.anchors is None:
                    self.unanchored.append(pi)
                else:
                    for a in p.anchors:
                        ws = M.WORD_START if a in p.bounded and "a" <= a[0] <= "z" else 0
                        self.anchor_patterns.setdefault(lit(a, M.POSITIONS | ws), []).append(pi)
        # per pattern, what the try loop calls (bound methods: ~70 tries per 2 KB of prompts, attribute lookups add up)
        self._tries = [(p.regex.match, p.regex.search, p.clause, p.gate, p.gate_count, p.skip_run)
                       for _, p, _, _ in self.patterns]
        literals = [t for t, _ in ids]
        bad = [t for t in literals if not t.isascii()]
        if bad:
            raise PatternFileError(f"literals must be ASCII once folded (the views are): {bad}")
        self.automaton = M.Automaton.build(literals, [f for _, f in ids])
        self._tables = (len(literals), *_csr([sorted(k) for k in self.family_keys]),
                        np.array([fi for *_, fi in self.patterns], dtype=np.int32),
                        _csr([list(range(len(fs))) for _, _, fs, _ in self.patterns])[0],
                        *_csr([sorted(f) for _, _, fs, _ in self.patterns for f in fs]),
                        np.array(self.unanchored, dtype=np.int32),
                        *_csr([self.anchor_patterns.get(i, []) for i in range(len(literals))]))

    def search(self, text: str) -> list[tuple[Family, Pattern, re.Match[str]]]:
        """Leftmost match of every pattern that matches `text`, in family/pattern order."""
        return self.search_many([text])[0]

    def search_many(self, texts: list[str]) -> list[list[tuple[Family, Pattern, re.Match[str]]]]:
        out: list[list[tuple[Family, Pattern, re.Match[str]]]] = [[] for _ in texts]
        if not texts:
            return out
        docs, pats, ats = _candidates(len(texts), *self.automaton.scan_arrays(texts), *self._tables)
        tries = self._tries
        last_d = last_p = -1  # (doc, pattern) already matched: its later starts are skipped
        run_d = run_p = run_end = -1  # a failed try's run of `skip_run` characters: its later anchors fail too
        for d, pi, at in zip(docs.tolist(), pats.tolist(), ats.tolist(), strict=True):
            if pi == last_p and d == last_d:
                continue
            if at < run_end and pi == run_p and d == run_d:
                continue
            match, search, clause, gate, gate_count, skip_run = tries[pi]
            text = texts[d]
            if at < 0:
                m = search(text) if gate is None or len(gate.findall(text)) >= gate_count else None
            else:
                m = None
                if clause:  # the match may begin at the clause mark before the anchor's whitespace
                    for s0 in clause_starts(text, at, clause):
                        m = match(text, s0)
                        if m is not None:
                            break
                if m is None:
                    m = match(text, at)
                if m is None and skip_run:
                    run_d, run_p, run_end = d, pi, at
                    while run_end < len(text) and text[run_end] in skip_run:
                        run_end += 1
            if m is not None:
                fam, p, _, _ = self.patterns[pi]
                out[d].append((fam, p, m))
                last_d, last_p = d, pi
        if self.script_families:
            for d, text in enumerate(texts):
                if not text.isascii():
                    out[d] += self._search_scripts(text)
        return out

    def _search_scripts(self, text: str) -> list[tuple[Family, Pattern, re.Match[str]]]:
        found = []
        for fam in self.script_families:
            if any(k in text for k in fam.keywords):
                for p in fam.patterns:
                    # every match starts with an anchor: without one the regex is not run (a keyword as common as
                    # "系统" let a 24-way alternation run over 2 KB of Chinese, ~130 us)
                    if p.anchors is not None and not any(a in text for a in p.anchors):
                        continue
                    m = p.regex.search(text)
                    if m is not None:
                        found.append((fam, p, m))
        return found

    def candidates(self, text: str) -> list[tuple[int, int]]:
        """(pattern, start) pairs the compiled pass yields for `text` (start -1: searched)."""
        _, pats, ats = _candidates(1, *self.automaton.scan_arrays([text]), *self._tables)
        return list(zip(pats.tolist(), ats.tolist(), strict=True))

    def candidates_ref(self, text: str) -> list[tuple[int, int]]:
        """Plain-Python definition of `candidates`, from the str.find literal reference."""
        flags = self.automaton.flags.tolist()
        _, every = M.find_all_ref(self.automaton.literals, [f | M.POSITIONS for f in flags], text)
        starts: dict[int, list[int]] = {}
        for lid, at in every:
            starts.setdefault(lid, []).append(at)
        seen = set(starts)
        occ = [(lid, at) for lid, at in every if flags[lid] & M.POSITIONS]
        triggered = [not keys.isdisjoint(seen) for keys in self.family_keys]
        ok = [triggered[fi] and all(not f.isdisjoint(seen) for f in fs) for _, _, fs, fi in self.patterns]

        def reaches(pi: int, at: int) -> bool:  # every factor has a literal starting at or after `at`
            return all(any(s >= at for lid in f for s in starts.get(lid, ())) for f in self.patterns[pi][2])

        out = {(pi, -1) for pi in self.unanchored if ok[pi]}
        out |= {(pi, at) for lid, at in occ for pi in self.anchor_patterns.get(lid, []) if ok[pi] and reaches(pi, at)}
        return sorted(out)


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
        return self._evidence(doc, self.index.search_many([v.text for v in doc.variants]))  # all views, one pass

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
