"""`aimds feedback --text T --label 0|1 [--category C] [--source S]`: teach the embedded learner; prints the ack JSON.

The update is applied by a `Learner` on `$AIMDS_HOME` and committed as a new model version at once, so later
`aimds scan` / `aimds rescore --engine local` runs use it. Exit 0 accepted, 1 rejected or refused (a guard, the
source budget or an unauthorised source said no; the model is unchanged), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys

ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("feedback", help="report a missed attack (label 1) or a false alarm (label 0)")
    p.add_argument("--text", "-t", help="the text (omit to read --file or stdin)")
    p.add_argument("--file", "-f", help="read the text from this file ('-' for stdin)")
    p.add_argument("--label", "-l", required=True, choices=["0", "1"], help="1 = attack, 0 = benign")
    p.add_argument("--category", "-c", help="attack category (default: the model's best guess) or benign kind")
    p.add_argument("--source", "-s", default="cli", help="who says so (must be an allowed source; default cli)")
    p.add_argument("--request-id", help="the request this feedback is about (kept for audit)")
    p.add_argument("--id", dest="feedback_id", help="idempotency key: re-sending it returns the first answer")
    p.add_argument("--no-commit", action="store_true", help="log and apply, but leave the commit to a later run")
    p.add_argument("--config", help="config file merged over the default")
    p.add_argument("--pretty", action="store_true", help="indented JSON for people")
    p.set_defaults(func=run)


def _text(args: argparse.Namespace) -> str:
    from aimds_ray.cli import UsageError

    if args.text is not None and args.file:
        raise UsageError("give --text or --file, not both")
    if args.text is not None:
        return args.text
    try:
        if args.file and args.file != "-":
            with open(args.file, "rb") as f:
                data = f.read()
        elif sys.stdin is None or (sys.stdin.isatty() and not args.file):
            raise UsageError("no text: give --text T, --file F, or pipe text on stdin")
        else:
            data = sys.stdin.buffer.read()
    except (IsADirectoryError, PermissionError) as e:
        raise UsageError(f"cannot read {args.file}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{args.file or 'stdin'}: text is not valid UTF-8 (byte {e.start}: {e.reason})") from None


def run(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.config import load_config
    from aimds_ray.core.feedback import LockTimeout
    from aimds_ray.core.learner import FeedbackError, Learner, LearnerConfig, dumps

    text = _text(args)
    # another learner (a running `aimds serve`, or another CLI call) holds $AIMDS_HOME/feedback: wait a little for
    # a CLI call to finish, then say what to do instead of waiting a minute
    cfg = LearnerConfig(checkpoint_every=0 if args.no_commit else 1, checkpoint_seconds=0, lock_timeout=5.0)
    try:
        with Learner(cfg, aimds_config=load_config(args.config)) as learner:
            ack = learner.submit(text, int(args.label), category=args.category, source=args.source,
                                 request_id=args.request_id, feedback_id=args.feedback_id)
            if not args.no_commit and ack.get("status") == "accepted" and "committed_version" not in ack:
                learner.checkpoint_into(ack)  # re-applied feedback from a crash, if any
            ack["current_version"] = learner.store.current_version()
    except FeedbackError as e:
        raise UsageError(str(e)) from None
    except LockTimeout:
        raise UsageError("another learner holds this $AIMDS_HOME (a running `aimds serve`?): send the feedback to "
                         "the service (POST /v1/feedback), or stop it first") from None
    print(dumps(ack) if not args.pretty else __import__("json").dumps(ack, indent=2, default=str))
    return 0 if ack.get("status") == "accepted" else 1
