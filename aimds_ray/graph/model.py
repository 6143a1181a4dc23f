"""Typed write records, their redaction, and the backend-neutral write plan.

Records are what callers (the serving layer, the `GraphWriter`, replays) hand to a store; they serialise to one JSON
object each so the writer can spool them to disk. `build_plan` turns a batch of records into nodes and edges once,
so both backends MERGE exactly the same things and keep the same semantics.

Texts are stored redacted: `safe_text` runs the PII finder over whatever it is given (even a report's already
sanitised text, defensively) and clips it to `TEXT_MAX_BYTES` of UTF-8: the graph is for investigations, not an
archive of prompts, and FalkorDB's Bolt endpoint cannot take large messages (see `neo4j_store`).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from aimds_ray.core.pii import find_pii, redact
from aimds_ray.core.report import Action, ThreatReport

TEXT_MAX_BYTES = 1024
ID_MAX_CHARS = 256
MAX_HOPS = 6
# Open time windows are bound as finite sentinels: every backend compares them the same way (no +/-inf quirks).
T_MIN = -1.0e18
T_MAX = 1.0e18

LABELS = ("Client", "Session", "Request", "Detection", "Response", "PolicyViolation")
# edge type -> (source label, target label): the causal model, fixed.
EDGE_TYPES: dict[str, tuple[str, str]] = {
    "OPENED": ("Client", "Session"),
    "SENT": ("Session", "Request"),
    "TRIGGERED": ("Request", "Detection"),
    "MITIGATED_BY": ("Detection", "Response"),
    "NEXT": ("Request", "Request"),
    "SIMILAR_TO": ("Detection", "Detection"),
    "VIOLATED": ("Session", "PolicyViolation"),
}


class GraphError(Exception):
    """The graph store cannot answer (unreachable server, bad URI, corrupt data)."""


def safe_text(text: Any, max_bytes: int = TEXT_MAX_BYTES) -> str:
    """Redact PII / secrets, then clip to `max_bytes` of UTF-8 on a character boundary."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False, sort_keys=True, default=str)
    text = redact(text, find_pii(text)).replace("\x00", "")
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > ID_MAX_CHARS or "\x00" in value:
        raise ValueError(f"{what}: expected a non-empty string of at most {ID_MAX_CHARS} characters (no NUL), "
                         f"got {value!r}")
    return value


def check_t(value: Any, what: str = "t") -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number (epoch seconds), got {value!r}") from None
    if not math.isfinite(t):
        raise ValueError(f"{what}: expected a finite number, got {value!r}")
    return t


def check_hops(hops: Any) -> int:
    if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS:
        raise ValueError(f"hops: expected an integer in 1..{MAX_HOPS}, got {hops!r}")
    return hops


def window(since: float | None, until: float | None) -> tuple[float, float]:
    """[since, until) as bound parameters; None means open."""
    lo = T_MIN if since is None else check_t(since, "since")
    hi = T_MAX if until is None else check_t(until, "until")
    if lo > hi:
        raise ValueError(f"since ({lo}) is after until ({hi})")
    return lo, hi


def _score(v: Any) -> float:
    return min(1.0, max(0.0, float(v)))


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One screened request. `prev_request_id` links NEXT explicitly; if None the store links the latest earlier
    request of the session (by t, then id). `client_id` "" means the client is unknown: no Client node is made
    (a session id is not a client)."""

    kind: ClassVar[str] = "request"
    request_id: str
    session_id: str
    client_id: str
    t: float
    text_redacted: str = ""
    is_threat: bool = False
    action: str = "allow"
    score: float = 0.0
    threat_type: str = "none"
    model_version: str = ""
    prev_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class DetectionRecord:
    """One threat category a request triggered. Session / client / t are copied on so queries need no joins."""

    kind: ClassVar[str] = "detection"
    detection_id: str
    request_id: str
    session_id: str
    client_id: str
    t: float
    threat_type: str
    family: str = "unknown"
    score: float = 0.0
    detector: str = ""


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """What was done about a request's detections (block, redact, escalate)."""

    kind: ClassVar[str] = "response"
    response_id: str
    request_id: str
    t: float
    action: str
    detection_ids: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SimilarityRecord:
    """Detection `src` resembles detection `dst` (from the matcher / vector search), score in [0, 1]."""

    kind: ClassVar[str] = "similar"
    src_detection_id: str
    dst_detection_id: str
    score: float


