"""A multi-head logistic model over hashed n-gram features, trained and scored with numba.

Heads are independent one-vs-rest logistic regressions sharing the feature space: head 0 is "manipulation"
(any attack except a plain harmful request), the others name the category. Training is AdaGrad SGD with L2 decay on
the touched weights, a fixed-seed order and one thread, so the same data gives the same weights bit for bit.
`predict_logits` is the numba kernel; `predict_logits_ref` the numpy reference it is tested against.
`partial_fit` is the online update the learner uses (same kernel, a few passes over a small batch).
"""

from __future__ import annotations

import json
import math
import mmap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from aimds_ray.core.concepts import Lexicon
from aimds_ray.core.features import (
    NO_CONCEPTS,
    PREFETCH,
    _doc_hashes,
    _doc_row,
    _max_feats,
    encode_texts,
    prefetch_read,
    seen_buffer,
)

HEADS: tuple[str, ...] = (
    "manipulation",
    "prompt_injection",
    "jailbreak",
    "prompt_extraction",
    "indirect_injection",
    "adversarial_suffix",
    "harmful_request",
)


LANES = 8  # scoring rows are padded to 8 float32 (32 bytes): one aligned cache-line read per feature


@njit(cache=True)
def _row_logits(indices: np.ndarray, values: np.ndarray, s: int, e: int, WT: np.ndarray, b: np.ndarray,
                out: np.ndarray, d: int) -> None:
    """out[d, :] = logits of the CSR row indices/values[s:e] (see `predict_logits_t`)."""
    k = b.shape[0]
    if WT.shape[1] == LANES:
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
        for p in range(s, min(e, s + PREFETCH)):
            prefetch_read(WT, indices[p])
        for p in range(s, e):
            if p + PREFETCH < e:  # the loads overlap beyond what out-of-order execution reaches on its own
                prefetch_read(WT, indices[p + PREFETCH])
            j = indices[p]
            v = values[p]
            a0 += WT[j, 0] * v
            a1 += WT[j, 1] * v
            a2 += WT[j, 2] * v
            a3 += WT[j, 3] * v
            a4 += WT[j, 4] * v
            a5 += WT[j, 5] * v
            a6 += WT[j, 6] * v
            a7 += WT[j, 7] * v
        acc = (a0, a1, a2, a3, a4, a5, a6, a7)
        for h in range(k):
            out[d, h] = acc[h] + b[h]
        return
    for h in range(k):
        out[d, h] = b[h]
    for p in range(s, e):
        j = indices[p]
        v = values[p]
        for h in range(k):
            out[d, h] += WT[j, h] * v


@njit(cache=True)
def _row_logit0(indices: np.ndarray, values: np.ndarray, s: int, e: int, w0: np.ndarray, b0: np.float32,
                bias_first: bool) -> float:
    """Head 0's logit of the CSR row indices/values[s:e] from its own contiguous column `w0`: the same float32
    operations in the same order as `_row_logits` (whose unpadded layout starts from the bias, the padded one adds
    it last), so the same value bit for bit."""
    a = b0 if bias_first else np.float32(0.0)
    for p in range(s, min(e, s + PREFETCH)):
        prefetch_read(w0, indices[p])
    for p in range(s, e):
        if p + PREFETCH < e:
            prefetch_read(w0, indices[p + PREFETCH])
        a += w0[indices[p]] * values[p]
    return a if bias_first else a + b0


@njit(cache=True)
def predict_logits_t(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, WT: np.ndarray,
                     b: np.ndarray) -> np.ndarray:
    """(n_docs, n_heads) logits for CSR rows with WT = W.T (D, >= n_heads) contiguous: all heads of a feature
    share one cache line, so scoring costs one memory miss per feature instead of one per feature and head.
    With WT padded to `LANES` columns the heads accumulate in registers; an accumulator array in memory would
    keep the compiler from overlapping the (mostly cache-missing) weight reads, about 1.6x slower at 2 KB."""
    n = indptr.shape[0] - 1
    out = np.empty((n, b.shape[0]), dtype=np.float32)
    for d in range(n):
        _row_logits(indices, values, indptr[d], indptr[d + 1], WT, b, out, d)
    return out


