"""Prometheus metrics of the HTTP/3 front, in a registry per server (several servers in one process, e.g. tests,
must not collide), served as text at `GET /metrics` on the server itself."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ProxyMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.connections_total = Counter("aimds_h3_connections", "QUIC connections accepted", registry=r)
        self.connections_refused = Counter("aimds_h3_connections_refused",
                                           "QUIC connections refused (max_connections)", registry=r)
        self.connections_active = Gauge("aimds_h3_connections_active", "open QUIC connections", registry=r)
        self.streams_total = Counter("aimds_h3_streams", "HTTP/3 request streams opened", registry=r)
        self.streams_active = Gauge("aimds_h3_streams_active", "HTTP/3 request streams in progress", registry=r)
        self.requests = Counter("aimds_h3_requests", "HTTP/3 requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("aimds_h3_request_latency_seconds",
                                 "time from a complete request to its answer", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.early_data = Counter("aimds_h3_early_data_requests",
                                  "requests that arrived in 0-RTT early data", ["outcome"], registry=r)
        self.resumed = Counter("aimds_h3_sessions_resumed", "handshakes resumed from a session ticket",
                               ["early_data"], registry=r)
        self.batch_size = Histogram("aimds_h3_batch_size", "items per backend detect_batch call",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.in_flight = Gauge("aimds_h3_in_flight", "admitted requests not yet answered", registry=r)
        self.rejected_busy = Counter("aimds_h3_rejected_busy", "requests answered 503 (max_in_flight)",
                                     registry=r)
        self.protocol_errors = Counter("aimds_h3_protocol_errors",
                                       "connections closed for a QUIC/HTTP/3 protocol error", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
