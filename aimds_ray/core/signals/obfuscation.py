"""Signals over what normalisation found: invisible characters, homoglyphs and encoded payloads."""

from __future__ import annotations

from aimds_ray.core.normalize import Normalized
from aimds_ray.core.report import Evidence
from aimds_ray.core.signals.base import Signal, register


@register
class InvisibleSignal(Signal):
    """Zero-width, bidi and tag characters removed by normalisation, and words mixing scripts."""

    name = "invisible"

    def scan(self, doc: Normalized) -> list[Evidence]:
        return [e for e in doc.evidence if e.detector == "invisible"]


@register
class EncodingSignal(Signal):
    """Decoded payloads (base64, hex, url, rot13, reversed, tag characters). Alone they are weak evidence; the
    detector raises them when another signal fires inside the decoded text."""

    name = "encoding"

    def scan(self, doc: Normalized) -> list[Evidence]:
        return [e for e in doc.evidence if e.detector == "encoding"]