@njit(cache=True)
def hashed_proba(codes: np.ndarray, offsets: np.ndarray, bits: int, seen: np.ndarray, WT: np.ndarray,
                 b: np.ndarray, lex_keys: np.ndarray, lex_vals: np.ndarray, window: int, weight: float,
                 w0: np.ndarray, floor: float) -> np.ndarray:
    """(n_docs, n_heads) probabilities of texts given as code points (`features.encode_texts`): featurising and
    scoring in one call, each text's CSR row built in scratch and scored at once. The same float operations as
    `hash_features` -> `predict_logits_t` -> sigmoid (bit-identical, tested), without materialising the batch's
    feature matrix: the fast path when nothing else needs the features.

    With `floor` > 0, head 0 is scored first from its own column `w0` (1 MB at 18 bits, an eighth of the table of
    all heads, so far fewer of its reads miss the caches) and the other heads only for texts whose head-0
    probability reaches `floor`; for the rest they are NaN. Most texts are benign and below any floor worth
    reporting."""
    ndoc = offsets.shape[0] - 1
    mask = np.uint32((1 << bits) - 1)
    longest = 0
    for d in range(ndoc):
        longest = max(longest, _max_feats(offsets[d + 1] - offsets[d]))
    uniq = np.empty(longest, dtype=np.uint32)
    tmp = np.empty(longest, dtype=np.uint32)
    buf = np.empty(longest, dtype=np.uint32)
    indices = np.empty(longest, dtype=np.int32)
    values = np.empty(longest, dtype=np.float32)
    out = np.empty((ndoc, b.shape[0]), dtype=np.float32)
    partial = np.zeros(ndoc, dtype=np.bool_)
    for d in range(ndoc):
        n = _doc_hashes(codes, offsets[d], offsets[d + 1], mask, tmp, buf, lex_keys, lex_vals, window)
        e = _doc_row(tmp, n, seen, uniq, indices, values, 0, weight)
        if floor > 0.0:
            z0 = _row_logit0(indices, values, 0, e, w0, b[0], WT.shape[1] != LANES)
            if _sigmoid32(z0) < floor:
                out[d, 0] = z0
                partial[d] = True
                continue
        _row_logits(indices, values, 0, e, WT, b, out, d)
    _sigmoid_inplace(out.reshape(-1))
    for d in range(ndoc):
        if partial[d]:
            out[d, 1:] = np.nan
    return out


@njit(cache=True)
def _sigmoid32(z: float) -> np.float32:
    """Logistic of a clipped logit, as float32 (`_sigmoid_inplace` stores exactly this, so a floor test on it and
    the probability reported agree)."""
    return np.float32(1.0 / (1.0 + math.exp(-min(30.0, max(-30.0, z)))))


@njit(cache=True)
def _sigmoid_inplace(z: np.ndarray) -> np.ndarray:
    """Logistic of clipped logits, in place: for one prompt's few values, three NumPy ufunc calls cost more than
    the scoring itself."""
    for i in range(z.shape[0]):
        z[i] = _sigmoid32(z[i])
    return z


HUGE_PAGE = 2 << 20


