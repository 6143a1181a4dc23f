"""The JSON fields of request bodies and the rules for their values, shared by every front (Serve ingress, HTTP/3
edge) so they accept the same requests. Kept apart from `service` so the HTTP/3 edge can validate without importing the detector."""

from __future__ import annotations

from typing import Any

from aimds_ray.core.validity import lone_surrogate

DETECT_FIELDS = ("text", "session_id", "client_id", "request_id", "metadata")
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