@dataclass(frozen=True, slots=True)
class ViolationRecord:
    """A session violated a policy; `witness` is the (redacted) evidence, e.g. the trace prefix."""

    kind: ClassVar[str] = "violation"
    violation_id: str
    session_id: str
    t: float
    policy: str
    witness: str = ""
    client_id: str = ""


Record = RequestRecord | DetectionRecord | ResponseRecord | SimilarityRecord | ViolationRecord
_KINDS: dict[str, type] = {c.kind: c for c in (RequestRecord, DetectionRecord, ResponseRecord, SimilarityRecord,
                                                 ViolationRecord)}


def record_to_dict(rec: Record) -> dict[str, Any]:
    d = asdict(rec)
    d["kind"] = rec.kind
    if isinstance(rec, ResponseRecord):
        d["detection_ids"] = list(rec.detection_ids)
    return d


def record_from_dict(d: dict[str, Any]) -> Record:
    d = dict(d)
    cls = _KINDS.get(d.pop("kind", None))
    if cls is None:
        raise ValueError(f"unknown record kind in {d!r}")
    if cls is ResponseRecord:
        d["detection_ids"] = tuple(d.get("detection_ids", ()))
    return cls(**d)


def family_of(evidence: Sequence[Any]) -> tuple[str, str]:
    """(family, detector) of the strongest evidence: a signature's family name, else the detector's name."""
    if not evidence:
        return "unknown", ""
    ev = max(evidence, key=lambda e: e.score)
    if ev.detector == "signatures" and "/" in ev.detail:
        return ev.detail.split("/", 1)[0], ev.detector
    if ev.detector == "pii" and ev.detail:
        return "pii_" + ev.detail.split(":", 1)[0], ev.detector
    return ev.detector or "unknown", ev.detector


def records_from_report(report: ThreatReport, session_id: str, client_id: str, t: float,
                        min_score: float = 0.5, prev_request_id: str | None = None) -> list[Record]:
    """A request node, one detection per category scoring >= min_score (plus the top type of a threat), and the
    response that mitigated them. Allowed reports get a request node only. Only `sanitized_text` is ever used."""
    request_id = report.request_id or uuid.uuid4().hex
    t = check_t(t)
    out: list[Record] = [RequestRecord(
        request_id=request_id, session_id=session_id, client_id=client_id, t=t,
        text_redacted=report.sanitized_text, is_threat=bool(report.is_threat), action=str(report.action),
        score=float(report.score), threat_type=str(report.threat_type), model_version=str(report.model_version),
        prev_request_id=prev_request_id)]
    if report.action == Action.ALLOW and not report.is_threat:
        return out
    cats = {c: float(s) for c, s in report.categories.items() if float(s) >= min_score}
    if report.is_threat and report.threat_type not in ("", "none"):
        cats.setdefault(report.threat_type, float(report.score))
    det_ids: list[str] = []
    for cat in sorted(cats):
        fam, detector = family_of([e for e in report.evidence if e.category == cat])
        did = f"{request_id}/{cat}"
        det_ids.append(did)
        out.append(DetectionRecord(detection_id=did, request_id=request_id, session_id=session_id,
                                   client_id=client_id, t=t, threat_type=cat, family=fam, score=cats[cat],
                                   detector=detector))
    if det_ids:
        out.append(ResponseRecord(response_id=f"{request_id}/response", request_id=request_id, t=t,
                                  action=str(report.action), detection_ids=tuple(det_ids)))
    return out


