"""`aimds graph query chain|related|families|campaigns|followed`: investigation questions to the causal graph, as
JSON on stdout. The store is `--uri`, else $AIMDS_GRAPH_URI (bolt://host:port for Neo4j), else the embedded
SQLite graph in $AIMDS_HOME/graph.db. Exit 0 with an answer, 1 when the session / detection is unknown, 2 on usage
or connection errors."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import UTC, datetime
from typing import Any

ORDER = 70


def _time(value: str) -> float:
    """Epoch seconds or an ISO 8601 date/time (UTC when no offset is given)."""
    try:
        t = float(value)
        if math.isfinite(t):
            return t
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or an ISO 8601 time, got {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("graph", help="query the causal memory graph (attack chains, related attacks, campaigns)")
    gsub = p.add_subparsers(dest="graph_command", metavar="SUBCOMMAND")
    q = gsub.add_parser("query", help="ask the graph a question; prints JSON")
    qsub = q.add_subparsers(dest="query", metavar="QUESTION")

    def common(sp: argparse.ArgumentParser, window: bool = False) -> None:
        sp.add_argument("--uri", help="graph store: bolt://host:port or a SQLite file (default $AIMDS_GRAPH_URI)")
        sp.add_argument("--pretty", action="store_true", help="indented JSON")
        if window:
            sp.add_argument("--since", type=_time, help="window start (epoch seconds or ISO 8601), inclusive")
            sp.add_argument("--until", type=_time, help="window end (epoch seconds or ISO 8601), exclusive")
        sp.set_defaults(func=run)

    c = qsub.add_parser("chain", help="the attack chain of a session")
    c.add_argument("--session", required=True, help="session id")
    common(c)
    r = qsub.add_parser("related", help="detections within K hops of detections of a threat type")
    r.add_argument("--type", required=True, dest="threat_type", help="threat type, e.g. prompt_injection")
    r.add_argument("--hops", type=int, default=2, help="hops (1..6, default 2)")
    r.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    common(r, window=True)
    f = qsub.add_parser("families", help="top attack families over a period")
    f.add_argument("--limit", type=int, default=10, help="at most this many (default 10)")
    common(f, window=True)
    k = qsub.add_parser("campaigns", help="clients linked by similar attacks (connected components)")
    k.add_argument("--min-similarity", type=float, default=0.8, help="SIMILAR_TO score threshold (default 0.8)")
    k.add_argument("--min-clients", type=int, default=2, help="smallest campaign (default 2 clients)")
    common(k, window=True)
    w = qsub.add_parser("followed", help="what followed a detection in its session")
    w.add_argument("--detection", required=True, help="detection id")
    w.add_argument("--limit", type=int, default=20, help="following requests to show (default 20)")
    common(w)

    def need_question(args: argparse.Namespace) -> int:
        from aimds_ray.cli import UsageError

        raise UsageError("give a subcommand: aimds graph query {chain,related,families,campaigns,followed} ...")

    p.set_defaults(func=need_question)
    q.set_defaults(func=need_question)


def run(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.graph import GraphError, embedded_graph_path, open_graph_store

    path = embedded_graph_path(args.uri)
    if path is not None and not path.exists():  # a query only reads: no empty database made where none was written
        if args.uri or os.environ.get("AIMDS_GRAPH_URI"):
            raise UsageError(f"no graph database at {path}")
        print(f"aimds graph: nothing recorded yet ({path} does not exist)", file=sys.stderr)
        print(json.dumps(None if args.query in ("chain", "followed") else []))
        return 1 if args.query in ("chain", "followed") else 0
    try:
        store = open_graph_store(args.uri)
    except GraphError as e:
        raise UsageError(str(e)) from None
    try:
        result: Any
        if args.query == "chain":
            result = store.attack_chain(args.session)
        elif args.query == "related":
            result = store.related_attacks(args.threat_type, hops=args.hops, since=args.since, until=args.until,
                                           limit=args.limit)
        elif args.query == "families":
            result = store.top_families(since=args.since, until=args.until, limit=args.limit)
        elif args.query == "campaigns":
            result = store.campaigns(since=args.since, until=args.until, min_similarity=args.min_similarity,
                                     min_clients=args.min_clients)
        else:
            result = store.what_followed(args.detection, limit=args.limit)
    except (ValueError, GraphError) as e:
        raise UsageError(str(e)) from None
    finally:
        store.close()
    print(json.dumps(result, ensure_ascii=False, indent=2 if args.pretty else None, sort_keys=args.pretty))
    if result is None:  # stdout stays `null` for scripts; a person reads why
        what = f"session {args.session!r}" if args.query == "chain" else f"detection {args.detection!r}"
        print(f"aimds graph: no {what} in the graph", file=sys.stderr)
        return 1
    return 0
