"""Many literals found in one pass (Aho-Corasick), for the signature prefilter.

Why: the signature families have a few hundred literal anchors, keywords and required substrings. Looking for
each with `str.find` costs one pass over the text per literal (about 60 us for 2 KB); the automaton finds all of
them in one compiled pass of a few microseconds, and the regexes then run only at the positions it reports.

A literal can require a word boundary before it (`WORD_START`) and after it (`WORD_END`), where a word is a run of
`[a-z]` (the views are lower-cased). Literals are ASCII; text may be any Unicode (code points above 127 never
match a literal character). `find_all_ref` is the plain-Python definition the kernel is tested against.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

WORD_START = 1
WORD_END = 2
POSITIONS = 4  # report every occurrence's start, not only that the literal occurs


@njit(cache=True, inline="always")
def _az(c: np.uint32) -> bool:
    return 97 <= c <= 122


# Four state chains per text: the text is cut in quarters and all four are walked in one loop, so the dependent
# table loads (one per character and chain) overlap instead of waiting on each other. Chain j starts at the root
# at its quarter's start and runs `longest - 1` characters into the next quarter, so it finishes every occurrence
# that starts in its quarter; it reports only those. Measured on 2 KB prose: one chain 6.9 us per pass, two
# chains 4.1, four ~2.8 (the walk alone, signature automaton).
CHAINS = 4


@njit(cache=True, inline="always")
def _next(s: int, c: np.uint32, cmap: np.ndarray, delta: np.ndarray, k: int) -> int:
    """One transition; negative (~state) when the target state has outputs."""
    return np.int64(delta[s * k + (cmap[c] if c < 128 else 0)])


@njit(cache=True)
def _walk(codes: np.ndarray, lo: int, hi: int, cmap: np.ndarray, delta: np.ndarray, k: int, longest: int,
          bounds: np.ndarray, hit_at: np.ndarray, hit_state: np.ndarray, counts: np.ndarray) -> int:
    """Walk codes[lo:hi] with CHAINS chains. `bounds` gets the quarter starts and `hi` (CHAINS + 1 values): chain
    j reports occurrences starting in [bounds[j], bounds[j+1]). Each step that reaches a state with outputs is
    recorded as (position, state) in chain j's region of `hit_at`/`hit_state` (from j * region, region returned),
    `counts[j]` of them. The outputs are read afterwards, in one loop: branchy output handling inside this loop
    made every output state cost ~100 ns more (numba's reference counting around the arrays it touched)."""
    m = hi - lo
    for j in range(CHAINS):
        bounds[j] = lo + (m * j) // CHAINS
        counts[j] = 0
    bounds[CHAINS] = hi
    region = m // CHAINS + 1 + longest
    b1 = bounds[1]
    b2 = bounds[2]
    b3 = bounds[3]
    r1 = region
    r2 = 2 * region
    r3 = 3 * region
    common = hi - b3  # the last chain's length; the others run longer (into the next quarter)
    s0 = s1 = s2 = s3 = 0
    n0 = n1 = n2 = n3 = 0
    for t in range(common):
        t0 = _next(s0, codes[lo + t], cmap, delta, k)
        t1 = _next(s1, codes[b1 + t], cmap, delta, k)
        t2 = _next(s2, codes[b2 + t], cmap, delta, k)
        t3 = _next(s3, codes[b3 + t], cmap, delta, k)
        if t0 >= 0:  # most steps: a state without outputs (see `Automaton.delta`)
            s0 = t0
        else:
            s0 = ~t0
            hit_at[n0] = lo + t
            hit_state[n0] = s0
            n0 += 1
        if t1 >= 0:
            s1 = t1
        else:
            s1 = ~t1
            hit_at[r1 + n1] = b1 + t
            hit_state[r1 + n1] = s1
            n1 += 1
        if t2 >= 0:
            s2 = t2
        else:
            s2 = ~t2
            hit_at[r2 + n2] = b2 + t
            hit_state[r2 + n2] = s2
            n2 += 1
        if t3 >= 0:
            s3 = t3
        else:
            s3 = ~t3
            hit_at[r3 + n3] = b3 + t
            hit_state[r3 + n3] = s3
            n3 += 1
    counts[0] = n0
    counts[1] = n1
    counts[2] = n2
    counts[3] = n3
    # the rest of each of the first three chains, one at a time: up to `longest - 1` past its quarter
    for j in range(CHAINS - 1):
        s = s0 if j == 0 else (s1 if j == 1 else s2)
        n = counts[j]
        for i in range(bounds[j] + common, min(hi, bounds[j + 1] + longest - 1)):
            t = _next(s, codes[i], cmap, delta, k)
            if t >= 0:
                s = t
            else:
                s = ~t
                hit_at[j * region + n] = i
                hit_state[j * region + n] = s
                n += 1
        counts[j] = n
    return region


@njit(cache=True)
def _ac_scan(codes: np.ndarray, offsets: np.ndarray, cmap: np.ndarray, delta: np.ndarray, k: int,
             out_ptr: np.ndarray, out_ids: np.ndarray, nlen: np.ndarray, nflags: np.ndarray, seen_doc: np.ndarray,
             seen_lit: np.ndarray, seen_last: np.ndarray, pos_doc: np.ndarray, pos_lit: np.ndarray,
             pos_at: np.ndarray) -> tuple[int, int]:
    """Scan each text codes[offsets[d]:offsets[d+1]]. Write (text, literal, start of its last occurrence) once
    per literal that occurs in a text, and (text, literal, start) for every occurrence of a POSITIONS literal
    (starts relative to the text). Return both counts; they may exceed the output capacities, and the caller then
    retries with more room."""
    mark = np.full(nlen.shape[0], -1, dtype=np.int64)  # the last text each literal was seen in
    slot = np.empty(nlen.shape[0], dtype=np.int64)  # ... and its row in seen_* there
    longest = nlen.max() if nlen.shape[0] else 1
    room = 1
    for d in range(offsets.shape[0] - 1):
        room = max(room, offsets[d + 1] - offsets[d])
    room = CHAINS * (room // CHAINS + 1 + longest)
    hit_at = np.empty(room, dtype=np.int64)
    hit_state = np.empty(room, dtype=np.int32)
    bounds = np.empty(CHAINS + 1, dtype=np.int64)
    counts = np.empty(CHAINS, dtype=np.int64)
    n_seen = 0
    n_pos = 0
    for d in range(offsets.shape[0] - 1):
        lo = offsets[d]
        hi = offsets[d + 1]
        region = _walk(codes, lo, hi, cmap, delta, k, longest, bounds, hit_at, hit_state, counts)
        for j in range(CHAINS):
            below = bounds[j + 1]  # chain j reports only what starts in its quarter
            for h in range(j * region, j * region + counts[j]):
                i = hit_at[h]
                s = hit_state[h]
                for jj in range(out_ptr[s], out_ptr[s + 1]):
                    lit = out_ids[jj]
                    f = nflags[lit]
                    start = i - nlen[lit] + 1
                    if start >= below:
                        continue
                    if (f & WORD_START) and start > lo and _az(codes[start - 1]):
                        continue
                    if (f & WORD_END) and i + 1 < hi and _az(codes[i + 1]):
                        continue
                    if mark[lit] != d:
                        mark[lit] = d
                        slot[lit] = n_seen
                        if n_seen < seen_doc.shape[0]:
                            seen_doc[n_seen] = d
                            seen_lit[n_seen] = lit
                            seen_last[n_seen] = start - lo
                        n_seen += 1
                    elif slot[lit] < seen_doc.shape[0]:  # (a literal's occurrences come in order of start)
                        seen_last[slot[lit]] = max(seen_last[slot[lit]], start - lo)
                    if f & POSITIONS:
                        if n_pos < pos_doc.shape[0]:
                            pos_doc[n_pos] = d
                            pos_lit[n_pos] = lit
                            pos_at[n_pos] = start - lo
                        n_pos += 1
    return n_seen, n_pos


@njit(cache=True)
def _ac_group_counts(codes: np.ndarray, cmap: np.ndarray, delta: np.ndarray, k: int, out_ptr: np.ndarray,
                     out_ids: np.ndarray, nlen: np.ndarray, nflags: np.ndarray, group: np.ndarray,
                     ngroups: int) -> np.ndarray:
    """How many distinct literals of each group occur in `codes` (a per-text gate: no positions, no id lists)."""
    n = codes.shape[0]
    seen = np.zeros(nlen.shape[0], dtype=np.uint8)
    counts = np.zeros(ngroups, dtype=np.int64)
    longest = nlen.max() if nlen.shape[0] else 1
    room = CHAINS * (n // CHAINS + 1 + longest)
    hit_at = np.empty(room, dtype=np.int64)
    hit_state = np.empty(room, dtype=np.int32)
    bounds = np.empty(CHAINS + 1, dtype=np.int64)
    nhits = np.empty(CHAINS, dtype=np.int64)
    region = _walk(codes, 0, n, cmap, delta, k, longest, bounds, hit_at, hit_state, nhits)
    for j in range(CHAINS):
        below = bounds[j + 1]
        for h in range(j * region, j * region + nhits[j]):
            i = hit_at[h]
            s = hit_state[h]
            for jj in range(out_ptr[s], out_ptr[s + 1]):
                lit = out_ids[jj]
                if seen[lit]:
                    continue
                f = nflags[lit]
                start = i - nlen[lit] + 1
                if start >= below:
                    continue
                if (f & WORD_START) and start > 0 and _az(codes[start - 1]):
                    continue
                if (f & WORD_END) and i + 1 < n and _az(codes[i + 1]):
                    continue
                seen[lit] = 1
                counts[group[lit]] += 1
    return counts


Found = tuple[set[int], list[tuple[int, int]]]


@dataclass(frozen=True)
class Automaton:
    """A compiled literal set. `find(text)` returns (ids of literals that occur, [(literal id, start), ...] for
    the POSITIONS literals, in no particular order)."""

    literals: tuple[str, ...]
    flags: np.ndarray  # int32 per literal
    cmap: np.ndarray  # int32[128]: ASCII code -> character class (0 = no literal uses it)
    delta: np.ndarray  # [states * classes]: full transition table (failure links folded in), flat, holding target
    # state numbers; a target state that has outputs is stored as ~state (negative), so the scan loop looks up
    # outputs only there. int16 when the states fit (the signature automaton: 1.6 -> 0.8 MB, inside a core's
    # L2 cache), int32 otherwise
    classes: int
    out_ptr: np.ndarray
    out_ids: np.ndarray
    lengths: np.ndarray

    @classmethod
    def build(cls, literals: Sequence[str], flags: Sequence[int], *, casefold: bool = False) -> Automaton:
        """`casefold`: literals are lower-case and match text in any ASCII case (upper-case letters share the
        lower-case letters' classes; no lower-cased copy of the text is made)."""
        if len(literals) != len(flags):
            raise ValueError("one flags value per literal")
        for lit in literals:
            if not lit or not lit.isascii():
                raise ValueError(f"literal {lit!r}: must be non-empty ASCII")
            if casefold and lit != lit.lower():
                raise ValueError(f"literal {lit!r}: a casefold automaton takes lower-case literals")
        alphabet = sorted({c for lit in literals for c in lit})
        cmap = np.zeros(128, dtype=np.int32)
        for i, ch in enumerate(alphabet):
            cmap[ord(ch)] = i + 1
            if casefold and "a" <= ch <= "z":
                cmap[ord(ch.upper())] = i + 1
        k = len(alphabet) + 1
        trie: list[dict[int, int]] = [{}]
        outs: list[list[int]] = [[]]
        for lid, lit in enumerate(literals):
            s = 0
            for ch in lit:
                c = int(cmap[ord(ch)])
                if c not in trie[s]:
                    trie.append({})
                    outs.append([])
                    trie[s][c] = len(trie) - 1
                s = trie[s][c]
            outs[s].append(lid)
        delta = np.zeros((len(trie), k), dtype=np.int32)
        fail = [0] * len(trie)
        queue: deque[int] = deque()
        for c in range(k):
            nxt = trie[0].get(c)
            if nxt is not None:
                delta[0, c] = nxt
                queue.append(nxt)
        while queue:  # breadth first: a state's failure target is complete before the state is
            s = queue.popleft()
            outs[s] = outs[s] + outs[fail[s]]
            delta[s] = delta[fail[s]]  # whole row at once: the per-class loop was 0.5 s of a fresh process's start
            for c, nxt in trie[s].items():
                fail[nxt] = int(delta[s, c])
                delta[s, c] = nxt
                queue.append(nxt)
        out_ptr = np.zeros(len(trie) + 1, dtype=np.int32)
        np.cumsum([len(o) for o in outs], out=out_ptr[1:])
        has_out = np.array([len(o) > 0 for o in outs])
        dtype = np.int16 if len(trie) < 2**15 else np.int32
        flat = np.where(has_out[delta], ~delta, delta).astype(dtype).ravel()
        out_ids = np.array([i for o in outs for i in o], dtype=np.int32)
        return cls(tuple(literals), np.asarray(flags, dtype=np.int32), cmap, flat, k, out_ptr, out_ids,
                   np.array([len(x) for x in literals], dtype=np.int32))

    def find(self, text: str) -> Found:
        return self._found(self.scan_arrays([text]), 1)[0]

    def find_many(self, texts: list[str]) -> list[Found]:
        """`find` for each text, in one compiled call (a batch of short prompts pays the call overhead once)."""
        return self._found(self.scan_arrays(texts), len(texts)) if texts else []

    def group_counts(self, text: str, group: np.ndarray, ngroups: int) -> list[int]:
        """Distinct literals found per group (`group[literal]` in 0..ngroups-1)."""
        return _ac_group_counts(_codes(text), self.cmap, self.delta, self.classes, self.out_ptr, self.out_ids,
                                self.lengths, self.flags, group, ngroups).tolist()

    def scan_arrays(self, texts: Sequence[str]) -> tuple[np.ndarray, ...]:
        """The raw kernel output for `texts`: (seen_doc, seen_lit, seen_last, pos_doc, pos_lit, pos_at), grouped
        by text in order, for callers that post-process in compiled code rather than in Python sets and lists
        (`seen_last`: where the literal's last occurrence in the text starts)."""
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        if len(texts) == 1:
            offsets[1] = len(texts[0])
            codes = _codes(texts[0])
        else:
            np.cumsum([len(t) for t in texts], out=offsets[1:])
            codes = _codes("".join(texts))
        # room for what dense text yields, so the scan runs once: prose meets ~35 distinct literals and ~150
        # positions per 2 KB, prompts written to an assistant ~105 and ~195 (the old room, 64 and 192, made 99 % of
        # them pay a second pass); a denser text still gets a second pass with the exact sizes
        cap_seen = 64 * len(texts) + codes.shape[0] // 8
        cap_pos = cap_seen + codes.shape[0] // 4
        while True:
            seen_doc = np.empty(cap_seen, dtype=np.int64)
            seen_lit = np.empty(cap_seen, dtype=np.int32)
            seen_last = np.empty(cap_seen, dtype=np.int64)
            pos_doc = np.empty(cap_pos, dtype=np.int64)
            pos_lit = np.empty(cap_pos, dtype=np.int32)
            pos_at = np.empty(cap_pos, dtype=np.int64)
            ns, npos = _ac_scan(codes, offsets, self.cmap, self.delta, self.classes, self.out_ptr, self.out_ids,
                                self.lengths, self.flags, seen_doc, seen_lit, seen_last, pos_doc, pos_lit, pos_at)
            if ns <= cap_seen and npos <= cap_pos:
                return seen_doc[:ns], seen_lit[:ns], seen_last[:ns], pos_doc[:npos], pos_lit[:npos], pos_at[:npos]
            cap_seen, cap_pos = max(ns, cap_seen), max(npos, cap_pos)

    @staticmethod
    def _found(arrays: tuple[np.ndarray, ...], n: int) -> list[Found]:
        seen_doc, seen_lit, _, pos_doc, pos_lit, pos_at = arrays
        if n == 1:
            return [(set(seen_lit.tolist()), list(zip(pos_lit.tolist(), pos_at.tolist(), strict=True)))]
        out: list[Found] = [(set(), []) for _ in range(n)]
        for d, lit in zip(seen_doc.tolist(), seen_lit.tolist(), strict=True):
            out[d][0].add(lit)
        for d, lit, at in zip(pos_doc.tolist(), pos_lit.tolist(), pos_at.tolist(), strict=True):
            out[d][1].append((lit, at))
        return out


def _codes(text: str) -> np.ndarray:
    """Code points of `text`: one byte each when it is ASCII (most prompts), else UTF-32."""
    return (np.frombuffer(text.encode("ascii"), dtype=np.uint8) if text.isascii()
            else np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))


def find_all_ref(literals: Sequence[str], flags: Sequence[int], text: str
                 ) -> tuple[set[int], list[tuple[int, int]]]:
    """Plain-Python definition: every occurrence of every literal that passes its boundary tests (the kernel's
    occurrence order is unspecified: compare sorted)."""

    def az(i: int) -> bool:
        return 0 <= i < len(text) and "a" <= text[i] <= "z"

    found: list[tuple[int, int, int]] = []
    for lid, (lit, f) in enumerate(zip(literals, flags, strict=True)):
        i = text.find(lit)
        while i >= 0:
            ok = not (f & WORD_START and az(i - 1)) and not (f & WORD_END and az(i + len(lit)))
            if ok:
                found.append((i + len(lit), lid, i))
            i = text.find(lit, i + 1)
    ids = {lid for _, lid, _ in found}
    pos = [(lid, s) for _, lid, s in sorted(found) if flags[lid] & POSITIONS]
    return ids, pos
