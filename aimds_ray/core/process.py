"""Process-level tuning for long-lived workers (Serve replicas, Ray Data actors, the local rescore loop).

Why: after the model is loaded, a worker holds ~100k GC-tracked objects (the library, YAML-built patterns, numba's
compiled-kernel bookkeeping) that live as long as the process. Python's cyclic collector re-traverses all of them
in every full collection, and a batch of a few thousand reports triggers such collections: about a quarter of
`scan_batch` time for 200-character texts on this project's benchmark. `gc.freeze()` moves the objects alive at
that moment to a permanent generation that collections skip. It does not disable collection of anything created
later. Call it once, after start-up; a library should not do this behind its host application's back, so the
`Detector` itself never calls it.
"""

from __future__ import annotations

import gc

_settled = False


def settle_heap() -> None:
    """Exclude every object alive now from future cyclic collections (idempotent)."""
    global _settled
    gc.collect()
    gc.freeze()
    _settled = True


def heap_settled() -> bool:
    return _settled


def kernels_cached() -> bool | None:
    """Whether numba's on-disk cache already holds the scan kernels (None: cannot tell). A fresh install compiles
    them on its first scan (tens of seconds on a small machine, once); the CLI says so instead of seeming to hang."""
    import os

    try:
        from aimds_ray.core.classifier import hashed_proba

        return os.path.exists(hashed_proba._cache._cache_file._index_path)  # numba's cache layout (internal)
    except Exception:  # another numba version or no cache: say nothing
        return None
