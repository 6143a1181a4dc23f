"""Score fusion: evidence from all signals -> per-category scores -> one decision.

Per category the evidence of different detectors is combined by noisy-OR over the strongest item of each detector
(several hits of one regex family are one piece of evidence, not many); that names the threat type.

The threat score itself: without a model it is the top manipulation category. With a model bundle each detector's
strongest manipulation evidence (the learned model as a logit) is calibrated on its own (Platt scaling, `a*x + b`,
fitted on out-of-fold predictions at training time and refitted by the learner), and the calibrated probabilities
are combined by noisy-OR. Each detector's voice is what it has earned, and none can veto another: a strong
signature inside a long benign document counts even when the learned model, diluted by the document, is unsure.
The decision threshold is `detector.thresholds.threat` unless the bundle carries one fitted to a target
false-positive rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aimds_ray.core.config import AimdsConfig
from aimds_ray.core.report import MANIPULATION_CATEGORIES, Action, Category, Evidence

LEARNED_ABSENT = -4.0  # logit used when the learned model reported nothing (p below its floor of 0.05)
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
        self.platt: dict[str, tuple[float, float]] = {}
        if model is not None:
            self.detector_weights = dict(getattr(model, "detector_weights", {}) or {})
            self.platt = {k: (float(v[0]), float(v[1]))
                          for k, v in (getattr(model, "fusion_weights", {}) or {}).items()}
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

    def stack_score(self, evidence: list[Evidence]) -> float:
        return fuse(detector_features(evidence, self.manip), self.platt)

    def decide(self, evidence: list[Evidence]) -> Decision:
        cats = self.category_scores(evidence)
        manip = {c: s for c, s in cats.items() if c in self.manip}
        top_cat, top = max(manip.items(), key=lambda kv: kv[1]) if manip else ("none", 0.0)
        score = self.stack_score(evidence) if self.platt else min(1.0, top)
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


def detector_features(evidence: list[Evidence], manip: set[str]) -> dict[str, float]:
    """One number per detector: its strongest manipulation evidence (the learned model as a clipped logit;
    below its reporting floor it counts as LEARNED_ABSENT, so training and scoring see the same value)."""
    feats: dict[str, float] = {"learned": LEARNED_ABSENT}
    for e in evidence:
        if e.category not in manip and e.detector != "learned":
            continue
        if e.detector == "learned" and e.category == Category.HARMFUL_REQUEST:
            continue
        x = e.score
        if e.detector == "learned":
            p = min(max(x, 1e-4), 1 - 1e-4)
            x = math.log(p / (1 - p))
            feats[e.detector] = max(feats[e.detector], x)
        else:
            feats[e.detector] = max(feats.get(e.detector, 0.0), x)
    return feats


def fuse(feats: dict[str, float], platt: dict[str, tuple[float, float]]) -> float:
    """Noisy-OR of per-detector Platt-calibrated probabilities; detectors without calibration are ignored."""
    miss = 1.0
    for det, x in feats.items():
        ab = platt.get(det)
        if ab is None or (det != "learned" and x <= 0.0):
            continue
        z = ab[0] * x + ab[1]
        miss *= 1.0 - 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
    return 1.0 - miss
