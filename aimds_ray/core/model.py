"""Model bundles and their versioned store.

A `ModelBundle` is everything learned: the multi-head linear model, the fusion stacker (per-detector weights and
bias), the decision threshold fitted to a target false-positive rate, learned patterns, and the metrics it was
accepted with. Bundles are directories (`bundle.json` + `linear/linear.npz`), never pickles.

The shipped bundle lives in `aimds_ray/models/<version>/`. Learned versions live in `$AIMDS_HOME/models/<version>/`
with a `CURRENT` file naming the active one; switching is an atomic `os.replace` of that file, and every older
version stays on disk for rollback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimds_ray.core.classifier import LinearModel
from aimds_ray.core.config import ConfigError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass
class ModelBundle:
    version: str
    linear: LinearModel
    threshold: float | None = None
    fusion_weights: dict[str, list[float]] = field(default_factory=dict)  # detector -> Platt [a, b]
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    parent: str | None = None
    patterns: list[dict[str, Any]] = field(default_factory=list)  # learned attack exemplars (text, category)
    notes: str = ""
    path: Path | None = None

    # fusion reads this name
    @property
    def detector_weights(self) -> dict[str, float]:
        return {}

    def header(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "threshold": self.threshold,
            "fusion_weights": self.fusion_weights,
            "metrics": self.metrics,
            "created_at": self.created_at,
            "parent": self.parent,
            "notes": self.notes,
            "n_patterns": len(self.patterns),
            "bits": self.linear.bits,
            "heads": list(self.linear.heads),
            "concepts": self.linear.lexicon.fingerprint if self.linear.lexicon else None,  # the lexicon's hash
        }

    def save(self, path: Path) -> Path:
        """Write to a temp dir, fsync, then rename: a crash never leaves a half-written version."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            self.linear.save(tmp / "linear")
            (tmp / "patterns.json").write_text(json.dumps(self.patterns, ensure_ascii=False))
            (tmp / "bundle.json").write_text(json.dumps(self.header(), indent=2))
            for f in list(tmp.rglob("*")):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # (a full disk: nothing half-written is left to list or load)
            raise
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        self.path = path
        return path

    @classmethod
    def load(cls, path: Path) -> ModelBundle:
        path = Path(path)
        h = json.loads((path / "bundle.json").read_text())
        patterns = json.loads((path / "patterns.json").read_text()) if (path / "patterns.json").exists() else []
        return cls(
            version=h["version"],
            linear=LinearModel.load(path / "linear"),
            threshold=h.get("threshold"),
            fusion_weights={k: [float(x) for x in v] for k, v in h.get("fusion_weights", {}).items()},
            metrics=h.get("metrics", {}),
            created_at=float(h.get("created_at", 0.0)),
            parent=h.get("parent"),
            patterns=patterns,
            notes=h.get("notes", ""),
            path=path,
        )


class ModelStore:
    """Versions under `root` (default `$AIMDS_HOME/models`), plus the shipped version as the base."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            from aimds_ray.core.config import aimds_home

            root = aimds_home() / "models"
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def versions(self) -> list[str]:
        local = sorted((p.name for p in self.root.iterdir() if p.is_dir() and (p / "bundle.json").exists()
                        and not p.name.endswith(".tmp")), key=_vkey)  # (a save cut short is no version)
        shipped = shipped_version()
        return ([shipped] if shipped and shipped not in local else []) + local

    def path_of(self, version: str) -> Path:
        if not valid_version_name(version):
            raise KeyError(f"no model version {version!r}: a version is a name like v3 (have: "
                           f"{', '.join(self.versions()) or 'none'})")
        p = self.root / version
        if (p / "bundle.json").exists():
            return p
        sp = SHIPPED_DIR / version
        if (sp / "bundle.json").exists():
            return sp
        raise KeyError(f"no model version {version!r} (have: {', '.join(self.versions()) or 'none'})")

    def current_version(self) -> str | None:
        cur = self.root / "CURRENT"
        if cur.exists():
            v = cur.read_text().strip()
            if v:
                return v
        return shipped_version()

    def load(self, version: str | None = None) -> ModelBundle | None:
        v = version or self.current_version()
        if v is None:
            return None
        path = self.path_of(v)
        try:
            return ModelBundle.load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # a damaged file, not a missing version
            raise ModelLoadError(f"model version {v!r} at {path} cannot be read ({type(e).__name__}: {e}); switch "
                                 "to another with `aimds model rollback <version>` (`aimds model list`)") from None

    def next_version(self) -> str:
        nums = [_vkey(v)[0] for v in self.versions()]
        return f"v{max(nums, default=0) + 1}"

    def commit(self, bundle: ModelBundle) -> str:
        """Persist `bundle` as a new version and make it current (atomic pointer switch)."""
        bundle.save(self.root / bundle.version)
        self.set_current(bundle.version)
        return bundle.version

    def set_current(self, version: str) -> None:
        self.path_of(version)  # raises for an unknown version
        tmp = self.root / "CURRENT.tmp"
        with open(tmp, "w") as f:
            f.write(version)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "CURRENT")
        dfd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def rollback(self, version: str) -> None:
        self.set_current(version)

    def describe(self, version: str) -> dict[str, Any]:
        h = json.loads((self.path_of(version) / "bundle.json").read_text())
        h["current"] = version == self.current_version()
        h["shipped"] = (SHIPPED_DIR / version / "bundle.json").exists()
        return h


class ModelLoadError(ConfigError):
    """A model version whose files cannot be read (exit code 2 at the CLI: the user can roll back)."""


_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # a directory name under models/, never a path


def valid_version_name(version: str) -> bool:
    return bool(_VERSION_NAME.fullmatch(version or "")) and not version.endswith(".tmp") and ".." not in version


def _vkey(v: str) -> tuple[int, str]:
    try:
        return int(v.lstrip("v").split(".")[0]), v
    except ValueError:
        return 0, v


def shipped_version() -> str | None:
    if not SHIPPED_DIR.exists():
        return None
    vs = sorted((p.name for p in SHIPPED_DIR.iterdir() if (p / "bundle.json").exists()), key=_vkey)
    return vs[-1] if vs else None


def load_current_model() -> ModelBundle | None:
    """The model to use: the current version in $AIMDS_HOME (learned), else the newest shipped one, else None."""
    return ModelStore().load()
