"""A small HTTP/3 client for applications calling the defence on every LLM turn.

`H3Client` keeps one QUIC connection and multiplexes concurrent requests over it (one stream each). It keeps the
latest TLS session ticket the server issued: `reconnect(early_data=True)` (or a new client given
`session_ticket=`) resumes the session and sends the first requests in 0-RTT, saving a round trip. A request the
server refuses as Too Early (425: not replay-safe, e.g. /v1/feedback) is retried once after the handshake, as RFC 8470
asks. `SyncH3Client` is the same API for code without an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import SessionTicket

from aimds_ray.quic.server import EARLY_DATA_HEADER

T = TypeVar("T")


class H3Error(Exception):
    """Transport-level failure: could not connect, connection closed, timeout."""


class H3HTTPError(Exception):
    """A non-2xx answer from a convenience method; `status` and the server's `message`."""

    def __init__(self, status: int, message: str, response: H3Response) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.response = response


@dataclass
class H3Response:
    status: int
    headers: dict[str, str]
    body: bytes
    early: bool = False  # the server says this request arrived in 0-RTT early data

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Pending:
    fut: asyncio.Future[H3Response]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class _ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self._pending: dict[int, _Pending] = {}
        self.closed_reason: str | None = None
        self.handshake_done = asyncio.Event()
        self.early_data_accepted: bool | None = None

    async def wait_connected(self) -> None:
        try:
            await super().wait_connected()
        finally:  # given up on (a timeout): the waiter fails when the connection dies later; nobody awaits it then
            w = self._connected_waiter
            if w is not None:
                w.add_done_callback(lambda f: f.cancelled() or f.exception())

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        if isinstance(event, qe.HandshakeCompleted):
            # aioquic's protocol only records the handshake if someone was waiting in wait_connected(); a 0-RTT
            # client was not, so keep our own flag.
            self._connected = True
            self.early_data_accepted = event.early_data_accepted
            self.handshake_done.set()
        elif isinstance(event, qe.ConnectionTerminated):
            self.handshake_done.set()  # wake waiters; closed_reason says why
            self.closed_reason = f"connection closed: error 0x{event.error_code:x} {event.reason_phrase}".rstrip()
            for p in self._pending.values():
                if not p.fut.done():
                    p.fut.set_exception(H3Error(self.closed_reason))
            self._pending.clear()
        elif isinstance(event, qe.StreamReset):
            p = self._pending.pop(event.stream_id, None)
            if p is not None and not p.fut.done():
                p.fut.set_exception(H3Error(f"stream reset by server (error 0x{event.error_code:x})"))
        for ev in self.http.handle_event(event):
            p = self._pending.get(getattr(ev, "stream_id", -1))
            if p is None:
                continue
            if isinstance(ev, HeadersReceived):
                for k, v in ev.headers:
                    if k == b":status":
                        p.status = int(v)
                    else:
                        p.headers[k.decode("latin-1")] = v.decode("latin-1")
            elif isinstance(ev, DataReceived):
                p.body += ev.data
            if getattr(ev, "stream_ended", False):
                self._pending.pop(ev.stream_id, None)
                if not p.fut.done():
                    p.fut.set_result(H3Response(p.status, p.headers, bytes(p.body),
                                                early=p.headers.get(EARLY_DATA_HEADER) == "1"))

    def send_request(self, method: str, authority: str, path: str, body: bytes | None,
                     headers: dict[str, str] | None = None) -> asyncio.Future[H3Response]:
        if self.closed_reason is not None:
            raise H3Error(self.closed_reason)
        stream_id = self._quic.get_next_available_stream_id()
        hdrs = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
                (b":path", path.encode()), (b"user-agent", b"aimds-h3-client")]
        if body is not None:
            hdrs += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        fut: asyncio.Future[H3Response] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = _Pending(fut)
        # a caller that stops waiting (a timeout) must not leave the stream's entry behind on a long-lived connection
        fut.add_done_callback(lambda f, sid=stream_id: f.cancelled() and self._pending.pop(sid, None))
        self.http.send_headers(stream_id, hdrs, end_stream=not body)
        if body:
            self.http.send_data(stream_id, body, end_stream=True)
        self._transmit_soon()  # requests issued in the same loop turn share packets
        return fut


