"""Typed settings of the HTTP/3 front, validated once when the server is built.

Kept in this package (not in `aimds_ray.core.config`) so the core never depends on the network layer; `aimds serve`
builds a `QuicConfig` from its flags / serve config with `QuicConfig.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


class QuicConfigError(ValueError):
    """A QUIC proxy setting is invalid; the message names the key."""


@dataclass(frozen=True)
class QuicConfig:
    host: str = "127.0.0.1"
    port: int = 4433  # UDP; 0 picks a free port (tests, benchmarks)
    cert: str | None = None  # PEM certificate (chain); None -> self-signed dev certificate in $AIMDS_HOME/tls/
    key: str | None = None  # PEM private key for `cert`
    batch_window_ms: float = 1.0  # /v1/detect requests arriving within this window share one detect_batch call
    max_batch: int = 64  # ... and at most this many items per call
    max_concurrent_batches: int = 4  # detect_batch calls in flight (Serve: spread over replicas); others batch up
    max_in_flight: int = 512  # admitted requests across all connections; past it -> 503 + retry-after
    retry_after_s: int = 1  # the Retry-After value sent with 503
    max_body_bytes: int = 1_048_576  # request body limit (413 past it)
    # bodies still arriving, across all connections: past it new body bytes get 503 (slow senders cannot make
    # the proxy hold max_connections x max_streams x max_body_bytes)
    max_buffered_bytes: int = 67_108_864
    max_batch_texts: int = 1024  # texts per /v1/detect/batch request (413 past it)
    max_streams: int = 100  # concurrent bidirectional (request) streams a client may open per connection
    idle_timeout_s: float = 30.0  # QUIC idle timeout; quiet connections are closed
    max_connections: int = 1024  # new connections past this are refused (CONNECTION_REFUSED)
    ticket_store_size: int = 10_000  # in-memory session tickets kept for 0-RTT resumption (single use, LRU)
    ticket_lifetime_s: int = 86_400  # tickets older than this are not accepted
    early_data: bool = True  # accept 0-RTT for idempotent requests (never for /v1/feedback)
    request_timeout_s: float = 30.0  # a backend call slower than this answers 504

    def __post_init__(self) -> None:
        if not self.host:
            raise QuicConfigError("quic.host: must not be empty")
        if not 0 <= self.port <= 65535:
            raise QuicConfigError(f"quic.port: expected 0..65535, got {self.port!r}")
        if (self.cert is None) != (self.key is None):
            raise QuicConfigError("quic.cert and quic.key: give both or neither")
        if self.batch_window_ms < 0:
            raise QuicConfigError(f"quic.batch_window_ms: must be >= 0, got {self.batch_window_ms!r}")
        for name in ("max_batch", "max_concurrent_batches", "max_in_flight", "retry_after_s", "max_body_bytes",
                     "max_buffered_bytes", "max_batch_texts", "max_streams", "max_connections", "ticket_store_size", "ticket_lifetime_s"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise QuicConfigError(f"quic.{name}: expected a positive integer, got {v!r}")
        for name in ("idle_timeout_s", "request_timeout_s"):
            if getattr(self, name) <= 0:
                raise QuicConfigError(f"quic.{name}: must be > 0, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> QuicConfig:
        """Build from a mapping (e.g. the `quic:` section of a serve config); unknown keys are errors."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QuicConfigError(f"quic.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
        return cls(**data)

    def replace(self, **changes: Any) -> QuicConfig:
        return dataclasses.replace(self, **changes)
