"""The HTTP/3 server: aioquic (QUIC + TLS 1.3, ALPN h3) in front of a `Backend`.

One asyncio event loop owns every connection. A request is read until its stream ends (bounded by
`max_body_bytes`), validated at the edge, admitted against `max_in_flight` (else 503 + Retry-After), then answered:
single detections go through the `MicroBatcher` so concurrent streams share backend calls.

0-RTT: session tickets live in an in-memory, single-use store (a ticket is popped when presented, which also limits
replays to one connection). aioquic does not say which stream bytes were early data, so `_EarlyDataConnection`
records every stream that received STREAM data inside a 0-RTT packet; such requests are answered only on
idempotent routes, others get 425 Too Early (RFC 8470) and the client retries after the handshake.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aioquic import tls
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic import events as qe
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import TRANSPORT_CLOSE_FRAME_CAPACITY, QuicConnection
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import QuicErrorCode, QuicFrameType, QuicPacketType, pull_quic_header
from aioquic.quic.packet_builder import QuicPacketBuilder

from aimds_ray.quic import api
from aimds_ray.quic.backend import Backend, error, is_error
from aimds_ray.quic.batcher import MicroBatcher, backend_error
from aimds_ray.quic.certs import resolve_certificate
from aimds_ray.quic.config import QuicConfig
from aimds_ray.quic.metrics import ProxyMetrics

log = logging.getLogger("aimds_ray.quic")

EARLY_DATA_HEADER = "aimds-early-data"  # response header: "1" when the request arrived in 0-RTT early data
_SERVER_HEADER = (b"server", b"aimds-h3")


# --- QUIC layer ----------------------------------------------------------------------------------------------------


class _EarlyDataConnection(QuicConnection):
    """A `QuicConnection` that remembers which streams received data in 0-RTT packets.

    aioquic decrypts 0-RTT packets and hands their STREAM frames to the same handlers as 1-RTT ones; the only place
    the epoch is still known is `_payload_received(context, ...)`. Any stream created or extended by a 0-RTT packet
    is marked (conservative: a request with any early byte counts as early)."""

    aimds_early_streams: set[int]

    def _payload_received(self, context: Any, plain: bytes, crypto_frame_required: bool = False) -> tuple[bool, bool]:
        if context.epoch != tls.Epoch.ZERO_RTT:
            return super()._payload_received(context, plain, crypto_frame_required=crypto_frame_required)
        before = {sid: s.receiver.highest_offset for sid, s in self._streams.items()}
        try:
            return super()._payload_received(context, plain, crypto_frame_required=crypto_frame_required)
        finally:
            marked = self.__dict__.setdefault("aimds_early_streams", set())
            for sid, s in self._streams.items():
                if sid not in before or s.receiver.highest_offset > before[sid]:
                    marked.add(sid)


def _early_streams(quic: QuicConnection) -> set[int]:
    return quic.__dict__.get("aimds_early_streams", set())


def _encode_refused_close(version: int, client_dcid: bytes, client_scid: bytes) -> bytes:
    """A server Initial packet closing the connection with CONNECTION_REFUSED (sent when max_connections is hit),
    so the client fails fast instead of timing out its handshake."""
    crypto = CryptoPair()
    crypto.setup_initial(cid=client_dcid, is_client=False, version=version)
    builder = QuicPacketBuilder(host_cid=client_dcid, is_client=False, max_datagram_size=SMALLEST_MAX_DATAGRAM_SIZE,
                                peer_cid=client_scid, version=version)
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    buf = builder.start_frame(QuicFrameType.TRANSPORT_CLOSE, capacity=TRANSPORT_CLOSE_FRAME_CAPACITY)
    buf.push_uint_var(QuicErrorCode.CONNECTION_REFUSED)
    buf.push_uint_var(QuicFrameType.PADDING)
    buf.push_uint_var(0)
    datagrams, _ = builder.flush()
    return datagrams[0]


class _LimitedQuicServer(QuicServer):
    """aioquic's server plus a connection cap: Initial packets for new connections past `max_connections` get a
    CONNECTION_REFUSED close; existing connections are untouched."""

    def __init__(self, *, owner: H3Server, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        try:
            if self._owner.connections_full():
                buf = Buffer(data=data)  # type: ignore[arg-type]
                try:
                    header = pull_quic_header(buf, host_cid_length=self._configuration.connection_id_length)
                except ValueError:
                    return
                if (header.packet_type == QuicPacketType.INITIAL
                        and header.destination_cid not in self._protocols
                        and header.version in self._configuration.supported_versions):
                    self._owner.metrics.connections_refused.inc()
                    self._transport.sendto(  # type: ignore[union-attr]
                        _encode_refused_close(header.version, header.destination_cid, header.source_cid), addr)
                    return
            super().datagram_received(data, addr)
        except Exception:  # one bad datagram must never take the listener down
            log.exception("HTTP/3: error while handling a datagram from %s", addr)


# --- HTTP/3 layer --------------------------------------------------------------------------------------------------


@dataclass
class _Request:
    stream_id: int
    method: str
    path: str
    t0: float
    route: api.Route | None = None
    params: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    content_length: int | None = None
    done: bool = False  # answered (or being answered): later frames on the stream are ignored
    admitted: bool = False
    buffered: int = 0  # body bytes counted in the server's `buffered_bytes` (until the body is complete)
    early: bool = False


class _H3Protocol(QuicConnectionProtocol):
    """One QUIC connection: HTTP/3 framing, request assembly and answers."""

    def __init__(self, quic: QuicConnection, stream_handler: Any = None, *, server: H3Server) -> None:
        if type(quic) is QuicConnection:  # created by aioquic's QuicServer; add the 0-RTT bookkeeping
            quic.__class__ = _EarlyDataConnection
        # QUIC max_streams: how many request streams the client may have open at once (aioquic hard-codes 128;
        # the limit is advertised in the transport parameters, which are built on the first packet, after this).
        limit = quic._local_max_streams_bidi
        limit.value = limit.sent = server.config.max_streams
        super().__init__(quic, stream_handler)
        self._server = server
        self._http: H3Connection | None = None
        self._requests: dict[int, _Request] = {}
        self._terminated = False
        server._connection_opened(self)

    # events ------------------------------------------------------------------------------------------------------

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        try:
            self._quic_event(event)
        except Exception:  # a bug or an unexpected frame sequence closes this connection, never the server
            log.exception("HTTP/3: closing a connection after an internal error")
            self._server.metrics.protocol_errors.inc()
            self._quic.close(error_code=ErrorCode.H3_INTERNAL_ERROR, reason_phrase="internal error")

    def _quic_event(self, event: qe.QuicEvent) -> None:
        m = self._server.metrics
        if isinstance(event, qe.ProtocolNegotiated):
            if event.alpn_protocol in H3_ALPN:
                self._http = H3Connection(self._quic)
        elif isinstance(event, qe.HandshakeCompleted):
            if event.session_resumed:
                m.resumed.labels(early_data=str(bool(event.early_data_accepted)).lower()).inc()
        elif isinstance(event, qe.ConnectionTerminated):
            if event.error_code not in (QuicErrorCode.NO_ERROR, ErrorCode.H3_NO_ERROR):
                m.protocol_errors.inc()
            self._on_terminated()
            return
        elif isinstance(event, qe.StreamReset):
            req = self._requests.get(event.stream_id)
            if req is not None and not req.done:  # work already started stays counted until it finishes
                self._release(req)
        if self._http is None:
            return
        was_done = self._http._is_done
        for h3_event in self._http.handle_event(event):
            self._h3_event(h3_event)
        if self._http._is_done and not was_done:  # aioquic closed the connection for an HTTP/3 protocol error
            log.info("HTTP/3: connection closed for a protocol error")

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            req = self._requests.get(event.stream_id)
            if req is None:
                self._new_request(event)
            elif event.stream_ended:  # trailers end the request
                self._request_complete(req)
        elif isinstance(event, DataReceived):
            req = self._requests.get(event.stream_id)
            if req is None or req.done:
                return
            req.body += event.data
            if len(req.body) > self._server.config.max_body_bytes:
                self._reject_body(req)
                return
            srv = self._server
            req.buffered += len(event.data)
            srv.buffered_bytes += len(event.data)
            if srv.buffered_bytes > srv.config.max_buffered_bytes and not event.stream_ended:
                self._unbuffer(req)
                srv.metrics.rejected_busy.inc()
                self._answer_error(req, 503, "server busy: too many request bodies arriving at once "
                                   "(max_buffered_bytes)", (("retry-after", str(srv.config.retry_after_s)),),
                                   stop=True)
                return
            if event.stream_ended:
                self._request_complete(req)

    def _new_request(self, event: HeadersReceived) -> None:
        srv = self._server
        srv.metrics.streams_total.inc()
        srv.metrics.streams_active.inc()
        method = path = ""
        content_length: int | None = None
        for k, v in event.headers:
            if k == b":method":
                method = v.decode("latin-1")
            elif k == b":path":
                path = v.decode("latin-1")
            elif k == b"content-length":
                try:
                    content_length = int(v)
                except ValueError:
                    content_length = -1
        req = _Request(event.stream_id, method, path, time.perf_counter(), content_length=content_length)
        self._requests[event.stream_id] = req
        try:
            req.route, req.params = api.route(method, path)
        except api.ApiError as e:
            self._answer_error(req, e.status, e.message, e.headers, stop=not event.stream_ended)
            return
        if content_length is not None and content_length < 0:
            self._answer_error(req, 400, "invalid content-length", stop=not event.stream_ended)
            return
        if content_length is not None and content_length > srv.config.max_body_bytes:
            self._reject_body(req)
            return
        if self._too_early(req):
            return
        if event.stream_ended:
            self._request_complete(req)

    def _too_early(self, req: _Request) -> bool:
        """Answer 425 if (any of) this request arrived in 0-RTT early data and may not be replayed."""
        if req.done or req.stream_id not in _early_streams(self._quic):
            return False
        m = self._server.metrics
        if not req.early:
            req.early = True
        assert req.route is not None
        if req.route.idempotent and self._server.config.early_data:
            return False
        m.early_data.labels(outcome="rejected").inc()
        self._answer_error(req, 425, f"{req.path} is not replay-safe and cannot be sent in 0-RTT early data; "
                                     "retry after the handshake completes", stop=True)
        return True

    def _reject_body(self, req: _Request) -> None:
        lim = self._server.config.max_body_bytes
        self._answer_error(req, 413, f"request body larger than {lim} bytes (max_body_bytes)", stop=True)

    # requests ----------------------------------------------------------------------------------------------------

    def _unbuffer(self, req: _Request) -> None:
        self._server.buffered_bytes -= req.buffered
        req.buffered = 0

    def _request_complete(self, req: _Request) -> None:
        self._unbuffer(req)  # the body is whole: from here admission (max_in_flight) governs it
        if req.done:
            return
        if self._too_early(req):  # body bytes may have come in 0-RTT after 1-RTT headers (reordering)
            return
        if req.early:
            self._server.metrics.early_data.labels(outcome="accepted").inc()
        route = req.route
        assert route is not None
        srv = self._server
        if route.name == "metrics":
            self._answer(req, 200, srv.metrics.render(), content_type=srv.metrics.content_type)
            return
        if route.has_body:
            try:
                obj = api.parse_json(bytes(req.body))
                if route.name == "detect":
                    payload: Any = api.validate_detect(obj)
                elif route.name == "detect_batch":
                    payload = api.validate_batch(obj, srv.config.max_batch_texts)
                elif route.name == "detect_response":
                    payload = api.validate_response(obj)
                elif route.name == "detect_messages":
                    payload = api.validate_messages(obj)
                else:
                    payload = api.validate_feedback(obj)
            except api.ApiError as e:
                self._answer_error(req, e.status, e.message, e.headers)
                return
        else:
            payload = req.params.get("session_id")
        if route.name != "health":  # health stays answerable under overload (it costs nothing)
            if srv.in_flight >= srv.config.max_in_flight:
                srv.metrics.rejected_busy.inc()
                self._answer_error(req, 503, f"server busy: {srv.in_flight} requests in flight (max_in_flight)",
                                   (("retry-after", str(srv.config.retry_after_s)),))
                return
            req.admitted = True
            srv.in_flight += 1
            srv.metrics.in_flight.inc()
        req.done = True
        if route.name == "detect":
            fut = srv.batcher.submit(payload)
            fut.add_done_callback(lambda f, r=req: self._on_detect_done(r, f))
        else:
            srv.spawn(self._call(req, route.name, payload))

    def _on_detect_done(self, req: _Request, fut: asyncio.Future[dict[str, Any]]) -> None:
        if fut.cancelled():
            res: dict[str, Any] = error("cancelled", 503)
        else:
            res = fut.result()
        self._answer_result(req, res)

    async def _call(self, req: _Request, name: str, payload: Any) -> None:
        srv = self._server
        try:
            if name == "detect_batch":
                res = await self._detect_batch(payload)
            else:
                call: Callable[..., Awaitable[dict[str, Any]]]
                if name == "feedback":
                    call, args = srv.backend.feedback, (payload,)
                elif name == "detect_response":
                    call, args = srv.backend.detect_response, (payload,)
                elif name == "detect_messages":
                    call, args = srv.backend.detect_messages, (payload,)
                elif name == "session":
                    call, args = srv.backend.session, (payload,)
                else:
                    call, args = srv.backend.health, ()
                res = await asyncio.wait_for(call(*args), srv.config.request_timeout_s)
        except TimeoutError:
            res = error(f"backend did not answer within {srv.config.request_timeout_s:g}s", 504)
        except Exception as e:
            res = backend_error(e)
        self._answer_result(req, res)

    async def _detect_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch request is already a batch: one backend call, straight through (no window)."""
        srv = self._server
        if not items:
            return {"reports": []}
        srv.metrics.batch_size.observe(len(items))
        results = await asyncio.wait_for(srv.backend.detect_batch(items), srv.config.request_timeout_s)
        return {"reports": results}  # a bad item's error in its place, as the Serve ingress answers

    # answers -----------------------------------------------------------------------------------------------------

    def _answer_result(self, req: _Request, res: dict[str, Any]) -> None:
        if is_error(res):
            self._answer_error(req, int(res["status"]), str(res["error"]))
        else:
            self._answer(req, 200, json.dumps(res).encode())

    def _answer_error(self, req: _Request, status: int, message: str,
                      headers: tuple[tuple[str, str], ...] = (), *, stop: bool = False) -> None:
        self._answer(req, status, api.error_body(status, message), headers=headers, stop=stop)

    def _answer(self, req: _Request, status: int, body: bytes, *, content_type: str = "application/json",
                headers: tuple[tuple[str, str], ...] = (), stop: bool = False) -> None:
        """Send the response and end the stream; `stop` also asks the client to stop sending the request body
        (STOP_SENDING, H3_NO_ERROR: the response is complete without it, RFC 9114 section 4.1)."""
        req.done = True
        self._release(req)
        srv = self._server
        route_name = req.route.name if req.route is not None else "unknown"
        srv.metrics.requests.labels(route=route_name, status=str(status)).inc()
        srv.metrics.latency.labels(route=route_name).observe(time.perf_counter() - req.t0)
        if self._terminated or self._http is None:
            return
        hdrs = [(b":status", str(status).encode()), (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()), _SERVER_HEADER]
        hdrs += [(k.encode(), v.encode()) for k, v in headers]
        if req.early:
            hdrs.append((EARLY_DATA_HEADER.encode(), b"1"))
        try:
            head_only = req.method == "HEAD"
            self._http.send_headers(req.stream_id, hdrs, end_stream=head_only)
            if not head_only:
                self._http.send_data(req.stream_id, body, end_stream=True)
            if stop:
                self._quic.stop_stream(req.stream_id, ErrorCode.H3_NO_ERROR)
        except Exception as e:  # the client reset the stream or the connection is closing
            log.debug("HTTP/3: could not answer stream %d: %s", req.stream_id, e)
        # coalesce: a fanned-out batch answers many streams in one loop turn; send them in shared packets
        self._transmit_soon()

    def _release(self, req: _Request) -> None:
        """Forget a request once answered or reset (streams must not accumulate on long-lived connections)."""
        self._unbuffer(req)
        if self._requests.pop(req.stream_id, None) is not None:
            self._server.metrics.streams_active.dec()
        _early_streams(self._quic).discard(req.stream_id)
        if req.admitted:
            req.admitted = False
            self._server.in_flight -= 1
            self._server.metrics.in_flight.dec()

    def _on_terminated(self) -> None:
        if self._terminated:
            return
        self._terminated = True
        for req in list(self._requests.values()):
            if not req.done:
                self._release(req)
            else:  # answered later by its callback; keep counters right
                self._unbuffer(req)
                self._server.metrics.streams_active.dec()
                self._requests.pop(req.stream_id, None)
        self._server._connection_closed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_terminated()


