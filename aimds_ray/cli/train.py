"""`aimds train`: build a model bundle from labelled JSONL (deterministic)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aimds_ray.core.config import load_yaml

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model bundle from labelled JSONL files")
    p.add_argument("files", nargs="*", help="JSONL files (default: the licence-clean list in configs/training.yaml)")
    p.add_argument("--data-dir", help="directory the default file list is relative to (default ../shared/data)")
    p.add_argument("--out", help="bundle directory (default: a new version in $AIMDS_HOME/models, made current)")
    p.add_argument("--version", default=None, help="version name (default: next free vN)")
    p.add_argument("--config", help="config file merged over the default")
    p.add_argument("--no-corpora", action="store_true",
                   help="leave out the benign corpora shipped in the package (training.yaml 'corpora')")
    p.set_defaults(func=run)


def load_training_spec() -> dict:
    return load_yaml((Path(__file__).resolve().parent.parent / "data" / "training.yaml").read_text())


def _check_new_version(store: Any, version: str) -> None:
    """A version `aimds train` may create in the store: a plain name that no version (learned ones included) has."""
    from aimds_ray.cli import UsageError
    from aimds_ray.core.model import valid_version_name

    if not valid_version_name(version):
        raise UsageError(f"--version {version!r}: a version is a name like v3 (letters, digits, . _ + -)")
    if (store.root / version).exists():
        raise UsageError(f"model version {version!r} exists in {store.root}; give another --version, or none for "
                         "the next free one")


def run(args: argparse.Namespace) -> int:
    from aimds_ray.cli import UsageError
    from aimds_ray.core.config import load_config
    from aimds_ray.core.model import ModelStore
    from aimds_ray.core.training import TrainingDataError, TrainParams, read_corpora, read_jsonl, train_bundle

    spec = load_training_spec()
    files = args.files
    if not files:
        data_dir = Path(args.data_dir or spec["data_dir"])
        files = [str(data_dir / f) for f in spec["files"]]
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise UsageError(f"training files not found: {', '.join(missing)} (use --data-dir or list files)")
    params = TrainParams(**spec.get("params", {}))
    store = ModelStore()
    version = args.version or store.next_version()
    if not args.out:  # a new version in the store: never over one that exists (learned versions live there too)
        _check_new_version(store, version)
    corpora = [] if args.no_corpora else spec.get("corpora", [])
    try:
        rows = read_jsonl(files) + read_corpora(corpora)
    except TrainingDataError as e:
        raise UsageError(str(e)) from None
    if not any(r["label"] == 1 for r in rows) or not any(r["label"] == 0 for r in rows):
        raise UsageError("training needs rows of both labels (attacks: label 1, benign: label 0)")
    bundle = train_bundle(rows, config=load_config(args.config), params=params, version=version,
                          notes="aimds train: " + ", ".join([Path(f).name for f in files] + corpora),
                          log=lambda m: print(m, file=__import__("sys").stderr))
    if args.out:
        path = bundle.save(Path(args.out))
    else:  # under the learner's lock: a running learner commits its versions under it too
        from aimds_ray.core.feedback import FileLock, LockTimeout

        try:
            with FileLock(store.root.parent / "feedback" / ".lock", 5.0):
                _check_new_version(store, version)
                store.commit(bundle)
        except LockTimeout:
            raise UsageError("another learner holds this $AIMDS_HOME (a running `aimds serve`?): stop it, or write "
                             "the bundle elsewhere with --out") from None
        path = store.path_of(version)
    print(json.dumps({"version": version, "path": str(path), **bundle.metrics}))
    return 0
