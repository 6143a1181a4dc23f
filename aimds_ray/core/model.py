"""Model bundles: the learned weights, vector index and fitted thresholds that signals and fusion read.

A bundle is versioned; the shipped one lives in `aimds_ray/models/`, learned ones under `$AIMDS_HOME/models/`.
"""

from __future__ import annotations

from typing import Any


def load_current_model() -> Any:
    """The model bundle to use: the newest committed version in $AIMDS_HOME, else the shipped one, else None."""
    return None