# --- server --------------------------------------------------------------------------------------------------------


class _TicketStore:
    """In-memory TLS session tickets for resumption / 0-RTT. Single use (popped when presented: a captured ticket
    cannot be replayed on a second connection), bounded (LRU) and expiring."""

    def __init__(self, max_size: int, lifetime_s: int) -> None:
        self._tickets: collections.OrderedDict[bytes, tls.SessionTicket] = collections.OrderedDict()
        self._max = max_size
        self._lifetime = dt.timedelta(seconds=lifetime_s)

    def add(self, ticket: tls.SessionTicket) -> None:
        self._tickets[ticket.ticket] = ticket
        while len(self._tickets) > self._max:
            self._tickets.popitem(last=False)

    def pop(self, label: bytes) -> tls.SessionTicket | None:
        t = self._tickets.pop(label, None)
        if t is None:
            return None
        if dt.datetime.now(dt.UTC) - t.not_valid_before.replace(tzinfo=t.not_valid_before.tzinfo or dt.UTC) \
                > self._lifetime:
            return None
        return t

    def __len__(self) -> int:
        return len(self._tickets)


class H3Server:
    """The HTTP/3 front. `await start()` binds the UDP socket (port 0 -> a free port, see `.port`); `close()`."""

    def __init__(self, backend: Backend, config: QuicConfig | None = None,
                 *, metrics: ProxyMetrics | None = None) -> None:
        self.backend = backend
        self.config = config or QuicConfig()
        self.metrics = metrics or ProxyMetrics()
        self.in_flight = 0
        self.buffered_bytes = 0  # bodies still arriving (see QuicConfig.max_buffered_bytes)
        self.tickets = _TicketStore(self.config.ticket_store_size, self.config.ticket_lifetime_s)
        self.batcher = MicroBatcher(backend.detect_batch, window_s=self.config.batch_window_ms / 1000.0,
                                    max_batch=self.config.max_batch,
                                    max_concurrent=self.config.max_concurrent_batches,
                                    timeout_s=self.config.request_timeout_s,
                                    on_batch=self.metrics.batch_size.observe)
        self._connections: set[_H3Protocol] = set()
        self._quic_server: _LimitedQuicServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.host = self.config.host
        self.port = self.config.port
        self.cert_path: str | None = None
        self.dev_certificate = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connections_full(self) -> bool:
        return len(self._connections) >= self.config.max_connections

    def _connection_opened(self, proto: _H3Protocol) -> None:
        self._connections.add(proto)
        self.metrics.connections_total.inc()
        self.metrics.connections_active.set(len(self._connections))

    def _connection_closed(self, proto: _H3Protocol) -> None:
        self._connections.discard(proto)
        self.metrics.connections_active.set(len(self._connections))

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def quic_configuration(self) -> QuicConfiguration:
        cert, key, dev = resolve_certificate(self.config)
        self.cert_path, self.dev_certificate = str(cert), dev
        qc = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=False, idle_timeout=self.config.idle_timeout_s,
                               max_datagram_frame_size=None)
        qc.load_cert_chain(str(cert), str(key))
        return qc

    async def start(self) -> None:
        qc = self.quic_configuration()
        loop = asyncio.get_running_loop()

        def create_protocol(quic: QuicConnection, stream_handler: Any = None) -> _H3Protocol:
            return _H3Protocol(quic, stream_handler, server=self)

        _, proto = await loop.create_datagram_endpoint(
            lambda: _LimitedQuicServer(owner=self, configuration=qc, create_protocol=create_protocol,
                                       session_ticket_fetcher=self.tickets.pop,
                                       session_ticket_handler=self.tickets.add),
            local_addr=(self.config.host, self.config.port),
        )
        self._quic_server = proto
        transport = proto._transport
        raw = transport.get_extra_info("socket")  # type: ignore[union-attr]
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # bursts of many streams: fewer drops (kernel caps it)
            with contextlib.suppress(OSError, AttributeError):
                raw.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        sock = transport.get_extra_info("sockname")  # type: ignore[union-attr]
        self.host, self.port = sock[0], sock[1]
        log.info("HTTP/3 (QUIC) proxy listening on %s/udp (backend: %s)", self.url,
                 getattr(self.backend, "name", type(self.backend).__name__))

    async def close(self) -> None:
        if self._quic_server is not None:
            for proto in list(self._connections):
                proto.close(error_code=ErrorCode.H3_NO_ERROR, reason_phrase="server shutting down")
            await asyncio.sleep(0)  # let the close frames go out
            self._quic_server.close()
            self._quic_server = None
        await self.batcher.close()
        for t in list(self._tasks):
            t.cancel()


