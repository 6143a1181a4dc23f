"""The report schema: what a scan says about one text.

A `ThreatReport` is the one object every layer passes on (CLI, HTTP, HTTP/3, Ray Data, graph, audit). Its JSON form
is a contract: `to_dict()` / `from_dict()` round-trip exactly, keys are stable, and new keys are only ever added.

JSON schema (schema_version 1)::

    {
      "schema_version": 1,
      "request_id": str,              # caller's id or a random uuid4 hex
      "is_threat": bool,              # a manipulation attempt (not merely PII)
      "action": "allow" | "redact" | "block" | "escalate",
      "score": float,                 # [0, 1], the fused threat probability
      "threat_type": str,             # top category, or "none"
      "categories": {name: float},    # per-category scores in [0, 1]
      "evidence": [                   # what matched and where
        {"detector": str, "category": str, "score": float,
         "start": int, "end": int,    # character span in the ORIGINAL text, end exclusive
         "match": str,                # the matched text (redacted when it is PII)
         "variant": str,              # "raw", "normalized", "base64", "rot13", ... where it was found
         "detail": str}
      ],
      "sanitized_text": str,          # the original text with PII / secrets redacted
      "latency_us": float,            # measured wall time of the scan
      "model_version": str,
      "input_chars": int,
      "windows": int,                 # how many windows a long input was scanned in
      "deep_analysis": str,           # "none" | "pending" | "done" | "unavailable"
      "degraded": [str],              # components that could not answer (distributed mode)
      "extra": {}                     # session / policy / attractor results when present
    }
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class Action(StrEnum):
    ALLOW = "allow"
    REDACT = "redact"
    BLOCK = "block"
    ESCALATE = "escalate"


# how strongly each action acts, to combine verdicts (a stream's chunks, a conversation's messages); keyed by the
# enum, which also answers to its string ("block")
ACTION_SEVERITY = {Action.ALLOW: 0, Action.REDACT: 1, Action.ESCALATE: 2, Action.BLOCK: 3}


class Category(StrEnum):
    """Threat categories. Manipulation categories make `is_threat`; data leakage makes `action=redact`."""

    PROMPT_INJECTION = "prompt_injection"
    JAILBREAK = "jailbreak"
    PROMPT_EXTRACTION = "prompt_extraction"
    INDIRECT_INJECTION = "indirect_injection"
    EXFILTRATION = "exfiltration"
    ENCODING_OBFUSCATION = "encoding_obfuscation"
    ADVERSARIAL_SUFFIX = "adversarial_suffix"
    DATA_LEAKAGE = "data_leakage"
    HARMFUL_REQUEST = "harmful_request"


MANIPULATION_CATEGORIES: frozenset[str] = frozenset(
    {
        Category.PROMPT_INJECTION,
        Category.JAILBREAK,
        Category.PROMPT_EXTRACTION,
        Category.INDIRECT_INJECTION,
        Category.EXFILTRATION,
        Category.ENCODING_OBFUSCATION,
        Category.ADVERSARIAL_SUFFIX,
    }
)


@dataclass(slots=True)
class Evidence:
    detector: str
    category: str
    score: float
    start: int
    end: int
    match: str
    variant: str = "raw"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "category": str(self.category), "score": self.score, "start": self.start,
                "end": self.end, "match": self.match, "variant": self.variant, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        return cls(
            detector=str(d["detector"]),
            category=str(d["category"]),
            score=float(d["score"]),
            start=int(d["start"]),
            end=int(d["end"]),
            match=str(d.get("match", "")),
            variant=str(d.get("variant", "raw")),
            detail=str(d.get("detail", "")),
        )


@dataclass(slots=True)
class ThreatReport:
    is_threat: bool
    action: Action
    score: float
    threat_type: str
    categories: dict[str, float]
    evidence: list[Evidence]
    sanitized_text: str
    latency_us: float
    model_version: str
    request_id: str = ""
    input_chars: int = 0
    windows: int = 1
    deep_analysis: str = "none"
    degraded: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "request_id": self.request_id,
            "is_threat": self.is_threat,
            "action": str(self.action),
            "score": self.score,
            "threat_type": self.threat_type,
            "categories": dict(self.categories),
            "evidence": [e.to_dict() for e in self.evidence],
            "sanitized_text": self.sanitized_text,
            "latency_us": self.latency_us,
            "model_version": self.model_version,
            "input_chars": self.input_chars,
            "windows": self.windows,
            "deep_analysis": self.deep_analysis,
            "degraded": list(self.degraded),
            "extra": self.extra,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, sort_keys=indent is not None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThreatReport:
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported ThreatReport schema_version {version!r}")
        return cls(
            is_threat=bool(d["is_threat"]),
            action=Action(d["action"]),
            score=float(d["score"]),
            threat_type=str(d["threat_type"]),
            categories={str(k): float(v) for k, v in d.get("categories", {}).items()},
            evidence=[Evidence.from_dict(e) for e in d.get("evidence", [])],
            sanitized_text=str(d.get("sanitized_text", "")),
            latency_us=float(d.get("latency_us", 0.0)),
            model_version=str(d.get("model_version", "")),
            request_id=str(d.get("request_id", "")),
            input_chars=int(d.get("input_chars", 0)),
            windows=int(d.get("windows", 1)),
            deep_analysis=str(d.get("deep_analysis", "none")),
            degraded=[str(x) for x in d.get("degraded", [])],
            extra=dict(d.get("extra", {})),
        )

    @classmethod
    def from_json(cls, s: str) -> ThreatReport:
        return cls.from_dict(json.loads(s))
