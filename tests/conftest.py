"""Shared fixtures. Every test gets its own $AIMDS_HOME so local state never leaks between tests or into ~."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _aimds_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("aimds_home")
    monkeypatch.setenv("AIMDS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def detector():
    from aimds_ray import Detector

    return Detector()
