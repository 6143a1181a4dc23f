"""The HTTP API surface at the proxy edge: routing and request validation, free of I/O.

Same paths, JSON and status codes as the Serve ingress (issue 7), so a client can switch transport without changing
anything else. Validation happens here, before any work is queued: unknown fields / wrong types -> 422, an empty
body, invalid UTF-8 or invalid JSON -> 400, too large -> 413; errors are `{"error": ..., "status": N}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aimds_ray.core.validity import json_has_lone_surrogate
from aimds_ray.core.wire import (
    DETECT_FIELDS,
    FEEDBACK_FIELDS,
    bad_messages_item,
    bad_response_item,
    json_type,
    valid_id,
)


class ApiError(Exception):
    """A request the edge refuses; `status` is the HTTP status."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class Route:
    name: str  # detect | detect_batch | detect_response | detect_messages | feedback | session | health | metrics
    method: str
    idempotent: bool  # replay-safe: may be answered from 0-RTT early data
    has_body: bool


ROUTES: dict[str, Route] = {
    "/v1/detect": Route("detect", "POST", True, True),  # a pure function of its input: replaying it changes nothing
    "/v1/detect/batch": Route("detect_batch", "POST", True, True),
    # as /v1/detect: the report is a pure function of the body; with a session_id a replay adds its event again
    "/v1/detect/response": Route("detect_response", "POST", True, True),
    "/v1/detect/messages": Route("detect_messages", "POST", True, True),  # a pure function of its body
    "/v1/feedback": Route("feedback", "POST", False, True),  # writes to the learner: never from replayable data
    "/healthz": Route("health", "GET", True, False),
    "/metrics": Route("metrics", "GET", True, False),
}
SESSION_ROUTE = Route("session", "GET", True, False)
_SESSION_PREFIX = "/v1/sessions/"


def route(method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
    """Resolve (method, path) to a route; 404 for unknown paths, 405 (with Allow) for the wrong method."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    params: dict[str, str] = {}
    r = ROUTES.get(path)
    if r is None and path.startswith(_SESSION_PREFIX):
        # percent-decoded, and held to the rule session_id has on /v1/detect: any id a request was sent with can
        # be read back (the Serve ingress decodes the same way and takes the rest of the path, "/" included)
        try:
            sid = unquote(path[len(_SESSION_PREFIX):], errors="strict")
        except UnicodeDecodeError:
            raise ApiError(400, "session id is not valid UTF-8 once percent-decoded") from None
        if not valid_id(sid):
            raise ApiError(422, "session id must be 1-256 characters (valid Unicode), as session_id on /v1/detect")
        r, params = SESSION_ROUTE, {"session_id": sid}
    if r is None:
        raise ApiError(404, f"no such path: {path}")
    if method != r.method and not (method == "HEAD" and r.method == "GET"):
        raise ApiError(405, f"{path} accepts {r.method}, not {method}", (("allow", r.method),))
    return r, params


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    if not body:
        raise ApiError(400, "empty body: expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"body is not valid UTF-8 (byte {e.start}: {e.reason})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"body is not valid JSON: {e}") from None
    if json_has_lone_surrogate(body, obj):  # valid JSON, not valid Unicode: nothing could encode it later
        raise ApiError(400, "body is not valid Unicode: a \\uD800-\\uDFFF escape without its pair")
    return obj


def _object(obj: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ApiError(422, f"expected a JSON object, got {json_type(obj)}")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})")
    return obj




def _opt_str(obj: dict[str, Any], key: str, max_len: int = 256) -> None:
    v = obj.get(key)
    if v is None:
        return
    if not isinstance(v, str):
        raise ApiError(422, f"{key}: expected a string, got {json_type(v)}")
    if len(v) > max_len:
        raise ApiError(422, f"{key}: at most {max_len} characters")


def validate_detect(obj: Any, where: str = "") -> dict[str, Any]:
    """`{"text": str, "session_id"?, "client_id"?, "request_id"?: str, "metadata"?: object}` (the fields of the
    Serve API, `core.wire.DETECT_FIELDS`) -> the item passed to `detect_batch`."""
    try:
        obj = _object(obj, DETECT_FIELDS)
        if "text" not in obj:
            raise ApiError(422, "text: required")
        if not isinstance(obj["text"], str):
            raise ApiError(422, f"text: expected a string, got {json_type(obj['text'])}")
        for key in ("session_id", "client_id", "request_id"):
            _opt_str(obj, key)
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise ApiError(422, f"metadata: expected an object, got {json_type(meta)}")
    except ApiError as e:
        raise ApiError(e.status, f"{where}{e.message}", e.headers) from None
    return {k: v for k, v in obj.items() if v is not None}


def validate_batch(obj: Any, max_texts: int) -> list[Any]:
    """`{"texts": [str, ...]}` or `{"items": [{"text": ...}, ...]}` (as the Serve API) -> the items. Only the
    envelope is checked here: as on the Serve ingress, a bad item gets its error in place in the answer
    (`core.service.detect_items`) and does not fail the batch."""
    if isinstance(obj, dict) and "items" in obj:
        obj = _object(obj, ("items",))
        key = "items"
    else:
        obj = _object(obj, ("texts",))
        key = "texts"
    raw = obj.get(key)
    if raw is None:
        raise ApiError(422, "texts: required")
    if not isinstance(raw, list):
        raise ApiError(422, f"{key}: expected an array, got {json_type(raw)}")
    if len(raw) > max_texts:
        raise ApiError(413, f"{key}: {len(raw)} items; at most {max_texts} per request (split the batch)")
    return list(raw) if key == "items" else [{"text": t} for t in raw]


def validate_response(obj: Any) -> dict[str, Any]:
    """`{"text": str, "system_prompt"?, "prompt"?: str, "canaries"?: [str], "request_id"?: str}`: the Serve API's
    /v1/detect/response body, by the same rule (`core.wire.bad_response_item`)."""
    why = bad_response_item(obj)
    if why:
        raise ApiError(422, why)
    return {k: v for k, v in obj.items() if v is not None}


def validate_messages(obj: Any) -> dict[str, Any]:
    """`{"messages": [...], "canaries"?: [str], "request_id"?: str}`: the Serve API's /v1/detect/messages body, by
    the same rule (`core.wire.bad_messages_item`)."""
    why = bad_messages_item(obj)
    if why:
        raise ApiError(422, why)
    return {k: v for k, v in obj.items() if v is not None}


def validate_feedback(obj: Any) -> dict[str, Any]:
    """`{"text" | "request_id", "label": 0|1, "category"?, "source"?, "session_id"?, "feedback_id"?}` (the Serve
    API's fields, `core.wire.FEEDBACK_FIELDS`)."""
    obj = _object(obj, FEEDBACK_FIELDS)
    _opt_str(obj, "session_id")
    _opt_str(obj, "feedback_id")
    if obj.get("text") is None and obj.get("request_id") is None:
        raise ApiError(422, "give text or request_id")
    if obj.get("text") is not None and not isinstance(obj["text"], str):
        raise ApiError(422, f"text: expected a string, got {json_type(obj['text'])}")
    _opt_str(obj, "request_id")
    _opt_str(obj, "category", 64)
    _opt_str(obj, "source", 256)
    label = obj.get("label")
    if "label" not in obj:
        raise ApiError(422, "label: required (0 benign, 1 threat)")
    if isinstance(label, bool) or not isinstance(label, int) or label not in (0, 1):
        raise ApiError(422, f"label: expected 0 or 1, got {json.dumps(label)}")
    return {k: v for k, v in obj.items() if v is not None}


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}).encode()
