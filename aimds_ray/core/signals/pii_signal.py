"""PII and secrets as a signal: evidence for the data_leakage category (the detector redacts them)."""

from __future__ import annotations

from aimds_ray.core.normalize import Normalized
from aimds_ray.core.pii import find_pii
from aimds_ray.core.report import Category, Evidence
from aimds_ray.core.signals.base import Signal, register

_SCORES = {"SECRET": 0.95, "CREDIT_CARD": 0.9, "US_SSN": 0.9, "IBAN": 0.85, "EMAIL": 0.6, "PHONE": 0.6,
           "IP_ADDRESS": 0.4}


@register
class PiiSignal(Signal):
    name = "pii"

    def scan(self, doc: Normalized) -> list[Evidence]:
        cfg = self.ctx.config.pii
        if not cfg.enabled:
            return []
        off = doc.offset
        return [
            Evidence("pii", Category.DATA_LEAKAGE, _SCORES[m.entity], m.start + off, m.end + off, f"<{m.entity}>", "raw",
                     f"{m.entity.lower()}:{m.kind}")
            for m in find_pii(doc.original, cfg.entities, doc.gates)
        ]
