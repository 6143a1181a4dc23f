"""PII and secrets as a signal: evidence for the data_leakage category (the detector redacts them).

Three readings of the text: the original as written; the original with what hides a value from the rules undone
(zero-width characters and soft hyphens inside it, fullwidth digits; `pii.deobfuscated`), mapped back to the original
characters; and every decoded payload (a base64-encoded e-mail address), whose evidence covers the encoded run so the
redaction replaces it. The first two read the whole input at once (`scan_original`), not window by window: a private
key is longer than the windows' overlap.
"""

from __future__ import annotations

from aimds_ray.core.normalize import Normalized
from aimds_ray.core.pii import deobfuscated, find_pii
from aimds_ray.core.report import Category, Evidence
from aimds_ray.core.signals.base import Signal, register

_SCORES = {"SECRET": 0.95, "CREDIT_CARD": 0.9, "US_SSN": 0.9, "IBAN": 0.85, "EMAIL": 0.6, "PHONE": 0.6,
           "IP_ADDRESS": 0.4}


def _evidence(entity: str, kind: str, s: int, e: int, view: str) -> Evidence:
    return Evidence("pii", Category.DATA_LEAKAGE, _SCORES[entity], s, e, f"<{entity}>", view, f"{entity.lower()}:{kind}")


def _free(taken: list[tuple[int, int]], s: int, e: int) -> bool:
    return not any(s < te and ts < e for ts, te in taken)


@register
class PiiSignal(Signal):
    name = "pii"

    def scan(self, doc: Normalized) -> list[Evidence]:
        cfg = self.ctx.config.pii
        if not cfg.enabled:
            return []
        out = [] if doc.windowed else self._original(doc.original, doc.gates, doc.offset)
        taken = [(e.start, e.end) for e in out]
        for v in doc.variants[1:]:
            if v.fixed is None or not v.text:
                continue  # only decoded payloads: the other views are the original's characters, read above
            for m in find_pii(v.raw if v.raw is not None else v.text, cfg.entities):
                s, e = v.fixed
                if _free(taken, s, e):
                    out.append(_evidence(m.entity, m.kind, s, e, v.kind))
                    taken.append((s, e))
                break  # the whole run is redacted once
        return out

    def scan_original(self, text: str) -> list[Evidence]:
        """The readings of the original text for an input cut into windows (`Normalized.windowed`)."""
        if not self.ctx.config.pii.enabled:
            return []
        return self._original(text, None, 0)

    def _original(self, text: str, gates: int | None, off: int) -> list[Evidence]:
        entities = self.ctx.config.pii.entities
        found = find_pii(text, entities, gates)
        out = [_evidence(m.entity, m.kind, m.start + off, m.end + off, "raw") for m in found]
        d = deobfuscated(text)
        if d is not None:
            clean, where = d
            for m in find_pii(clean, entities):
                s, e = where[m.start] + off, where[m.end - 1] + 1 + off
                # a value read whole through the characters that split it replaces the parts read raw
                # ("jo<ZWSP>hn.smith@example.com": the raw rules see only "hn.smith@example.com")
                inside = [x for x in out if s <= x.start and x.end <= e]
                if len(inside) == sum(1 for x in out if x.start < e and s < x.end):
                    out = [x for x in out if x not in inside]
                    out.append(_evidence(m.entity, m.kind, s, e, "normalized"))
        return out
