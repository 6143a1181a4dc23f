"""`aimds version`: package, model and key dependency versions as JSON."""

from __future__ import annotations

import argparse
import json
import platform

ORDER = 90

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="print versions as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    from aimds_ray import __version__
    from aimds_ray.core.model import load_current_model

    deps = {}
    for name in ("ray", "numpy", "numba", "pyarrow", "aioquic", "neo4j"):
        try:
            deps[name] = version(name)
        except PackageNotFoundError:
            deps[name] = None
    model = load_current_model()
    print(json.dumps({"aimds_ray": __version__, "model_version": getattr(model, "version", "rules-only"),
                      "python": platform.python_version(), "dependencies": deps}))
    return 0
