"""The Ray Serve application: online detection over HTTP, autoscaled.

`AimdsIngress` hosts one `core.Detector` per replica (the model is loaded once, at replica start) and answers the
fast path in the replica itself, batching concurrent `/v1/detect` calls with `@serve.batch` so the learned model
scores them in one vectorised call. Requests with a session, or whose score is uncertain, are handed to the
`DeadlineScheduler` actor for the deep path (behaviour analysis, policies, graph) without waiting: the answer says
`deep_analysis: "pending"`. New model versions arrive by long-polling the `Learner` actor; no restart.

Deploy with `serve run configs/serve.yaml`, `serve deploy configs/serve.yaml`, or `aimds serve`.
"""

# no `from __future__ import annotations`: FastAPI reads these annotations at runtime, in a replica where the
# class may be rebuilt by value (string annotations would not resolve there)

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve import Application

from aimds_ray import __version__
from aimds_ray.core.feedback import RecentRequests
from aimds_ray.core.process import settle_heap
from aimds_ray.core.response import trace_event
from aimds_ray.core.service import detect_items, detect_messages, detect_response, error, validate_feedback
from aimds_ray.core.validity import json_has_lone_surrogate
from aimds_ray.core.wire import valid_id
from aimds_ray.distributed.actors import client_events
from aimds_ray.distributed.runtime import NAMESPACE, HashRing, RuntimeConfig, actor_names, with_retries

log = logging.getLogger("aimds.serve")

api = FastAPI(
    title="aimds-ray",
    version=__version__,
    description="AI Manipulation Defense System: prompt-injection, jailbreak and data-leakage screening.",
)

MAX_BODY = 1 << 20  # /v1/detect and /v1/feedback
MAX_BATCH_BODY = 32 << 20  # /v1/detect/batch
DEEP_QUEUE_TASKS = 20_000  # deep-path tasks waiting in a replica (batches count by size); beyond: refused, degraded
MAX_BATCH_ITEMS = 10_000
SUBMIT_ATTEMPTS = 8  # deep-path submissions retried over ~30 s (a scheduler starting or restarting) before dropped
RECENT_FLUSH_S = 0.5  # how often a replica forwards its recent (request id, text) pairs to the learner


