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
# POST /v1/detect/messages: an OpenAI-style conversation (`Detector.scan_messages`, core/conversation.py)
MESSAGES_FIELDS = ("messages", "canaries", "request_id")
MAX_MESSAGES = 1024  # per conversation
INPUT_ROLES = ("user", "tool", "function")  # scanned as input (`Detector.scan`)
CONTEXT_ROLES = ("system", "developer")  # the application's instructions: the exchange responses are checked against
OUTPUT_ROLES = ("assistant",)  # checked as responses (`Detector.scan_response`)
# the keys of a chat message the OpenAI format defines; others are refused as unknown
MESSAGE_KEYS = ("role", "content", "name", "tool_call_id", "tool_calls", "function_call", "refusal")


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


def _names(keys: set[Any]) -> str:
    """Unknown keys for an error message, cut short (a key may be a megabyte long)."""
    names = ", ".join(sorted(map(str, keys)))
    return names if len(names) <= 200 else names[:200] + "..."


def _bad_body(item: Any, fields: tuple[str, ...], required: str, what: str = "") -> str:
    """Why `item` is not a JSON object of `fields` holding `required` ("" when it is)."""
    if not isinstance(item, dict):
        return f"the body must be a JSON object, got {json_type(item)}"
    unknown = set(item) - set(fields)
    if unknown:
        return f"unknown field(s): {_names(unknown)} (allowed: {', '.join(fields)})"
    return "" if required in item else f"missing field: {required}{what}"


def bad_response_item(item: Any) -> str:
    """Why `item` is not a /v1/detect/response body ("" when it is): the same answer on every front."""
    if why := _bad_body(item, RESPONSE_FIELDS, "text", " (the model's response)"):
        return why
    for k in ("text", "system_prompt", "prompt"):
        if item.get(k) is not None and not isinstance(item[k], str):
            return f"{k} must be a string, got {json_type(item[k])}"
    for k in ("request_id", "session_id", "client_id"):
        if item.get(k) is not None and not valid_id(item[k]):
            return f"{k} must be a string of 1-256 characters (valid Unicode)"
    return bad_canaries(item["canaries"]) if item.get("canaries") is not None else ""


def bad_messages(value: Any) -> str:
    """Why `value` is not a conversation ("" when it is): a list of 1-MAX_MESSAGES message objects, each with a
    known `role` and a `content` that is a string, a list of content parts (`{"type": "text", "text": ...}`; parts
    of other types carry no text) or, for an assistant turn that only calls tools, null."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        return f"messages must be a list of message objects, got {json_type(value)}"
    if not value:
        return "messages is empty: give at least one message"
    if len(value) > MAX_MESSAGES:
        return f"messages: {len(value)} given; at most {MAX_MESSAGES} per conversation"
    roles = INPUT_ROLES + CONTEXT_ROLES + OUTPUT_ROLES
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            return f"messages[{i}] must be an object, got {json_type(m)}"
        unknown = set(m) - set(MESSAGE_KEYS)
        if unknown:
            return f"messages[{i}]: unknown field(s): {_names(unknown)} (allowed: {', '.join(MESSAGE_KEYS)})"
        if m.get("role") not in roles:
            return f"messages[{i}].role must be one of {', '.join(roles)}, got {m.get('role')!r}"[:300]
        if m["role"] in OUTPUT_ROLES and (why := _bad_tool_calls(m, i)):
            return why
        c = m.get("content")
        if c is None:
            if m["role"] not in OUTPUT_ROLES:
                return (f"messages[{i}].content is {'null' if 'content' in m else 'missing'} (only an assistant turn "
                        "that calls tools may have none)")
            continue
        if isinstance(c, str):
            if lone_surrogate(c) >= 0:
                return f"messages[{i}].content is not valid Unicode (lone surrogate)"
            continue
        if not isinstance(c, list | tuple):
            return f"messages[{i}].content must be a string or a list of content parts, got {json_type(c)}"
        for j, part in enumerate(c):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                return f'messages[{i}].content[{j}] must be an object with a string "type"'
            if part["type"] == "text" and "text" not in part:
                return f'messages[{i}].content[{j}]: a text part needs "text"'
            for k in ("text", "refusal"):  # screened whatever the part's type ("input_text", "output_text", ...)
                if k in part and (not isinstance(part[k], str) or lone_surrogate(part[k]) >= 0):
                    return f'messages[{i}].content[{j}].{k} must be a string of valid Unicode'
    return ""


def _bad_tool_calls(m: dict[str, Any], i: int) -> str:
    """Why an assistant turn's tool calls cannot be read ("" when they can): their arguments are screened."""
    calls = m.get("tool_calls")
    if calls is not None and (isinstance(calls, str) or not isinstance(calls, list | tuple)):
        return f"messages[{i}].tool_calls must be a list, got {json_type(calls)}"
    for j, call in enumerate(calls or ()):
        if not isinstance(call, dict) or not isinstance(call.get("function") or {}, dict):
            return f'messages[{i}].tool_calls[{j}] must be an object whose "function" is an object'
    for where, fn in [(f"tool_calls[{j}].function", c.get("function") or {}) for j, c in enumerate(calls or ())] + [
            ("function_call", m.get("function_call") or {})]:
        if not isinstance(fn, dict):
            return f"messages[{i}].{where} must be an object"
        a = fn.get("arguments")
        if a is not None and (not isinstance(a, str) or lone_surrogate(a) >= 0):
            return f"messages[{i}].{where}.arguments must be a string of valid Unicode (the JSON of the arguments)"
    return ""


def bad_messages_item(item: Any) -> str:
    """Why `item` is not a /v1/detect/messages body ("" when it is): the same answer on every front."""
    if why := _bad_body(item, MESSAGES_FIELDS, "messages"):
        return why
    if item.get("request_id") is not None and not valid_id(item["request_id"]):
        return "request_id must be a string of 1-256 characters (valid Unicode)"
    if item.get("canaries") is not None and (why := bad_canaries(item["canaries"])):
        return why
    return bad_messages(item["messages"])
