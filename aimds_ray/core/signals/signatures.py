"""Signature families (data files in `aimds_ray/data/patterns/`) matched over every normalised view."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from aimds_ray.core.normalize import Normalized
from aimds_ray.core.report import Evidence
from aimds_ray.core.signals.base import Signal, SignalContext, register

PATTERN_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "patterns"


@dataclass(frozen=True, slots=True)
class Pattern:
    id: str
    family: str
    category: str
    score: float
    regex: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    category: str
    keywords: tuple[str, ...]
    patterns: tuple[Pattern, ...]


class PatternFileError(ValueError):
    pass


@lru_cache(maxsize=4)
def load_families(directory: str = str(PATTERN_DIR)) -> tuple[Family, ...]:
    """Read and compile every `*.yaml` family file; errors name the file and the pattern id."""
    families: list[Family] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        for i, fam in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")) or []):
            where = f"{path.name}[{i}]"
            try:
                pats = []
                for p in fam["patterns"]:
                    try:
                        rx = re.compile(p["regex"], re.DOTALL)
                    except re.error as e:
                        raise PatternFileError(f"{where} pattern {p.get('id')!r}: bad regex: {e}") from None
                    pats.append(Pattern(p["id"], fam["family"], fam["category"], float(p["score"]), rx))
                families.append(Family(fam["family"], fam["category"], tuple(k.lower() for k in fam["keywords"]),
                                       tuple(pats)))
            except KeyError as e:
                raise PatternFileError(f"{where}: missing key {e}") from None
    return tuple(families)


@register
class SignatureSignal(Signal):
    """Hand-written attack-family regexes. High precision; the learned model covers paraphrases."""

    name = "signatures"

    def __init__(self, ctx: SignalContext) -> None:
        super().__init__(ctx)
        self.families = load_families()

    def scan(self, doc: Normalized) -> list[Evidence]:
        out: list[Evidence] = []
        seen: set[tuple[str, int, int]] = set()
        for v in doc.variants:
            text = v.text
            for fam in self.families:
                if not any(k in text for k in fam.keywords):
                    continue
                for p in fam.patterns:
                    m = p.regex.search(text)
                    if m is None:
                        continue
                    s, e = v.span(*m.span())
                    key = (p.id, s, e)
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(Evidence("signatures", p.category, p.score, s, e, m.group()[:200], v.kind,
                                        f"{fam.name}/{p.id}"))
        return out
