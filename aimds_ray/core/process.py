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
from collections.abc import Iterator
from contextlib import contextmanager

_settled = False


def settle_heap() -> None:
    """Exclude every object alive now from future cyclic collections (idempotent)."""
    global _settled
    gc.collect()
    gc.freeze()
    _settled = True


@contextmanager
def collector_deferred() -> Iterator[None]:
    """Hold the cyclic collector for the block; the collection its allocations call for runs after it.

    A batch scan allocates tens of thousands of short-lived, acyclic objects (reference counting frees them); with
    the collector on, every 700 allocations start a collection, and the older generations' ones re-read every
    object alive in the process, the batch's intermediate ones included. Held, the young count just grows past its
    threshold, so the first object allocated after the block (at the latest, the next batch's own context manager)
    starts the collection the interpreter itself picks, the full one included when it is due: its schedule is
    delayed, not changed, and cycles made in the block are collected then. This gives the speed `settle_heap` gives
    a worker without freezing anything of the host's. Left alone when the host has switched the collector off.
    Two limits, why `detector.batch_defers_gc` can turn it off: with threads, another thread's batch may end the
    hold early (only the speed changes), and a host that switches the collector off *during* a batch (from another
    thread, or from the generator that yields the texts) finds it on again after the batch."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
