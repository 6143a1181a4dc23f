"""The learned model as a signal: hashed n-grams -> multi-head logistic model, vectorised over a batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aimds_ray.core.features import csr_rows, featurize
from aimds_ray.core.normalize import Normalized
from aimds_ray.core.report import Evidence
from aimds_ray.core.signals.base import Signal, register

REPORT_FLOOR = 0.05  # probabilities below this are not worth an evidence entry


def views(doc: Normalized) -> list[tuple[int, str]]:
    """The texts of a document the model reads: the normalised view and every decoded/de-obfuscated view.
    Training uses the same function, so what the model learned is what it sees."""
    return [(i, v.text) for i, v in enumerate(doc.variants)]


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
        X = featurize(texts, lin.bits)
        # the manipulation head decides; the category heads only name the category of texts above the floor, so
        # they are scored for those rows alone (most traffic never touches their weights)
        p0 = lin.head_proba(0, *X).tolist()
        best: dict[int, tuple[float, int, int]] = {}
        for row, (d, vi) in enumerate(owners):
            p = p0[row]
            if p > best.get(d, (-1.0, 0, 0))[0]:
                best[d] = (p, vi, row)
        hits = [(d, p, vi, row) for d, (p, vi, row) in best.items() if p >= REPORT_FLOOR]
        if not hits:
            return out
        P = lin.proba(*csr_rows(X, [row for _, _, _, row in hits]))
        heads = lin.heads
        ncat = len(heads) - 1
        cat_idx = (1 + np.argmax(P[:, 1:ncat], axis=1)).tolist()
        rows = P.tolist()
        harmful = heads[-1] == "harmful_request"
        for k, (d, p, vi, _row) in enumerate(hits):
            ci = cat_idx[k]
            v = docs[d].variants[vi]
            s, e = v.span(0, len(v.text)) if v.text else (v.offset, v.offset)
            out[d].append(Evidence("learned", heads[ci], round(p, 6), s, e, "", v.kind,
                                   f"p(manipulation)={p:.3f}; category head {heads[ci]}={rows[k][ci]:.3f}"))
            ph = rows[k][ncat]
            if harmful and ph >= 0.5:
                out[d].append(Evidence("learned", "harmful_request", round(ph, 6), s, e, "", v.kind,
                                       f"p(harmful_request)={ph:.3f}"))
        return out
