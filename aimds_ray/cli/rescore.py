"""`aimds rescore INPUT OUTPUT --engine local|ray`: score historical traffic, keep every column, add the verdict."""

from __future__ import annotations

import argparse
import json
import sys

ORDER = 20

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rescore", help="re-score JSONL/Parquet traffic; adds is_threat, score, threat_type, action")
    p.add_argument("input", help="a .jsonl or .parquet file, a directory of them, or a glob")
    p.add_argument("output", help="output file (.jsonl or .parquet) for --engine local, directory for ray")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--text-column", default="text")
    p.add_argument("--config", help="config file merged over the default")
    p.add_argument("--address", help="Ray address for --engine ray (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=None, help="detector actors for --engine ray")
    p.add_argument("--sessions", help="session_col,time_col: also replay sessions (--engine ray)")
    p.add_argument("--wave-rows", type=int, default=1_000_000,
                   help="--engine ray commits (and can resume) after about this many rows")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    r = p.add_argument_group("responses", "the text column holds model responses (Detector.scan_response)")
    r.add_argument("--response", action="store_true", help="scan the texts as responses")
    r.add_argument("--system-prompt-column", help="column with each row's system prompt")
    r.add_argument("--prompt-column", help="column with each row's user prompt")
    r.add_argument("--canary-column", help="column with each row's canaries (a list of strings, or one string)")
    p.set_defaults(func=run)


def _exchange(args: argparse.Namespace) -> object:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.batch import ExchangeColumns

    cols = ExchangeColumns(args.system_prompt_column, args.prompt_column, args.canary_column)
    if not args.response:
        if cols.names():
            raise UsageError("--system-prompt-column, --prompt-column and --canary-column need --response")
        return None
    if args.sessions:
        raise UsageError("--sessions replays requests; it does not combine with --response")
    return cols


def run(args: argparse.Namespace) -> int:
    from aimds_ray.core.detector import Detector

    exchange = _exchange(args)
    if args.engine == "local":
        from aimds_ray.core.batch import rescore_local
        from aimds_ray.core.process import settle_heap

        detector = Detector(args.config)
        detector.warm_up()
        settle_heap()  # this process is the CLI's: start-up objects leave the collector's work
        summary = rescore_local(args.input, args.output, detector=detector,
                                text_column=args.text_column, progress=False if args.quiet else None,
                                exchange=exchange)
    else:
        try:
            from aimds_ray.distributed.rescore import rescore_ray
        except ImportError as e:
            from aimds_ray.cli import UsageError

            raise UsageError(f"--engine ray is not available: {e}") from None
        summary = rescore_ray(args.input, args.output, config=args.config, text_column=args.text_column,
                              address=args.address, workers=args.workers, sessions=args.sessions,
                              progress=not args.quiet, wave_rows=args.wave_rows, exchange=exchange)
    print(json.dumps(summary.to_dict()), file=sys.stdout)
    return 0
