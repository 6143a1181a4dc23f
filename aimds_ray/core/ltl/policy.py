"""Policy files and per-session monitoring.

A policy file (`configs/policies/*.yaml`, shipped as `aimds_ray/data/policies/`) holds one policy::

    name: no_tool_call_after_prompt_extraction      # [a-z0-9_-]+, unique in the directory
    formula: G (threat_type == "prompt_extraction" -> (human_approval R !tool_call))
    severity: high                                  # low | medium | high | critical
    action: block                                   # on violation: log | escalate | block
    description: After a prompt-extraction attempt, no tool call until a human approves.
    atoms: [human_approval, tool_call]              # declared atoms (plus the system's default vocabulary)

Files are validated when loaded (start-up), so a typo fails loudly with the file and key, never mid-session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aimds_ray.core.config import load_yaml

from .monitor import PENDING, VIOLATED, CompiledMonitor, Monitor
from .syntax import Formula, PolicySyntaxError, UnknownAtomError, parse
from .trace import Trace
from .verify import DEFAULT_VOCABULARY, VerifyResult, verify_many

__all__ = ["Policy", "PolicyError", "PolicySet", "SessionPolicyMonitor", "load_policies", "load_policy",
           "default_policy_dir", "SEVERITIES", "ACTIONS"]

SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = ("log", "escalate", "block")
_ACTION_RANK = {a: i for i, a in enumerate(ACTIONS)}
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_KEYS = {"name", "formula", "severity", "action", "description", "atoms"}


class PolicyError(ValueError):
    """A policy file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Policy:
    name: str
    formula: Formula
    text: str
    severity: str = "medium"
    action: str = "log"
    description: str = ""
    atoms: tuple[str, ...] = ()
    source: str = ""
    _monitor: CompiledMonitor | None = field(default=None, compare=False, repr=False)

    @property
    def compiled(self) -> CompiledMonitor:
        if self._monitor is None:
            object.__setattr__(self, "_monitor", CompiledMonitor(self.formula))
        assert self._monitor is not None
        return self._monitor

    def to_dict(self) -> dict:
        return {"name": self.name, "formula": self.text, "severity": self.severity, "action": self.action,
                "description": self.description, "atoms": list(self.atoms)}


def default_policy_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "data" / "policies"


def make_policy(data: Any, source: str = "<policy>") -> Policy:
    """Validate one policy mapping; errors read `source: key: problem`."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping with keys {', '.join(sorted(_KEYS))}, "
                          f"got {type(data).__name__}")
    for k in data:
        if k not in _KEYS:
            raise PolicyError(f"{source}: {k}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
    for k in ("name", "formula"):
        if k not in data:
            raise PolicyError(f"{source}: {k}: missing required key")

    def text(key: str, default: str | None = None) -> str:
        v = data.get(key, default)
        if not isinstance(v, str) or (key != "description" and not v.strip()):
            raise PolicyError(f"{source}: {key}: expected a non-empty string, got {v!r}")
        return v

    name = text("name")
    if not _NAME_RE.match(name):
        raise PolicyError(f"{source}: name: {name!r} must match [a-z0-9][a-z0-9_-]*")
    severity = text("severity", "medium")
    if severity not in SEVERITIES:
        raise PolicyError(f"{source}: severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    action = text("action", "log")
    if action not in ACTIONS:
        raise PolicyError(f"{source}: action: expected one of {', '.join(ACTIONS)}, got {action!r}")
    description = text("description", "")
    atoms = data.get("atoms", [])
    if not isinstance(atoms, list) or not all(isinstance(a, str) and re.fullmatch(r"[a-z_][a-z0-9_]*", a)
                                              for a in atoms):
        raise PolicyError(f"{source}: atoms: expected a list of atom names [a-z_][a-z0-9_]*, got {atoms!r}")
    formula_text = text("formula")
    try:
        formula = parse(formula_text, set(atoms) | DEFAULT_VOCABULARY)
    except PolicySyntaxError as e:
        raise PolicyError(f"{source}: formula: {e}") from None
    except UnknownAtomError as e:
        raise PolicyError(f"{source}: formula: unknown atom(s) {', '.join(e.atoms)}: list them under "
                          f"'atoms' or check the spelling") from None
    return Policy(name, formula, formula_text, severity, action, description, tuple(atoms), source)


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        data = load_yaml(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PolicyError(f"{p}: invalid YAML: {e}") from None
    except OSError as e:
        raise PolicyError(f"{p}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise PolicyError(f"{p}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    return make_policy(data, str(p))


class PolicySet(Sequence[Policy]):
    """Validated policies, checked offline together (one pass over the trace) or monitored per session."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.policies = list(policies)
        seen: dict[str, str] = {}
        for p in self.policies:
            if p.name in seen:
                raise PolicyError(f"{p.source}: name: duplicate policy name {p.name!r} (also in {seen[p.name]})")
            seen[p.name] = p.source

    def __getitem__(self, i):  # type: ignore[override]
        return self.policies[i]

    def __len__(self) -> int:
        return len(self.policies)

    def by_name(self, name: str) -> Policy:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def verify(self, trace: Sequence[dict] | Trace) -> list[VerifyResult]:
        return verify_many([p.formula for p in self.policies], trace)

    def session(self, session_id: str | None = None) -> SessionPolicyMonitor:
        return SessionPolicyMonitor(self, session_id)