@dataclass
class WritePlan:
    """Nodes per label ({id: props}) and edges per type ({(src, dst): props}); later records override earlier."""

    nodes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {lb: {} for lb in LABELS})
    edges: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=lambda: {et: {} for et in EDGE_TYPES})
    # every request of the batch per session, (t, id); those whose NEXT links the store must infer; stale links
    session_reqs: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    unlinked: set[str] = field(default_factory=set)
    drop_next: set[tuple[str, str]] = field(default_factory=set)

    def node(self, label: str, node_id: str, **props: Any) -> None:
        cur = self.nodes[label].setdefault(node_id, {})
        cur.update({k: v for k, v in props.items() if v is not None})

    def edge(self, etype: str, src: str, dst: str, **props: Any) -> None:
        self.edges[etype].setdefault((src, dst), {}).update({k: v for k, v in props.items() if v is not None})

    def size(self) -> int:
        return sum(len(v) for v in self.nodes.values()) + sum(len(v) for v in self.edges.values())

    def unlinked_rows(self) -> list[tuple[str, float, str]]:
        return [(sid, t, rid) for sid, items in self.session_reqs.items() for t, rid in items if rid in self.unlinked]

    def link_next(self, stored: dict[str, tuple[tuple[float, str] | None, tuple[float, str] | None]]) -> None:
        """Splice each inferred request between its neighbours in (t, id) order among the stored requests of its
        session and this batch's: pred -> r -> succ, dropping a stale pred -> succ. Late arrivals and partial
        replays therefore give the same chain as in-order writes; replaying a stored request changes nothing."""
        for items in self.session_reqs.values():
            items = sorted(set(items))
            for i, (_t, rid) in enumerate(items):
                if rid not in self.unlinked:
                    continue
                sp, sn = stored.get(rid, (None, None))
                preds = [x for x in (items[i - 1] if i > 0 else None, sp) if x is not None]
                succs = [x for x in (items[i + 1] if i + 1 < len(items) else None, sn) if x is not None]
                pred, succ = (max(preds) if preds else None), (min(succs) if succs else None)
                if pred is not None:
                    self.edge("NEXT", pred[1], rid)
                if succ is not None:
                    self.edge("NEXT", rid, succ[1])
                if pred is not None and succ is not None:
                    self.drop_next.add((pred[1], succ[1]))
                if sp is not None and sn is not None:  # the stored edge across the gap this batch fills: with two
                    self.drop_next.add((sp[1], sn[1]))  # or more late arrivals in it, pred/succ above are their own
        self.unlinked = set()


def build_plan(records: Iterable[Record]) -> WritePlan:
    """Validate, redact and flatten records into a `WritePlan` (NEXT links are finished by the store)."""
    plan = WritePlan()
    for rec in records:
        if isinstance(rec, RequestRecord):
            rid = check_id(rec.request_id, "request_id")
            sid = check_id(rec.session_id, "session_id")
            cid = check_id(rec.client_id, "client_id") if rec.client_id else None  # "": the client is unknown
            t = check_t(rec.t)
            plan.node("Session", sid, client_id=cid)
            plan.node("Request", rid, session_id=sid, client_id=cid, t=t, text=safe_text(rec.text_redacted),
                      is_threat=bool(rec.is_threat), action=str(rec.action), score=_score(rec.score),
                      threat_type=str(rec.threat_type), model_version=str(rec.model_version))
            if cid is not None:
                plan.node("Client", cid)
                plan.edge("OPENED", cid, sid)
            plan.edge("SENT", sid, rid)
            plan.session_reqs.setdefault(sid, []).append((t, rid))
            if rec.prev_request_id:
                plan.edge("NEXT", check_id(rec.prev_request_id, "prev_request_id"), rid)
            else:
                plan.unlinked.add(rid)
        elif isinstance(rec, DetectionRecord):
            did = check_id(rec.detection_id, "detection_id")
            rid = check_id(rec.request_id, "request_id")
            plan.node("Detection", did, request_id=rid, session_id=check_id(rec.session_id, "session_id"),
                      client_id=check_id(rec.client_id, "client_id") if rec.client_id else None, t=check_t(rec.t),
                      threat_type=str(rec.threat_type), family=str(rec.family), score=_score(rec.score),
                      detector=str(rec.detector))
            plan.edge("TRIGGERED", rid, did)
        elif isinstance(rec, ResponseRecord):
            xid = check_id(rec.response_id, "response_id")
            plan.node("Response", xid, request_id=check_id(rec.request_id, "request_id"), t=check_t(rec.t),
                      action=str(rec.action), detail=safe_text(rec.detail))
            for did in rec.detection_ids:
                plan.edge("MITIGATED_BY", check_id(did, "detection_ids[]"), xid)
        elif isinstance(rec, SimilarityRecord):
            a = check_id(rec.src_detection_id, "src_detection_id")
            b = check_id(rec.dst_detection_id, "dst_detection_id")
            if a != b:
                plan.edge("SIMILAR_TO", a, b, score=_score(rec.score))
        elif isinstance(rec, ViolationRecord):
            vid = check_id(rec.violation_id, "violation_id")
            sid = check_id(rec.session_id, "session_id")
            plan.node("PolicyViolation", vid, session_id=sid, t=check_t(rec.t), policy=str(rec.policy),
                      witness=safe_text(rec.witness))
            if rec.client_id:
                plan.node("Session", sid, client_id=check_id(rec.client_id, "client_id"))
                plan.node("Client", rec.client_id)
                plan.edge("OPENED", rec.client_id, sid)
            plan.edge("VIOLATED", sid, vid)
        else:
            raise TypeError(f"not a graph record: {type(rec).__name__}")
    return plan
