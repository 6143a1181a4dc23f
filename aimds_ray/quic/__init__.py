"""The HTTP/3 (QUIC) front of aimds-ray: the Serve API's paths and JSON over aioquic, with micro-batching,
backpressure, 0-RTT for replay-safe requests and Prometheus metrics. See `server.py` for the design notes."""

from aimds_ray.quic.backend import Backend, EmbeddedBackend, ServeBackend
from aimds_ray.quic.client import H3Client, H3Error, H3HTTPError, H3Response, SyncH3Client
from aimds_ray.quic.config import QuicConfig, QuicConfigError
from aimds_ray.quic.server import H3ProxyThread, H3Server, run_h3_server, start_h3_proxy_in_thread

__all__ = [
    "Backend", "EmbeddedBackend", "H3Client", "H3Error", "H3HTTPError", "H3ProxyThread", "H3Response", "H3Server",
    "QuicConfig", "QuicConfigError", "ServeBackend", "SyncH3Client", "run_h3_server", "start_h3_proxy_in_thread",
]
