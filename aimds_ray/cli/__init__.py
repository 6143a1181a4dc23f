"""The `aimds` command line: thin; each command group is a module in this package with `register(subparsers)`
(found by discovery, ordered by its optional `ORDER`), so adding a command touches no shared file.

Exit codes: 0 success / allow, 1 threat found or policy violated, 2 usage or input error, 3 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys


def _command_modules() -> list:
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "register"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.__name__))


class UsageError(Exception):
    """Bad arguments or input: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aimds", description="AI Manipulation Defense System (aimds-ray)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        mod.register(sub)
    return parser


_COMPILING = frozenset({"scan", "rescore", "train", "serve", "feedback", "attractor"})  # commands that run kernels


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from aimds_ray.core.config import ConfigError
    from aimds_ray.core.detector import InputError

    if args.command in _COMPILING:
        from aimds_ray.core.process import kernels_cached

        if kernels_cached() is False:
            print("aimds: first run after install: compiling the detector's kernels (tens of seconds, once; "
                  "cached for later runs)", file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError, InputError, FileNotFoundError) as e:
        print(f"aimds {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`aimds scan ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # the user sees one line; AIMDS_DEBUG=1 shows the traceback
        if os.environ.get("AIMDS_DEBUG"):
            raise
        from aimds_ray.core.batch import RescoreError

        if isinstance(e, RescoreError):
            print(f"aimds {args.command}: error: {e}", file=sys.stderr)
            return 2
        print(f"aimds {args.command}: internal error: {type(e).__name__}: {e} (AIMDS_DEBUG=1 for details)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
