"""Vector similarity search over known attacks: TF-IDF weighted hashed n-grams, cosine top-k, shardable.

Why: a new prompt that is a near copy of a known attack (a template with another question filled in, a re-worded
jailbreak the learner confirmed) should be caught by resemblance, not by a rule. Texts are embedded with the
project's hashed featuriser (`features.py`: char 3-5-grams, word 1-2-grams, shape buckets, 2**bits ids), weighted by
an idf learned from a corpus and L2-normalised, so cosine = dot product.

Two storage forms, chosen by measurement (`benchmarks/seqmatch.py`): `dense_dim=None` keeps exact sparse rows and
scores queries through an inverted (feature -> rows) list in numba; `dense_dim=D` folds each vector into D dims by a
signed hash (count sketch) and scores with one matrix product. The index is a matrix: `shard(n)` splits its rows
(one shard per Ray actor), `merge_topk` combines shard answers into the unsharded answer. Persistence is npz
(arrays) + json (metadata), no pickle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from aimds_ray.core.features import DEFAULT_BITS, featurize

FORMAT_VERSION = 1
Hit = tuple[int, float, dict[str, Any]]


# --- kernels ------------------------------------------------------------------------------------------------------


@njit(cache=True)
def sparse_scores(q_indptr: np.ndarray, q_idx: np.ndarray, q_val: np.ndarray, f_ids: np.ndarray,
                  f_ptr: np.ndarray, f_row: np.ndarray, f_val: np.ndarray, n_rows: int) -> np.ndarray:
    """Dot products of every query row with every index row, via the index's inverted lists
    (f_ids sorted feature ids, postings f_ptr/f_row/f_val). Cost ~ query nnz * log(features) + postings touched."""
    nq = q_indptr.shape[0] - 1
    out = np.zeros((nq, n_rows), dtype=np.float32)
    nf = f_ids.shape[0]
    if nf == 0:
        return out
    for r in range(nq):
        for p in range(q_indptr[r], q_indptr[r + 1]):
            f = q_idx[p]
            k = np.searchsorted(f_ids, f)
            if k < nf and f_ids[k] == f:
                v = q_val[p]
                for t in range(f_ptr[k], f_ptr[k + 1]):
                    out[r, f_row[t]] += v * f_val[t]
    return out


def sparse_scores_ref(q: list[dict[int, float]], rows: list[dict[int, float]]) -> np.ndarray:
    """Reference for `sparse_scores` over dict vectors (tests only)."""
    out = np.zeros((len(q), len(rows)), dtype=np.float64)
    for i, a in enumerate(q):
        for j, b in enumerate(rows):
            out[i, j] = sum(v * b.get(k, 0.0) for k, v in a.items())
    return out


@njit(cache=True)
def sketch(indptr: np.ndarray, idx: np.ndarray, val: np.ndarray, dim: int) -> np.ndarray:
    """Count-sketch of sparse rows into `dim` dense dims (signed hash of the feature id), rows re-normalised."""
    n = indptr.shape[0] - 1
    out = np.zeros((n, dim), dtype=np.float32)
    acc = np.zeros(dim, dtype=np.float64)
    for r in range(n):
        acc[:] = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            h = (np.uint32(idx[p]) * np.uint32(2654435761)) ^ np.uint32(0x5BD1E995)
            h = (h ^ (h >> np.uint32(15))) * np.uint32(2246822519)
            b = (h >> np.uint32(8)) % np.uint32(dim)
            s = 1.0 if (h & np.uint32(1)) == 0 else -1.0
            acc[b] += s * val[p]
        nrm = 0.0
        for d in range(dim):
            nrm += acc[d] * acc[d]
        inv = 1.0 / math.sqrt(nrm) if nrm > 0 else 0.0
        for d in range(dim):
            out[r, d] = acc[d] * inv
    return out


def sketch_ref(row: dict[int, float], dim: int) -> np.ndarray:
    """Reference for `sketch` of one row (tests only)."""
    out = np.zeros(dim, dtype=np.float64)
    for f, v in row.items():
        h = (f * 2654435761) & 0xFFFFFFFF ^ 0x5BD1E995
        h = ((h ^ (h >> 15)) * 2246822519) & 0xFFFFFFFF
        out[(h >> 8) % dim] += (1.0 if h & 1 == 0 else -1.0) * v
    n = np.linalg.norm(out)
    return out / n if n > 0 else out


# --- idf and embedding --------------------------------------------------------------------------------------------


def fit_idf(corpus: Sequence[str], bits: int = DEFAULT_BITS) -> np.ndarray:
    """Smoothed idf per hashed feature, log((1 + N) / (1 + df)) + 1: frequent n-grams of ordinary text weigh little."""
    n = len(corpus)
    df = np.zeros(1 << bits, dtype=np.float64)
    for i in range(0, n, 2048):  # batches keep the featuriser's buffers small
        _, idx, _ = featurize(list(corpus[i : i + 2048]), bits)
        df += np.bincount(idx, minlength=1 << bits)
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


def tfidf(texts: Sequence[str], idf: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, indices, values) of idf-weighted, L2-normalised hashed features."""
    indptr, idx, val = featurize(list(texts), bits)
    val = val * idf[idx]
    rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
    norms = np.sqrt(np.bincount(rows, weights=val.astype(np.float64) ** 2, minlength=len(texts)))
    norms[norms == 0] = 1.0
    return indptr, idx, (val / norms[rows]).astype(np.float32)


