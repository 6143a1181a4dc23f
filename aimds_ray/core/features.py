"""Hashed text features: character 3-5-grams, word 1-2-grams, concept 1-3-grams (`concepts`, when the model has a
lexicon) and a few shape features, in one numba pass.

Texts are handed over as one UTF-32 code-point array plus offsets (one `str.encode` for a whole batch), so a batch
of 10,000 prompts is featurised by a single compiled call with no per-row Python objects. The output is CSR
(indptr, indices, values) with L2-normalised log-count values (counts saturate at 255; ids unique per row, not
sorted); `hash_features_ref` is the plain-Python reference that the numba kernel is tested against.

Hashing (FNV-1a, 32 bit) makes the feature space fixed-size (`2**bits`) so the classifier, the vector index and
the learner agree on features without a vocabulary.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from aimds_ray.core.concepts import MAX_STEM, MIN_STEM, SALT_LEX, Lexicon

FNV_OFFSET = np.uint32(2166136261)
FNV_PRIME = np.uint32(16777619)
DEFAULT_BITS = 18

# salts keep the feature families apart in the hashed space
SALT_CHAR = 0x9E3779B1
SALT_WORD = 0x85EBCA77
SALT_BIGRAM = 0xC2B2AE3D
SALT_SHAPE = 0x27D4EB2F
SALT_CONCEPT = 0x61C88647
SALT_CPAIR = 0x7F4A7C15
SALT_CTRIPLE = 0x1B873593
# concept feature ids carry this bit between `_doc_hashes` and `_doc_row`, which weighs their values by the
# lexicon's `weight` (hashed ids are under 2**bits, far below it)
CONCEPT_FLAG = np.uint32(1 << 31)
ID_MASK = np.uint32((1 << 31) - 1)


def _prefetch(write: int):  # type: ignore[no-untyped-def]
    """An intrinsic hinting the CPU to start loading arr[i] (of a 2-D array, row i) into every cache level (LLVM's
    prefetch; `write`: the line will be stored to)."""

    @intrinsic
    def prefetch(typingctx, arr, i):  # type: ignore[no-untyped-def]
        sig = types.void(arr, i)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            idx = [context.cast(builder, args[1], signature.args[1], types.intp)]
            idx += [context.get_constant(types.intp, 0)] * (aryty.ndim - 1)
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx)
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            builder.call(fn, [ptr, ir.Constant(i32, write), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return sig, codegen

    return prefetch


prefetch_read = _prefetch(0)
prefetch_write = _prefetch(1)
# items ahead: a varied 2 KB text reads ~4,000 weight rows and counts ~6,800 ids in a 256 KB table, mostly cache
# misses in a scan (16 beat 8 and 32 for the weight rows; for the counter table 16 and 32 measured alike, 8 worse)
PREFETCH = 16


def encode_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one uint32 code-point array and int64 offsets (len(texts)+1)."""
    if len(texts) == 1:  # the one-prompt scan: skip the batch bookkeeping
        t = texts[0]
        return np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32), np.array([0, len(t)], dtype=np.int64)
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    return codes, offsets


@njit(cache=True, inline="always")
def _is_word(c: np.uint32) -> bool:
    return (97 <= c <= 122) or (48 <= c <= 57) or (65 <= c <= 90) or c >= 0xC0


@njit(cache=True, inline="always")
def _lower(c: np.uint32) -> np.uint32:
    if 65 <= c <= 90:
        return c + np.uint32(32)
    return c


@njit(cache=True, inline="always")
def _mix(h: np.uint32, v: np.uint32) -> np.uint32:
    return (h ^ v) * FNV_PRIME


@njit(cache=True, inline="always")
def _lex_get(keys: np.ndarray, vals: np.ndarray, h: np.uint32) -> int:
    """The lexicon value stored for key hash `h` (concept * 2 + is_stem), -1 if none (`concepts.Lexicon`)."""
    size = vals.shape[0]
    i = (h ^ (h >> np.uint32(15))) & np.uint32(size - 1)
    while vals[i] >= 0:
        if keys[i] == h:
            return vals[i]
        i = (i + np.uint32(1)) & np.uint32(size - 1)
    return -1


