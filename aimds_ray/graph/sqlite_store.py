"""Embedded backend: the causal graph in one SQLite file (stdlib `sqlite3`), no server needed.

Why SQLite: it ships with Python, survives restarts (WAL, `synchronous=FULL` so a committed batch is on disk), and
its recursive CTEs walk k hops as a graph database would. The property graph is two tables: `nodes` keyed by
"Label:id" (labels are separate id namespaces, as in Neo4j) with the columns the queries filter on promoted out of
the JSON `props`, and `edges` (src, type, dst) indexed both ways so a hop in either direction is an index probe.
Upserts merge properties like Cypher's `MERGE ... SET n += props`; edges to nodes not yet written create id-only
placeholder nodes, like `MERGE` on the endpoints does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from aimds_ray.graph.base import GraphStore
from aimds_ray.graph.model import EDGE_TYPES, LABELS, GraphError, WritePlan

_PROMOTED = ("t", "session_id", "client_id", "request_id", "threat_type", "family", "score")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    key TEXT PRIMARY KEY, label TEXT NOT NULL, id TEXT NOT NULL,
    t REAL, session_id TEXT, client_id TEXT, request_id TEXT, threat_type TEXT, family TEXT, score REAL,
    props TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nodes_type_t ON nodes(label, threat_type, t);
CREATE INDEX IF NOT EXISTS nodes_session_t ON nodes(label, session_id, t, id);
CREATE INDEX IF NOT EXISTS nodes_request ON nodes(label, request_id);
CREATE INDEX IF NOT EXISTS nodes_label_t ON nodes(label, t);
CREATE TABLE IF NOT EXISTS edges (
    src TEXT NOT NULL, type TEXT NOT NULL, dst TEXT NOT NULL, score REAL,
    PRIMARY KEY (src, type, dst)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_dst ON edges(dst, type, src);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
INSERT OR IGNORE INTO meta(k, v) VALUES ('schema_version', '1');
"""

_UPSERT = """
INSERT INTO nodes(key, label, id, t, session_id, client_id, request_id, threat_type, family, score, props)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET
    t = coalesce(excluded.t, t), session_id = coalesce(excluded.session_id, session_id),
    client_id = coalesce(excluded.client_id, client_id), request_id = coalesce(excluded.request_id, request_id),
    threat_type = coalesce(excluded.threat_type, threat_type), family = coalesce(excluded.family, family),
    score = coalesce(excluded.score, score), props = json_patch(props, excluded.props)
"""

# k-hop walk, either direction, remembering which seed each walk started from so a seed is never "related" to
# itself; the shortest walk between two distinct nodes is a path, so min(d) equals Cypher's min(length(p)).
_RELATED = """
WITH RECURSIVE
  walk(origin, key, d) AS (
    SELECT key, key, 0 FROM nodes
     WHERE label = 'Detection' AND threat_type = :tt AND t >= :lo AND t < :hi
    UNION
    SELECT w.origin, e.dst, w.d + 1 FROM walk w JOIN edges e ON e.src = w.key WHERE w.d < :hops
    UNION
    SELECT w.origin, e.src, w.d + 1 FROM walk w JOIN edges e ON e.dst = w.key WHERE w.d < :hops
  )
SELECT n.id AS detection_id, n.request_id, n.session_id, n.client_id, n.t, n.threat_type, n.family, n.score,
       json_extract(n.props, '$.detector') AS detector, min(w.d) AS hops
  FROM walk w JOIN nodes n ON n.key = w.key
 WHERE w.key != w.origin AND n.label = 'Detection' AND n.t >= :lo AND n.t < :hi
 GROUP BY n.key
 ORDER BY hops, n.t DESC, n.id
 LIMIT :limit
"""


def _key(label: str, node_id: str) -> str:
    return f"{label}:{node_id}"


