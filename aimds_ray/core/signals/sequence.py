"""Token-sequence matching of the attack phrase library (`aimds_ray/core/seqmatch.py`) as a detector signal."""

from __future__ import annotations

from aimds_ray.core.normalize import Normalized
from aimds_ray.core.report import Evidence
from aimds_ray.core.seqmatch import SequenceMatcher, default_matcher
from aimds_ray.core.signals.base import Signal, SignalContext, register

# Below THRESHOLD nothing is reported. On the licence-allowed dev files no benign row reaches 0.75 (2 of 5,000
# CLINC150 rows reach 0.7), so a match at the threshold is already fairly sure; the score rises linearly to
# SCORE_MAX at similarity 1. Overridable via config `extensions: {sequence: {threshold: ..}}`.
THRESHOLD = 0.75
SCORE_AT_THRESHOLD = 0.6
SCORE_MAX = 0.95


def similarity_to_score(sim: float, threshold: float = THRESHOLD) -> float:
    """Map an alignment similarity in [threshold, 1] to an evidence score in [SCORE_AT_THRESHOLD, SCORE_MAX]."""
    if sim < threshold:
        return 0.0
    frac = (sim - threshold) / max(1e-9, 1.0 - threshold)
    return round(SCORE_AT_THRESHOLD + (SCORE_MAX - SCORE_AT_THRESHOLD) * frac, 4)


@register
class SequenceSignal(Signal):
    """Attack phrases aligned locally (soft token edit distance) in every normalised view; one evidence item per
    matching family, span in the original text."""

    name = "sequence"

    def __init__(self, ctx: SignalContext) -> None:
        super().__init__(ctx)
        opts = (ctx.config.extensions or {}).get("sequence", {}) if ctx.config is not None else {}
        self.threshold = float(opts.get("threshold", THRESHOLD))
        self.matcher: SequenceMatcher = default_matcher()

    def scan(self, doc: Normalized) -> list[Evidence]:
        out: list[Evidence] = []
        for m in self.matcher.match_doc(doc, self.threshold):
            out.append(Evidence(self.name, m.category, similarity_to_score(m.similarity, self.threshold),
                                m.start, m.end, m.matched, m.variant,
                                f"{m.family}: '{m.phrase}' similarity {m.similarity:.2f}"))
        return out