async def run_h3_server(backend: Backend, config: QuicConfig | None = None, *,
                        ready: Callable[[H3Server], None] | None = None,
                        stop: asyncio.Event | None = None) -> None:
    """Serve HTTP/3 until `stop` is set (or the task is cancelled); closes the backend afterwards if it can."""
    server = H3Server(backend, config)
    try:
        await server.start()
        if ready is not None:
            ready(server)
        await (stop or asyncio.Event()).wait()
    finally:
        await server.close()
        closer = getattr(backend, "close", None)
        if closer is not None:
            res = closer()
            if asyncio.iscoroutine(res):
                await res


class H3ProxyThread:
    """A running proxy in a background thread with its own event loop (how `aimds serve` runs it next to the Serve
    app). `.url`, `.port`, `.server`; `stop()` closes connections and joins the thread."""

    def __init__(self, thread: threading.Thread, loop: asyncio.AbstractEventLoop, stop_event: asyncio.Event,
                 server: H3Server) -> None:
        self._thread = thread
        self._loop = loop
        self._stop_event = stop_event
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:  # loop already closed
                pass
            self._thread.join(timeout)


def start_h3_proxy_in_thread(config: QuicConfig | None,
                             backend_factory: Callable[[], Backend | Awaitable[Backend]],
                             *, startup_timeout: float = 60.0) -> H3ProxyThread:
    """Start the proxy in a daemon thread; returns once it listens (or raises what went wrong). The backend is
    built inside the proxy's loop, which a `DeploymentHandle` needs."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        box["loop"] = loop
        stop = asyncio.Event()
        box["stop"] = stop

        async def run() -> None:
            backend = backend_factory()
            if asyncio.iscoroutine(backend) or isinstance(backend, asyncio.Future):
                backend = await backend

            def on_ready(server: H3Server) -> None:
                box["server"] = server
                ready.set()

            await run_h3_server(backend, config, ready=on_ready, stop=stop)  # type: ignore[arg-type]

        try:
            loop.run_until_complete(run())
        except BaseException as e:
            box["error"] = e
            ready.set()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    thread = threading.Thread(target=main, name="aimds-h3-proxy", daemon=True)
    thread.start()
    if not ready.wait(startup_timeout):
        loop, stop = box.get("loop"), box.get("stop")
        if loop is not None and stop is not None:  # it may still come up later: tell it to stop instead
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        raise TimeoutError(f"HTTP/3 proxy did not start within {startup_timeout:g}s")
    if "error" in box:
        raise box["error"]
    return H3ProxyThread(thread, box["loop"], box["stop"], box["server"])