@njit(cache=True)
def _word_concept(buf: np.ndarray, ws: int, we: int, keys: np.ndarray, vals: np.ndarray) -> int:
    """The concept of the word buf[ws:we]: its longest prefix (MIN_STEM..MAX_STEM characters) that is a stem
    entry, or the whole word if it is an entry; -1 if none."""
    n = we - ws
    h = np.uint64(2166136261 ^ SALT_LEX)
    best = -1
    for j in range(min(n, MAX_STEM)):
        h = _mix(h, buf[ws + j]) & np.uint64(0xFFFFFFFF)  # numba widens the product: the table keys are 32-bit
        if j + 1 >= MIN_STEM or j + 1 == n:
            v = _lex_get(keys, vals, h)
            if v >= 0 and (v & 1 == 1 or j + 1 == n):
                best = v >> 1
    return best


@njit(cache=True)
def _concept_hashes(buf: np.ndarray, k: int, mask: np.uint32, out: np.ndarray, n: int, lex_keys: np.ndarray,
                    lex_vals: np.ndarray, window: int) -> int:
    """Concept features of the cleaned stream buf[:k] written at out[n:] (flagged CONCEPT_FLAG); returns the new
    count. Per word of a concept: the concept, the ordered pair with the previous concept word and, when the one
    before is also at most `window` words back, the skip pair and the triple of the three."""
    wstart = -1
    nwords = 0
    c1 = -1
    p1 = 0
    c2 = -1
    p2 = 0
    for i in range(k):
        if buf[i] != 32:
            if wstart < 0:
                wstart = i
            continue
        if wstart < 0:
            continue
        c = _word_concept(buf, wstart, i, lex_keys, lex_vals)
        if c >= 0:
            cu = np.uint32(c + 1)
            out[n] = _mix(FNV_OFFSET ^ np.uint32(SALT_CONCEPT), cu) & mask | CONCEPT_FLAG
            n += 1
            if c1 >= 0 and nwords - p1 <= window:
                out[n] = _mix(_mix(FNV_OFFSET ^ np.uint32(SALT_CPAIR), np.uint32(c1 + 1)), cu) & mask | CONCEPT_FLAG
                n += 1
                if c2 >= 0 and nwords - p2 <= window:
                    out[n] = _mix(_mix(FNV_OFFSET ^ np.uint32(SALT_CPAIR), np.uint32(c2 + 1)), cu) & mask \
                        | CONCEPT_FLAG
                    out[n + 1] = _mix(_mix(_mix(FNV_OFFSET ^ np.uint32(SALT_CTRIPLE), np.uint32(c2 + 1)),
                                           np.uint32(c1 + 1)), cu) & mask | CONCEPT_FLAG
                    n += 2
            c2 = c1
            p2 = p1
            c1 = c
            p1 = nwords
        wstart = -1
        nwords += 1
    return n