class SqliteGraphStore(GraphStore):
    """The embedded default; thread-safe (one connection, one lock: SQLite serialises writers anyway)."""

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike[str] | None = None, timeout_s: float = 10.0) -> None:
        if path is None:
            from aimds_ray.core.config import aimds_home

            path = aimds_home() / "graph.db"
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=timeout_s, check_same_thread=False,
                                       isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise GraphError(f"cannot open graph database {self.path}: {e}") from e
        self._lock = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteGraphStore({str(self.path)!r})"

    # ---- plumbing -----------------------------------------------------------------------------------------------
    def _q(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._closed:
                raise GraphError("graph store is closed")
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise GraphError(f"graph query failed: {e}") from e

    def _q_in(self, sql: str, ids: list[str], extra: tuple = ()) -> list[sqlite3.Row]:
        """`sql` has one `{ids}` placeholder list; chunked under SQLite's variable limit."""
        out: list[sqlite3.Row] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out.extend(self._q(sql.replace("{ids}", ",".join("?" * len(chunk))), (*extra, *chunk)))
        return out

    def clear(self) -> None:
        """Delete every node and edge."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM edges")
            self._db.execute("DELETE FROM nodes")
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # ---- writes -------------------------------------------------------------------------------------------------
    def _write_plan(self, plan: WritePlan) -> None:
        node_rows = []
        for label in LABELS:
            for nid, props in plan.nodes[label].items():
                rest = {k: v for k, v in props.items() if k not in _PROMOTED}
                node_rows.append((_key(label, nid), label, nid, *(props.get(k) for k in _PROMOTED),
                                  json.dumps(rest, ensure_ascii=False, sort_keys=True)))
        placeholders = []
        edge_rows = []
        for etype, (sl, dl) in EDGE_TYPES.items():
            for (a, b), props in plan.edges[etype].items():
                placeholders.append((_key(sl, a), sl, a))
                placeholders.append((_key(dl, b), dl, b))
                edge_rows.append((_key(sl, a), etype, _key(dl, b), props.get("score")))
        with self._lock:
            if self._closed:
                raise GraphError("graph store is closed")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("DELETE FROM edges WHERE src = ? AND type = 'NEXT' AND dst = ?",
                                         [(_key("Request", a), _key("Request", b)) for a, b in plan.drop_next])
                    self._db.executemany(_UPSERT, node_rows)
                    self._db.executemany("INSERT OR IGNORE INTO nodes(key, label, id) VALUES (?, ?, ?)",
                                         placeholders)
                    self._db.executemany(
                        "INSERT INTO edges(src, type, dst, score) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(src, type, dst) DO UPDATE SET score = coalesce(excluded.score, score)",
                        edge_rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise GraphError(f"graph write failed: {e}") from e

    def _neighbours(self, rows: list[tuple[str, float, str]]
                    ) -> dict[str, tuple[tuple[float, str] | None, tuple[float, str] | None]]:
        out: dict[str, tuple[tuple[float, str] | None, tuple[float, str] | None]] = {}
        for sid, t, rid in rows:
            p = self._q("SELECT t, id FROM nodes WHERE label = 'Request' AND session_id = ? "
                        "AND (t < ? OR (t = ? AND id < ?)) ORDER BY t DESC, id DESC LIMIT 1", (sid, t, t, rid))
            n = self._q("SELECT t, id FROM nodes WHERE label = 'Request' AND session_id = ? "
                        "AND (t > ? OR (t = ? AND id > ?)) ORDER BY t, id LIMIT 1", (sid, t, t, rid))
            out[rid] = ((p[0]["t"], p[0]["id"]) if p else None, (n[0]["t"], n[0]["id"]) if n else None)
        return out

    # ---- primitives ---------------------------------------------------------------------------------------------
    @staticmethod
    def _row(r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        props = d.pop("props", None)
        if props:
            d.update(json.loads(props))
        return d

    def _fetch_session(self, session_id: str) -> dict[str, Any] | None:
        rows = self._q("SELECT client_id FROM nodes WHERE key = ?", (_key("Session", session_id),))
        return dict(rows[0]) if rows else None

    def _fetch_requests(self, session_id: str, after: tuple[float, str] | None,
                        limit: int | None) -> list[dict[str, Any]]:
        lo_t, lo_id = after if after is not None else (-1.0e308, "")
        rows = self._q(
            "SELECT id AS request_id, t, score, threat_type, props FROM nodes WHERE label = 'Request' AND session_id = ? "
            "AND t IS NOT NULL AND (t > ? OR (t = ? AND id > ?)) ORDER BY t, id LIMIT ?",
            (session_id, lo_t, lo_t, lo_id, -1 if limit is None else limit))
        return [self._row(r) for r in rows]

    def _fetch_detections(self, request_ids: list[str]) -> list[dict[str, Any]]:
        rows = self._q_in(
            "SELECT id AS detection_id, request_id, session_id, client_id, t, threat_type, family, score, props "
            "FROM nodes WHERE label = 'Detection' AND request_id IN ({ids})", request_ids)
        return [self._row(r) for r in rows]

    def _fetch_responses(self, detection_ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        keys = [_key("Detection", d) for d in detection_ids]
        rows = self._q_in(
            "SELECT substr(e.src, 11) AS did, n.id AS response_id, n.t, n.props FROM edges e "
            "JOIN nodes n ON n.key = e.dst WHERE e.type = 'MITIGATED_BY' AND e.src IN ({ids})", keys)
        out = []
        for r in rows:
            d = self._row(r)
            out.append((d.pop("did"), d))
        return out

    def _fetch_next(self, session_id: str) -> list[tuple[str, str]]:
        rows = self._q(
            "SELECT a.id AS a, b.id AS b FROM nodes a JOIN edges e ON e.src = a.key AND e.type = 'NEXT' "
            "JOIN nodes b ON b.key = e.dst WHERE a.label = 'Request' AND a.session_id = ?", (session_id,))
        return [(r["a"], r["b"]) for r in rows]

    def _fetch_violations(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._q(
            "SELECT n.id AS violation_id, n.t, n.props FROM edges e JOIN nodes n ON n.key = e.dst "
            "WHERE e.src = ? AND e.type = 'VIOLATED'", (_key("Session", session_id),))
        return [self._row(r) for r in rows]

    def _fetch_detection(self, detection_id: str) -> dict[str, Any] | None:
        rows = self._q(
            "SELECT id AS detection_id, request_id, session_id, client_id, t, threat_type, family, score, props "
            "FROM nodes WHERE key = ?", (_key("Detection", detection_id),))
        return self._row(rows[0]) if rows else None

    def _fetch_related(self, threat_type: str, hops: int, lo: float, hi: float,
                       limit: int) -> list[dict[str, Any]]:
        rows = self._q(_RELATED, {"tt": threat_type, "lo": lo, "hi": hi, "hops": hops, "limit": limit})
        return [dict(r) for r in rows]

    def _fetch_families(self, lo: float, hi: float) -> list[dict[str, Any]]:
        rows = self._q(
            "SELECT threat_type, family, count(*) AS n, count(DISTINCT session_id) AS sessions, "
            "count(DISTINCT client_id) AS clients, min(t) AS first_t, max(t) AS last_t FROM nodes "
            "WHERE label = 'Detection' AND t >= ? AND t < ? GROUP BY threat_type, family", (lo, hi))
        return [dict(r) for r in rows]

    def _fetch_similar_pairs(self, lo: float, hi: float, min_score: float) -> list[dict[str, Any]]:
        rows = self._q(
            "SELECT a.id AS a_id, a.client_id AS a_client, a.threat_type AS a_type, a.family AS a_family, "
            "a.t AS a_t, b.id AS b_id, b.client_id AS b_client, b.threat_type AS b_type, b.family AS b_family, "
            "b.t AS b_t, e.score AS score FROM edges e JOIN nodes a ON a.key = e.src JOIN nodes b ON b.key = e.dst "
            "WHERE e.type = 'SIMILAR_TO' AND e.score >= ? AND a.t >= ? AND a.t < ? AND b.t >= ? AND b.t < ? "
            "AND a.client_id IS NOT NULL AND b.client_id IS NOT NULL AND a.client_id != b.client_id",
            (min_score, lo, hi, lo, hi))
        return [dict(r) for r in rows]

    def _fetch_counts(self) -> dict[str, int]:
        out = {lb: 0 for lb in LABELS} | {et: 0 for et in EDGE_TYPES}
        for r in self._q("SELECT label, count(*) AS n FROM nodes GROUP BY label"):
            out[r["label"]] = r["n"]
        for r in self._q("SELECT type, count(*) AS n FROM edges GROUP BY type"):
            out[r["type"]] = r["n"]
        return out