class ApiError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, with the size limit enforced before and while reading; errors are 4xx, not crashes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(f"request body is {declared} bytes; the limit is {limit}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(f"request body exceeds the limit of {limit} bytes", 413)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError("empty request body: send a JSON object", 400)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ApiError(f"request body is not valid UTF-8 (byte {e.start})", 400) from None
    except json.JSONDecodeError as e:
        raise ApiError(f"request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}", 400) from None
    except RecursionError:
        raise ApiError("request body is not valid JSON: nested too deeply", 400) from None
    if json_has_lone_surrogate(raw, obj):
        raise ApiError("request body is not valid Unicode: a \\uD800-\\uDFFF escape without its pair", 400)
    return obj


def _respond(result: dict[str, Any]) -> JSONResponse:
    status = result.get("status") if "error" in result and isinstance(result.get("status"), int) else 200
    return JSONResponse(result, status_code=status)


class _Metrics:
    """Ray metrics (exported by Ray's metrics agent in Prometheus format); no-ops if metrics are unavailable."""

    def __init__(self) -> None:
        self._version_now: str | None = None  # the version series last set to 1
        try:
            from ray.util.metrics import Counter, Gauge, Histogram

            self.requests = Counter("aimds_requests_total", "requests scanned", tag_keys=("endpoint",))
            self.threats = Counter("aimds_threats_total", "threats found", tag_keys=("threat_type",))
            self.lat = Histogram("aimds_request_latency_ms", "request latency per stage",
                                 boundaries=[0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000],
                                 tag_keys=("stage",))
            self.version = Gauge("aimds_model_version_info", "1 for the loaded model version", tag_keys=("version",))
        except Exception:  # pragma: no cover - metrics are best effort
            self.requests = self.threats = self.lat = self.version = None

    def report(self, rep: dict[str, Any], endpoint: str) -> None:
        if self.requests is None:
            return
        self.requests.inc(1, {"endpoint": endpoint})
        self.lat.observe(rep.get("latency_us", 0.0) / 1000.0, {"stage": "fast_path"})
        if rep.get("is_threat"):
            self.threats.inc(1, {"threat_type": rep.get("threat_type", "unknown")})

    def report_many(self, reps: list[dict[str, Any]], endpoint: str) -> None:
        """A batch's reports as one increment per counter and one latency sample (the per-text fast-path time of
        the batch, stage `fast_path_batch`): a metrics call per text cost about as much as scanning it."""
        if self.requests is None or not reps:
            return
        ok = [r for r in reps if "error" not in r]
        if not ok:
            return
        self.requests.inc(len(ok), {"endpoint": endpoint})
        self.lat.observe(sum(r.get("latency_us", 0.0) for r in ok) / len(ok) / 1000.0, {"stage": "fast_path_batch"})
        by_type: dict[str, int] = {}
        for r in ok:
            if r.get("is_threat"):
                t = r.get("threat_type", "unknown")
                by_type[t] = by_type.get(t, 0) + 1
        for t, n in by_type.items():
            self.threats.inc(n, {"threat_type": t})

    def latency(self, stage: str, seconds: float) -> None:
        if self.lat is not None:
            self.lat.observe(seconds * 1000.0, {"stage": stage})

    def model(self, version: str) -> None:
        """1 for the loaded version, 0 for the one it replaced. Called again on every health tick: Ray's export
        drops a gauge series that has not been set for a while, and this one changes rarely."""
        if self.version is None:
            return
        if self._version_now is not None and self._version_now != version:
            self.version.set(0, {"version": self._version_now})
        self.version.set(1, {"version": version})
        self._version_now = version


@serve.deployment(
    name="AimdsIngress",
    max_ongoing_requests=64,
    ray_actor_options={"num_cpus": 0.5},
    autoscaling_config={
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 16,
        "upscale_delay_s": 2,
        "downscale_delay_s": 30,
    },
)
@serve.ingress(api)
class AimdsIngress:
    def __init__(self, config: str | None = None, runtime: dict[str, Any] | None = None) -> None:
        from aimds_ray.core.detector import Detector

        self.detector = Detector(config)
        self.detector.warm_up()  # every kernel loaded before the first request, not by it
        settle_heap()  # the replica's process is ours: start-up objects leave the collector's work (see process.py)
        self.rcfg = RuntimeConfig.from_dict(runtime)
        self.handles: dict[str, Any] | None = None
        self.ring_a = HashRing(self.rcfg.analyzers)
        self.ring_v = HashRing(self.rcfg.verifiers)
        self._bg: asyncio.Task | None = None
        self._health_task: asyncio.Task | None = None
        self._deep_q: asyncio.Queue[list[dict[str, Any]]] | None = None
        self._deep_waiting = 0  # tasks in _deep_q
        self._submitter: asyncio.Task | None = None
        self._metrics = _Metrics()
        self._model_gen: int | None = None  # the learner's publication this replica holds (None: not asked yet)
        self._recent = RecentRequests()  # feedback by request id (this replica's requests; the learner has all)
        self._recent_task: asyncio.Task | None = None
        # Every use of the detector (scans, model reloads) runs on this one thread, in order: the detector is not
        # thread-safe (scratch buffers), and while a batch is scanned the event loop stays free to pull request
        # bodies from the proxy, stream answers and feed the deep path.
        self._scan_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aimds-scan")
        self.degraded: dict[str, str] = {}
        self._metrics.model(self.detector.model_version)
        try:  # start creating (or attach to) the session actors now, not on the first request that needs them
            self._connect()
        except Exception as e:  # the fast path still serves; the deep path retries on the next request
            self.handles = None
            self.degraded["deep_path"] = type(e).__name__

    # --- runtime wiring -----------------------------------------------------------------------------------------

    def _connect(self) -> dict[str, Any]:
        """Get or create the named detached actors (first replica creates them; the rest attach)."""
        if self.handles is not None:
            return self.handles
        from aimds_ray.distributed import actors

        names = actor_names(self.rcfg)
        cpus = self.rcfg.actor_cpus
        cfg = self.rcfg.to_dict()

        def mk(cls: Any, name: str, *args: Any, **kw: Any) -> Any:
            return cls.options(name=name, namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
                               num_cpus=cpus, **kw).remote(*args)

        h: dict[str, Any] = {
            "analyzers": [mk(actors.AttractorAnalyzer, n, i, cfg) for i, n in enumerate(names["analyzers"])],
            "verifiers": [mk(actors.PolicyVerifier, n, i, cfg) for i, n in enumerate(names["verifiers"])],
        }
        try:
            h["learner"] = mk(actors.Learner, names["learner"][0], max_concurrency=16)
        except Exception as e:
            self.degraded["learner"] = str(e)
            h["learner"] = None
        h["graph"] = None
        if self.rcfg.graph:
            try:
                h["graph"] = mk(actors.GraphWriterActor, names["graph"][0])
            except Exception as e:
                self.degraded["graph"] = str(e)
        h["shards"] = [mk(actors.PatternMatcherShard, n, i, self.rcfg.matcher_shards)
                       for i, n in enumerate(names["shards"])]
        h["scheduler"] = mk(actors.DeadlineScheduler, names["scheduler"][0], cfg,
                            {"analyzers": h["analyzers"], "verifiers": h["verifiers"], "graph": h["graph"],
                             "shards": h["shards"]},
                            max_concurrency=1000)
        self.handles = h
        self.degraded.pop("deep_path", None)
        return h

    def _ensure_background(self) -> None:
        if self._bg is None or self._bg.done():
            loop = asyncio.get_running_loop()
            self._bg = loop.create_task(self._follow_models())
            self._health_task = loop.create_task(self._watch_health())

    async def _watch_health(self) -> None:
        """Mirror the scheduler's view of failing components (and the scheduler's own reachability) into
        `degraded`, which every answer reports while it lasts."""
        while True:
            await asyncio.sleep(self.rcfg.health_poll_s)
            self._metrics.model(self.detector.model_version)  # keep the version series exported
            try:
                st = await asyncio.wait_for(self._connect()["scheduler"].stats.remote(), self.rcfg.call_timeout_s)
                self.degraded.pop("scheduler", None)
                for name in ("analyzer", "verifier", "matcher", "graph"):
                    if name in st.get("degraded", []):
                        self.degraded[name] = "deep-path calls failing"
                    else:
                        self.degraded.pop(name, None)
            except Exception as e:
                self.degraded["scheduler"] = type(e).__name__

    async def _follow_models(self) -> None:
        """Long-poll the learner; swap the detector's model when a new version is committed."""
        while True:
            learner = self._connect().get("learner")
            if learner is None:
                await asyncio.sleep(5)
                continue
            try:
                version, bundle, gen = await learner.wait_for_version.remote(self.detector.model_version, 20.0,
                                                                             self._model_gen)
                if bundle is not None and (version != self.detector.model_version or gen != self._model_gen):
                    await self._on_scan_thread(self.detector.reload, bundle)
                    self._metrics.model(version)
                    log.info("model switched to %s (publication %d)", version, gen)
                self._model_gen = gen
                self.degraded.pop("learner", None)
            except Exception as e:  # learner restarting: keep serving with the current model
                self.degraded["learner"] = f"{type(e).__name__}"
                await asyncio.sleep(1)

    # --- the fast path --------------------------------------------------------------------------------------------

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.001)
    async def _scan(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self._on_scan_thread(detect_items, self.detector, items)

    async def _on_scan_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._scan_pool, fn, *args)

    def _dispatch(self, item: dict[str, Any], report: dict[str, Any], t: float) -> str:
        """Hand session-relevant or uncertain requests to the scheduler; never wait for it."""
        task = self._deep_task(item, report, t)
        return "none" if task is None else self._enqueue_deep([task])

    def _enqueue_deep(self, tasks: list[dict[str, Any]]) -> str:
        """Queue deep-path tasks for the replica's submitter (the answer does not wait). One submitter per replica
        sends them in arrival order and waits for each acknowledgement: the scheduler is an async actor, which
        Ray does not promise to run in submission order, and a session's monitors need its events in order."""
        if self._deep_q is None:
            self._deep_q = asyncio.Queue()
        if self._submitter is None or self._submitter.done():
            self._submitter = asyncio.get_running_loop().create_task(self._submit_loop())
        if self._deep_waiting + len(tasks) > DEEP_QUEUE_TASKS:  # bounded in tasks: a batch may hold thousands
            self.degraded["scheduler"] = "deep-path queue full"
            return "unavailable"
        self._deep_waiting += len(tasks)
        self._deep_q.put_nowait(tasks)
        return "pending"

    async def _submit_loop(self) -> None:
        assert self._deep_q is not None
        while True:
            tasks = list(await self._deep_q.get())
            while not self._deep_q.empty() and len(tasks) < 4096:  # what queued meanwhile goes in the same call
                tasks.extend(self._deep_q.get_nowait())
            self._deep_waiting -= len(tasks)

            def submit(batch: list[dict[str, Any]] = tasks) -> Any:
                return asyncio.wait_for(self._connect()["scheduler"].submit_many.remote(batch),
                                        max(10.0, self.rcfg.call_timeout_s))

            def degrade(e: Exception) -> None:  # answered "pending": the scheduler's absence shows meanwhile
                self.degraded["scheduler"] = type(e).__name__

            try:  # a scheduler starting or restarting is back within seconds
                await with_retries(submit, SUBMIT_ATTEMPTS, on_error=degrade)
            except Exception as e:
                log.warning("deep-path tasks not submitted (%s): %d", type(e).__name__, len(tasks))

    def _deep_task(self, item: dict[str, Any], report: dict[str, Any], t: float) -> dict[str, Any] | None:
        """The deep-path task for a session-relevant or uncertain request, else None."""
        th = self.detector.threshold
        uncertain = self.rcfg.uncertain_band * th <= report["score"] < th
        if not item.get("session_id") and not uncertain:
            return None
        if report["action"] == "block":
            prio = "critical"
        elif report["is_threat"]:
            prio = "high"
        elif uncertain:
            prio = "medium"
        else:
            prio = "low"
        task = {"id": report.get("request_id") or uuid.uuid4().hex, "priority": prio, "t": t,
                "session_id": item.get("session_id"), "client_id": item.get("client_id"),
                "text_len": len(item["text"]), "entropy": None,
                "events": client_events(item.get("metadata"), t), "uncertain": uncertain,
                "report": {k: report[k] for k in ("score", "is_threat", "threat_type", "action", "categories",
                                                  "evidence", "latency_us", "request_id", "sanitized_text",
                                                  "model_version")}}
        return task

    async def _detect_one(self, item: dict[str, Any]) -> dict[str, Any]:
        t = time.time()
        res = await self._scan(item)  # detect_items validates each item: a bad one comes back as its error dict
        self._remember([item], [res])
        if "error" not in res:
            res["deep_analysis"] = self._dispatch(item, res, t)
            if self.degraded:
                res["degraded"] = sorted(self.degraded)
            self._metrics.report(res, "detect")
        return res

    # --- HTTP routes --------------------------------------------------------------------------------------------

    async def _answer(self, request: Request, limit: int, call: Callable[[Any], Awaitable[dict[str, Any]]],
                      endpoint: str) -> JSONResponse:
        """A JSON body of at most `limit` bytes handed to `call`; its result (report or error dict) answered with
        its status, the time taken recorded under `endpoint`."""
        t0 = time.perf_counter()
        try:
            body = await read_json(request, limit)
        except ApiError as e:
            return _respond(error(str(e), e.status))
        res = await call(body)
        self._metrics.latency(endpoint, time.perf_counter() - t0)
        return _respond(res)

    @api.post("/v1/detect")
    async def http_detect(self, request: Request) -> JSONResponse:
        """Scan one text. Body: {"text": str, "session_id"?: str, "client_id"?: str, "metadata"?: {}}."""
        self._ensure_background()
        return await self._answer(request, MAX_BODY, self._detect_one, "detect")

    @api.post("/v1/detect/batch")
    async def http_detect_batch(self, request: Request) -> JSONResponse:
        """Scan many texts: {"texts": [str, ...]} or {"items": [{"text": ...}, ...]} -> {"reports": [...]}."""
        self._ensure_background()
        t0 = time.perf_counter()
        try:
            body = await read_json(request, MAX_BATCH_BODY)
        except ApiError as e:
            return _respond(error(str(e), e.status))
        if not isinstance(body, dict) or set(body) - {"texts", "items"} or len(body) != 1:
            why = ("" if not isinstance(body, dict) else
                   f"unknown field(s): {', '.join(sorted(set(body) - {'texts', 'items'}))}; "
                   if set(body) - {"texts", "items"} else "texts or items, not both; " if len(body) > 1 else "")
            return _respond(error(why + 'the body must be {"texts": [...]} or {"items": [...]}', 422))
        raw = body.get("texts", body.get("items"))
        if not isinstance(raw, list):
            return _respond(error("texts/items must be a list", 422))
        if len(raw) > MAX_BATCH_ITEMS:
            return _respond(error(f"{len(raw)} items; the limit is {MAX_BATCH_ITEMS} per request", 413))
        items = [{"text": x} if "texts" in body else x for x in raw]
        reports = await self.detect_batch(items)
        self._metrics.latency("detect_batch", time.perf_counter() - t0)
        return JSONResponse({"reports": reports})

    @api.post("/v1/detect/response")
    async def http_detect_response(self, request: Request) -> JSONResponse:
        """Scan a model's response against its exchange: {"text": str, "system_prompt"?: str, "prompt"?: str,
        "canaries"?: [str], "request_id"?, "session_id"?, "client_id"?: str} (`Detector.scan_response`)."""
        return await self._answer(request, MAX_BODY, self.detect_response, "detect_response")

    @api.post("/v1/detect/messages")
    async def http_detect_messages(self, request: Request) -> JSONResponse:
        """Screen an OpenAI-style conversation: {"messages": [{"role", "content"}, ...], "canaries"?: [str],
        "request_id"?: str} (`Detector.scan_messages`): user turns and tool results as input, assistant turns as
        responses; the verdict is the worst message's."""
        return await self._answer(request, MAX_BATCH_BODY, self.detect_messages, "detect_messages")

    @api.post("/v1/feedback")
    async def http_feedback(self, request: Request) -> JSONResponse:
        """Label a text or an earlier request: {"text"|"request_id", "label": 0|1, "category"?, "source"?}."""
        try:
            body = await read_json(request, MAX_BODY)
        except ApiError as e:
            return _respond(error(str(e), e.status))
        return _respond(await self.feedback(body))

    @api.get("/v1/sessions/{session_id:path}")  # (the rest of the path: an id may hold "/", as /v1/detect allows)
    async def http_session(self, session_id: str) -> JSONResponse:
        """Behaviour (latest anomaly and drivers, baseline, attractor) and policy state of one session."""
        return _respond(await self.session(session_id))

    @api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return await self.health()

    # --- handle methods (used by the HTTP/3 proxy through a DeploymentHandle) -------------------------------------

    async def detect_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._ensure_background()
        t = time.time()
        out = await self._on_scan_thread(detect_items, self.detector, items)
        self._remember(items, out)
        tasks: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        for item, res in zip(items, out, strict=True):
            if "error" not in res:
                task = self._deep_task(item, res, t)
                res["deep_analysis"] = "none" if task is None else "pending"
                if task is not None:
                    tasks.append(task)
                    waiting.append(res)
        if tasks and self._enqueue_deep(tasks) != "pending":  # the whole batch goes in one scheduler call
            for res in waiting:
                res["deep_analysis"] = "unavailable"
        if self.degraded:
            for res in out:
                if "error" not in res:
                    res["degraded"] = sorted(self.degraded)
        self._metrics.report_many(out, "detect_batch")
        return out

    async def detect_response(self, item: Any) -> dict[str, Any]:
        """A response with a `session_id` joins its session's trace (`core.response.trace_event`) for the policy
        verifiers; it is not a request, so the behaviour analyzers and the learner do not see it."""
        self._ensure_background()
        t = time.time()
        res = await self._on_scan_thread(detect_response, self.detector, item)
        if "error" in res:
            return res
        res["deep_analysis"] = "none"
        if item.get("session_id"):
            event = trace_event(res, t, self.detector.config.response.thresholds.threat)
            prio = "critical" if res["action"] == "block" else "high" if res["is_threat"] else "low"
            # its own task id: the request it answers may carry the same request_id, and the scheduler answers a
            # repeated id as a retry ("duplicate"), which would drop the response's event
            task = {"id": f"{res.get('request_id') or uuid.uuid4().hex}/response", "priority": prio, "t": t,
                    "role": "response",
                    "session_id": item["session_id"], "client_id": item.get("client_id"), "events": [event],
                    "uncertain": False, "report": {k: res[k] for k in ("score", "is_threat", "threat_type", "action",
                                                                       "request_id", "model_version")}}
            res["deep_analysis"] = self._enqueue_deep([task])
        if self.degraded:
            res["degraded"] = sorted(self.degraded)
        self._metrics.report(res, "detect_response")
        return res

    async def detect_messages(self, item: Any) -> dict[str, Any]:
        """A conversation is screened on the fast path only: it carries no session, and its messages' texts are
        not kept for feedback by request id (send feedback with the text)."""
        self._ensure_background()
        res = await self._on_scan_thread(detect_messages, self.detector, item)
        if "error" in res:
            return res
        if self.degraded:
            res["degraded"] = sorted(self.degraded)
        self._metrics.report(res, "detect_messages")
        return res

    def _remember(self, items: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        """Keep the text of each answered request under its id, and have it forwarded to the learner (which also
        keeps the allowed ones as recent benign traffic for its false-positive guard and threshold refit)."""
        for item, res in zip(items, results, strict=True):
            if "error" not in res and isinstance(item.get("text"), str):
                self._recent.add(res.get("request_id") or "", item["text"], allowed=not res.get("is_threat"))
        if self._recent_task is None or self._recent_task.done():
            self._recent_task = asyncio.get_running_loop().create_task(self._forward_recent())

    async def _forward_recent(self) -> None:
        while True:
            await asyncio.sleep(RECENT_FLUSH_S)
            await self._flush_recent()

    async def _flush_recent(self) -> None:
        pairs = self._recent.drain()
        learner = (self.handles or {}).get("learner")
        if not pairs or learner is None:
            return
        try:
            await asyncio.wait_for(learner.remember_many.remote(pairs), max(10.0, self.rcfg.call_timeout_s))
        except Exception:  # a learner still starting (it loads its replay buffers): kept for the next flush
            self._recent.requeue(pairs)

    async def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        bad = validate_feedback(body)
        if bad is not None:
            return bad
        learner = self._connect().get("learner")
        if learner is None:
            return error("the learner is unavailable; nothing was recorded", 503)
        if body.get("text") is None and isinstance(body.get("request_id"), str):
            if self._recent.ambiguous(body["request_id"]):
                return error(f"request id {body['request_id']!r} was sent with more than one text: give the text",
                             422)
            text = self._recent.get(body["request_id"])
            if text is not None:  # answered here: no need to wait for the forwarding
                body = {**body, "text": text}
            else:  # answered by another replica, or just now: what this replica holds goes first
                await self._flush_recent()
        try:
            ack = await asyncio.wait_for(learner.feedback.remote(body), 10.0)
        except Exception as e:
            # the call may still complete: only a feedback_id makes the retry safe (the learner applies an id once)
            how = ("retry with the same feedback_id (applied once)" if body.get("feedback_id") else
                   "it may still be applied; send a feedback_id to make retries safe")
            return error(f"the learner did not acknowledge in time ({type(e).__name__}): {how}", 503)
        if isinstance(ack, dict) and ack.get("error"):
            return ack
        ack = ack if isinstance(ack, dict) else {"ack": ack}
        # recorded: in the feedback log (acknowledged); accepted: the learner took it (not refused or rejected)
        return {**ack, "recorded": True, "accepted": ack.get("status") == "accepted"}

    async def session(self, session_id: str) -> dict[str, Any]:
        if not valid_id(session_id):
            return error("session id must be 1-256 characters (valid Unicode), as session_id on /v1/detect", 422)
        h = self._connect()
        a = h["analyzers"][self.ring_a.owner(session_id)]
        v = h["verifiers"][self.ring_v.owner(session_id)]
        out: dict[str, Any] = {"session_id": session_id, "degraded": []}
        for key, ref in (("behaviour", a.state.remote(session_id)), ("policies", v.state.remote(session_id))):
            try:
                out[key] = await asyncio.wait_for(ref, self.rcfg.call_timeout_s)
            except Exception as e:
                out[key] = None
                out["degraded"].append(f"{key}: {type(e).__name__}")
        if out["behaviour"] is None and out["policies"] is None and not out["degraded"]:
            return error(f"unknown session {session_id!r}", 404)
        return out

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "model_version": self.detector.model_version, "version": __version__,
                "degraded": sorted(self.degraded)}


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for `serve run` / `serve deploy` / KubeRay (`import_path` in configs/serve.yaml):
    args {config: path, runtime: {...}, quic: {...}} (`quic` is read by `aimds serve`, which starts the HTTP/3
    proxy). Ray calls a builder with the args dict alone and applies the YAML's per-deployment overrides itself."""
    return build_ingress(args)


def build_ingress(args: dict[str, Any] | None = None, deployment_options: dict[str, Any] | None = None
                  ) -> Application:
    """`build_app` with the per-deployment overrides applied here: for `aimds serve`, tests and benchmarks, which
    deploy through `serve.run` in Python (where Ray does not read the YAML's `deployments`)."""
    args = args or {}
    dep = AimdsIngress.options(**deployment_options) if deployment_options else AimdsIngress
    return dep.bind(config=args.get("config"), runtime=args.get("runtime"))
