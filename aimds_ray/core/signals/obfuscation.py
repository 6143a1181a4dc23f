"""Signals over what normalisation found (invisible characters, homoglyphs, encoded payloads) and token floods."""

from __future__ import annotations

from aimds_ray.core import asciigates as G
from aimds_ray.core.normalize import Normalized
from aimds_ray.core.repetition import closer_run, longest_run
from aimds_ray.core.report import Category, Evidence
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


def _underline(text: str, s: int, e: int) -> bool:
    """The run is a reStructuredText/Setext heading underline: a whole line of one repeated character right under
    a line of text (CMake's manuals underline with '"'), which is formatting, not an escape attempt."""
    ls = text.rfind("\n", 0, s) + 1
    le = text.find("\n", e)
    line = text[ls : len(text) if le < 0 else le].strip()
    if not line or line != line[0] * len(line) or ls == 0:
        return False
    above = text[text.rfind("\n", 0, ls - 1) + 1 : ls - 1].strip()
    return bool(above) and above[0] != line[0]


@register
class FloodSignal(Signal):
    """One short token repeated back to back dozens of times, or dozens of closing delimiters in a row: context
    flooding and context escape (prose never does either; code closes a few brackets at a time)."""

    name = "flood"

    def scan(self, doc: Normalized) -> list[Evidence]:
        cfg = self.ctx.config.detector.flood
        g = doc.gates
        tokens = not (g is not None and not g & G.SHORT_RUN and cfg.min_run >= G.SHORT_RUN_TOKENS
                      and cfg.max_token_chars <= 4)
        closers = not (g is not None and not g & G.CLOSERS and cfg.min_closers >= G.CLOSER_RUN)
        if not (tokens or closers):
            return []  # plain ASCII without a run of short tokens or of closers: no flood is possible
        text = doc.original
        out: list[Evidence] = []
        if tokens:
            run, s, e = longest_run(text, cfg.max_token_chars)
            if run >= cfg.min_run:
                tok = text[s:e].split(maxsplit=1)[0]
                score = min(1.0, 0.5 + 0.5 * (run - cfg.min_run) / max(1, cfg.full_run - cfg.min_run))
                out.append(Evidence(self.name, Category.PROMPT_INJECTION, round(score, 6), doc.offset + s,
                                    doc.offset + e, text[s : min(e, s + 40)], "raw",
                                    f"token {tok!r} repeated {run} times back to back"))
        if closers:
            run, s, e = closer_run(text)
            if run >= cfg.min_closers and not _underline(text, s, e):
                score = min(1.0, 0.5 + 0.5 * (run - cfg.min_closers) / cfg.min_closers)
                out.append(Evidence(self.name, Category.PROMPT_INJECTION, round(score, 6), doc.offset + s,
                                    doc.offset + e, text[s : min(e, s + 40)], "raw",
                                    f"{run} closing delimiters in a row (an attempt to escape the prompt's quoting)"))
        return out