def load_policies(directory: str | Path | None = None) -> PolicySet:
    """Load and validate every `*.yaml` / `*.yml` in `directory` (default: the shipped policy set)."""
    d = Path(directory) if directory is not None else default_policy_dir()
    if not d.is_dir():
        raise PolicyError(f"{d}: not a directory of policy files")
    files = sorted([*d.glob("*.yaml"), *d.glob("*.yml")])
    if not files:
        raise PolicyError(f"{d}: no policy files (*.yaml)")
    return PolicySet(load_policy(f) for f in files)


class SessionPolicyMonitor:
    """All policies' runtime monitors for one session (hosted by an actor later). `step(event)` returns the
    policies whose verdict became final at this event; `snapshot()`/`restore()` move the state as plain data."""

    def __init__(self, policies: PolicySet | Sequence[Policy], session_id: str | None = None) -> None:
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet(policies)
        self.session_id = session_id
        self.monitors: list[Monitor] = [p.compiled.monitor() for p in self.policies]
        self._reported = [False] * len(self.monitors)
        # policies whose monitor gave up (why), stepped no more: the others must not lose the event with it
        self.failed: dict[str, str] = {}

    def step(self, event: dict) -> list[dict]:
        out = []
        for k, m in enumerate(self.monitors):
            name = self.policies[k].name
            if name in self.failed:
                continue
            try:
                v = m.step(event)
            except (RecursionError, MemoryError) as e:  # a residual that grows with every event (rare formulas)
                self.failed[name] = f"monitor gave up at event {m.n_events}: {type(e).__name__} (its residual " \
                                    "formula kept growing); use `aimds verify` on the recorded trace instead"
                continue
            if v is not PENDING and not self._reported[k]:
                self._reported[k] = True
                out.append(self._verdict_record(k, v))
        return out

    def _verdict_record(self, k: int, v: str) -> dict:
        p, m = self.policies[k], self.monitors[k]
        at = m.certain_at
        return {"policy": p.name, "verdict": v, "severity": p.severity,
                "action": p.action if v == VIOLATED else "none",
                "index": None if at is None else at[0], "t": None if at is None else at[1],
                "session_id": self.session_id}

    def verdicts(self) -> dict[str, str]:
        return {p.name: "error" if p.name in self.failed else m.verdict
                for p, m in zip(self.policies, self.monitors, strict=True)}

    def action(self) -> str:
        """Strongest action demanded by the policies violated so far: none | log | escalate | block."""
        best = "none"
        for p, m in zip(self.policies, self.monitors, strict=True):
            if m.verdict == VIOLATED and (best == "none" or _ACTION_RANK[p.action] > _ACTION_RANK[best]):
                best = p.action
        return best

    def finish(self) -> list[dict]:
        """Final LTLf verdict of every policy for the session so far."""
        out = []
        for k, m in enumerate(self.monitors):
            v = m.finish()
            rec = self._verdict_record(k, v)
            at = m.certain_at
            if at is not None:
                rec["index"], rec["t"] = at
            out.append(rec)
        return out

    def snapshot(self) -> dict:
        return {"session_id": self.session_id, "reported": list(self._reported),
                "monitors": {p.name: m.snapshot() for p, m in zip(self.policies, self.monitors, strict=True)}}

    @classmethod
    def restore(cls, policies: PolicySet | Sequence[Policy], snap: dict) -> SessionPolicyMonitor:
        s = cls(policies, snap.get("session_id"))
        mons = snap["monitors"]
        for k, (p, m) in enumerate(zip(s.policies, s.monitors, strict=True)):
            if p.name not in mons:
                raise PolicyError(f"snapshot has no state for policy {p.name!r}")
            if mons[p.name]["formula"] != str(p.formula):
                raise PolicyError(f"snapshot of policy {p.name!r} was taken with a different formula")
            m.load(mons[p.name])
            s._reported[k] = bool(snap["reported"][k]) if k < len(snap["reported"]) else False
        return s


