"""Token-sequence matcher ("temporal compare"): attack phrases aligned locally against normalised text.

Why: regexes miss inflections, inserted filler words and small rewordings; a learned model misses short attack
phrases buried in long benign documents. Here every token (a word of the normalised text) becomes a small dense
vector -- a fixed seeded random projection of its hashed character-trigram bag plus its 4-character prefix -- so
"ignore", "ignoring" and "ignor3" are close while unrelated words are near-orthogonal. A phrase is then aligned
*locally* (free start and end in the text) with soft token costs (1 - cosine):

* `soft_edit` -- weighted token edit distance (substitution w*(1-cos), a missing phrase token costs its weight,
  an extra text token costs `ins`); its local form is the matcher's score, similarity = 1 - cost / sum(weights).
* `dtw` -- dynamic time warping over the cost matrix 1 - cos, global or subsequence (open begin/end).
* `lcs` -- longest common subsequence over a boolean match matrix (cos >= tau), reported for the aligned span.

Each numba kernel has a plain numpy/Python reference (`*_ref`) that tests compare it with on random inputs.

Cost control: tokens are hashed by a 5-character prefix key in one compiled pass; only phrases that share at least
two rare "anchor" keys with a region of the text become candidates, and only that region (phrase length on each
side of the anchors) is embedded and aligned. Benign text without anchors costs one tokenising pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit

from aimds_ray.core.config import load_yaml
from aimds_ray.core.normalize import Normalized, Variant, normalize

PHRASES_PATH = Path(__file__).resolve().parent.parent / "data" / "phrases.yaml"

EMB_DIM = 64
EMB_BUCKETS = 1 << 12
EMB_SEED = 20240601
PREFIX_LEN = 4   # prefix feature of the embedding (inflections share it)
KEY_LEN = 5      # anchor key: hash of the first KEY_LEN characters
STOP_WEIGHT = 0.3
INS_COST = 0.4        # an extra content word inside an aligned phrase
INS_COST_STOP = 0.15  # an extra function word
MISSING_ANCHOR_COST = 0.5  # prefilter bound: least cost of a phrase anchor word whose key is absent

FNV_OFFSET = np.uint32(2166136261)
FNV_PRIME = np.uint32(16777619)
SALT_TRI = np.uint32(0x3C6EF372)
SALT_PRE = np.uint32(0xA54FF53A)
SALT_KEY = np.uint32(0x510E527F)

# function words: low weight in the alignment, never anchors
STOPWORDS = frozenset(
    """a an the to of and or in on for with is are be was were it its this that these those you your yours i me my
    we our us do does did at by from as so if then than just will would can could should shall may might must
    please what which who whom how when where there here he she they them his her their am has have had been being
    into about over up out also too very s t ll re ve d m""".split()
)
# content words frequent in ordinary traffic: full weight, but too common to select candidates
NON_ANCHOR = STOPWORDS | frozenset(
    """not no never now only all any every each one two first following above below before after new tell say show
    give make let get know want need like use time way thing things following text words word message answer
    question user users data code update version test link file email content information request""".split()
)


# --- tokenising and embedding (numba kernels + references) ---------------------------------------------------------


@njit(cache=True, inline="always")
def _is_tok(c: np.uint32) -> bool:
    return (97 <= c <= 122) or (48 <= c <= 57) or c >= 0xC0


@njit(cache=True)
def tokenize_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token spans (start, end) of lower-case text code points and each token's anchor key (prefix hash)."""
    n = codes.shape[0]
    starts = np.empty(n // 2 + 1, dtype=np.int32)
    ends = np.empty(n // 2 + 1, dtype=np.int32)
    keys = np.empty(n // 2 + 1, dtype=np.uint32)
    k = 0
    i = 0
    while i < n:
        if not _is_tok(codes[i]):
            i += 1
            continue
        s = i
        h = FNV_OFFSET ^ SALT_KEY
        while i < n and _is_tok(codes[i]):
            if i - s < KEY_LEN:
                h = (h ^ codes[i]) * FNV_PRIME
            i += 1
        starts[k] = s
        ends[k] = i
        keys[k] = h
        k += 1
    return starts[:k], ends[:k], keys[:k]


def _fnv_py(h: int, v: int) -> int:
    return ((h ^ v) * 16777619) & 0xFFFFFFFF


def token_key(tok: str) -> int:
    """Anchor key of one token (same as `tokenize_codes`)."""
    h = 2166136261 ^ int(SALT_KEY)
    for ch in tok[:KEY_LEN]:
        h = _fnv_py(h, ord(ch))
    return h


def tokenize_ref(text: str) -> tuple[list[int], list[int], list[int]]:
    """Reference tokeniser (tests only)."""
    starts: list[int] = []
    ends: list[int] = []
    keys: list[int] = []
    i, n = 0, len(text)

    def is_tok(c: str) -> bool:
        o = ord(c)
        return 97 <= o <= 122 or 48 <= o <= 57 or o >= 0xC0

    while i < n:
        if not is_tok(text[i]):
            i += 1
            continue
        s = i
        while i < n and is_tok(text[i]):
            i += 1
        starts.append(s)
        ends.append(i)
        keys.append(token_key(text[s:i]))
    return starts, ends, keys


@lru_cache(maxsize=1)
def projection() -> np.ndarray:
    """The fixed random projection: one Gaussian row per hashed trigram bucket (seeded, so deterministic)."""
    rng = np.random.default_rng(EMB_SEED)
    return (rng.standard_normal((EMB_BUCKETS, EMB_DIM)) / math.sqrt(EMB_DIM)).astype(np.float32)


@njit(cache=True, fastmath=True)
def embed_tokens(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, need: np.ndarray,
                 proj: np.ndarray) -> np.ndarray:
    """Unit vectors of the tokens with need[t] != 0 (others stay zero): sum of the projection rows of the token's
    boundary-marked char trigrams and of its prefix, L2-normalised."""
    nt = starts.shape[0]
    dim = proj.shape[1]
    bmask = np.uint32(proj.shape[0] - 1)
    out = np.zeros((nt, dim), dtype=np.float32)
    acc = np.zeros(dim, dtype=np.float32)
    for t in range(nt):
        if need[t] == 0:
            continue
        s = starts[t]
        e = ends[t]
        L = e - s + 2  # with begin (1) and end (2) markers
        acc[:] = 0.0
        for i in range(max(L - 2, 1)):
            h = FNV_OFFSET ^ SALT_TRI
            for j in range(3):
                p = i + j
                if p == 0:
                    c = np.uint32(1)
                elif p >= L - 1:
                    c = np.uint32(2)
                else:
                    c = codes[s + p - 1]
                h = (h ^ c) * FNV_PRIME
            b = h & bmask
            for d in range(dim):
                acc[d] += proj[b, d]
        if e - s >= PREFIX_LEN:
            h = FNV_OFFSET ^ SALT_PRE
            for j in range(PREFIX_LEN):
                h = (h ^ codes[s + j]) * FNV_PRIME
            b = h & bmask
            for d in range(dim):
                acc[d] += proj[b, d]
        nrm = np.float32(0.0)
        for d in range(dim):
            nrm += acc[d] * acc[d]
        inv = np.float32(1.0 / math.sqrt(nrm)) if nrm > 0 else np.float32(0.0)
        for d in range(dim):
            out[t, d] = acc[d] * inv
    return out


def embed_token_ref(tok: str, proj: np.ndarray | None = None) -> np.ndarray:
    """Reference embedding of one token (tests only)."""
    proj = projection() if proj is None else proj
    mask = proj.shape[0] - 1
    seq = [1] + [ord(c) for c in tok] + [2]
    acc = np.zeros(proj.shape[1], dtype=np.float64)
    for i in range(max(len(seq) - 2, 1)):
        h = 2166136261 ^ int(SALT_TRI)
        for c in seq[i : i + 3] + [2] * max(0, i + 3 - len(seq)):
            h = _fnv_py(h, c)
        acc += proj[h & mask]
    if len(tok) >= PREFIX_LEN:
        h = 2166136261 ^ int(SALT_PRE)
        for c in tok[:PREFIX_LEN]:
            h = _fnv_py(h, ord(c))
        acc += proj[h & mask]
    n = np.linalg.norm(acc)
    return (acc / n if n > 0 else acc).astype(np.float32)


# --- alignment kernels -------------------------------------------------------------------------------------------


@njit(cache=True)
def soft_edit(S: np.ndarray, w: np.ndarray, ins: np.ndarray, local: bool) -> tuple[float, int, int]:
    """Weighted soft token edit distance of pattern rows against text columns of similarity matrix S.

    Substituting pattern token i by text token j costs w[i]*(1 - max(S[i,j], 0)), dropping pattern token i costs
    w[i], an extra text token j costs ins[j] (cheap for function words, so "all of the previous" still aligns). `local`: free start and end in the text (semi-global alignment).
    Returns (cost, start column, end column exclusive) of the best alignment."""
    m, n = S.shape
    prev = np.empty(n + 1, dtype=np.float64)
    cur = np.empty(n + 1, dtype=np.float64)
    pst = np.empty(n + 1, dtype=np.int64)
    cst = np.empty(n + 1, dtype=np.int64)
    prev[0] = 0.0
    pst[0] = 0
    for j in range(1, n + 1):
        prev[j] = 0.0 if local else prev[j - 1] + ins[j - 1]
        pst[j] = j if local else 0
    for i in range(1, m + 1):
        wi = w[i - 1]
        cur[0] = prev[0] + wi
        cst[0] = pst[0]
        for j in range(1, n + 1):
            s = S[i - 1, j - 1]
            if s < 0.0:
                s = 0.0
            best = prev[j - 1] + wi * (1.0 - s)
            bs = pst[j - 1]
            up = prev[j] + wi
            if up < best:
                best = up
                bs = pst[j]
            left = cur[j - 1] + ins[j - 1]
            if left < best:
                best = left
                bs = cst[j - 1]
            cur[j] = best
            cst[j] = bs
        prev, cur = cur, prev
        pst, cst = cst, pst
    if not local:
        return prev[n], 0, n
    bj = 0
    for j in range(1, n + 1):
        if prev[j] < prev[bj]:
            bj = j
    return prev[bj], pst[bj], bj


def soft_edit_ref(S: np.ndarray, w: np.ndarray, ins: np.ndarray, local: bool) -> tuple[float, int, int]:
    """Reference for `soft_edit`: the full DP table in numpy, then a traceback for the start column."""
    m, n = S.shape
    Sc = np.maximum(S.astype(np.float64), 0.0)
    D = np.zeros((m + 1, n + 1))
    B = np.zeros((m + 1, n + 1), dtype=np.int8)  # 0 diag, 1 up, 2 left
    D[0, :] = 0.0 if local else np.concatenate([[0.0], np.cumsum(np.asarray(ins, dtype=np.float64))])
    B[0, :] = 2
    for i in range(1, m + 1):
        D[i, 0] = D[i - 1, 0] + w[i - 1]
        B[i, 0] = 1
        for j in range(1, n + 1):
            cands = (D[i - 1, j - 1] + w[i - 1] * (1.0 - Sc[i - 1, j - 1]), D[i - 1, j] + w[i - 1],
                     D[i, j - 1] + ins[j - 1])
            k = 0
            for t in (1, 2):
                if cands[t] < cands[k]:
                    k = t
            D[i, j] = cands[k]
            B[i, j] = k
    if not local:
        return float(D[m, n]), 0, n
    bj = int(np.argmin(D[m, :]))
    i, j = m, bj
    while i > 0:
        k = B[i, j]
        if k == 0:
            i, j = i - 1, j - 1
        elif k == 1:
            i -= 1
        else:
            j -= 1
    return float(D[m, bj]), j, bj


@njit(cache=True)
def dtw(C: np.ndarray, local: bool) -> tuple[float, int, int, int]:
    """DTW over cost matrix C (pattern rows x text columns), steps diag/up/left, each adding the cell's cost.
    `local`: subsequence DTW (open begin and end in the text). Returns (cost, start col, end col excl., path
    length) so callers can normalise by path length."""
    m, n = C.shape
    inf = np.inf
    prev = np.empty(n + 1, dtype=np.float64)
    cur = np.empty(n + 1, dtype=np.float64)
    pst = np.zeros(n + 1, dtype=np.int64)
    cst = np.zeros(n + 1, dtype=np.int64)
    pln = np.zeros(n + 1, dtype=np.int64)
    cln = np.zeros(n + 1, dtype=np.int64)
    for j in range(n + 1):
        prev[j] = 0.0 if (local or j == 0) else inf
        pst[j] = j
        pln[j] = 0
    for i in range(1, m + 1):
        cur[0] = inf
        cst[0] = 0
        cln[0] = 0
        for j in range(1, n + 1):
            best = prev[j - 1]
            bs = pst[j - 1]
            bl = pln[j - 1]
            if prev[j] < best:
                best = prev[j]
                bs = pst[j]
                bl = pln[j]
            if cur[j - 1] < best:
                best = cur[j - 1]
                bs = cst[j - 1]
                bl = cln[j - 1]
            cur[j] = best + C[i - 1, j - 1]
            cst[j] = bs
            cln[j] = bl + 1
        prev, cur = cur, prev
        pst, cst = cst, pst
        pln, cln = cln, pln
    if not local:
        return prev[n], 0, n, pln[n]
    bj = 1
    for j in range(2, n + 1):
        if prev[j] < prev[bj]:
            bj = j
    return prev[bj], pst[bj], bj, pln[bj]


def dtw_ref(C: np.ndarray, local: bool) -> tuple[float, int, int, int]:
    """Reference for `dtw`: full table and traceback."""
    m, n = C.shape
    C = C.astype(np.float64)
    D = np.full((m + 1, n + 1), np.inf)
    D[0, :] = 0.0 if local else np.inf
    D[0, 0] = 0.0
    B = np.zeros((m + 1, n + 1), dtype=np.int8)
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            cands = (D[i - 1, j - 1], D[i - 1, j], D[i, j - 1])
            k = 0
            for t in (1, 2):
                if cands[t] < cands[k]:
                    k = t
            D[i, j] = cands[k] + C[i - 1, j - 1]
            B[i, j] = k
    bj = int(np.argmin(D[m, 1:])) + 1 if local else n
    i, j, length = m, bj, 0
    while i > 0:
        length += 1
        k = B[i, j]
        if k == 0:
            i, j = i - 1, j - 1
        elif k == 1:
            i -= 1
        else:
            j -= 1
    return float(D[m, bj]), (j if local else 0), bj, length


@njit(cache=True)
def lcs(M: np.ndarray) -> int:
    """Length of the longest common subsequence given match matrix M (M[i, j] != 0: tokens i and j match)."""
    m, n = M.shape
    prev = np.zeros(n + 1, dtype=np.int64)
    cur = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, m + 1):
        cur[0] = 0
        for j in range(1, n + 1):
            if M[i - 1, j - 1] != 0:
                cur[j] = prev[j - 1] + 1
            else:
                cur[j] = max(prev[j], cur[j - 1])
        prev, cur = cur, prev
    return prev[n]


def lcs_ref(M: np.ndarray) -> int:
    """Reference for `lcs`."""
    m, n = M.shape
    L = np.zeros((m + 1, n + 1), dtype=np.int64)
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            L[i, j] = L[i - 1, j - 1] + 1 if M[i - 1, j - 1] else max(L[i - 1, j], L[i, j - 1])
    return int(L[m, n])


@njit(cache=True, fastmath=True)
def align_candidates(E: np.ndarray, pat_emb: np.ndarray, pat_ptr: np.ndarray, pat_w: np.ndarray,
                     cand_pat: np.ndarray, cand_lo: np.ndarray, cand_hi: np.ndarray,
                     ins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local `soft_edit` of each candidate phrase against its text window E[lo:hi]: (similarity, start, end) per
    candidate, with similarity = 1 - cost / sum(weights) and token positions in the whole text."""
    nc = cand_pat.shape[0]
    sims = np.zeros(nc, dtype=np.float64)
    st = np.zeros(nc, dtype=np.int64)
    en = np.zeros(nc, dtype=np.int64)
    dim = E.shape[1]
    for c in range(nc):
        p = cand_pat[c]
        a = pat_ptr[p]
        b = pat_ptr[p + 1]
        lo = cand_lo[c]
        hi = cand_hi[c]
        S = np.empty((b - a, hi - lo), dtype=np.float64)
        for i in range(b - a):
            for j in range(hi - lo):
                acc = np.float32(0.0)  # float32 + fastmath: this reduction vectorises (the hot loop)
                for d in range(dim):
                    acc += pat_emb[a + i, d] * E[lo + j, d]
                S[i, j] = acc
        w = pat_w[a:b]
        total = 0.0
        for i in range(b - a):
            total += w[i]
        cost, s, e = soft_edit(S, w, ins[lo:hi], True)
        sim = 1.0 - cost / total
        sims[c] = sim if sim > 0.0 else 0.0
        st[c] = lo + s
        en[c] = lo + e
    return sims, st, en


@njit(cache=True)
def find_candidates(hit_tok: np.ndarray, hit_key: np.ndarray, kp_ptr: np.ndarray, kp_idx: np.ndarray,
                    pat_need: np.ndarray, pat_len: np.ndarray, pat_nanchor: np.ndarray, pat_wsum: np.ndarray,
                    n_tok: int, min_sim: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows worth aligning: per phrase, clusters of anchor hits (within ~2 phrase lengths) that hold at least
    `pat_need` distinct anchor keys of the phrase, and whose optimistic similarity bound reaches `min_sim` (each
    anchor word of the phrase absent from the cluster costs at least MISSING_ANCHOR_COST: a word with another
    5-letter prefix is rarely closer than that). Returns (phrase, lo token, hi token) per window."""
    total = 0
    for h in range(hit_tok.shape[0]):
        k = hit_key[h]
        total += kp_ptr[k + 1] - kp_ptr[k]
    pats = np.empty(total, dtype=np.int64)
    poss = np.empty(total, dtype=np.int64)
    keys = np.empty(total, dtype=np.int64)
    q = 0
    for h in range(hit_tok.shape[0]):
        k = hit_key[h]
        for r in range(kp_ptr[k], kp_ptr[k + 1]):
            pats[q] = kp_idx[r]
            poss[q] = hit_tok[h]
            keys[q] = k
            q += 1
    order = np.argsort(pats * (n_tok + 1) + poss, kind="mergesort")
    out_p = np.empty(total, dtype=np.int64)
    out_lo = np.empty(total, dtype=np.int64)
    out_hi = np.empty(total, dtype=np.int64)
    seen = np.empty(64, dtype=np.int64)
    nout = 0
    i = 0
    while i < total:
        p = pats[order[i]]
        span = 2 * pat_len[p] + 2
        c0 = poss[order[i]]
        last = c0
        nseen = 0
        j = i
        while j < total and pats[order[j]] == p and poss[order[j]] - c0 <= span:
            k = keys[order[j]]
            new = True
            for t in range(nseen):
                if seen[t] == k:
                    new = False
                    break
            if new and nseen < 64:
                seen[nseen] = k
                nseen += 1
            last = poss[order[j]]
            j += 1
        bound = 1.0 - MISSING_ANCHOR_COST * max(0, pat_nanchor[p] - nseen) / pat_wsum[p]
        if nseen >= pat_need[p] and bound >= min_sim:
            out_p[nout] = p
            out_lo[nout] = max(0, c0 - pat_len[p])
            out_hi[nout] = min(n_tok, last + pat_len[p] + 1)
            nout += 1
        i = j
    return out_p[:nout], out_lo[:nout], out_hi[:nout]


# --- the phrase library and the matcher --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    id: int
    text: str
    family: str
    category: str
    tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeqMatch:
    """One aligned phrase: `start`/`end` are original-text character offsets, `similarity` in [0, 1]."""

    phrase: str
    family: str
    category: str
    similarity: float
    start: int
    end: int
    matched: str
    variant: str
    lcs_ratio: float
    dtw_similarity: float


class PhraseFileError(ValueError):
    pass


def load_phrases(path: str | Path = PHRASES_PATH) -> list[Phrase]:
    """Read the phrase library; errors name the family."""
    data = load_yaml(Path(path).read_text(encoding="utf-8")) or []
    out: list[Phrase] = []
    for i, fam in enumerate(data):
        try:
            family, category, phrases = fam["family"], fam["category"], fam["phrases"]
        except (KeyError, TypeError) as e:
            raise PhraseFileError(f"{Path(path).name}[{i}]: missing key {e}") from None
        for text in phrases:
            norm = normalize(str(text)).text
            s, e, _ = tokenize_ref(norm)
            toks = tuple(norm[a:b] for a, b in zip(s, e, strict=True))
            if len(toks) < 2:
                raise PhraseFileError(f"{family}: phrase {text!r} needs at least 2 words")
            out.append(Phrase(len(out), norm, family, category, toks))
    return out


def in_sorted(keys: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Membership of each key in a sorted table (np.isin sorts both sides; this is ~10x cheaper for small inputs)."""
    if len(table) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.searchsorted(table, keys)
    pos[pos >= len(table)] = 0
    return table[pos] == keys


@njit(cache=True)
def anchor_hits(keys: np.ndarray, slot_key: np.ndarray, slot_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(token indexes, positions in the sorted anchor table) of the keys that are anchors, looked up in an
    open-addressing table (`anchor_slots`) in one compiled call: a prompt's few hundred tokens cost about a
    microsecond, where numpy's searchsorted/compare/nonzero cost ten."""
    n = keys.shape[0]
    mask = slot_key.shape[0] - 1
    tok = np.empty(n, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        key = keys[i]
        j = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(40)) & mask
        while slot_pos[j] >= 0:
            if slot_key[j] == key:
                tok[k] = i
                pos[k] = slot_pos[j]
                k += 1
                break
            j = (j + 1) & mask
    return tok[:k], pos[:k]


def anchor_slots(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The open-addressing table of a sorted anchor-key table: (slot keys, slot positions; -1 = empty), sized to
    a power of two at least 4x the keys (short probe runs)."""
    size = 16
    while size < 4 * len(table):
        size *= 2
    slot_key = np.zeros(size, dtype=np.uint32)
    slot_pos = np.full(size, -1, dtype=np.int64)
    for p, key in enumerate(table.tolist()):
        j = ((key * 0x9E3779B97F4A7C15) % (1 << 64) >> 40) & (size - 1)
        while slot_pos[j] >= 0:
            j = (j + 1) & (size - 1)
        slot_key[j] = key
        slot_pos[j] = p
    return slot_key, slot_pos


def anchor_hits_ref(keys: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hit = in_sorted(keys, table)
    tok = np.nonzero(hit)[0].astype(np.int64)
    return tok, np.searchsorted(table, keys[tok]).astype(np.int64)


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class SequenceMatcher:
    """Aligns the phrase library against text. Build once (embeds every phrase), reuse; `match` is thread-safe."""

    def __init__(self, phrases: list[Phrase] | None = None, ins_cost: float = INS_COST,
                 ins_cost_stop: float = INS_COST_STOP, stop_weight: float = STOP_WEIGHT) -> None:
        self.phrases = phrases if phrases is not None else load_phrases()
        self.ins = float(ins_cost)
        self.ins_stop = float(ins_cost_stop)
        # stop words are recognised by anchor key (prefix hash); a rare 5-letter-prefix collision only makes an
        # insertion cheaper
        self.stop_keys = np.unique(np.asarray([token_key(w) for w in STOPWORDS], dtype=np.uint32))
        self.proj = projection()
        embs, ws, ptr = [], [], [0]
        key_pats: dict[int, set[int]] = {}
        need, lens, nanchor, wsum = [], [], [], []
        for p in self.phrases:
            text = " ".join(p.tokens)
            codes = _codes(text)
            s, e, _ = tokenize_codes(codes)
            embs.append(embed_tokens(codes, s, e, np.ones(len(s), np.uint8), self.proj))
            ws.extend(stop_weight if t in STOPWORDS else 1.0 for t in p.tokens)
            ptr.append(ptr[-1] + len(p.tokens))
            anchors = {token_key(t) for t in p.tokens if t not in NON_ANCHOR and len(t) >= 3}
            if not anchors:  # a phrase of common words only: anchor on all its non-stop words
                anchors = {token_key(t) for t in p.tokens if t not in STOPWORDS}
            for k in anchors:
                key_pats.setdefault(k, set()).add(p.id)
            need.append(min(2, len(anchors)))
            lens.append(len(p.tokens))
            nanchor.append(len(anchors))
            wsum.append(sum(ws[ptr[-2] : ptr[-1]]))
        self.pat_emb = np.ascontiguousarray(np.vstack(embs), dtype=np.float32)
        self.pat_w = np.asarray(ws, dtype=np.float64)
        self.pat_ptr = np.asarray(ptr, dtype=np.int64)
        self.pat_need = np.asarray(need, dtype=np.int64)
        self.pat_len = np.asarray(lens, dtype=np.int64)
        self.pat_nanchor = np.asarray(nanchor, dtype=np.int64)
        self.pat_wsum = np.asarray(wsum, dtype=np.float64)
        keys = sorted(key_pats)
        self.anchor_keys = np.asarray(keys, dtype=np.uint32)
        kp_ptr, kp_idx = [0], []
        for k in keys:
            kp_idx.extend(sorted(key_pats[k]))
            kp_ptr.append(len(kp_idx))
        self.anchor_slot_key, self.anchor_slot_pos = anchor_slots(self.anchor_keys)
        self.kp_ptr = np.asarray(kp_ptr, dtype=np.int64)
        self.kp_idx = np.asarray(kp_idx, dtype=np.int64)
        self.match_variant(Variant("normalized", "ignore previous instructions"))  # compile / load cache now

    # -- core ---------------------------------------------------------------------------------------------------

    def _align(self, text: str, min_sim: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                         np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidates and their alignments in one view: (codes, tok starts, tok ends, E, phrase ids, sims,
        start tokens, end tokens)."""
        codes = _codes(text)
        ts, te, keys = tokenize_codes(codes)
        empty = np.empty(0, dtype=np.int64)
        if len(ts) == 0:
            return codes, ts, te, np.empty((0, EMB_DIM), np.float32), empty, np.empty(0), empty, empty
        hit_tok, hit_pos = anchor_hits(keys, self.anchor_slot_key, self.anchor_slot_pos)
        if len(hit_tok) == 0:
            return codes, ts, te, np.empty((0, EMB_DIM), np.float32), empty, np.empty(0), empty, empty
        cp, clo, chi = find_candidates(hit_tok, hit_pos, self.kp_ptr, self.kp_idx,
                                       self.pat_need, self.pat_len, self.pat_nanchor, self.pat_wsum, len(ts),
                                       float(min_sim))
        if len(cp) == 0:
            return codes, ts, te, np.empty((0, EMB_DIM), np.float32), empty, np.empty(0), empty, empty
        n = len(ts)
        cover = np.cumsum(np.bincount(clo, minlength=n + 1) - np.bincount(chi, minlength=n + 1))[:n]
        E = embed_tokens(codes, ts, te, (cover > 0).astype(np.uint8), self.proj)
        ins = np.where(in_sorted(keys, self.stop_keys), self.ins_stop, self.ins)
        sims, st, en = align_candidates(E, self.pat_emb, self.pat_ptr, self.pat_w, cp, clo, chi, ins)
        return codes, ts, te, E, cp, sims, st, en

    def match_variant(self, v: Variant, min_similarity: float = 0.0, per_family: bool = True) -> list[SeqMatch]:
        """Best alignment per family (or overall) in one view, at or above `min_similarity`, best first."""
        _, ts, te, E, cp, sims, st, en = self._align(v.text, min_similarity)
        if len(cp) == 0:
            return []
        order = np.argsort(-sims, kind="stable")
        out: list[SeqMatch] = []
        seen: set[str] = set()
        for c in order:
            sim = float(sims[c])
            if sim < min_similarity:
                break
            p = self.phrases[int(cp[c])]
            if p.family in seen:
                continue
            seen.add(p.family)
            out.append(self._result(v, p, sim, int(st[c]), int(en[c]), ts, te, E))
            if not per_family:
                break
        return out

    def _result(self, v: Variant, p: Phrase, sim: float, s_tok: int, e_tok: int, ts: np.ndarray,
                te: np.ndarray, E: np.ndarray) -> SeqMatch:
        e_tok = max(e_tok, s_tok + 1)
        a = int(self.pat_ptr[p.id])
        b = int(self.pat_ptr[p.id + 1])
        S = self.pat_emb[a:b].astype(np.float64) @ E[s_tok:e_tok].astype(np.float64).T
        lcs_len = lcs((S >= 0.8).astype(np.uint8))
        cost, _, _, length = dtw(1.0 - np.clip(S, 0.0, 1.0), False)
        cs, ce = int(ts[s_tok]), int(te[e_tok - 1])
        start, end = v.span(cs, ce)
        return SeqMatch(p.text, p.family, p.category, round(sim, 4), start, end, v.text[cs:ce][:200], v.kind,
                        round(lcs_len / (b - a), 4), round(max(0.0, 1.0 - cost / max(length, 1)), 4))

    # -- public -------------------------------------------------------------------------------------------------

    def match_doc(self, doc: Normalized, min_similarity: float = 0.0) -> list[SeqMatch]:
        """Best match per family over every view of a normalised document, best first."""
        best: dict[str, SeqMatch] = {}
        for v in doc.variants:
            for m in self.match_variant(v, min_similarity):
                if m.family not in best or m.similarity > best[m.family].similarity:
                    best[m.family] = m
        return sorted(best.values(), key=lambda m: -m.similarity)

    def match(self, text_or_variant: str | Variant | Normalized) -> SeqMatch | None:
        """The single best-matching phrase (family, category, original span, similarity), or None."""
        if isinstance(text_or_variant, Variant):
            res = self.match_variant(text_or_variant, per_family=False)
        else:
            doc = text_or_variant if isinstance(text_or_variant, Normalized) else normalize(text_or_variant)
            res = self.match_doc(doc)
        return res[0] if res else None


@lru_cache(maxsize=1)
def default_matcher() -> SequenceMatcher:
    """The shared matcher over the shipped phrase library (built once per process)."""
    return SequenceMatcher()
