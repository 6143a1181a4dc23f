"""What the HTTP/3 front forwards to: a small async `Backend` protocol with two implementations.

The protocol is the method surface of the Serve ingress deployment (`AimdsIngress` in app `aimds`), so the proxy code
is identical whether it runs next to a Ray cluster (`ServeBackend`, through a `DeploymentHandle`) or in-process
(`EmbeddedBackend`, a `Detector`; used by tests, benchmarks and single-machine setups without Ray).

Results are plain dicts. A dict with an integer `status` and an `error` message is an error answer with that HTTP
status; anything else is a 200 answer.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

SERVE_APP_NAME = "aimds"
SERVE_INGRESS_NAME = "AimdsIngress"


@runtime_checkable
class Backend(Protocol):
    """The calls the proxy makes. Items/bodies are already validated at the proxy edge."""

    async def detect_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One result per item, in order: a report dict or an error dict `{"error": ..., "status": ...}`."""
        ...

    async def detect_response(self, item: dict[str, Any]) -> dict[str, Any]:
        """A model's response against its exchange: a report dict or an error dict."""
        ...

    async def detect_messages(self, item: dict[str, Any]) -> dict[str, Any]:
        """A conversation: a conversation report dict or an error dict."""
        ...

    async def feedback(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def session(self, session_id: str) -> dict[str, Any]: ...

    async def health(self) -> dict[str, Any]: ...


def error(message: str, status: int) -> dict[str, Any]:
    return {"error": message, "status": status}


def is_error(result: Any) -> bool:
    return isinstance(result, dict) and "error" in result and isinstance(result.get("status"), int)


INLINE_MAX_MESSAGES = 16  # a conversation with more is scanned on the pool, not on the event loop


class EmbeddedBackend:
    """An in-process `Detector`. Scans run on a small thread pool so the QUIC event loop keeps serving packets
    while a batch is scanned. Feedback and sessions need the learner / session actors of the Serve app, so they
    answer 501 here, saying so."""

    name = "embedded"

    def __init__(self, detector: Any = None, *, workers: int = 1, inline_max_chars: int = 4096) -> None:
        if detector is None:
            from aimds_ray.core.detector import Detector

            detector = Detector()
            detector.warm_up()  # every kernel loaded before the first request, not by it
        self.detector = detector
        # Small batches are scanned inline on the event loop: a thread hand-off (GIL switch, queue wake-up) costs
        # more than scanning a few short prompts. Larger ones go to the pool so packets keep flowing meanwhile.
        # workers=0: always inline.
        self.inline_max_chars = inline_max_chars
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aimds-h3-scan") if workers else None

    def _detect_sync(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What the Serve replicas run (`core.service.detect_items`): the same validation, request ids and
        per-item errors, so both backends answer alike."""
        from aimds_ray.core.service import detect_items

        return detect_items(self.detector, items)

    async def detect_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        size = sum(len(i["text"]) for i in items if isinstance(i, dict) and isinstance(i.get("text"), str))
        if self._pool is None or size <= self.inline_max_chars:
            return self._detect_sync(items)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._detect_sync, items)

    async def detect_response(self, item: dict[str, Any]) -> dict[str, Any]:
        from aimds_ray.core.service import detect_response

        size = sum(len(item.get(k) or "") for k in ("text", "system_prompt", "prompt"))
        if self._pool is None or size <= self.inline_max_chars:
            return detect_response(self.detector, item)
        return await asyncio.get_running_loop().run_in_executor(self._pool, detect_response, self.detector, item)

    async def detect_messages(self, item: dict[str, Any]) -> dict[str, Any]:
        from aimds_ray.core.conversation import message_text
        from aimds_ray.core.service import detect_messages

        # validated at the edge (`api.validate_messages`): every message is an object with text or parts. Inline
        # only when small in both ways: each message costs a scan whatever its length
        msgs = item["messages"]
        size = sum(len(message_text(m)) for m in msgs)
        if self._pool is None or (size <= self.inline_max_chars and len(msgs) <= INLINE_MAX_MESSAGES):
            return detect_messages(self.detector, item)
        return await asyncio.get_running_loop().run_in_executor(self._pool, detect_messages, self.detector, item)

    async def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        return error("feedback is not available with the embedded backend: it is stored by the learner of the "
                     "Serve app (aimds serve); nothing was recorded", 501)

    async def session(self, session_id: str) -> dict[str, Any]:
        return error("session state is not available with the embedded backend: sessions live in the Serve app's "
                     "analyzer actors (aimds serve)", 501)

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": self.name, "model_version": self.detector.model_version}

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class ServeBackend:
    """The Serve ingress through a `DeploymentHandle`: no HTTP hop between proxy and replicas, and Serve's router
    does replica choice and its own queueing. Build it inside the event loop that will use it (the proxy thread);
    `ray.init` / the Serve app must already be up in this process's cluster."""

    name = "serve"

    def __init__(self, handle: Any = None, *, deployment: str = SERVE_INGRESS_NAME,
                 app_name: str = SERVE_APP_NAME) -> None:
        if handle is None:
            from ray import serve

            handle = serve.get_deployment_handle(deployment, app_name=app_name)
        self._handle = handle

    async def detect_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self._handle.detect_batch.remote(items)

    async def detect_response(self, item: dict[str, Any]) -> dict[str, Any]:
        return await self._handle.detect_response.remote(item)

    async def detect_messages(self, item: dict[str, Any]) -> dict[str, Any]:
        return await self._handle.detect_messages.remote(item)

    async def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._handle.feedback.remote(body)

    async def session(self, session_id: str) -> dict[str, Any]:
        return await self._handle.session.remote(session_id)

    async def health(self) -> dict[str, Any]:
        out = await self._handle.health.remote()
        if isinstance(out, dict) and "backend" not in out:
            out = {**out, "backend": self.name}
        return out

    async def close(self) -> None:
        return None
