"""Vector similarity to known attacks (`aimds_ray/core/vector_index.py`) as a detector signal.

The index is the model bundle's when it carries one (`ctx.model.vector_index`, appended to by the learner), else the
shipped phrase index. Short texts are queried whole; long texts in sentence-aligned chunks, and only chunks that
contain attack-vocabulary words (the phrase library's anchor keys) are embedded -- the featuriser costs ~85 us per
KB, so querying every chunk of every 2 KB benign text would spend the whole fast-path budget on nothing. Chunks
need two distinct anchor words (one alone is too common in ordinary text to be a useful filter).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from aimds_ray.core.normalize import Normalized, Variant
from aimds_ray.core.report import Evidence
from aimds_ray.core.seqmatch import default_matcher, in_sorted, tokenize_codes
from aimds_ray.core.signals.base import Signal, SignalContext, register
from aimds_ray.core.vector_index import PHRASE_INDEX_PATH, VectorIndex

# Below THRESHOLD (cosine) nothing is reported; the score rises linearly from SCORE_AT_THRESHOLD to SCORE_MAX at 1.
# Chosen on the licence-allowed dev files (see benchmarks/seqmatch.py and the commit message for the figures).
THRESHOLD = 0.45
SCORE_AT_THRESHOLD = 0.5
SCORE_MAX = 0.95
WHOLE_MAX_CHARS = 400   # texts up to this length are one query
CHUNK_CHARS = 240       # longer texts: sentence-aligned chunks of at most this size
MIN_CHUNK_CHARS = 60    # sentences shorter than this are merged with the next
MIN_CHUNK_ANCHORS = 2   # a chunk of a long text is queried only if it holds this many distinct anchor words
_SENT = re.compile(r"[^.!?\n]+[.!?\n]*")


@lru_cache(maxsize=1)
def shipped_index() -> VectorIndex:
    return VectorIndex.load(PHRASE_INDEX_PATH)


def similarity_to_score(cos: float, threshold: float = THRESHOLD) -> float:
    if cos < threshold:
        return 0.0
    frac = (cos - threshold) / max(1e-9, 1.0 - threshold)
    return round(SCORE_AT_THRESHOLD + (SCORE_MAX - SCORE_AT_THRESHOLD) * frac, 4)


def chunks(text: str, size: int = CHUNK_CHARS, min_chars: int = MIN_CHUNK_CHARS) -> list[tuple[int, int]]:
    """Sentence-aligned (start, end) chunks: one sentence each, short sentences merged up to `min_chars`, nothing
    longer than `size` (a long sentence is cut). Sentence-sized queries keep a buried attack from being diluted."""
    out: list[tuple[int, int]] = []
    s0 = e0 = -1
    for m in _SENT.finditer(text):
        a, b = m.span()
        while b - a > size:  # one over-long sentence: hard cuts
            if s0 >= 0:
                out.append((s0, e0))
                s0 = -1
            out.append((a, a + size))
            a += size
        if s0 < 0:
            s0, e0 = a, b
        elif e0 - s0 < min_chars and b - s0 <= size:
            e0 = b
        else:
            out.append((s0, e0))
            s0, e0 = a, b
    if s0 >= 0:
        out.append((s0, e0))
    return out


@register
class SimilaritySignal(Signal):
    """Cosine top-1 against the attack index per view; evidence for the best chunk per family."""

    name = "similarity"

    def __init__(self, ctx: SignalContext) -> None:
        super().__init__(ctx)
        opts = (ctx.config.extensions or {}).get("similarity", {}) if ctx.config is not None else {}
        self.threshold = float(opts.get("threshold", THRESHOLD))
        model_index = getattr(ctx.model, "vector_index", None) if ctx.model is not None else None
        self.index: VectorIndex = model_index if isinstance(model_index, VectorIndex) else shipped_index()
        self.anchor_keys = default_matcher().anchor_keys

    def reload(self, ctx: SignalContext) -> None:
        self.__init__(ctx)  # type: ignore[misc]

    def _spans(self, v: Variant) -> list[tuple[int, int]]:
        text = v.text
        if len(text) <= WHOLE_MAX_CHARS:
            return [(0, len(text))] if text.strip() else []
        starts, _, keys = tokenize_codes(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))
        hit = in_sorted(keys, self.anchor_keys)
        if hit.sum() < MIN_CHUNK_ANCHORS:
            return []
        hit_pos, hit_key = starts[hit], keys[hit]
        out = []
        for a, b in chunks(text):
            lo, hi = np.searchsorted(hit_pos, [a, b])
            if len(np.unique(hit_key[lo:hi])) >= MIN_CHUNK_ANCHORS:
                out.append((a, b))
        return out

    def scan(self, doc: Normalized) -> list[Evidence]:
        if len(self.index) == 0:
            return []
        queries: list[tuple[Variant, int, int]] = []
        for v in doc.variants:
            queries.extend((v, a, b) for a, b in self._spans(v))
        if not queries:
            return []
        S = self.index.scores([v.text[a:b] for v, a, b in queries])
        best_row = S.argmax(axis=1)
        best: dict[str, tuple[float, int, int]] = {}
        for qi, r in enumerate(best_row.tolist()):
            cos = float(S[qi, r])
            if cos < self.threshold:
                continue
            fam = str(self.index.meta[r].get("family", "unknown"))
            if fam not in best or cos > best[fam][0]:
                best[fam] = (cos, qi, r)
        out: list[Evidence] = []
        for fam, (cos, qi, r) in sorted(best.items(), key=lambda kv: -kv[1][0]):
            v, a, b = queries[qi]
            meta = self.index.meta[r]
            s, e = v.span(a, b)
            out.append(Evidence(self.name, str(meta.get("category", "prompt_injection")),
                                similarity_to_score(cos, self.threshold), s, e, v.text[a:b][:200], v.kind,
                                f"{fam}: similar to #{int(self.index.ids[r])} "
                                f"'{str(meta.get('text', ''))[:60]}' cosine {cos:.2f}"))
        return out
