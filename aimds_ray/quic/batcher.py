"""Micro-batching: single `/v1/detect` requests that arrive close together share one `detect_batch` call.

Why: a backend call has a fixed cost (a Ray hop, a thread hand-off, per-call Python overhead) that dwarfs scanning a
short prompt, and the learned-model signal vectorises over a batch. Items wait at most `window_s` (or until
`max_batch` are queued); at most `max_concurrent` calls run at once, and while they run new items keep
accumulating, so batches grow with load instead of queues growing. The queue itself is bounded by the server's
admission control (max_in_flight), never here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aimds_ray.quic.backend import error

BatchFn = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class MicroBatcher:
    def __init__(self, fn: BatchFn, *, window_s: float, max_batch: int, max_concurrent: int,
                 timeout_s: float, on_batch: Callable[[int], None] | None = None) -> None:
        self._fn = fn
        self._window = window_s
        self._max_batch = max_batch
        self._max_concurrent = max_concurrent
        self._timeout = timeout_s
        self._on_batch = on_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, item: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Queue one item; the future resolves to its result (report or error dict)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append((item, fut))
        if len(self._pending) >= self._max_batch:
            self._dispatch()
        elif self._timer is None:
            if self._window <= 0:
                self._dispatch()
            else:
                self._timer = loop.call_later(self._window, self._on_timer)
        return fut

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _dispatch(self) -> None:
        """Start calls while there are items and free call slots; leftovers wait for a slot (and keep batching)."""
        if self._timer is not None:  # leftovers without a slot are dispatched when a running call finishes
            self._timer.cancel()
            self._timer = None
        while self._pending and self._running < self._max_concurrent:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            batch = [(i, f) for i, f in batch if not f.done()]  # cancelled (client went away): skip
            if not batch:
                continue
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]]) -> None:
        try:
            if self._on_batch is not None:
                self._on_batch(len(batch))
            try:
                results = await asyncio.wait_for(self._fn([i for i, _ in batch]), self._timeout)
                if not isinstance(results, list) or len(results) != len(batch):
                    raise RuntimeError(f"backend returned {type(results).__name__} for {len(batch)} items")
            except TimeoutError:
                results = [error(f"backend did not answer within {self._timeout:g}s", 504)] * len(batch)
            except Exception as e:  # the backend failed: every waiter gets an answer, the server lives on
                results = [backend_error(e)] * len(batch)
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(res)
        finally:
            self._running -= 1
            if self._pending:
                self._dispatch()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, fut in self._pending:
            if not fut.done():
                fut.set_result(error("server shutting down", 503))
        self._pending.clear()
        for t in list(self._tasks):
            t.cancel()


def backend_error(e: BaseException) -> dict[str, Any]:
    """Map a backend exception to an error answer: Serve's overload -> 503, anything else -> 502."""
    name = type(e).__name__
    if name in ("BackPressureError", "DeploymentUnavailableError"):
        return error(f"backend overloaded: {e}", 503)
    return error(f"backend error: {name}: {e}", 502)
