"""`GraphStore`: the one interface both backends implement.

The public query methods are written once here, over a handful of small backend primitives (`_fetch_*`), so the
embedded and the Bolt backends return byte-for-byte the same JSON-ready structures; only the primitives are
SQL or Cypher. Every result is plain dicts / lists / floats / strings, ordered deterministically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from aimds_ray.core.report import ThreatReport
from aimds_ray.graph.model import (
    Record,
    WritePlan,
    build_plan,
    check_hops,
    check_id,
    records_from_report,
    window,
)

REQUEST_FIELDS = ("request_id", "t", "text", "is_threat", "action", "score", "threat_type", "model_version")
DETECTION_FIELDS = ("detection_id", "request_id", "session_id", "client_id", "t", "threat_type", "family", "score",
                    "detector")
RESPONSE_FIELDS = ("response_id", "action", "t", "detail")
VIOLATION_FIELDS = ("violation_id", "policy", "witness", "t")


def _norm(row: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """One shape for both backends: missing -> None, numbers -> float, flags -> bool."""
    out: dict[str, Any] = {}
    for f in fields:
        v = row.get(f)
        if v is not None and f in ("t", "score"):
            v = float(v)
        elif v is not None and f == "is_threat":
            v = bool(v)
        out[f] = v
    return out


def _order_key(row: dict[str, Any]) -> tuple[float, str]:
    t = row.get("t")
    return (float("-inf") if t is None else float(t), str(row.get("request_id") or row.get("violation_id") or ""))


class GraphStore(ABC):
    """Causal memory graph: (Client)-[:OPENED]->(Session)-[:SENT]->(Request)-[:TRIGGERED]->(Detection)
    -[:MITIGATED_BY]->(Response), NEXT between a session's requests, SIMILAR_TO between detections, VIOLATED from a
    session to a PolicyViolation. Writes are idempotent (MERGE on stable ids)."""

    backend: str = "abstract"

    # ---- writes -------------------------------------------------------------------------------------------------
    def write_batch(self, records: Iterable[Record]) -> int:
        """Write records idempotently in one batch; returns how many records were written."""
        recs = list(records)
        if not recs:
            return 0
        plan = build_plan(recs)
        if plan.unlinked:
            plan.link_next(self._neighbours(plan.unlinked_rows()))
            plan.drop_next -= set(plan.edges["NEXT"])
        self._write_plan(plan)
        return len(recs)

    def record_report(self, report: ThreatReport, session_id: str, client_id: str, t: float,
                      min_score: float = 0.5) -> list[Record]:
        """Store a scan result (request + detections + response); returns the records written."""
        recs = records_from_report(report, session_id, client_id, t, min_score=min_score)
        self.write_batch(recs)
        return recs

    # ---- queries ------------------------------------------------------------------------------------------------
    def attack_chain(self, session_id: str) -> dict[str, Any] | None:
        """The session's requests in order, each with its detections and their responses, the NEXT links and the
        policy violations; None if the session is unknown."""
        check_id(session_id, "session_id")
        sess = self._fetch_session(session_id)
        if sess is None:
            return None
        requests = self._assemble_requests(self._fetch_requests(session_id, None, None))
        return {
            "session_id": session_id,
            "client_id": sess.get("client_id"),
            "requests": requests,
            "next": sorted([a, b] for a, b in self._fetch_next(session_id)),
            "violations": self._violations(session_id, None),
        }

    def related_attacks(self, threat_type: str, hops: int = 2, since: float | None = None,
                        until: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Detections within `hops` relationships (any type, either direction) of a detection of `threat_type`,
        both inside [since, until); each with its shortest distance. Ordered by hops, newest first, id."""
        if not isinstance(threat_type, str) or not threat_type:
            raise ValueError(f"threat_type: expected a non-empty string, got {threat_type!r}")
        hops = check_hops(hops)
        lo, hi = window(since, until)
        limit = _check_limit(limit)
        rows = self._fetch_related(threat_type, hops, lo, hi, limit)
        out = []
        for r in rows:
            d = _norm(r, DETECTION_FIELDS)
            d["hops"] = int(r["hops"])
            out.append(d)
        out.sort(key=lambda d: (d["hops"], -(d["t"] or 0.0), d["detection_id"]))
        return out[:limit]

    def top_families(self, since: float | None = None, until: float | None = None,
                     limit: int = 10) -> list[dict[str, Any]]:
        """Attack families by detections in [since, until), with distinct sessions / clients and first/last seen."""
        lo, hi = window(since, until)
        limit = _check_limit(limit)
        out = []
        for r in self._fetch_families(lo, hi):
            out.append({"threat_type": r["threat_type"], "family": r["family"], "detections": int(r["n"]),
                        "sessions": int(r["sessions"]), "clients": int(r["clients"]),
                        "first_t": float(r["first_t"]), "last_t": float(r["last_t"])})
        out.sort(key=lambda d: (-d["detections"], str(d["threat_type"]), str(d["family"])))
        return out[:limit]

    def campaigns(self, since: float | None = None, until: float | None = None, min_similarity: float = 0.8,
                  min_clients: int = 2) -> list[dict[str, Any]]:
        """Clients linked by SIMILAR_TO detections (score >= min_similarity, both in the window), grouped into
        connected components of at least `min_clients` clients. Largest first."""
        lo, hi = window(since, until)
        m = float(min_similarity)
        if not 0.0 <= m <= 1.0:
            raise ValueError(f"min_similarity: expected a number in [0, 1], got {min_similarity!r}")
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        links = list(self._fetch_similar_pairs(lo, hi, m))
        for p in links:
            ra, rb = find(p["a_client"]), find(p["b_client"])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        groups: dict[str, dict[str, Any]] = {}
        for p in links:
            g = groups.setdefault(find(p["a_client"]), {"clients": set(), "detections": set(), "families": set(),
                                                        "links": 0, "first_t": float("inf"),
                                                        "last_t": float("-inf"), "max_similarity": 0.0})
            g["clients"].update((p["a_client"], p["b_client"]))
            g["detections"].update((p["a_id"], p["b_id"]))
            g["families"].update((f"{p['a_type']}/{p['a_family']}", f"{p['b_type']}/{p['b_family']}"))
            g["links"] += 1
            g["first_t"] = min(g["first_t"], float(p["a_t"]), float(p["b_t"]))
            g["last_t"] = max(g["last_t"], float(p["a_t"]), float(p["b_t"]))
            g["max_similarity"] = max(g["max_similarity"], float(p["score"]))
        out = []
        for root, g in groups.items():
            if len(g["clients"]) < max(2, int(min_clients)):
                continue
            out.append({"campaign_id": root, "clients": sorted(g["clients"]), "detections": len(g["detections"]),
                        "links": g["links"], "families": sorted(g["families"]), "first_t": g["first_t"],
                        "last_t": g["last_t"], "max_similarity": g["max_similarity"]})
        out.sort(key=lambda c: (-len(c["clients"]), c["campaign_id"]))
        return out

    def what_followed(self, detection_id: str, limit: int = 20) -> dict[str, Any] | None:
        """The detection, the responses that mitigated it, the next `limit` requests of its session (with their
        detections) and the session's policy violations from then on; None if unknown."""
        check_id(detection_id, "detection_id")
        limit = _check_limit(limit)
        det = self._fetch_detection(detection_id)
        if det is None or det.get("t") is None or not det.get("session_id"):
            return None
        det = _norm(det, DETECTION_FIELDS)
        resp = self._responses_by_detection([detection_id]).get(detection_id, [])
        after = (det["t"], det["request_id"] or "")
        following = self._assemble_requests(self._fetch_requests(det["session_id"], after, limit))
        return {"detection": det, "responses": resp, "following": following,
                "violations": self._violations(det["session_id"], det["t"])}

    def counts(self) -> dict[str, int]:
        """Nodes per label and edges per type (for tests, stats and the CLI)."""
        return self._fetch_counts()

    # ---- assembly helpers ---------------------------------------------------------------------------------------
    def _assemble_requests(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        reqs = sorted((_norm(r, REQUEST_FIELDS) for r in rows), key=_order_key)
        dets = [_norm(d, DETECTION_FIELDS) for d in self._fetch_detections([r["request_id"] for r in reqs])]
        resp = self._responses_by_detection([d["detection_id"] for d in dets])
        by_req: dict[str, list[dict[str, Any]]] = {}
        for d in sorted(dets, key=lambda d: d["detection_id"]):
            item = {k: d[k] for k in ("detection_id", "threat_type", "family", "score", "detector")}
            item["responses"] = resp.get(d["detection_id"], [])
            by_req.setdefault(d["request_id"], []).append(item)
        for r in reqs:
            r["detections"] = by_req.get(r["request_id"], [])
        return reqs

    def _responses_by_detection(self, detection_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        if not detection_ids:
            return out
        for did, row in self._fetch_responses(detection_ids):
            out.setdefault(did, []).append(_norm(row, RESPONSE_FIELDS))
        for v in out.values():
            v.sort(key=lambda x: (x["t"] if x["t"] is not None else float("-inf"), x["response_id"]))
        return out

    def _violations(self, session_id: str, since: float | None) -> list[dict[str, Any]]:
        rows = [_norm(v, VIOLATION_FIELDS) for v in self._fetch_violations(session_id)]
        if since is not None:
            rows = [v for v in rows if v["t"] is not None and v["t"] >= since]
        return sorted(rows, key=_order_key)

    # ---- backend primitives -------------------------------------------------------------------------------------
    @abstractmethod
    def _write_plan(self, plan: WritePlan) -> None: ...

    @abstractmethod
    def _neighbours(self, rows: list[tuple[str, float, str]]
                    ) -> dict[str, tuple[tuple[float, str] | None, tuple[float, str] | None]]:
        """For each (session, t, request id): the stored request of that session just before and just after it in
        (t, id) order, as (t, id), excluding the request itself."""

    @abstractmethod
    def _fetch_session(self, session_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _fetch_requests(self, session_id: str, after: tuple[float, str] | None,
                        limit: int | None) -> list[dict[str, Any]]:
        """Requests of a session ordered by (t, id), only those strictly after `after` when given."""

    @abstractmethod
    def _fetch_detections(self, request_ids: list[str]) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _fetch_responses(self, detection_ids: list[str]) -> list[tuple[str, dict[str, Any]]]: ...

    @abstractmethod
    def _fetch_next(self, session_id: str) -> list[tuple[str, str]]: ...

    @abstractmethod
    def _fetch_violations(self, session_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _fetch_detection(self, detection_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _fetch_related(self, threat_type: str, hops: int, lo: float, hi: float,
                       limit: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _fetch_families(self, lo: float, hi: float) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _fetch_similar_pairs(self, lo: float, hi: float, min_score: float) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _fetch_counts(self) -> dict[str, int]: ...

    @abstractmethod
    def clear(self) -> None:
        """Delete every node and edge (tests, benchmarks, `aimds graph` maintenance)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise ValueError(f"limit: expected an integer in 1..100000, got {limit!r}")
    return limit
