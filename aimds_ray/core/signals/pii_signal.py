"""PII and secrets as a signal: evidence for the data_leakage category (the detector redacts them).

Three readings of the text: the original as written; the original with what hides a value from the rules undone
(zero-width characters and soft hyphens inside it, fullwidth digits; `pii.deobfuscated`), mapped back to the original
characters; and every decoded payload (a base64-encoded e-mail address), whose evidence covers the encoded run so the
redaction replaces it. The first two read the whole input at once (`scan_original`), not window by window: a private
key is longer than the windows' overlap.
"""

from __future__ import annotations

import bisect

from aimds_ray.core.normalize import Normalized
from aimds_ray.core.pii import HINT_LITERAL_SET, HINT_SET, DisjointSpans, deobfuscated, find_pii
from aimds_ray.core.report import Category, Evidence
from aimds_ray.core.signals.base import Signal, register

_SCORES = {"SECRET": 0.95, "CREDIT_CARD": 0.9, "US_SSN": 0.9, "IBAN": 0.85, "EMAIL": 0.6, "PHONE": 0.6,
           "IP_ADDRESS": 0.4}


def _evidence(entity: str, kind: str, s: int, e: int, view: str) -> Evidence:
    return Evidence("pii", Category.DATA_LEAKAGE, _SCORES[entity], s, e, f"<{entity}>", view, f"{entity.lower()}:{kind}")


@register
class PiiSignal(Signal):
    name = "pii"

    def scan(self, doc: Normalized) -> list[Evidence]:
        cfg = self.ctx.config.pii
        if not cfg.enabled:
            return []
        # printable ASCII (`gates` set): the main view is the window lower-cased, so the shared pass's hint counts
        # over it are those of the window
        hints = doc.counts.of(HINT_SET, HINT_LITERAL_SET) if doc.counts is not None and doc.gates is not None else None
        out = [] if doc.windowed else self._original(doc.original, doc.offset, doc.bits, hints)
        taken: DisjointSpans | None = None  # built when a decoded payload holds PII, which most texts have not
        for v in doc.variants[1:]:
            if v.fixed is None or not v.text:
                continue  # only decoded payloads: the other views are the original's characters, read above
            for m in find_pii(v.raw if v.raw is not None else v.text, cfg.entities):
                s, e = v.fixed
                if taken is None:
                    taken = DisjointSpans((x.start, x.end) for x in out)
                if taken.add_if_free(s, e):
                    out.append(_evidence(m.entity, m.kind, s, e, v.kind))
                break  # the whole run is redacted once
        return out

    def scan_original(self, text: str) -> list[Evidence]:
        """The readings of the original text for an input cut into windows (`Normalized.windowed`)."""
        if not self.ctx.config.pii.enabled:
            return []
        return self._original(text, 0)

    def _original(self, text: str, off: int, bits: int | None = None, hints: list[int] | None = None
                  ) -> list[Evidence]:
        entities = self.ctx.config.pii.entities
        found = find_pii(text, entities, bits, hints)
        out = [_evidence(m.entity, m.kind, m.start + off, m.end + off, "raw") for m in found]
        d = deobfuscated(text)
        if d is None:
            return out
        clean, where = d
        # the raw spans are disjoint and in order, so those a span overlaps are one run of them found by bisection
        # (a test against every raw match per match was quadratic: 100 KB of split addresses took 5 s). A value read
        # through what split it meets only raw spans: the spans read this way are disjoint and in order too.
        starts = [x.start for x in out]
        ends = [x.end for x in out]
        kept = [True] * len(out)
        added: list[Evidence] = []
        for m in find_pii(clean, entities):
            s, e = where[m.start] + off, where[m.end - 1] + 1 + off
            lo, hi = bisect.bisect_right(ends, s), bisect.bisect_left(starts, e)
            # a value read whole through the characters that split it replaces the parts read raw
            # ("jo<ZWSP>hn.smith@example.com": the raw rules see only "hn.smith@example.com"), unless a raw match
            # reaches past it
            if lo < hi and (starts[lo] < s or ends[hi - 1] > e):
                continue
            for i in range(lo, hi):
                kept[i] = False
            added.append(_evidence(m.entity, m.kind, s, e, "normalized"))
        return [x for x, k in zip(out, kept, strict=True) if k] + added