def _csr_rows(indptr: np.ndarray, idx: np.ndarray, val: np.ndarray, rows: np.ndarray,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts_i = [idx[indptr[r] : indptr[r + 1]] for r in rows]
    parts_v = [val[indptr[r] : indptr[r + 1]] for r in rows]
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts_i], out=ptr[1:])
    cat_i = np.concatenate(parts_i) if parts_i else np.empty(0, np.int32)
    cat_v = np.concatenate(parts_v) if parts_v else np.empty(0, np.float32)
    return ptr, cat_i.astype(np.int32), cat_v.astype(np.float32)


# --- the index ----------------------------------------------------------------------------------------------------


class VectorIndex:
    """Rows = embedded texts with global ids and metadata (label, family, category, ...). Not thread-safe for
    `add` concurrent with queries; the Ray layer serialises writes per shard."""

    def __init__(self, idf: np.ndarray, bits: int = DEFAULT_BITS, dense_dim: int | None = None) -> None:
        if idf.shape != (1 << bits,):
            raise ValueError(f"idf has shape {idf.shape}, expected ({1 << bits},) for bits={bits}")
        self.idf = idf.astype(np.float32)
        self.bits = bits
        self.dense_dim = dense_dim
        self.ids = np.empty(0, dtype=np.int64)
        self.meta: list[dict[str, Any]] = []
        self.indptr = np.zeros(1, dtype=np.int64)
        self.indices = np.empty(0, dtype=np.int32)
        self.values = np.empty(0, dtype=np.float32)
        self.next_id = 0
        self._inv: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._dense: np.ndarray | None = None
        self.provenance: dict[str, Any] = {}  # how the idf and rows were made (saved with the index)

    # -- building ------------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, texts: Sequence[str], meta: Sequence[dict[str, Any]] | None = None,
              idf_corpus: Sequence[str] | None = None, bits: int = DEFAULT_BITS, dense_dim: int | None = None,
              dedup: float | None = None) -> VectorIndex:
        """An index of `texts`; idf from `idf_corpus` plus the texts themselves."""
        corpus = list(idf_corpus or []) + list(texts)
        idx = cls(fit_idf(corpus, bits) if corpus else np.ones(1 << bits, np.float32), bits, dense_dim)
        idx.add(texts, meta, dedup=dedup)
        return idx

    def __len__(self) -> int:
        return len(self.ids)

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR TF-IDF vectors of `texts` in this index's feature space."""
        return tfidf(texts, self.idf, self.bits)

    def _invalidate(self) -> None:
        self._inv = None
        self._dense = None

    def _inverted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._inv is None:
            rows = np.repeat(np.arange(len(self.ids), dtype=np.int32), np.diff(self.indptr))
            order = np.argsort(self.indices, kind="stable")
            feats = self.indices[order]
            uniq, starts = np.unique(feats, return_index=True)
            ptr = np.append(starts, len(feats)).astype(np.int64)
            self._inv = (uniq.astype(np.int32), ptr, rows[order], self.values[order])
        return self._inv

    def _dense_rows(self) -> np.ndarray:
        if self._dense is None:
            assert self.dense_dim is not None
            self._dense = sketch(self.indptr, self.indices, self.values, self.dense_dim)
        return self._dense

    def _scores_csr(self, q: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        nq = len(q[0]) - 1
        if len(self.ids) == 0:
            return np.zeros((nq, 0), dtype=np.float32)
        if self.dense_dim is not None:
            return sketch(q[0], q[1], q[2], self.dense_dim) @ self._dense_rows().T
        f_ids, f_ptr, f_row, f_val = self._inverted()
        return sparse_scores(q[0], q[1], q[2], f_ids, f_ptr, f_row, f_val, len(self.ids))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine of each text with each row: (len(texts), len(self))."""
        return self._scores_csr(self.embed(texts))

    def add(self, texts: Sequence[str], meta: Sequence[dict[str, Any]] | None = None,
            dedup: float | None = 0.95) -> list[int]:
        """Append texts (e.g. attacks the learner confirmed); a text whose cosine with an existing row or an earlier
        text of this call is >= `dedup` is skipped. Returns the ids given to the added rows."""
        meta = list(meta) if meta is not None else [{} for _ in texts]
        if len(meta) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(meta)} metadata entries")
        if not texts:
            return []
        q = self.embed(texts)
        keep = np.ones(len(texts), dtype=bool)
        if dedup is not None:
            if len(self.ids):
                keep &= self._scores_csr(q).max(axis=1) < dedup
            ptr, idx, val = q
            for i in range(1, len(texts)):  # against earlier texts of the same call
                if not keep[i]:
                    continue
                a = dict(zip(idx[ptr[i] : ptr[i + 1]].tolist(), val[ptr[i] : ptr[i + 1]].tolist(), strict=True))
                for j in np.nonzero(keep[:i])[0]:
                    dot = sum(a.get(f, 0.0) * v for f, v in zip(idx[ptr[j] : ptr[j + 1]].tolist(),
                                                               val[ptr[j] : ptr[j + 1]].tolist(), strict=True))
                    if dot >= dedup:
                        keep[i] = False
                        break
        rows = np.nonzero(keep)[0]
        if len(rows) == 0:
            return []
        ptr, idx, val = _csr_rows(*q, rows)
        self.indptr = np.concatenate([self.indptr, ptr[1:] + self.indptr[-1]])
        self.indices = np.concatenate([self.indices, idx])
        self.values = np.concatenate([self.values, val])
        new_ids = list(range(self.next_id, self.next_id + len(rows)))
        self.next_id += len(rows)
        self.ids = np.concatenate([self.ids, np.asarray(new_ids, dtype=np.int64)])
        self.meta.extend(dict(meta[r]) for r in rows)
        self._invalidate()
        return new_ids

    # -- queries ---------------------------------------------------------------------------------------------------

    def find_similar_batch(self, texts: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """Top-k (id, cosine, metadata) per text, best first (ties: lower id first)."""
        S = self.scores(texts)
        return [self._topk(row, k) for row in S]

    def find_similar(self, text: str, k: int = 5) -> list[Hit]:
        return self.find_similar_batch([text], k)[0]

    def _topk(self, row: np.ndarray, k: int) -> list[Hit]:
        if len(row) == 0 or k <= 0:
            return []
        k = min(k, len(row))
        cand = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
        cand = sorted(cand.tolist(), key=lambda r: (-float(row[r]), int(self.ids[r])))
        return [(int(self.ids[r]), round(float(row[r]), 6), self.meta[r]) for r in cand]

    # -- sharding --------------------------------------------------------------------------------------------------

    def shard(self, n: int) -> list[VectorIndex]:
        """Split the rows into `n` contiguous shards (same idf, same global ids)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        bounds = np.linspace(0, len(self.ids), n + 1).astype(int)
        out = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            s = VectorIndex(self.idf, self.bits, self.dense_dim)
            rows = np.arange(a, b)
            s.indptr, s.indices, s.values = _csr_rows(self.indptr, self.indices, self.values, rows)
            s.ids = self.ids[a:b].copy()
            s.meta = [dict(m) for m in self.meta[a:b]]
            s.next_id = self.next_id
            s.provenance = dict(self.provenance)
            out.append(s)
        return out

    @staticmethod
    def merge_topk(results: Iterable[list[Hit]], k: int) -> list[Hit]:
        """Combine per-shard top-k lists into the global top-k (same order as an unsharded query)."""
        allhits = [h for r in results for h in r]
        allhits.sort(key=lambda h: (-h[1], h[0]))
        return allhits[:k]

    # -- persistence ---------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write `<path>.npz` (arrays) and `<path>.json` (format, settings, per-row metadata)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(p.with_suffix(".npz"), idf=self.idf, indptr=self.indptr,
                            indices=self.indices, values=self.values, ids=self.ids)
        info = {"format": FORMAT_VERSION, "bits": self.bits, "dense_dim": self.dense_dim, "next_id": self.next_id,
                "provenance": self.provenance, "meta": self.meta}
        p.with_suffix(".json").write_text(json.dumps(info, ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        p = Path(path)
        info = json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))
        if info.get("format") != FORMAT_VERSION:
            raise ValueError(f"{p}: unsupported vector index format {info.get('format')!r}")
        with np.load(p.with_suffix(".npz"), allow_pickle=False) as z:
            idx = cls(z["idf"].astype(np.float32), int(info["bits"]), info.get("dense_dim"))
            idx.indptr = z["indptr"].astype(np.int64)
            idx.indices = z["indices"].astype(np.int32)
            idx.values = z["values"].astype(np.float32)
            idx.ids = z["ids"].astype(np.int64)
        idx.meta = list(info["meta"])
        idx.next_id = int(info["next_id"])
        idx.provenance = dict(info.get("provenance", {}))
        if len(idx.meta) != len(idx.ids):
            raise ValueError(f"{p}: {len(idx.ids)} rows but {len(idx.meta)} metadata entries")
        return idx


