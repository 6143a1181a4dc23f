"""`aimds verify --formula F [--formula G ...] | --policy FILE|DIR ... --trace T.jsonl`: one JSON line per formula
(verdict + witness); exit 0 all satisfied, 1 any violated, 2 bad formula, policy or trace (message names the
position / file and key / line)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ORDER = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify temporal-logic policies over an event trace (JSONL)")
    p.add_argument("--formula", "-e", action="append", default=[], metavar="F",
                   help="an LTLf/MTL formula (repeatable)")
    p.add_argument("--policy", "-p", action="append", default=[], metavar="FILE",
                   help="a policy YAML file, or a directory of them (repeatable)")
    p.add_argument("--trace", "-t", required=True, help="JSONL trace: one event per line with 't' in seconds")
    p.add_argument("--atoms", default=None,
                   help="comma-separated declared atoms: formulas may then only use these, the trace's event "
                        "types and fields and the default vocabulary")
    p.add_argument("--no-witness", action="store_true", help="print verdicts only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.ltl import (
        PolicyError,
        PolicySyntaxError,
        Trace,
        TraceError,
        UnknownAtomError,
        load_jsonl,
        load_policies,
        parse,
        verify_many,
    )
    from aimds_ray.core.ltl.policy import load_policy

    if not args.formula and not args.policy:
        raise UsageError("give at least one --formula or --policy")
    atoms = [a.strip() for a in args.atoms.split(",") if a.strip()] if args.atoms is not None else None
    items: list[tuple[dict, object]] = []
    for k, text in enumerate(args.formula):
        try:
            items.append(({"formula": text}, parse(text)))
        except PolicySyntaxError as e:
            raise UsageError(f"--formula #{k + 1}: {e}") from None
    for path in args.policy:
        try:
            pols = load_policies(path) if Path(path).is_dir() else [load_policy(path)]
        except PolicyError as e:
            raise UsageError(str(e)) from None
        for pol in pols:
            items.append(({"policy": pol.name, "severity": pol.severity, "action": pol.action,
                           "formula": pol.text}, pol.formula))
    try:
        trace = Trace(load_jsonl(args.trace), validate=False)
    except TraceError as e:
        raise UsageError(f"{args.trace}: {e}") from None
    except OSError as e:
        raise UsageError(f"{args.trace}: cannot read: {e.strerror or e}") from None
    if trace.n == 0:
        raise UsageError(f"{args.trace}: the trace has no events")
    try:
        results = verify_many([f for _, f in items], trace, atoms=atoms)  # type: ignore[misc]
    except UnknownAtomError as e:
        raise UsageError(str(e)) from None
    violated = False
    for (head, _), r in zip(items, results, strict=True):
        out = {**head, "verdict": r.verdict, "n_events": trace.n}
        if r.unknown_atoms:
            out["atoms_not_in_trace"] = r.unknown_atoms
        if not args.no_witness:
            out["witness"] = r.witness
        violated |= not r.satisfied
        print(json.dumps(out, separators=(",", ":")))
    return 1 if violated else 0
