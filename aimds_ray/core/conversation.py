"""A conversation screened as one request: the OpenAI-style `messages` an application sends to its model.

Why: an application does not send its model one text but a conversation, and where a text sits in it says what to
look for. The user's turns and tool results (documents, web pages, function output) are input the model will read
and may follow: each is scanned as `Detector.scan` scans a text (a tool result is where indirect injection
arrives). Earlier assistant turns are output: each, with the arguments it passed to tools, is checked as a response
(`Detector.scan_response`) against the system messages and the user turn it answers, so a system prompt or canary
leaked in an earlier answer or sent out through a tool call is found. A turn the client labels "assistant" is
checked as output, not as input: the role is the application's word.
System and developer messages are the application's own instructions: not screened as input, they are the
exchange the responses are checked against. The conversation's verdict is its worst message's.

Clients usually resend the whole history with every turn; each call screens all of it, in time linear in its length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimds_ray.core.report import ACTION_SEVERITY, Action, ThreatReport
from aimds_ray.core.response import Context
from aimds_ray.core.wire import CONTEXT_ROLES, INPUT_ROLES, OUTPUT_ROLES, bad_messages

if TYPE_CHECKING:
    from aimds_ray.core.detector import Detector

@dataclass
class MessageReport:
    index: int  # the message's position in the conversation
    role: str
    report: ThreatReport

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "role": self.role, "report": self.report.to_dict()}


@dataclass
class ConversationReport:
    """The worst message's verdict, and one report per screened message (system messages and empty turns have
    none)."""

    is_threat: bool
    action: Action
    score: float
    threat_type: str
    request_id: str
    model_version: str
    messages: list[MessageReport]
    latency_us: float

    @property
    def worst(self) -> MessageReport | None:
        """The message the verdict comes from (None when nothing was screened)."""
        if not self.messages:
            return None
        return max(self.messages, key=lambda m: (ACTION_SEVERITY[m.report.action], m.report.is_threat, m.report.score))

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {"request_id": self.request_id, "is_threat": self.is_threat, "action": str(self.action),
                "score": self.score, "threat_type": self.threat_type,
                "worst_index": None if worst is None else worst.index, "model_version": self.model_version,
                "latency_us": self.latency_us, "messages": [m.to_dict() for m in self.messages]}


def message_text(message: dict[str, Any]) -> str:
    """A message's text: its content string, or the text of its content parts joined by newlines (a part's `text`
    or `refusal`, whatever its type; images and audio carry none)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(t for p in content for k in ("text", "refusal") if isinstance(t := p.get(k), str))


def tool_call_text(message: dict[str, Any]) -> str:
    """The arguments an assistant turn passes to tools (`tool_calls[].function.arguments`, `function_call`): what
    an agent sends out of the conversation, so a leak there is a leak."""
    calls = [c.get("function") or {} for c in message.get("tool_calls") or ()]
    calls.append(message.get("function_call") or {})
    return "\n".join(a for c in calls if isinstance(a := c.get("arguments"), str))


def scan_conversation(detector: Detector, messages: Sequence[Any], *, canaries: Sequence[str] | None = None,
                      request_id: str | None = None) -> ConversationReport:
    """Screen `messages` (see the module docstring). Raises `InputError` (from `Detector`) for a malformed
    conversation, naming the message. Linear in the conversation's length: the system messages and canaries are
    prepared once, each user turn once for the assistant turns that answer it."""
    from aimds_ray.core.detector import InputError, InputTooLarge, new_request_id

    t0 = time.perf_counter_ns()
    why = bad_messages(messages)
    if why:
        raise InputError(why)
    texts = [message_text(m) for m in messages]
    for i, m in enumerate(messages):
        if m["role"] in OUTPUT_ROLES and (calls := tool_call_text(m)):
            texts[i] = f"{texts[i]}\n{calls}" if texts[i] else calls
    system_texts = [t for m, t in zip(messages, texts, strict=True) if m["role"] in CONTEXT_ROLES and t]
    system = "\n\n".join(system_texts)
    total = sum(len(t) for m, t in zip(messages, texts, strict=True) if m["role"] not in CONTEXT_ROLES) + len(system)
    limit = detector.config.limits.max_input_chars
    if total > limit:
        raise InputTooLarge(f"the conversation holds {total} characters; the limit is {limit}")
    rid = request_id or new_request_id()
    base = detector._exchange(system or None, None, canaries)  # canaries checked once, for every assistant turn
    inputs = [i for i, m in enumerate(messages) if m["role"] in INPUT_ROLES and texts[i]]
    # (per-message ids are set after the scan: "<id>/<index>" may pass the 256 characters a caller's id may have)
    out: dict[int, ThreatReport] = dict(zip(inputs, detector.scan_batch([texts[i] for i in inputs]), strict=True))
    ctx = None
    answered: int | None = None  # the user turn `ctx` is prepared for
    last_user: int | None = None
    for i, m in enumerate(messages):
        if m["role"] == "user" and texts[i]:
            last_user = i
        elif m["role"] in OUTPUT_ROLES and texts[i]:
            if ctx is None:
                ctx = Context.build(base, detector.config.response)
            if answered != last_user:
                ctx = ctx.with_prompt(texts[last_user] if last_user is not None else None)
                answered = last_user
            out[i] = detector._scan_response(texts[i], ctx, None, time.perf_counter_ns())
    reports = [MessageReport(i, messages[i]["role"], out[i]) for i in sorted(out)]
    for r in reports:
        r.report.request_id = f"{rid}/{r.index}"
    conv = ConversationReport(False, Action.ALLOW, 0.0, "none", rid, detector.model_version, reports, 0.0)
    worst = conv.worst
    if worst is not None:
        r = worst.report
        conv.is_threat = any(m.report.is_threat for m in reports)
        conv.action, conv.score, conv.threat_type = r.action, r.score, r.threat_type
    conv.latency_us = round((time.perf_counter_ns() - t0) / 1000, 1)
    return conv
