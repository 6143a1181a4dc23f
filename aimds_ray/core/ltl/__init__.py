"""Security policies in temporal logic: LTLf/MTL parser, fast offline verifier, runtime monitor, audit witnesses.

Docs
----
A policy is a formula over the events of a session trace. An event is a JSON object with `t` (seconds, float,
non-decreasing) and fields; `type` names its kind (detect, response, tool_call, redacted, mitigated,
human_approval, ...). An atom `name` holds at an event when the event's `type` is `name` or its field `name` is
`true`; a comparison `field op value` (`score >= 0.9`, `threat_type == "prompt_extraction"`) holds when the field
exists with a comparable value (numbers with numbers, strings and booleans with == / != only).

Grammar (loosest binding first; every binary level is right-associative)::

    formula  := iff
    iff      := implies ( "<->" iff )?
    implies  := or ( "->" implies )?
    or       := and ( "|" or )?
    and      := temporal ( "&" and )?
    temporal := unary ( ("U" | "R" | "S") temporal )?
    unary    := ("!" | "X" | "N" | "F" | "G" | "Y" | "O" | "H") unary
              | ("F" | "G" | "O" | "H") interval unary
              | primary
    interval := "[" duration "," duration "]"          lower <= upper, both >= 0
    duration := NUMBER ("ms" | "s")?                    no unit = seconds
    primary  := "true" | "false" | "(" formula ")"
              | ATOM ( ("==" | "!=" | "<" | "<=" | ">" | ">=") literal )?
    literal  := "-"? NUMBER | STRING | "true" | "false" STRING is double-quoted with backslash escapes
    ATOM     := [a-z_][a-z0-9_]*                        operators are upper-case, so never atoms

Glued operator letters are accepted (`GF p`, `Xp`).

Semantics (LTLf, De Giacomo & Vardi 2013, at position 0 of a non-empty finite trace): `X p` strong next (there is a
next event and p holds there), `N p` weak next (true at the last event), `F`/`G` eventually/always (to the end of
the trace), `p U q` (q eventually, p until then), `p R q` (q up to and including the first p, or to the end),
past `Y p` (previous event; false at the first), `O` once, `H` historically, `p S q` since. Timed operators use
event timestamps (point-based MTL): `F[a,b] p` some event j >= i with a <= t_j - t_i <= b has p; `G[a,b] p` all
such events have p (vacuously true when there is none); `O[a,b] p` / `H[a,b] p` likewise backwards.

Atoms must be declared: `parse(text, atoms=...)`, policy files (`atoms:` plus the system's default vocabulary)
and `verify(..., atoms=..., strict=True)` reject undeclared atoms. `verify(formula, trace)` without declarations
accepts any well-formed atom (an atom that never occurs is false everywhere) and reports the atoms that never occur
in the trace (`unknown_atoms`) so typos stay visible: external checks give random traces in which an atom may
simply not occur.

Use::

    from aimds_ray.core.ltl import verify, Monitor, load_policies
    r = verify('G (detect & pii -> (!response U redacted))', events)   # r.verdict, r.witness, r.to_dict()
    m = Monitor('G (critical -> F[0,10ms] mitigated)'); m.step(ev) ... m.finish()
"""

from .evaluator import Program, compile_program
from .monitor import PENDING, SATISFIED, VIOLATED, CompiledMonitor, Monitor, compile_monitor
from .policy import Policy, PolicyError, PolicySet, SessionPolicyMonitor, default_policy_dir, load_policies
from .syntax import Atom, Formula, PolicySyntaxError, UnknownAtomError, parse
from .trace import Trace, TraceError, load_jsonl
from .verify import DEFAULT_VOCABULARY, VerifyResult, verify, verify_many

__all__ = [
    "Atom", "CompiledMonitor", "DEFAULT_VOCABULARY", "Formula", "Monitor", "PENDING", "Policy", "PolicyError",
    "PolicySet", "PolicySyntaxError", "Program", "SATISFIED", "SessionPolicyMonitor", "Trace", "TraceError",
    "UnknownAtomError", "VIOLATED", "VerifyResult", "compile_monitor", "compile_program", "default_policy_dir",
    "load_jsonl", "load_policies", "parse", "verify", "verify_many",
]
