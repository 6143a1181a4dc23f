"""`aimds attractor FILE [--column NAME]`: attractor analysis of a numeric series, printed as JSON."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys

ORDER = 60


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attractor", help="Lyapunov exponent and attractor class of a numeric series (JSON)")
    p.add_argument("file", help="one number per line, or a CSV file with --column ('-' for stdin)")
    p.add_argument("--column", help="CSV column (header name) holding the series")
    p.add_argument("--pretty", action="store_true", help="indented JSON for people")
    p.set_defaults(func=run)


def _read(path: str, column: str | None) -> list[float]:
    from aimds_ray.cli import UsageError

    try:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8", newline="")  # noqa: SIM115
    except (IsADirectoryError, PermissionError) as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e
    with f:
        try:
            if column is not None:
                reader = csv.DictReader(f)
                if reader.fieldnames is None or column not in reader.fieldnames:
                    raise UsageError(f"column {column!r} not found (columns: {', '.join(reader.fieldnames or [])})")
                raw = [(reader.line_num, row[column]) for row in reader]
            else:
                raw = [(i, line) for i, line in enumerate(f, start=1) if line.strip()]
        except UnicodeDecodeError as e:
            raise UsageError(f"{path} is not UTF-8 text") from e
    out: list[float] = []
    for line_no, v in raw:
        try:
            x = float(str(v).strip())
        except ValueError:
            hint = " (a CSV? name the column with --column)" if column is None and "," in str(v) else ""
            raise UsageError(f"line {line_no}: not a number: {str(v).strip()[:40]!r}{hint}") from None
        if not math.isfinite(x):
            raise UsageError(f"line {line_no}: not a finite number: {str(v).strip()[:40]!r}")
        out.append(x)
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from aimds_ray.cli import UsageError
    from aimds_ray.core.attractor import analyze

    values = _read(args.file, args.column)
    try:
        result = analyze(np.asarray(values, dtype=np.float64))
    except ValueError as e:
        raise UsageError(str(e)) from e
    print(json.dumps(result.to_dict(), indent=2 if args.pretty else None))
    return 0