def huge_page_zeros(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A zeroed array in private anonymous memory advised for 2 MB pages (Linux transparent huge pages in "madvise"
    mode; elsewhere, or under 2 MB, a plain array). The scoring table is 8 MB read at ~4,000 random rows per 2 KB
    text: with 4 KB pages most reads also miss the TLB (2 KB prompts: scoring 70 -> 64 us, measured in the
    pipeline, alternating with a plain array). The mmap stays alive as the array's base."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    if nbytes < HUGE_PAGE or advice is None or not flags:
        return np.zeros(shape, dtype=dtype)
    m = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=flags)  # anonymous memory is zero-filled
    try:
        m.madvise(advice)
    except OSError:
        pass  # advice refused: ordinary pages, same contents
    raw = np.frombuffer(m, dtype=np.uint8)
    off = (-raw.ctypes.data) % HUGE_PAGE  # a huge page maps an aligned 2 MB range
    return raw[off : off + nbytes].view(dtype).reshape(shape)


def scoring_layout(W: np.ndarray) -> np.ndarray:
    """W (heads, D) as the contiguous (D, LANES) float32 array `predict_logits_t` reads fastest (zero padding past
    the heads), in huge-page memory; more heads than LANES stay unpadded (D, heads)."""
    k, d = W.shape
    if k > LANES:
        return np.ascontiguousarray(W.T, dtype=np.float32)
    WT = huge_page_zeros((d, LANES), np.float32)
    WT[:, :k] = W.T
    return WT


def predict_logits(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, W: np.ndarray,
                   b: np.ndarray) -> np.ndarray:
    """(n_docs, n_heads) logits for CSR rows; W is (n_heads, D)."""
    return predict_logits_t(indptr, indices, values, scoring_layout(W), b)


def predict_logits_ref(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, W: np.ndarray,
                       b: np.ndarray) -> np.ndarray:
    n = len(indptr) - 1
    out = np.empty((n, W.shape[0]), dtype=np.float32)
    for d in range(n):
        s, e = indptr[d], indptr[d + 1]
        out[d] = W[:, indices[s:e]] @ values[s:e] + b
    return out


@njit(cache=True)
def _sgd(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, Y: np.ndarray, sw: np.ndarray,
         order: np.ndarray, W: np.ndarray, b: np.ndarray, G: np.ndarray, Gb: np.ndarray, lr: float,
         l2: float) -> float:
    """One AdaGrad pass in `order` with the heads interleaved per feature. The heads are independent, so each head
    sees exactly the float operations of `sgd_pass_ref` in the same order (bit-identical weights and loss, tested),
    but a feature's weights for all heads are read in one sweep instead of one per head (the online learner's
    largest cost on long texts). Y[i, h] is 1, 0, or -1 (no label for that head). Returns mean loss."""
    k = W.shape[0]
    zs = np.empty(k, dtype=np.float32)
    gs = np.empty(k, dtype=np.float64)
    loss = 0.0
    cnt = 0
    for i in order:
        s = indptr[i]
        e = indptr[i + 1]
        for h in range(k):
            zs[h] = b[h]
        for p in range(s, e):
            j = indices[p]
            v = values[p]
            for h in range(k):
                zs[h] += W[h, j] * v
        for h in range(k):
            y = Y[i, h]
            if y < 0:
                continue
            z = zs[h]
            if z > 30.0:
                pr = 1.0
            elif z < -30.0:
                pr = 0.0
            else:
                pr = 1.0 / (1.0 + np.exp(-z))
            gs[h] = (pr - y) * sw[i]
            if y > 0:
                loss -= np.log(max(pr, 1e-12)) * sw[i]
            else:
                loss -= np.log(max(1.0 - pr, 1e-12)) * sw[i]
            cnt += 1
        for p in range(s, e):
            j = indices[p]
            v = values[p]
            for h in range(k):
                if Y[i, h] < 0:
                    continue
                gj = gs[h] * v + l2 * W[h, j]
                G[h, j] += gj * gj
                W[h, j] -= lr * gj / np.sqrt(G[h, j] + 1e-8)
        for h in range(k):
            if Y[i, h] < 0:
                continue
            g = gs[h]
            Gb[h] += g * g
            b[h] -= lr * g / np.sqrt(Gb[h] + 1e-8)
    return loss / max(cnt, 1)


