"""The learned model as a signal: hashed n-grams -> multi-head logistic model, vectorised over a batch; plus the
learned exemplars (attacks confirmed by feedback) as a nearest-neighbour check on the same features.

Why exemplars: a linear update moves weights a bounded step, guarded by FPR, so one confirmed attack shifts the
model's view of its re-used copies (a template with another question filled in, the same attack sent to another
target) only part of the way. A cosine with the confirmed text itself catches such near-copies at once. Each
exemplar carries its own cosine threshold, set by the learner above the closest benign text of its replay buffers
(`Learner._exemplar_threshold`), so an exemplar is only as loose as benign traffic allows. Scoring reuses the
feature rows the model has just computed, and is skipped entirely when the bundle has no exemplars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from aimds_ray.core.concepts import Lexicon
from aimds_ray.core.config import AimdsConfig
from aimds_ray.core.features import featurize
from aimds_ray.core.normalize import Normalized, normalize
from aimds_ray.core.report import Evidence
from aimds_ray.core.signals.base import Signal, register

REPORT_FLOOR = 0.05  # probabilities below this are not worth an evidence entry
EXEMPLAR = "exemplar"  # the evidence's detector name; fusion calibrates it with the bundle's fusion_weights[EXEMPLAR]
EXEMPLAR_SCORE_AT_TH = 0.5  # evidence score at an exemplar's own threshold, rising linearly to 1 at cosine 1


@dataclass(frozen=True)
class Exemplars:
    """Learned exemplars as L2-normalised hashed-feature rows (CSR), each with its own cosine threshold.
    Immutable: adding returns a new object, so a published bundle's exemplars never change under a scan."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    th: np.ndarray  # cosine threshold per row (> 1: never fires)
    cats: tuple[str, ...]
    pattern: tuple[int, ...]  # index into the bundle's `patterns`
    _inv: list[Any] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def empty(cls) -> Exemplars:
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                   (), ())

    def __len__(self) -> int:
        return len(self.th)

    def add(self, row: tuple[np.ndarray, np.ndarray, np.ndarray], th: float, cat: str, pattern: int) -> Exemplars:
        ip, idx, val = row
        return Exemplars(np.concatenate([self.indptr, ip[1:2] + self.indptr[-1]]),
                         np.concatenate([self.indices, idx]).astype(np.int32),
                         np.concatenate([self.values, val]).astype(np.float32),
                         np.append(self.th, np.float32(th)).astype(np.float32), self.cats + (cat,),
                         self.pattern + (pattern,))

    def with_thresholds(self, th: np.ndarray) -> Exemplars:
        return Exemplars(self.indptr, self.indices, self.values, th.astype(np.float32), self.cats, self.pattern)

    def scores(self, X: tuple[np.ndarray, np.ndarray, np.ndarray], bits: int) -> np.ndarray:
        """Cosine of every CSR row of X with every exemplar: (rows, len(self)), via an inverted list reached through
        a dense feature -> slot table (one lookup per query feature; a 2 KB text has ~5000 over its views)."""
        if not self._inv:
            rows = np.repeat(np.arange(len(self), dtype=np.int32), np.diff(self.indptr))
            order = np.argsort(self.indices, kind="stable")
            uniq, starts = np.unique(self.indices[order], return_index=True)
            slot = np.full(1 << bits, -1, np.int32)
            slot[uniq] = np.arange(len(uniq), dtype=np.int32)
            self._inv.append((slot, np.append(starts, len(order)).astype(np.int64), rows[order],
                              self.values[order]))
        slot, f_ptr, f_row, f_val = self._inv[0]
        return _slot_scores(X[0], X[1], X[2], slot, f_ptr, f_row, f_val, len(self))


@njit(cache=True)
def _slot_scores(q_indptr: np.ndarray, q_idx: np.ndarray, q_val: np.ndarray, slot: np.ndarray, f_ptr: np.ndarray,
                 f_row: np.ndarray, f_val: np.ndarray, n_rows: int) -> np.ndarray:
    nq = q_indptr.shape[0] - 1
    out = np.zeros((nq, n_rows), dtype=np.float32)
    for r in range(nq):
        for p in range(q_indptr[r], q_indptr[r + 1]):
            k = slot[q_idx[p]]
            if k >= 0:
                v = q_val[p]
                for t in range(f_ptr[k], f_ptr[k + 1]):
                    out[r, f_row[t]] += v * f_val[t]
    return out