@njit(cache=True)
def _doc_hashes(codes: np.ndarray, start: int, end: int, mask: np.uint32, out: np.ndarray, buf: np.ndarray,
                lex_keys: np.ndarray, lex_vals: np.ndarray, window: int) -> int:
    """Write the raw feature ids of one text into `out`; return how many. `buf` is scratch of len + 2; `lex_*`
    the concept table (`concepts.Lexicon`; one empty slot: no concept features)."""
    n = 0
    # 1) a cleaned stream: lower-case word characters, runs of anything else -> one space, padded with spaces
    m = end - start
    k = 0
    buf[k] = 32
    k += 1
    prev_space = True
    for i in range(start, end):  # branch-free: word/space alternation is unpredictable
        c = codes[i]
        w = _is_word(c)
        buf[k] = _lower(c) if w else np.uint32(32)
        k += 1 if (w or not prev_space) else 0
        prev_space = not w
    if buf[k - 1] != 32:
        buf[k] = 32
        k += 1
    # 2) character 3..5-grams over the stream (unrolled: the last two positions have no 4- or 5-gram)
    h0 = FNV_OFFSET ^ np.uint32(SALT_CHAR)
    j2 = np.uint32(2)
    j3 = np.uint32(3)
    j4 = np.uint32(4)
    for i in range(k - 4):  # every position with all three n-grams: a fixed stride, no tests in the loop
        h = _mix(_mix(_mix(h0, buf[i]), buf[i + 1]), buf[i + 2])
        out[n + 3 * i] = (h ^ j2) & mask
        h = _mix(h, buf[i + 3])
        out[n + 3 * i + 1] = (h ^ j3) & mask
        h = _mix(h, buf[i + 4])
        out[n + 3 * i + 2] = (h ^ j4) & mask
    n += 3 * max(k - 4, 0)
    for i in range(max(k - 4, 0), k - 2):  # the last two positions: no 5-gram, then no 4-gram
        h = _mix(_mix(_mix(h0, buf[i]), buf[i + 1]), buf[i + 2])
        out[n] = (h ^ j2) & mask
        n += 1
        if i + 3 < k:
            h = _mix(h, buf[i + 3])
            out[n] = (h ^ j3) & mask
            n += 1
    # 3) word unigrams and bigrams
    prev = np.uint32(0)
    have_prev = False
    wstart = -1
    nwords = 0
    for i in range(k):
        c = buf[i]
        if c != 32:
            if wstart < 0:
                wstart = i
        elif wstart >= 0:
            h = FNV_OFFSET ^ np.uint32(SALT_WORD)
            for j in range(wstart, i):
                h = _mix(h, buf[j])
            out[n] = h & mask
            n += 1
            if have_prev:
                out[n] = (_mix(prev * np.uint32(31), h) ^ np.uint32(SALT_BIGRAM)) & mask
                n += 1
            prev = h
            have_prev = True
            wstart = -1
            nwords += 1
    if lex_vals.shape[0] > 1:  # a separate pass: without a lexicon the loop above is all there is
        n = _concept_hashes(buf, k, mask, out, n, lex_keys, lex_vals, window)
    # 4) shape features: length bucket, and ratios of symbols / digits / upper case / non-ASCII in the raw text
    sym = 0
    dig = 0
    upp = 0
    nona = 0
    for i in range(start, end):  # branch-free counts, as above
        c = np.int64(codes[i])
        d = 48 <= c <= 57
        u = 65 <= c <= 90
        low = 97 <= c <= 122
        na = c >= 128
        sp = (c == 32) | (c == 10)
        dig += d
        upp += u
        nona += na
        sym += not (d | u | low | na | sp)
    lb = 0
    L = m
    while L > 16 and lb < 12:
        L >>= 1
        lb += 1
    denom = max(m, 1)
    feats = (lb, 16 + (10 * sym) // denom, 32 + (10 * dig) // denom, 48 + (10 * upp) // denom,
             64 + (10 * nona) // denom)
    for f in feats:
        out[n] = (_mix(FNV_OFFSET ^ np.uint32(SALT_SHAPE), np.uint32(f))) & mask
        n += 1
    return n


# counts saturate at MAX_COUNT: the dense counter is uint8, half the cache lines of uint16 (at 2 KB the learned
# signal's largest cost is cache misses in it); an n-gram repeated over 255 times in one window is a flood anyway
MAX_COUNT = 255
# 1 + log(count): a table read instead of a log per feature
_LOG_TABLE = np.array([0.0] + [1.0 + math.log(c) for c in range(1, MAX_COUNT + 1)], dtype=np.float64)


@njit(cache=True)
def _max_feats(m: int) -> int:
    # character n-grams, word uni/bigrams, concept n-grams (at most 4 per word, a word and its separator take 2+)
    return 3 * (m + 2) + 2 * (m + 2) + 2 * (m + 2) + 8


@njit(cache=True)
def _doc_row(ids: np.ndarray, n: int, seen: np.ndarray, uniq: np.ndarray, indices: np.ndarray,
             values: np.ndarray, pos: int, weight: float) -> int:
    """One text's CSR row from its `n` raw ids: the distinct ids (first-occurrence order) written at `pos` with
    L2-normalised 1 + log(count) values, concept ids' (CONCEPT_FLAG) times `weight`; returns the position after
    the row. Counts go through the dense `seen` (an all-zero uint8 array over the hashed space, left all-zero
    again) and are reset at the touched ids only."""
    nuniq = 0
    for i in range(n):
        if i + PREFETCH < n:  # the counter table is read cold in a scan (2 KB, the table's lines evicted between
            # texts: 16.8 -> 15.1 us median, interleaved in one process; hot 13.6 either way)
            prefetch_write(seen, ids[i + PREFETCH] & ID_MASK)
        raw = ids[i]
        key = raw & ID_MASK
        c = seen[key]
        # branch-free: about a third of the ids are new, in no pattern a predictor could learn
        uniq[nuniq] = raw
        nuniq += c == 0
        seen[key] = c + (c < MAX_COUNT)  # saturating
    start = pos
    norm = 0.0
    extra = weight - 1.0  # 0 without a lexicon: every value is then exactly 1 + log(count)
    for k in range(nuniq):  # first-occurrence order (deterministic); sorting cost more than everything else
        raw = uniq[k]
        key = raw & ID_MASK
        c = seen[key]
        v = _LOG_TABLE[c] * (1.0 + extra * (raw >> 31))
        seen[key] = 0
        indices[pos] = key
        values[pos] = v
        norm += v * v
        pos += 1
    if norm > 0:
        inv = 1.0 / math.sqrt(norm)
        for p in range(start, pos):
            values[p] *= inv
    return pos


@njit(cache=True)
def hash_features(codes: np.ndarray, offsets: np.ndarray, bits: int, seen: np.ndarray, lex_keys: np.ndarray,
                  lex_vals: np.ndarray, window: int, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR features of every text: ids unique per row (in first-occurrence order), values (1 + log count),
    L2-normalised.
    `seen` is an all-zero uint8 scratch array of 2**bits entries; it is left all-zero again on return."""
    ndoc = offsets.shape[0] - 1
    mask = np.uint32((1 << bits) - 1)
    cap = 0
    for d in range(ndoc):
        cap += _max_feats(offsets[d + 1] - offsets[d])
    indices = np.empty(cap, dtype=np.int32)
    values = np.empty(cap, dtype=np.float32)
    indptr = np.zeros(ndoc + 1, dtype=np.int64)
    longest = 0
    for d in range(ndoc):
        longest = max(longest, _max_feats(offsets[d + 1] - offsets[d]))
    uniq = np.empty(longest, dtype=np.uint32)
    tmp = np.empty(longest, dtype=np.uint32)  # scratch reused for every text
    buf = np.empty(longest, dtype=np.uint32)
    pos = 0
    for d in range(ndoc):
        n = _doc_hashes(codes, offsets[d], offsets[d + 1], mask, tmp, buf, lex_keys, lex_vals, window)
        pos = _doc_row(tmp, n, seen, uniq, indices, values, pos, weight)
        indptr[d + 1] = pos
    return indptr, indices[:pos].copy(), values[:pos].copy()


_scratch = threading.local()


def seen_buffer(bits: int) -> np.ndarray:
    """A per-thread zeroed counter array (256 KB at 18 bits, uint8 so it stays in cache): allocating it per
    call would cost more than a short text's features."""
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    buf = bufs.get(bits)
    if buf is None:
        buf = bufs[bits] = np.zeros(1 << bits, dtype=np.uint8)
    return buf


NO_CONCEPTS = Lexicon.empty()


def featurize(texts: Sequence[str], bits: int = DEFAULT_BITS,
              lexicon: Lexicon | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR features of `texts`; with a `lexicon` (a model's, `LinearModel.lexicon`) concept n-grams too."""
    lx = lexicon or NO_CONCEPTS
    codes, offsets = encode_texts(texts)
    return hash_features(codes, offsets, bits, seen_buffer(bits), lx.keys, lx.vals, lx.window, lx.weight)


# --- plain-Python reference (tests only: same definition, no numba) -----------------------------------------------


def _fnv(h: int, v: int) -> int:
    return ((h ^ v) * 16777619) & 0xFFFFFFFF


def hash_features_ref(text: str, bits: int = DEFAULT_BITS, lexicon: Lexicon | None = None) -> dict[int, float]:
    mask = (1 << bits) - 1
    cps = [ord(c) for c in text]

    def is_word(c: int) -> bool:
        return 97 <= c <= 122 or 48 <= c <= 57 or 65 <= c <= 90 or c >= 0xC0

    buf = [32]
    for c in cps:
        if is_word(c):
            buf.append(c + 32 if 65 <= c <= 90 else c)
        elif buf[-1] != 32:
            buf.append(32)
    if buf[-1] != 32:
        buf.append(32)
    ids: list[int] = []
    k = len(buf)
    for i in range(k - 2):
        h = 2166136261 ^ SALT_CHAR
        for j in range(5):
            if i + j >= k:
                break
            h = _fnv(h, buf[i + j])
            if j >= 2:
                ids.append((h ^ j) & mask)
    words = [w for w in "".join(chr(c) for c in buf).split(" ") if w]  # only the kernel's separator
    prev = None
    concepts: list[tuple[int, int]] = []  # (concept + 1, word index)
    window = lexicon.window if lexicon else 0
    weighted: dict[int, int] = {}  # concept id -> the position it was first emitted at
    concept_ids: list[int] = []
    for wi, w in enumerate(words):
        h = 2166136261 ^ SALT_WORD
        for ch in w:
            h = _fnv(h, ord(ch))
        ids.append(h & mask)
        if prev is not None:
            ids.append((_fnv((prev * 31) & 0xFFFFFFFF, h) ^ SALT_BIGRAM) & mask)
        prev = h
        c = lexicon.lookup(w) if lexicon else -1
        if c < 0:
            continue
        cu = c + 1
        new = [_fnv(2166136261 ^ SALT_CONCEPT, cu) & mask]
        if concepts and wi - concepts[-1][1] <= window:
            last = concepts[-1][0]
            new.append(_fnv(_fnv(2166136261 ^ SALT_CPAIR, last), cu) & mask)
            if len(concepts) > 1 and wi - concepts[-2][1] <= window:
                third = concepts[-2][0]
                new.append(_fnv(_fnv(2166136261 ^ SALT_CPAIR, third), cu) & mask)
                new.append(_fnv(_fnv(_fnv(2166136261 ^ SALT_CTRIPLE, third), last), cu) & mask)
        concept_ids += new
        concepts.append((cu, wi))
    for x in concept_ids:  # after all word ids, as the kernel's separate pass; an id's first occurrence decides
        weighted.setdefault(x, len(ids))  # its weight
        ids.append(x)
    m = len(cps)
    dig = sum(48 <= c <= 57 for c in cps)
    upp = sum(65 <= c <= 90 for c in cps)
    nona = sum(c >= 128 for c in cps)
    sym = sum(1 for c in cps if c < 128 and not (97 <= c <= 122 or 48 <= c <= 57 or 65 <= c <= 90)
              and c not in (32, 10))
    lb, L = 0, m
    while L > 16 and lb < 12:
        L >>= 1
        lb += 1
    d = max(m, 1)
    for f in (lb, 16 + (10 * sym) // d, 32 + (10 * dig) // d, 48 + (10 * upp) // d, 64 + (10 * nona) // d):
        ids.append(_fnv(2166136261 ^ SALT_SHAPE, f) & mask)
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for pos, i in enumerate(ids):
        counts[i] = counts.get(i, 0) + 1
        first.setdefault(i, pos)
    weight = lexicon.weight if lexicon else 1.0
    vals = {i: (1.0 + math.log(min(c, MAX_COUNT))) * (weight if weighted.get(i) == first[i] else 1.0)
            for i, c in counts.items()}
    norm = math.sqrt(sum(v * v for v in vals.values())) or 1.0
    return {i: v / norm for i, v in vals.items()}