# --- the shipped phrase index -----------------------------------------------------------------------------------

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PHRASE_INDEX_PATH = DATA_DIR / "phrase_index"


def build_phrase_index(background: Sequence[str] = (), dense_dim: int | None = None) -> VectorIndex:
    """The similarity signal's default index: one row per phrase of the phrase library (label 1, family,
    category); idf from the phrases plus `background` (ordinary texts, so everyday n-grams weigh little)."""
    from aimds_ray.core.seqmatch import load_phrases

    phrases = load_phrases()
    meta = [{"label": 1, "family": p.family, "category": p.category, "text": p.text, "source": "phrases.yaml"}
            for p in phrases]
    return VectorIndex.build([p.text for p in phrases], meta, idf_corpus=background, dense_dim=dense_dim,
                             dedup=None)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m aimds_ray.core.vector_index [BACKGROUND.jsonl ...]`: rebuild the shipped phrase index; benign
    (label 0) rows of the given JSONL files feed the idf. Use only files whose licence allows shipped weights."""
    import sys

    files = list(sys.argv[1:] if argv is None else argv)
    background: list[str] = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            background.extend(r["text"] for r in map(json.loads, fh) if int(r.get("label", 0)) == 0)
    idx = build_phrase_index(background)
    idx.provenance = {"rows": "phrases.yaml", "idf_background_files": [Path(f).name for f in files],
                      "idf_background_texts": len(background)}
    idx.save(PHRASE_INDEX_PATH)
    print(json.dumps({"rows": len(idx), "background_texts": len(background),
                      "background_files": [Path(f).name for f in files]}))


if __name__ == "__main__":
    main()