def exemplar_row(text: str, config: AimdsConfig, bits: int, keep: Sequence[int] | np.ndarray | None = None,
                 lexicon: Lexicon | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exemplar vector of a pattern text: its primary normalised view, featurised (what the model reads),
    restricted to the feature ids `keep` (the learner drops n-grams common in benign text: they say little about
    the attack, and they are what would make every query touch every exemplar) and re-normalised."""
    ip, idx, val = featurize([normalize(text[: config.limits.window_chars], config.normalize).text], bits, lexicon)
    if keep is not None:
        m = np.isin(idx, np.asarray(keep, dtype=idx.dtype))
        idx, val = idx[m], val[m]
        n = float(np.sqrt((val.astype(np.float64) ** 2).sum()))
        val = (val / n).astype(np.float32) if n > 0 else val
        ip = np.array([0, len(idx)], np.int64)
    return ip, idx, val


def bundle_exemplars(model: Any, config: AimdsConfig) -> Exemplars | None:
    """The bundle's exemplars: the learner attaches them to the bundles it publishes; a bundle loaded from disk
    builds them once from its patterns' texts and thresholds (cached on the object). None when there are none."""
    ex = getattr(model, "exemplars", None)
    if ex is None:
        ex = Exemplars.empty()
        for i, p in enumerate(getattr(model, "patterns", None) or []):
            th = p.get("exemplar_th")
            if th is not None and isinstance(p.get("text"), str):
                ex = ex.add(exemplar_row(p["text"], config, model.linear.bits, p.get("exemplar_ids"),
                                            model.linear.lexicon), float(th),
                            str(p.get("category", "prompt_injection")), i)
        try:
            model.exemplars = ex
        except AttributeError:
            pass
    return ex if len(ex) else None


def exemplar_score(cos: float, th: float) -> float:
    return EXEMPLAR_SCORE_AT_TH + (1.0 - EXEMPLAR_SCORE_AT_TH) * max(0.0, cos - th) / max(1e-6, 1.0 - th)


SURFACE = frozenset({"normalized", "leet", "despaced", "markup"})  # views that keep an encoded payload's characters
ENCODED_MAJORITY = 0.6


def views(doc: Normalized) -> list[tuple[int, str]]:
    """The texts of a document the model reads: the normalised view and every decoded/de-obfuscated view. When
    decoded payloads make up most of the text (`ENCODED_MAJORITY` of its non-blank characters), the views that
    still show the encoded characters give way to the main view with the payloads spliced in decoded: the model
    was trained on the main view of every row, where an encoded attack is letters and digits that look like
    nothing, so on a surface of base64, binary or code words it guesses (an encoded benign sentence scored
    0.6-0.8)."""
    # CamelCase runs split into words are for the signatures only: the model reads identifiers in prose as
    # instructions ("The PrintInstructionsDialog shows the manual" scored 0.98 from its split view)
    out = [(i, v.text) for i, v in enumerate(doc.variants) if v.kind != "camel"]
    if len(out) == 1 or doc.variants[0].starts is not None or _decoded_share(doc) < ENCODED_MAJORITY:
        return out
    # the text as its author means it to be read: the main view with each payload replaced by what it decodes to
    # (the wrapper, "decode this and do what it says", stays in context), instead of the encoded surface
    main = doc.variants[0]
    off = main.offset
    layers: dict[tuple[int, int], list[Any]] = {}  # a payload's layers by depth (base64 inside base64 ...)
    for v in doc.variants:
        if v.fixed is not None:
            layers.setdefault(v.fixed, []).append(v)
    for ls in layers.values():
        ls.sort(key=lambda v: v.depth)

    def opaque(v: Any) -> bool:
        """An outer layer that is only another encoding: one token with a deeper layer under it."""
        ls = layers[v.fixed]
        return v is not ls[-1] and len(v.text.split()) <= 1

    pieces: list[str] = []
    pos = 0
    for (s, e), ls in sorted(layers.items()):
        if s - off >= pos:
            # the outermost layer that reads as text (it keeps the words around a nested payload), else the deepest
            t = next((v.text for v in ls if not opaque(v)), ls[-1].text)
            pieces += [main.text[pos : s - off], " ", t, " "]
            pos = e - off
    pieces.append(main.text[pos:])
    keep = [(i, t) for i, t in out
            if doc.variants[i].kind not in SURFACE and (doc.variants[i].fixed is None or not opaque(doc.variants[i]))]
    return [(0, "".join(pieces))] + keep


def _decoded_share(doc: Normalized) -> float:
    """Share of the window's non-blank characters inside payloads decoded from it (depth 1, spans merged)."""
    spans = sorted(v.fixed for v in doc.variants if v.fixed is not None and v.depth == 1)
    if not spans:
        return 0.0
    text = doc.original
    off = doc.offset
    inside = 0
    end = -1
    for s, e in spans:
        s, e = max(s - off, end), e - off
        if e > s:
            inside += _non_blank(text[s:e])
            end = e
    total = _non_blank(text)
    return inside / total if total else 0.0


def _non_blank(s: str) -> int:
    return len(s) - s.count(" ") - s.count("\n") - s.count("\t") - s.count("\r")


@register
class LearnedSignal(Signal):
    name = "learned"

    def scan(self, doc: Normalized) -> list[Evidence]:
        return self.scan_batch([doc])[0]

    def scan_batch(self, docs: Sequence[Normalized]) -> list[list[Evidence]]:
        model = self.ctx.model
        out: list[list[Evidence]] = [[] for _ in docs]
        if model is None:
            return out
        lin = model.linear
        owners: list[tuple[int, int]] = []
        texts: list[str] = []
        for d, doc in enumerate(docs):
            for vi, t in views(doc):
                owners.append((d, vi))
                texts.append(t)
        if not texts:
            return out
        ex = bundle_exemplars(model, self.ctx.config)
        # all heads in one pass: each feature's weights for every head are one row of W.T (one cache line), so
        # scoring the category heads too costs no more memory traffic than the manipulation head alone
        if ex is not None:
            X = featurize(texts, lin.bits, lin.lexicon)
            self._exemplar_evidence(docs, owners, ex.scores(X, lin.bits), ex, out)
            P = lin.proba(*X)
        else:  # nothing else reads the features: featurise and score in one compiled call
            P = lin.proba_texts(texts, REPORT_FLOOR)  # the other heads are read only at or over the floor
        rows = P.tolist()
        best: dict[int, tuple[float, int, int]] = {}
        for row, (d, vi) in enumerate(owners):
            p = rows[row][0]
            if p > best.get(d, (-1.0, 0, 0))[0]:
                best[d] = (p, vi, row)
        hits = [(d, p, vi, row) for d, (p, vi, row) in best.items() if p >= REPORT_FLOOR]
        if not hits:
            return out
        heads = lin.heads
        ncat = len(heads) - 1
        harmful = heads[-1] == "harmful_request"
        for d, p, vi, row in hits:
            r = rows[row]
            ci = 1 + max(range(ncat - 1), key=lambda h: r[1 + h])  # argmax over the category heads, first wins
            v = docs[d].variants[vi]
            s, e = v.span(0, len(v.text)) if v.text else (v.offset, v.offset)
            out[d].append(Evidence("learned", heads[ci], round(p, 6), s, e, "", v.kind,
                                   f"p(manipulation)={p:.3f}; category head {heads[ci]}={r[ci]:.3f}"))
            ph = r[ncat]
            if harmful and ph >= 0.5:
                out[d].append(Evidence("learned", "harmful_request", round(ph, 6), s, e, "", v.kind,
                                       f"p(harmful_request)={ph:.3f}"))
        return out

    @staticmethod
    def _exemplar_evidence(docs: Sequence[Normalized], owners: list[tuple[int, int]], S: np.ndarray, ex: Exemplars,
                           out: list[list[Evidence]]) -> None:
        """One piece of evidence per document: its view most over an exemplar's threshold (none under)."""
        M = S - ex.th[None, :]
        col = M.argmax(axis=1)
        over = M[np.arange(len(M)), col]
        best: dict[int, int] = {}
        for row in np.nonzero(over >= 0)[0].tolist():
            d = owners[row][0]
            if d not in best or over[row] > over[best[d]]:
                best[d] = row
        for d, row in best.items():
            j = int(col[row])
            cos, th = float(S[row, j]), float(ex.th[j])
            v = docs[d].variants[owners[row][1]]
            s, e = v.span(0, len(v.text)) if v.text else (v.offset, v.offset)
            out[d].append(Evidence(EXEMPLAR, ex.cats[j], round(exemplar_score(cos, th), 6), s, e, "", v.kind,
                                   f"cosine {cos:.3f} with learned pattern #{ex.pattern[j]} (its threshold {th:.3f})"))
