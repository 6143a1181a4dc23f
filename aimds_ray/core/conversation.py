"""A conversation screened as one request: the OpenAI-style `messages` an application sends to its model.

Why: an application does not send its model one text but a conversation, and where a text sits in it says what to
look for. The user's turns and tool results (documents, web pages, function output) are input the model will read
and may follow: each is scanned as `Detector.scan` scans a text (a tool result is where indirect injection
arrives). Earlier assistant turns are output: each is checked as a response (`Detector.scan_response`) against the
system messages and the user turn it answers, so a system prompt or canary leaked in an earlier answer is found.
System and developer messages are the application's own instructions: not screened as input, they are the
exchange the responses are checked against. The conversation's verdict is its worst message's.

Clients usually resend the whole history with every turn; each call screens all of it (linear in its length).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimds_ray.core.report import Action, ThreatReport
from aimds_ray.core.wire import CONTEXT_ROLES, INPUT_ROLES, bad_messages

if TYPE_CHECKING:
    from aimds_ray.core.detector import Detector

_SEVERITY = {Action.ALLOW: 0, Action.REDACT: 1, Action.ESCALATE: 2, Action.BLOCK: 3}


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
        return max(self.messages, key=lambda m: (_SEVERITY[m.report.action], m.report.is_threat, m.report.score))

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {"request_id": self.request_id, "is_threat": self.is_threat, "action": str(self.action),
                "score": self.score, "threat_type": self.threat_type,
                "worst_index": None if worst is None else worst.index, "model_version": self.model_version,
                "latency_us": self.latency_us, "messages": [m.to_dict() for m in self.messages]}


def message_text(message: dict[str, Any]) -> str:
    """A message's text: its content string, or its text parts joined by newlines (other parts, such as images,
    carry no text to screen)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")


def scan_conversation(detector: Detector, messages: Sequence[Any], *, canaries: Sequence[str] | None = None,
                      request_id: str | None = None) -> ConversationReport:
    """Screen `messages` (see the module docstring). Raises `InputError` (from `Detector`) for a malformed
    conversation, naming the message."""
    from aimds_ray.core.detector import InputError, InputTooLarge, new_request_id

    t0 = time.perf_counter_ns()
    why = bad_messages(messages)
    if why:
        raise InputError(why)
    limit = detector.config.limits.max_input_chars
    texts = [message_text(m) for m in messages]
    total = sum(len(t) for t in texts)
    if total > limit:
        raise InputTooLarge(f"the conversation holds {total} characters; the limit is {limit}")
    rid = request_id or new_request_id()
    system = "\n\n".join(t for m, t in zip(messages, texts, strict=True) if m["role"] in CONTEXT_ROLES and t)
    inputs = [i for i, m in enumerate(messages) if m["role"] in INPUT_ROLES and texts[i]]
    out: dict[int, ThreatReport] = {}
    try:
        batch = detector.scan_batch([texts[i] for i in inputs], request_ids=[f"{rid}/{i}" for i in inputs])
    except InputError as e:  # "texts[k]: ..." names the k-th screened text: name the message instead
        k = str(e).split("]", 1)[0].removeprefix("texts[")
        where = f"messages[{inputs[int(k)]}]" if k.isdigit() else "messages"
        raise type(e)(f"{where}: {str(e).split(': ', 1)[-1]}") from None
    out.update(zip(inputs, batch, strict=True))
    last_user: str | None = None
    for i, m in enumerate(messages):
        if m["role"] == "user" and texts[i]:
            last_user = texts[i]
        elif m["role"] == "assistant" and texts[i]:
            try:
                out[i] = detector.scan_response(texts[i], system_prompt=system or None, prompt=last_user,
                                                canaries=canaries, request_id=f"{rid}/{i}")
            except InputError as e:
                raise type(e)(f"messages[{i}]: {e}") from None
    reports = [MessageReport(i, messages[i]["role"], out[i]) for i in sorted(out)]
    conv = ConversationReport(False, Action.ALLOW, 0.0, "none", rid, detector.model_version, reports, 0.0)
    worst = conv.worst
    if worst is not None:
        r = worst.report
        conv.is_threat = any(m.report.is_threat for m in reports)
        conv.action, conv.score, conv.threat_type = r.action, r.score, r.threat_type
    conv.latency_us = round((time.perf_counter_ns() - t0) / 1000, 1)
    return conv
