"""Request-level helpers shared by every front (Serve ingress, HTTP/3 proxy, Ray Data): validated request items in,
report or error dicts out. Plain Python; the fronts only translate to their protocol.
"""

from __future__ import annotations

import json
from typing import Any

from aimds_ray.core.detector import Detector, InputError, coerce_text
from aimds_ray.core.validity import lone_surrogate
from aimds_ray.core.wire import (
    DETECT_FIELDS,
    FEEDBACK_FIELDS,
    MAX_EVENTS,
    bad_messages_item,
    bad_response_item,
    json_type,
    valid_id,
)


def error(message: str, status: int) -> dict[str, Any]:
    return {"error": message, "status": status}


def _bad_string(v: str) -> bool:
    return lone_surrogate(v) >= 0


def validate_detect_item(item: Any) -> dict[str, Any] | None:
    """None when `item` is a valid /v1/detect body, else an error dict (422 for schema problems)."""
    if not isinstance(item, dict):
        return error(f"a request (or batch item) must be a JSON object, got {json_type(item)}", 422)
    unknown = set(item) - set(DETECT_FIELDS)
    if unknown:
        return error(f"unknown field(s): {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(DETECT_FIELDS))})",
                     422)
    if "text" not in item:
        return error("missing field: text", 422)
    if not isinstance(item["text"], str):
        return error(f"text must be a string, got {type(item['text']).__name__}", 422)
    for k in ("session_id", "client_id", "request_id"):
        v = item.get(k)
        if v is not None and not valid_id(v):
            return error(f"{k} must be a string of 1-256 characters (valid Unicode)", 422)
    meta = item.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict):
            return error("metadata must be a JSON object", 422)
        try:  # it travels to the actors and the graph spool as JSON: refuse what cannot be written there
            json.dumps(meta, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError, RecursionError):
            return error("metadata must be a JSON object of JSON values and valid Unicode strings", 422)
        if "events" in meta and (bad := _bad_events(meta["events"])):
            return error(bad, 422)
    return None


def validate_response_item(item: Any) -> dict[str, Any] | None:
    """None when `item` is a valid /v1/detect/response body, else an error dict (422)."""
    why = bad_response_item(item)
    return error(why, 422) if why else None


def detect_response(detector: Detector, item: Any) -> dict[str, Any]:
    """The report dict of one response, or an error dict (422 schema, 400 / 413 text)."""
    bad = validate_response_item(item)
    if bad is not None:
        return bad
    try:
        rep = detector.scan_response(item["text"], system_prompt=item.get("system_prompt"),
                                     prompt=item.get("prompt"), canaries=item.get("canaries"),
                                     request_id=item.get("request_id"))
    except InputError as e:
        return error(str(e), e.status)
    return rep.to_dict()


def detect_messages(detector: Detector, item: Any) -> dict[str, Any]:
    """The conversation report dict of one /v1/detect/messages body, or an error dict (422 schema, 400 / 413
    text)."""
    why = bad_messages_item(item)
    if why:
        return error(why, 422)
    try:
        rep = detector.scan_messages(item["messages"], canaries=item.get("canaries"),
                                     request_id=item.get("request_id"))
    except InputError as e:
        return error(str(e), e.status)
    return rep.to_dict()


def _bad_events(evs: Any) -> str:
    """Why `metadata.events` cannot be given to the policies ("" when it can): what was dropped silently before
    (an event without a string type, past the 32nd) would be a violation nobody checked."""
    if not isinstance(evs, list):
        return f"metadata.events must be a list of event objects, got {type(evs).__name__}"
    if len(evs) > MAX_EVENTS:
        return f"metadata.events has {len(evs)} events; at most {MAX_EVENTS} per request"
    for i, e in enumerate(evs):
        if not isinstance(e, dict) or not isinstance(e.get("type"), str) or not e["type"]:
            return f'metadata.events[{i}] must be an object with a non-empty string "type"'
    return ""


def validate_feedback(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return error("request body must be a JSON object", 422)
    unknown = set(body) - set(FEEDBACK_FIELDS)
    if unknown:
        return error(f"unknown field(s): {', '.join(sorted(unknown))}", 422)
    label = body.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or label not in (0, 1):  # 1.0 too, as HTTP/3 says
        return error("label must be 0 or 1", 422)
    if not isinstance(body.get("text"), str) and not isinstance(body.get("request_id"), str):
        return error("give text (string) or request_id", 422)
    for k in ("category", "source", "session_id", "feedback_id"):
        if body.get(k) is not None and not isinstance(body[k], str):
            return error(f"{k} must be a string", 422)
    if isinstance(body.get("feedback_id"), str) and not 0 < len(body["feedback_id"]) <= 256:
        return error("feedback_id must be 1-256 characters", 422)
    for k in ("text", "request_id", "category", "source", "session_id", "feedback_id"):
        if isinstance(body.get(k), str) and _bad_string(body[k]):
            return error(f"{k} is not valid Unicode (lone surrogate)", 422)
    return None


def detect_items(detector: Detector, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per item, in order: a report dict, or an error dict. One bad item never fails the batch."""
    max_chars = detector.config.limits.max_input_chars
    out: list[dict[str, Any] | None] = [None] * len(items)
    idx: list[int] = []
    texts: list[str] = []
    rids: list[str] = []
    for i, item in enumerate(items):
        bad = validate_detect_item(item)
        if bad is not None:
            out[i] = bad
            continue
        try:
            texts.append(coerce_text(item["text"], max_chars))
        except InputError as e:
            out[i] = error(str(e), e.status)
            continue
        idx.append(i)
        rids.append(item.get("request_id") or "")
    if texts:
        reports = detector.scan_batch(texts, request_ids=[r or None for r in rids])  # type: ignore[list-item]
        for i, r in zip(idx, reports, strict=True):
            out[i] = r.to_dict()
    return [o if o is not None else error("internal: no result", 500) for o in out]
