"""The JSON fields of request bodies and the rules for their values, shared by every front (Serve ingress, HTTP/3
edge) so they accept the same requests. Kept apart from `service` so the HTTP/3 edge can validate without importing the detector."""

from __future__ import annotations

from typing import Any

from aimds_ray.core.validity import lone_surrogate

DETECT_FIELDS = ("text", "session_id", "client_id", "request_id", "metadata")
# POST /v1/detect/response: a model's response and the exchange it answers (`Detector.scan_response`)
RESPONSE_FIELDS = ("text", "system_prompt", "prompt", "canaries", "request_id", "session_id", "client_id")
MAX_CANARIES = 64  # per response
MIN_CANARY_ALNUM = 4  # a canary of fewer letters and digits ("--", "a1") would be found in any text
# feedback_id: the client's key for one piece of feedback; re-sending it (after a timeout) is applied once
FEEDBACK_FIELDS = ("text", "request_id", "label", "category", "source", "session_id", "feedback_id")
MAX_EVENTS = 32  # per request: what the session policies are given of `metadata.events`


def json_type(v: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def valid_id(v: Any) -> bool:
    """The rule for session, client and request ids on every front (a session read back by GET
    /v1/sessions/{id} is held to the same rule as the session_id it was sent with)."""
    return isinstance(v, str) and 0 < len(v) <= 256 and lone_surrogate(v) < 0


def bad_canaries(value: Any) -> str:
    """Why `value` is not a list of canaries ("" when it is): at most MAX_CANARIES strings of at most 256
    characters, each with at least MIN_CANARY_ALNUM letters or digits. The rule of every front and of the API."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        return f"canaries must be a list of strings, got {json_type(value)}"
    if len(value) > MAX_CANARIES:
        return f"canaries: {len(value)} given; at most {MAX_CANARIES}"
    for i, c in enumerate(value):
        if not isinstance(c, str) or len(c) > 256 or lone_surrogate(c) >= 0 \
                or sum(ch.isalnum() for ch in c) < MIN_CANARY_ALNUM:
            return (f"canaries[{i}] must be a string of at most 256 characters with at least {MIN_CANARY_ALNUM} "
                    "letters or digits")
    return ""


def bad_response_item(item: Any) -> str:
    """Why `item` is not a /v1/detect/response body ("" when it is): the same answer on every front."""
    if not isinstance(item, dict):
        return f"the body must be a JSON object, got {json_type(item)}"
    unknown = set(item) - set(RESPONSE_FIELDS)
    if unknown:
        return f"unknown field(s): {', '.join(sorted(unknown))} (allowed: {', '.join(RESPONSE_FIELDS)})"
    if "text" not in item:
        return "missing field: text (the model's response)"
    for k in ("text", "system_prompt", "prompt"):
        if item.get(k) is not None and not isinstance(item[k], str):
            return f"{k} must be a string, got {json_type(item[k])}"
    for k in ("request_id", "session_id", "client_id"):
        if item.get(k) is not None and not valid_id(item[k]):
            return f"{k} must be a string of 1-256 characters (valid Unicode)"
    return bad_canaries(item["canaries"]) if item.get("canaries") is not None else ""
