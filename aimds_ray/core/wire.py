"""The JSON fields of request bodies, shared by every front (Serve ingress, HTTP/3 edge) so they accept the same
requests. Kept apart from `service` so the HTTP/3 edge can validate without importing the detector."""

from __future__ import annotations

DETECT_FIELDS = ("text", "session_id", "client_id", "request_id", "metadata")
# feedback_id: the client's key for one piece of feedback; re-sending it (after a timeout) is applied once
FEEDBACK_FIELDS = ("text", "request_id", "label", "category", "source", "session_id", "feedback_id")