class H3Client:
    """Async HTTP/3 client for the aimds API. Use as `async with H3Client(url) as c: await c.detect("...")`."""

    def __init__(self, url: str = "https://127.0.0.1:4433", *, insecure: bool = False, cafile: str | None = None,
                 timeout: float = 10.0, session_ticket: SessionTicket | None = None,
                 retry_too_early: bool = True, server_name: str | None = None) -> None:
        u = urlsplit(url)
        if u.scheme != "https" or not u.hostname:
            raise ValueError(f"expected an https:// URL, got {url!r}")
        self.host = u.hostname
        self.port = u.port or 443
        self.authority = u.netloc
        self.insecure = insecure
        self.cafile = cafile
        self.timeout = timeout
        self.retry_too_early = retry_too_early
        self.server_name = server_name or self.host
        self.session_ticket: SessionTicket | None = session_ticket  # the newest ticket the server issued us
        self._stack: contextlib.AsyncExitStack | None = None
        self._proto: _ClientProtocol | None = None
        self.resumed = False

    def _configuration(self, ticket: SessionTicket | None) -> QuicConfiguration:
        qc = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=True, server_name=self.server_name,
                               idle_timeout=max(self.timeout * 2, 30.0))
        if self.insecure:
            qc.verify_mode = ssl.CERT_NONE
        if self.cafile:
            qc.load_verify_locations(self.cafile)
        if ticket is not None:
            qc.session_ticket = ticket
        return qc

    def _save_ticket(self, ticket: SessionTicket) -> None:
        self.session_ticket = ticket

    async def connect(self, *, early_data: bool = False) -> None:
        """Open the connection. With a session ticket the session is resumed; `early_data=True` also returns
        before the handshake completes, so the next requests go out as 0-RTT."""
        if self._proto is not None:
            return
        ticket = self.session_ticket if (self.session_ticket is not None and self.session_ticket.is_valid) else None
        zero_rtt = bool(early_data and ticket is not None and ticket.max_early_data_size)
        stack = contextlib.AsyncExitStack()
        made: list[_ClientProtocol] = []

        def protocol(*args: Any, **kwargs: Any) -> _ClientProtocol:
            made.append(_ClientProtocol(*args, **kwargs))
            return made[-1]

        try:
            cm = connect(self.host, self.port, configuration=self._configuration(ticket),
                         create_protocol=protocol, session_ticket_handler=self._save_ticket,
                         wait_connected=not zero_rtt)
            proto = await asyncio.wait_for(stack.enter_async_context(cm), self.timeout)
        except (TimeoutError, ConnectionError, OSError) as e:
            await stack.aclose()
            raise H3Error(f"cannot connect to https://{self.authority} over HTTP/3: "
                          f"{self._why(e, made[0].closed_reason if made else None)}") from None
        raw = proto._transport.get_extra_info("socket") if proto._transport is not None else None
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # many streams answer in bursts: avoid drops (capped)
            with contextlib.suppress(OSError, AttributeError):
                raw.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        self._stack = stack
        self._proto = proto  # type: ignore[assignment]
        self.resumed = ticket is not None

    def _why(self, e: BaseException, closed_reason: str | None) -> str:
        """What a person can act on: aioquic's own exceptions carry no message."""
        if isinstance(e, TimeoutError):
            return (f"no answer within {self.timeout:g}s (is an HTTP/3 server listening on UDP port {self.port} of "
                    f"{self.host}?)")
        why = closed_reason or str(e) or type(e).__name__
        if "certificate" in why:
            why += (" (a self-signed development certificate? pass insecure=True / --insecure, or its file as "
                    "cafile / --cafile, e.g. $AIMDS_HOME/tls/dev-cert.pem)")
        return why

    async def close(self) -> None:
        stack, self._stack, self._proto = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stack.aclose(), 2.0)

    async def reconnect(self, *, early_data: bool = True) -> None:
        """Close and resume with the latest session ticket (0-RTT when `early_data`)."""
        await self.close()
        await self.connect(early_data=early_data)

    async def __aenter__(self) -> H3Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def handshake_complete(self) -> bool:
        return self._proto is not None and self._proto.handshake_done.is_set() and self._proto.closed_reason is None

    async def wait_handshake(self) -> None:
        """Wait until the handshake is complete (after a 0-RTT connect); raises `H3Error` if the connection died."""
        if self._proto is None:
            await self.connect()
        assert self._proto is not None
        try:
            await asyncio.wait_for(self._proto.handshake_done.wait(), self.timeout)
        except TimeoutError:
            raise H3Error(f"handshake with https://{self.authority} did not complete within {self.timeout:g}s") \
                from None
        if self._proto.closed_reason is not None:
            raise H3Error(self._proto.closed_reason)

    async def request(self, method: str, path: str, body: bytes | dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> H3Response:
        """Send one request on a new stream and wait for the whole answer."""
        if self._proto is None:
            await self.connect()
        assert self._proto is not None
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        try:
            resp = await asyncio.wait_for(self._proto.send_request(method, self.authority, path, body, headers),
                                          self.timeout)
            if resp.status == 425 and self.retry_too_early:
                await self.wait_handshake()
                resp = await asyncio.wait_for(
                    self._proto.send_request(method, self.authority, path, body, headers), self.timeout)
        except TimeoutError:
            raise H3Error(f"{method} {path}: no answer within {self.timeout:g}s") from None
        except ConnectionError as e:
            raise H3Error(f"{method} {path}: {e}") from None
        return resp

    async def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = await self.request(method, path, body)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status >= 400:
            msg = data.get("error") if isinstance(data, dict) else resp.body[:200].decode("utf-8", "replace")
            raise H3HTTPError(resp.status, str(msg), resp)
        return data

    async def detect(self, text: str, *, session_id: str | None = None,
                     metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if session_id is not None:
            body["session_id"] = session_id
        if metadata is not None:
            body["metadata"] = metadata
        return await self._json("POST", "/v1/detect", body)

    async def detect_batch(self, texts: list[str]) -> list[dict[str, Any]]:
        return (await self._json("POST", "/v1/detect/batch", {"texts": texts}))["reports"]

    async def detect_response(self, text: str, *, system_prompt: str | None = None, prompt: str | None = None,
                              canaries: list[str] | None = None, request_id: str | None = None,
                              session_id: str | None = None, client_id: str | None = None) -> dict[str, Any]:
        """Scan a model's response against its exchange (POST /v1/detect/response); with a session_id it joins
        that session's trace."""
        body: dict[str, Any] = {"text": text}
        for k, v in (("system_prompt", system_prompt), ("prompt", prompt), ("canaries", canaries),
                     ("request_id", request_id), ("session_id", session_id), ("client_id", client_id)):
            if v is not None:
                body[k] = v
        return await self._json("POST", "/v1/detect/response", body)

    async def detect_messages(self, messages: list[dict[str, Any]], *, canaries: list[str] | None = None,
                              request_id: str | None = None) -> dict[str, Any]:
        """Screen an OpenAI-style conversation (POST /v1/detect/messages)."""
        body: dict[str, Any] = {"messages": messages}
        for k, v in (("canaries", canaries), ("request_id", request_id)):
            if v is not None:
                body[k] = v
        return await self._json("POST", "/v1/detect/messages", body)

    async def feedback(self, *, label: int, text: str | None = None, request_id: str | None = None,
                       category: str | None = None, source: str | None = None, session_id: str | None = None,
                       feedback_id: str | None = None) -> dict[str, Any]:
        """POST /v1/feedback. Re-send the same `feedback_id` after a timeout: it is applied once."""
        body = {k: v for k, v in (("text", text), ("request_id", request_id), ("label", label),
                                  ("category", category), ("source", source), ("session_id", session_id),
                                  ("feedback_id", feedback_id)) if v is not None}
        return await self._json("POST", "/v1/feedback", body)

    async def session(self, session_id: str) -> dict[str, Any]:
        """GET /v1/sessions/{id}, the id percent-encoded ("/", "?", "#" and spaces are part of an id)."""
        return await self._json("GET", f"/v1/sessions/{quote(session_id, safe='')}")

    async def health(self) -> dict[str, Any]:
        return await self._json("GET", "/healthz")


class SyncH3Client:
    """`H3Client` for synchronous code: a private event loop in a daemon thread; same methods, blocking."""

    def __init__(self, url: str = "https://127.0.0.1:4433", **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aimds-h3-client", daemon=True)
        self._thread.start()
        self.client = H3Client(url, **kwargs)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.client.timeout * 3)

    def connect(self, *, early_data: bool = False) -> None:
        self._run(self.client.connect(early_data=early_data))

    def request(self, method: str, path: str, body: bytes | dict[str, Any] | None = None) -> H3Response:
        return self._run(self.client.request(method, path, body))

    def detect(self, text: str, **kwargs: Any) -> dict[str, Any]:
        return self._run(self.client.detect(text, **kwargs))

    def detect_batch(self, texts: list[str]) -> list[dict[str, Any]]:
        return self._run(self.client.detect_batch(texts))

    def detect_response(self, text: str, **kwargs: Any) -> dict[str, Any]:
        return self._run(self.client.detect_response(text, **kwargs))

    def detect_messages(self, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        return self._run(self.client.detect_messages(messages, **kwargs))

    def feedback(self, **kwargs: Any) -> dict[str, Any]:
        return self._run(self.client.feedback(**kwargs))

    def session(self, session_id: str) -> dict[str, Any]:
        return self._run(self.client.session(session_id))

    def health(self) -> dict[str, Any]:
        return self._run(self.client.health())

    def close(self) -> None:
        if self._loop.is_running():
            with contextlib.suppress(Exception):
                self._run(self.client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> SyncH3Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect(url: str, text: str | None, *, insecure: bool = False, cafile: str | None = None,
           timeout: float = 10.0, path: str = "/v1/detect", fields: dict[str, Any] | None = None) -> H3Response:
    """One-shot helper: connect, POST {"text": text, **fields} to `path` (`text` None: `fields` is the body, as
    /v1/detect/messages takes it), close. Returns the raw response."""

    async def run() -> H3Response:
        async with H3Client(url, insecure=insecure, cafile=cafile, timeout=timeout) as c:
            if text is None:
                body: dict[str, Any] = dict(fields or {})
            elif path.rstrip("/").endswith("/batch"):
                body = {"texts": [text]}
            else:
                body = {"text": text, **(fields or {})}
            return await c.request("POST", path, body)

    return asyncio.run(run())