@njit(cache=True)
def sgd_pass_ref(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, Y: np.ndarray, sw: np.ndarray,
         order: np.ndarray, W: np.ndarray, b: np.ndarray, G: np.ndarray, Gb: np.ndarray, lr: float,
         l2: float) -> float:
    """Reference for `_sgd`: one AdaGrad pass in `order`, head after head (the plain form of the update). Y[i, h] is
    1, 0, or -1 (no label for that head). Returns mean loss."""
    k = W.shape[0]
    loss = 0.0
    cnt = 0
    for i in order:
        s = indptr[i]
        e = indptr[i + 1]
        for h in range(k):
            y = Y[i, h]
            if y < 0:
                continue
            z = b[h]
            for p in range(s, e):
                z += W[h, indices[p]] * values[p]
            if z > 30.0:
                pr = 1.0
            elif z < -30.0:
                pr = 0.0
            else:
                pr = 1.0 / (1.0 + np.exp(-z))
            g = (pr - y) * sw[i]
            if y > 0:
                loss -= np.log(max(pr, 1e-12)) * sw[i]
            else:
                loss -= np.log(max(1.0 - pr, 1e-12)) * sw[i]
            cnt += 1
            for p in range(s, e):
                j = indices[p]
                gj = g * values[p] + l2 * W[h, j]
                G[h, j] += gj * gj
                W[h, j] -= lr * gj / np.sqrt(G[h, j] + 1e-8)
            Gb[h] += g * g
            b[h] -= lr * g / np.sqrt(Gb[h] + 1e-8)
    return loss / max(cnt, 1)


