"""`aimds model list | show V | rollback V | prune --keep N`: the versions in `$AIMDS_HOME/models` (and the shipped
one).

`list` prints a JSON array (version, parent, threshold, fusion weights, metrics, `current`, `shipped`); `show` one
version in full; `rollback` makes an earlier version current (an atomic pointer switch; nothing is deleted) and
logs it, so feedback made on the newer version is not re-applied to the old one; `prune` deletes all but the newest
N local versions and the current one (each is ~7 MB, and the CLI commits one per accepted feedback).
"""

from __future__ import annotations

import argparse
import json
import sys

ORDER = 45


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="list, show or roll back learned model versions")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")
    ls = msub.add_parser("list", help="all versions as a JSON array, with metrics and the current flag")
    ls.add_argument("--pretty", action="store_true")
    ls.set_defaults(func=run_list)
    sh = msub.add_parser("show", help="one version in full (default: the current one)")
    sh.add_argument("version", nargs="?")
    sh.set_defaults(func=run_show)
    rb = msub.add_parser("rollback", help="make an earlier version current")
    rb.add_argument("version")
    rb.set_defaults(func=run_rollback)
    pr = msub.add_parser("prune", help="delete all but the newest N local versions and the current one")
    pr.add_argument("--keep", type=int, required=True, help="newest versions to keep (at least 1)")
    pr.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    pr.set_defaults(func=run_prune)
    p.set_defaults(func=_usage)


def _usage(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError

    raise UsageError("give an action: list, show V, rollback V, prune --keep N")


def run_list(args: argparse.Namespace) -> int:
    from aimds_ray.core.learner import list_versions

    print(json.dumps(list_versions(), indent=2 if args.pretty else None, default=str))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.model import ModelStore

    store = ModelStore()
    v = args.version or store.current_version()
    if v is None:
        raise UsageError("no model versions")
    try:
        d = store.describe(v)
        patterns = store.load(v).patterns
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    d["patterns"] = [{k: p.get(k) for k in ("category", "source", "added_at")} | {"text": str(p.get("text"))[:200]}
                     for p in patterns]
    print(json.dumps(d, indent=2, default=str))
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.feedback import LockTimeout
    from aimds_ray.core.learner import rollback

    try:
        out = rollback(args.version, lock_timeout=5.0)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    except LockTimeout:
        raise UsageError("another learner holds this $AIMDS_HOME (a running `aimds serve`?): stop it first, or roll "
                         "back through it") from None
    if out["dropped"]:
        print(f"aimds model: {out['dropped']} accepted feedback update(s) on {out['previous']} that were not "
              f"committed are no longer applied (they stay in the feedback log: seqs {out['dropped_seqs']})",
              file=sys.stderr)
    print(json.dumps(out))
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.feedback import LockTimeout
    from aimds_ray.core.learner import prune

    if args.keep < 1:
        raise UsageError("--keep must be at least 1")
    try:
        out = prune(args.keep, dry_run=args.dry_run, lock_timeout=5.0)
    except LockTimeout:
        raise UsageError("another learner holds this $AIMDS_HOME (a running `aimds serve`?): stop it first") from None
    print(json.dumps(out))
    return 0
