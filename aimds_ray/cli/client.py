"""`aimds client --h3 https://127.0.0.1:4433 TEXT [--insecure]`: send one text to a running aimds HTTP/3 front and
print the answer JSON; exit 0 allow, 1 threat (like `aimds scan`), 2 usage / 4xx, 3 connection or server error.
`--response` with the exchange flags of `aimds scan --response` posts to /v1/detect/response; `--messages` (a JSON
conversation, as `aimds scan --messages` reads it) to /v1/detect/messages."""

from __future__ import annotations

import argparse
import json
import sys

ORDER = 80


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("client", help="send a text to a running aimds server over HTTP/3 and print the report")
    p.add_argument("text", nargs="?", help="the text (omit to read --file or stdin)")
    p.add_argument("--h3", metavar="URL", default="https://127.0.0.1:4433",
                   help="HTTP/3 endpoint (default https://127.0.0.1:4433)")
    p.add_argument("--file", "-f", help="read the text from this file ('-' for stdin)")
    p.add_argument("--path", default="/v1/detect", help="API path: /v1/detect (default) or /v1/detect/batch")
    p.add_argument("--insecure", "-k", action="store_true",
                   help="do not verify the server certificate (the self-signed development certificate)")
    p.add_argument("--cafile", help="trust this CA / certificate file (e.g. $AIMDS_HOME/tls/dev-cert.pem)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    p.add_argument("--pretty", action="store_true", help="indented JSON for people")
    from aimds_ray.cli.scan import add_response_flags

    add_response_flags(p)
    p.add_argument("--messages", action="store_true",
                   help="the input is a JSON conversation (as for aimds scan --messages): POST /v1/detect/messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.cli.scan import _conversation, _exchange, _read_input
    from aimds_ray.core.validity import lone_surrogate
    from aimds_ray.quic.client import H3Error, detect

    if args.messages and (args.response or args.path != "/v1/detect"):
        raise UsageError("--messages posts to /v1/detect/messages; leave out --response and --path")
    if args.messages and any(getattr(args, n) is not None for n in ("system_prompt", "system_prompt_file", "prompt")):
        raise UsageError("--messages takes the system prompt and prompts from the conversation itself")
    exchange = _exchange(args) if not args.messages else {}
    fields: dict[str, object] = {}
    if args.response:
        system = exchange.get("system_prompt")
        if isinstance(system, bytes):
            try:
                system = system.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UsageError(f"--system-prompt-file is not valid UTF-8 (byte {e.start})") from None
        fields = {k: v for k, v in (("system_prompt", system), ("prompt", exchange.get("prompt")),
                                    ("canaries", exchange.get("canaries") or None)) if v is not None}
        if args.path != "/v1/detect":
            raise UsageError("--response posts to /v1/detect/response; leave out --path")
        args.path = "/v1/detect/response"
    data = _read_input(args)
    if args.messages:  # the conversation is the body; its texts are checked by the server
        fields = {"messages": _conversation(data), **({"canaries": args.canary} if args.canary else {})}
        args.path, data = "/v1/detect/messages", None
    elif isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"text is not valid UTF-8 (byte {e.start}: {e.reason})") from None
    if data is not None and (i := lone_surrogate(data)) >= 0:  # an argument with bytes that are not UTF-8
        what = "a byte that is not UTF-8" if 0xDC80 <= ord(data[i]) <= 0xDCFF else "a lone surrogate"
        raise UsageError(f"text is not valid UTF-8: {what} at character {i}")
    if not args.messages and args.path.rstrip("/") not in ("/v1/detect", "/v1/detect/batch", "/v1/detect/response"):
        raise UsageError(f"--path: expected /v1/detect, /v1/detect/batch or /v1/detect/response, got {args.path!r}")
    import logging

    logging.getLogger("quic").setLevel(logging.CRITICAL)  # aioquic's connection log: the error below says why
    try:
        resp = detect(args.h3, data, insecure=args.insecure, cafile=args.cafile, timeout=args.timeout,
                      path=args.path, fields=fields)
    except ValueError as e:  # bad URL
        raise UsageError(str(e)) from None
    except H3Error as e:
        print(f"aimds client: error: {e}", file=sys.stderr)
        return 3
    try:
        body = resp.json()
    except ValueError:
        print(f"aimds client: error: HTTP {resp.status}, not JSON: {resp.body[:200]!r}", file=sys.stderr)
        return 3
    print(json.dumps(body, indent=2 if args.pretty else None))
    if resp.status >= 400:
        print(f"aimds client: HTTP {resp.status}: {body.get('error') if isinstance(body, dict) else body}",
              file=sys.stderr)
        return 2 if resp.status < 500 else 3
    reports = body.get("reports", [body]) if isinstance(body, dict) else []
    return 1 if any(r.get("is_threat") for r in reports) else 0
