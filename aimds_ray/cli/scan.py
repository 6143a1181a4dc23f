"""`aimds scan TEXT | --file F | < stdin`: one JSON report; exit 0 allow, 1 threat, 2 usage error.

`--response` scans a model's response instead (`Detector.scan_response`), against the exchange given with
`--system-prompt[-file]`, `--prompt` and `--canary` (each optional). `--messages` reads the input as an
OpenAI-style conversation (a JSON list of messages, or a chat request body with `messages`) and prints its
conversation report (`Detector.scan_messages`)."""

from __future__ import annotations

import argparse
import json
import os
import sys

ORDER = 10

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="scan one text and print its ThreatReport as JSON")
    p.add_argument("text", nargs="?", help="the text (omit to read --file or stdin)")
    p.add_argument("--file", "-f", help="read the text from this file ('-' for stdin)")
    p.add_argument("--pretty", action="store_true", help="indented JSON for people")
    p.add_argument("--config", help="config file merged over the default")
    add_response_flags(p)
    p.add_argument("--messages", action="store_true",
                   help="the input is a JSON conversation: a list of {role, content} messages, or a chat request "
                        "body holding one; --canary applies to its assistant turns")
    p.set_defaults(func=run)


def add_response_flags(p: argparse.ArgumentParser) -> None:
    """The flags of a response scan (`aimds scan --response`, `aimds client --response`)."""
    r = p.add_argument_group("responses", "scan what a model returned: its system prompt, canaries or data leaving")
    r.add_argument("--response", action="store_true", help="the text is a model's response")
    r.add_argument("--system-prompt", help="the system prompt the response must not reveal")
    r.add_argument("--system-prompt-file", help="... read from this file")
    r.add_argument("--prompt", help="the user's prompt the response answers")
    r.add_argument("--canary", action="append", default=[], help="a canary token planted in the context (repeatable)")


def _read_input(args: argparse.Namespace) -> str | bytes:
    from aimds_ray.cli import UsageError

    if args.text is not None and args.file:
        raise UsageError("give TEXT or --file, not both")
    if args.text is not None:
        return args.text
    if args.file and args.file != "-":
        try:
            with open(args.file, "rb") as f:
                return f.read()
        except (IsADirectoryError, PermissionError) as e:
            raise UsageError(f"cannot read {args.file}: {e.strerror}") from None
    if sys.stdin is None or (sys.stdin.isatty() and not args.file):
        raise UsageError("no text: give TEXT, --file F, or pipe text on stdin")
    return sys.stdin.buffer.read()


def _exchange(args: argparse.Namespace) -> dict[str, object]:
    from aimds_ray.cli import UsageError

    given = [n for n in ("system_prompt", "system_prompt_file", "prompt") if getattr(args, n) is not None]
    if not args.response:
        if given or args.canary:
            raise UsageError(f"--{given[0].replace('_', '-') if given else 'canary'} needs --response")
        return {}
    if args.system_prompt is not None and args.system_prompt_file:
        raise UsageError("give --system-prompt or --system-prompt-file, not both")
    system: str | bytes | None = args.system_prompt
    if args.system_prompt_file:
        try:
            with open(args.system_prompt_file, "rb") as f:
                system = f.read()
        except OSError as e:
            raise UsageError(f"cannot read {args.system_prompt_file}: {e.strerror}") from None
    return {"system_prompt": system, "prompt": args.prompt, "canaries": args.canary}


def _conversation(data: str | bytes) -> list:
    """The messages of `aimds scan --messages` input: a JSON list, or an object with a `messages` list (a chat
    completion request body; its other fields, the model's settings, are not screened)."""
    from aimds_ray.cli import UsageError

    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"--messages: the input is not JSON ({e})") from None
    except RecursionError:
        raise UsageError("--messages: the input is JSON nested too deeply to read") from None
    if isinstance(obj, dict) and "messages" in obj:
        obj = obj["messages"]
    if not isinstance(obj, list):
        raise UsageError('--messages: the input must be a JSON list of messages or an object with "messages"')
    return obj


def run(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.detector import Detector

    if args.messages and args.response:
        raise UsageError("give --messages or --response, not both (a conversation's assistant turns are checked "
                         "as responses)")
    exchange = _exchange(args) if not args.messages else {}
    if args.messages and any(getattr(args, n) is not None for n in ("system_prompt", "system_prompt_file",
                                                                     "prompt")):
        raise UsageError("--messages takes the system prompt and prompts from the conversation itself")
    data = _read_input(args)
    det = Detector(args.config)
    if args.messages:
        report = det.scan_messages(_conversation(data), canaries=args.canary or None)
        out = json.dumps(report.to_dict(), ensure_ascii=False, indent=2 if args.pretty else None)
    else:
        report = det.scan_response(data, **exchange) if args.response else det.scan(data)
        out = report.to_json(indent=2 if args.pretty else None)
    code = 1 if report.is_threat else 0
    try:
        out.encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:  # a terminal or pipe that is not UTF-8 gets JSON's \u escapes (still valid JSON)
        out = json.dumps(json.loads(out), ensure_ascii=True, indent=2 if args.pretty else None)
    try:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `aimds scan ... | head`: the reader left, the verdict is still the exit code
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code
