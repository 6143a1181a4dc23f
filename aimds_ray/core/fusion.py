"""Score fusion: evidence from all signals -> per-category scores -> one decision.

Per category the evidence of different detectors is combined by noisy-OR over the strongest item of each detector
(several hits of one regex family are one piece of evidence, not many). When a learned model is loaded, its
calibrated category probabilities enter as one more detector and its fusion weights scale each detector's voice
(`FusionWeights` in the model bundle, refitted by the learner). Thresholds come from config
(`detector.thresholds`) unless the model bundle carries thresholds fitted to a target false-positive rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aimds_ray.core.config import AimdsConfig
from aimds_ray.core.report import MANIPULATION_CATEGORIES, Action, Category, Evidence

DECODED_VARIANTS = frozenset({"base64", "hex", "url", "rot13", "reversed", "unicode_tags", "leet", "despaced"})


@dataclass(slots=True)
class Decision:
    is_threat: bool
    action: Action
    score: float
    threat_type: str
    categories: dict[str, float]


class Fusion:
    def __init__(self, config: AimdsConfig, model: Any = None) -> None:
        self.cfg = config
        th = config.detector.thresholds
        self.threat_th = th.threat
        self.block_th = th.block
        self.detector_weights: dict[str, float] = {}
        if model is not None:
            self.detector_weights = dict(getattr(model, "detector_weights", {}) or {})
            if getattr(model, "threshold", None) is not None and not config.extensions.get("ignore_model_threshold"):
                self.threat_th = float(model.threshold)
        self.category_weights = dict(config.detector.category_weights)
        self.manip = set(MANIPULATION_CATEGORIES)
        if config.detector.harmful_request:
            self.manip.add(Category.HARMFUL_REQUEST)

    def category_scores(self, evidence: list[Evidence]) -> dict[str, float]:
        best: dict[tuple[str, str], float] = {}
        for e in evidence:
            w = self.detector_weights.get(e.detector, 1.0)
            s = min(1.0, e.score * w)
            key = (e.category, e.detector)
            if s > best.get(key, 0.0):
                best[key] = s
            if e.variant in DECODED_VARIANTS and e.category != Category.ENCODING_OBFUSCATION \
                    and e.detector not in ("pii", "encoding"):
                # an attack found only after decoding is also an obfuscation attempt
                k2 = (Category.ENCODING_OBFUSCATION, e.detector)
                if s > best.get(k2, 0.0):
                    best[k2] = s
        miss: dict[str, float] = {}
        for (cat, _det), s in best.items():
            miss[cat] = miss.get(cat, 1.0) * (1.0 - s)
        return {cat: round((1.0 - m) * self.category_weights.get(cat, 1.0), 6) for cat, m in miss.items()}

    def decide(self, evidence: list[Evidence]) -> Decision:
        cats = self.category_scores(evidence)
        manip = {c: s for c, s in cats.items() if c in self.manip}
        top_cat, top = max(manip.items(), key=lambda kv: kv[1]) if manip else ("none", 0.0)
        score = min(1.0, top)
        is_threat = score >= self.threat_th
        leak = cats.get(Category.DATA_LEAKAGE, 0.0) > 0
        if is_threat:
            action = Action.BLOCK if score >= self.block_th else Action.ESCALATE
            threat_type = top_cat
        elif leak:
            action, threat_type = Action.REDACT, "none"
        else:
            action, threat_type = Action.ALLOW, "none"
        if leak and self.cfg.pii.counts_as_threat and not is_threat:
            is_threat, threat_type, action = True, Category.DATA_LEAKAGE, Action.REDACT
        return Decision(is_threat, action, score, str(threat_type), cats)