@dataclass
class LinearModel:
    W: np.ndarray  # (n_heads, 2**bits) float32
    b: np.ndarray  # (n_heads,) float32
    bits: int
    heads: tuple[str, ...] = HEADS
    G: np.ndarray | None = field(default=None, repr=False)  # AdaGrad accumulators, kept for online updates
    Gb: np.ndarray | None = field(default=None, repr=False)
    lexicon: Lexicon | None = field(default=None, repr=False)  # concept features (`concepts`); None: none
    _WT: np.ndarray | None = field(default=None, repr=False, compare=False)
    _W0: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)  # (WT, its column 0)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "W":  # a new weight matrix invalidates the transposed scoring copies
            self._weights_changed()
        object.__setattr__(self, name, value)

    def _weights_changed(self) -> None:
        """Drop the scoring copies of W (`scoring_weights`, `head0_weights`): they are snapshots, taken when first
        scored, so W must not be edited in place afterwards except through `fit` / `round_as_stored`, which call
        this (the learner publishes its bundles with the table read-only)."""
        object.__setattr__(self, "_WT", None)
        object.__setattr__(self, "_W0", None)

    def scoring_weights(self) -> np.ndarray:
        """W in its scoring layout (`scoring_layout`), rebuilt after any change to W (fit, assignment)."""
        if self._WT is None:
            object.__setattr__(self, "_WT", scoring_layout(self.W))
        return self._WT

    def head0_weights(self) -> np.ndarray:
        """Column 0 of the scoring layout, contiguous (what `hashed_proba` scores head 0 with under a floor)."""
        WT = self.scoring_weights()
        if self._W0 is None or self._W0[0] is not WT:
            object.__setattr__(self, "_W0", (WT, np.ascontiguousarray(WT[:, 0])))
        return self._W0[1]

    @classmethod
    def zeros(cls, bits: int, heads: tuple[str, ...] = HEADS, lexicon: Lexicon | None = None) -> LinearModel:
        k, d = len(heads), 1 << bits
        return cls(np.zeros((k, d), np.float32), np.zeros(k, np.float32), bits, heads,
                   np.zeros((k, d), np.float32), np.zeros(k, np.float32), lexicon or None)

    def logits(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        return predict_logits_t(indptr, indices, values, self.scoring_weights(), self.b)

    def proba(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        z = self.logits(indptr, indices, values)
        _sigmoid_inplace(z.reshape(-1))
        return z

    def proba_texts(self, texts: Sequence[str], floor: float = 0.0) -> np.ndarray:
        """`proba(*featurize(texts, bits))` in one compiled call, for callers that need only the probabilities.
        With `floor` > 0 the heads past the first are NaN for texts whose head-0 probability is under it (see
        `hashed_proba`); head 0 is the same either way."""
        codes, offsets = encode_texts(texts)
        lx = self.lexicon or NO_CONCEPTS
        return hashed_proba(codes, offsets, self.bits, seen_buffer(self.bits), self.scoring_weights(), self.b,
                            lx.keys, lx.vals, lx.window, lx.weight, self.head0_weights(), float(floor))

    def fit(self, X: tuple[np.ndarray, np.ndarray, np.ndarray], Y: np.ndarray, sample_weight: np.ndarray,
            *, epochs: int = 6, lr: float = 0.3, l2: float = 1e-6, seed: int = 0) -> list[float]:
        indptr, indices, values = X
        if self.G is None:
            self.G = np.zeros_like(self.W)
            self.Gb = np.zeros_like(self.b)
        rng = np.random.default_rng(seed)
        losses = []
        for _ in range(epochs):
            order = rng.permutation(len(indptr) - 1).astype(np.int64)
            losses.append(_sgd(indptr, indices, values, Y.astype(np.float32), sample_weight.astype(np.float32),
                               order, self.W, self.b, self.G, self.Gb, lr, l2))
        self._weights_changed()  # W changed in place
        return losses

    def copy(self) -> LinearModel:
        return LinearModel(self.W.copy(), self.b.copy(), self.bits, self.heads,
                           None if self.G is None else self.G.copy(), None if self.Gb is None else self.Gb.copy(),
                           self.lexicon)

    def round_as_stored(self) -> None:
        """Round W and G in place to what `save` writes (float16; an overflowed accumulator reads as 6e4, as the
        learner loads it), so a process that keeps training after a save and one that reloads the save and replays
        the same updates hold the same weights."""
        self.W[:] = self.W.astype(np.float16).astype(np.float32)
        self._weights_changed()
        if self.G is not None:
            G = self.G.astype(np.float16).astype(np.float32)
            G[~np.isfinite(G)] = np.float32(6e4)
            self.G[:] = G

    # --- persistence: npz (no pickle) + json header ---------------------------------------------------------------

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        # weights are stored sparsely: most hashed buckets are never touched
        nz = np.nonzero(np.any(self.W != 0, axis=0))[0].astype(np.int32)
        arrays = {"cols": nz, "W": self.W[:, nz].astype(np.float16), "b": self.b}
        if self.G is not None:
            arrays["G"] = self.G[:, nz].astype(np.float16)
            arrays["Gb"] = self.Gb
        np.savez_compressed(path / "linear.npz", **arrays)
        meta: dict = {"bits": self.bits, "heads": list(self.heads)}
        if self.lexicon:
            meta["concepts"] = self.lexicon.to_json()
        (path / "linear.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        meta = json.loads((path / "linear.json").read_text(encoding="utf-8"))
        z = np.load(path / "linear.npz", allow_pickle=False)
        k, d = len(meta["heads"]), 1 << int(meta["bits"])
        W = np.zeros((k, d), np.float32)
        W[:, z["cols"]] = z["W"].astype(np.float32)
        G = Gb = None
        if "G" in z:
            G = np.zeros((k, d), np.float32)
            G[:, z["cols"]] = z["G"].astype(np.float32)
            Gb = z["Gb"].astype(np.float32)
        lexicon = Lexicon.from_json(meta["concepts"]) if meta.get("concepts") else None
        return cls(W, z["b"].astype(np.float32), int(meta["bits"]), tuple(meta["heads"]), G, Gb, lexicon)
