"""Causal memory graph: who sent what, what it triggered, what was done about it, and what followed.

`open_graph_store()` picks the backend from `AIMDS_GRAPH_URI`: a `bolt://` / `neo4j://` URI (optionally with
`AIMDS_GRAPH_USER` / `AIMDS_GRAPH_PASSWORD`, `AIMDS_GRAPH_DATABASE`) uses the Neo4j driver; a file path, a
`sqlite:///path` URI or nothing uses the embedded SQLite store at `$AIMDS_HOME/graph.db`. Writes go through a
`GraphWriter` off the hot path. This package never imports Ray; a Ray actor wraps `GraphWriter` in the
distributed layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from aimds_ray.graph.base import GraphStore
from aimds_ray.graph.model import (
    MAX_HOPS,
    DetectionRecord,
    GraphError,
    Record,
    RequestRecord,
    ResponseRecord,
    SimilarityRecord,
    ViolationRecord,
    records_from_report,
)
from aimds_ray.graph.writer import GraphWriter, WriterFull

BOLT_SCHEMES = ("bolt://", "bolt+s://", "bolt+ssc://", "neo4j://", "neo4j+s://", "neo4j+ssc://")

__all__ = [
    "embedded_graph_path",
    "MAX_HOPS",
    "DetectionRecord",
    "GraphError",
    "GraphStore",
    "GraphWriter",
    "Record",
    "RequestRecord",
    "ResponseRecord",
    "SimilarityRecord",
    "ViolationRecord",
    "WriterFull",
    "open_graph_store",
    "records_from_report",
]


def open_graph_store(uri: str | None = None, *, user: str | None = None, password: str | None = None,
                     database: str | None = None) -> GraphStore:
    """The configured store: `uri` argument, else $AIMDS_GRAPH_URI, else the embedded default."""
    uri = uri if uri is not None else os.environ.get("AIMDS_GRAPH_URI") or None
    if uri and uri.lower().startswith(BOLT_SCHEMES):
        from aimds_ray.graph.neo4j_store import Neo4jGraphStore

        return Neo4jGraphStore(uri, user=user, password=password, database=database)
    if uri and "://" in uri and not uri.lower().startswith("sqlite://"):
        raise GraphError(f"unsupported graph URI {uri!r}: use bolt://host:port, neo4j://host:port or a file path")
    from aimds_ray.graph.sqlite_store import SqliteGraphStore

    return SqliteGraphStore(embedded_graph_path(uri))


def embedded_graph_path(uri: str | None = None) -> Path | None:
    """The SQLite file `open_graph_store(uri)` would open (None for a Bolt server, or a URI it refuses): for callers
    that only read and should not create an empty database where none was written."""
    uri = uri if uri is not None else os.environ.get("AIMDS_GRAPH_URI") or None
    if uri and "://" in uri and not uri.lower().startswith("sqlite://"):
        return None
    if uri and uri.lower().startswith("sqlite://"):
        uri = uri[len("sqlite://"):] or None
    if not uri:
        from aimds_ray.core.config import aimds_home

        return aimds_home() / "graph.db"
    return Path(uri)
