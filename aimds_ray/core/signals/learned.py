"""The learned model as a signal: hashed n-grams -> multi-head logistic model, vectorised over a batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aimds_ray.core.features import featurize
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
        P = lin.proba(*featurize(texts, lin.bits))
        heads = lin.heads
        ncat = len(heads) - 1
        # numpy once for the whole batch, then plain floats: per-row numpy calls cost more than the model
        cat_idx = (1 + np.argmax(P[:, 1:ncat], axis=1)).tolist()
        rows = P.tolist()
        best: dict[int, tuple[float, int, int]] = {}
        for row, (d, vi) in enumerate(owners):
            p = rows[row][0]
            if p > best.get(d, (-1.0, 0, 0))[0]:
                best[d] = (p, vi, row)
        harmful = heads[-1] == "harmful_request"
        for d, (p, vi, row) in best.items():
            if p < REPORT_FLOOR:
                continue
            ci = cat_idx[row]
            v = docs[d].variants[vi]
            s, e = v.span(0, len(v.text)) if v.text else (v.offset, v.offset)
            out[d].append(Evidence("learned", heads[ci], round(p, 6), s, e, "", v.kind,
                                   f"p(manipulation)={p:.3f}; category head {heads[ci]}={rows[row][ci]:.3f}"))
            ph = rows[row][ncat]
            if harmful and ph >= 0.5:
                out[d].append(Evidence("learned", "harmful_request", round(ph, 6), s, e, "", v.kind,
                                       f"p(harmful_request)={ph:.3f}"))
        return out
