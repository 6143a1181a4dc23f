"""The online learner: feedback -> guarded incremental update of the learned model -> new model versions.

Why it is built this way:

- **Same features, same model.** An update is a few AdaGrad passes of `LinearModel.fit` (the training kernel) over
  the feedback text (its normalised views, as `training.norm_texts` sees them, plus a few word-drop/case variants of
  a confirmed attack so near-copies are caught) mixed with a replay minibatch. AdaGrad keeps its accumulators from
  training, so n-grams the model has seen a lot move little and new n-grams (the new attack) move a lot.
- **Experience replay.** Every pass mixes in a fresh random minibatch of (a) a fixed sample of the training mix (the
  licence-clean files of the dev data when present, else `synth.generate`) and (b) a reservoir of past accepted
  feedback, both classes, so a burst of one class does not make the model forget the rest.
- **Passes until it is learned.** Passes stop as soon as the learned model alone puts a confirmed attack `margin`
  calibrated-logit units past the decision threshold (a false alarm: that far below it); at most `max_passes`.
- **Guards before anything is visible.** The candidate is scored on a benign replay buffer (training-mix benign rows,
  benign feedback and recently observed traffic) and on an attack buffer with the real fusion (per-detector Platt,
  noisy-OR, the bundle's threshold). It is rejected, and the weights restored from an undo log of the touched
  columns, if the benign FPR ends above the target FPR (and above where it was) or rises by more than
  `max_fpr_increase`, or attack recall falls by more than `max_recall_drop`. Sources must be on an allow-list, and
  each source has a budget per time window: a number of updates and a total L2 weight change.
- **Durable first.** The outcome is written to the feedback log (`feedback.py`, fsync) before the new weights are
  published or anything is acknowledged. Checkpoints commit model version N+1 (`ModelStore.commit`, atomic CURRENT
  switch) whose metrics list the feedback it includes; on start, accepted feedback applied on top of the current
  version but not yet checkpointed is re-applied (same seeds, same result), so a crash loses nothing acknowledged.
- **Meta level.** Per-detector precision/recall from feedback (which detectors fired on each labelled text). On a
  checkpoint the rule detectors' Platt intercepts are shifted toward their feedback precision (a Bayesian update with
  `platt_prior` pseudo-observations at the current calibration) and the threshold is re-fitted to the target FPR on
  fresh benign traffic (observed traffic and benign feedback, never the training rows the model has fitted) within
  `max_threshold_step`; the refit is guarded like an update.
- **Patterns.** A confirmed missed attack is added (PII-redacted) to the bundle's `patterns` and to a copy of the
  shipped phrase `VectorIndex` (dedup by cosine `pattern_dedup`), which the published bundle carries as
  `vector_index` for the `similarity` signal (not in the default signal list). `nearest_pattern` is the exemplar
  check.
- **Exemplars in the fast path.** A direct attack pattern (not an indirect injection: a document's resemblance is
  mostly the document) is also an exemplar of the `learned` signal (`signals/learned.py`): cosine over the hashed
  features the model already computes. Its threshold is `exemplar_gap` above the closest text of the benign buffers
  (at least `exemplar_floor`), and is raised when benign feedback or observed traffic comes closer, so exemplars add
  no false positive on the buffers by construction. Fusion counts an exemplar hit as a threat (its Platt entry is
  set from the threshold).

Plain Python (numpy/numba); the Ray actor wraps one `Learner`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from aimds_ray.core import synth
from aimds_ray.core.classifier import HEADS, LinearModel, scoring_layout
from aimds_ray.core.config import AimdsConfig, aimds_home, load_config, load_yaml
from aimds_ray.core.features import featurize
from aimds_ray.core.feedback import FeedbackConflict, FeedbackError, FeedbackLog, FileLock, RecentRequests
from aimds_ray.core.fusion import LEARNED_ABSENT, detector_features
from aimds_ray.core.model import ModelBundle, ModelStore
from aimds_ray.core.normalize import normalize
from aimds_ray.core.pii import find_pii, redact
from aimds_ray.core.report import MANIPULATION_CATEGORIES, Category
from aimds_ray.core.signals.learned import (
    EXEMPLAR,
    EXEMPLAR_SCORE_AT_TH,
    Exemplars,
    bundle_exemplars,
    exemplar_row,
)
from aimds_ray.core.validity import lone_surrogate
from aimds_ray.core.vector_index import sparse_scores

_MANAGED = frozenset({"version", "linear", "threshold", "fusion_weights", "metrics", "created_at", "parent",
                      "patterns", "notes", "path"})
REPORT_FLOOR = 0.05  # the learned signal reports nothing below this p (signals/learned.py); fusion then uses -4
POS_WEIGHT, NEG_WEIGHT = 2.0, 0.66  # the training mix's balanced weights (training.label_matrix on the v1 mix)
LABEL_CATEGORIES = frozenset(c.value for c in Category) - {Category.DATA_LEAKAGE}
BENIGN_CATEGORIES = frozenset({"benign", "benign_roleplay", "benign_borderline", "benign_document"})


@dataclass(frozen=True)
class LearnerConfig:
    """Learner settings; every default is what the tests and `benchmarks/learning.py` measured with."""

    allowed_sources: tuple[str, ...] = ("cli", "local")  # feedback from anyone else is refused (and logged)
    data_dir: str | None = None  # licence-clean dev data for the replay buffer; None: $AIMDS_DATA_DIR, ../shared/data
    use_shared_data: bool = True  # False: the replay buffer is synthetic only
    holdout_files: tuple[str, ...] = ()  # attack rows of these training files are left out of the replay sample
    # (leave-one-source-out evaluation: benchmarks/learning.py --base loso)
    base_attacks: int = 1200  # training-mix rows kept for replay (label 1) ...
    base_benign: int = 2400  # ... and (label 0); the benign ones are also the FPR guard's buffer
    synth_attacks: int = 300  # synthetic mechanisms added to the replay sample (the shipped model saw them too)
    synth_benign: int = 200
    feedback_reservoir: int = 2000  # past accepted feedback kept for replay (reservoir sample)
    fresh_benign: int = 2000  # recently observed benign traffic kept for the FPR guard and threshold refit
    replay_batch: int = 12  # replay rows mixed into every pass (fresh ones each pass)
    reservoir_share: float = 0.75  # of which at most this share are past feedback, the rest the training mix
    max_passes: int = 12
    min_passes: int = 1
    lr: float = 0.8  # AdaGrad step (training uses 0.3; an update must move one text a long way in few passes)
    l2: float = 1e-6
    adagrad_floor: float = 0.0  # added to AdaGrad accumulators during an update: tames steps on never-seen n-grams
    feedback_weight: float = 6.0
    repeat: int = 3  # the feedback rows appear this many times per pass (more steps on them, no more replay cost)
    augment: int = 4  # near-copy variants of a confirmed attack trained alongside it (weight 0.5 each)
    margin: float = 2.0  # calibrated-logit distance past the threshold an update aims for
    target_fpr: float | None = None  # None: the bundle's metrics["target_fpr"], else 0.004
    max_fpr_increase: float = 0.001  # one update may not raise benign-buffer FPR by more than this
    max_recall_drop: float = 0.03  # ... nor lower attack-buffer recall by more than this
    budget_window_s: float = 3600.0  # per-source budget window
    budget_updates: int = 60  # weight updates per source per window
    budget_delta_l2: float = 2500.0  # total L2 norm of weight changes per source per window (one update: ~10-50)
    checkpoint_every: int = 10  # commit a version after this many accepted updates (0: only on checkpoint())
    checkpoint_seconds: float = 60.0  # ... or when the oldest uncommitted update is this old
    recalibrate_on_checkpoint: bool = True
    min_fresh_benign: int = 200  # threshold refit needs this many fresh benign texts
    max_threshold_step: float = 0.02  # one refit moves the threshold at most this much
    platt_prior: float = 50.0  # pseudo-observations behind a detector's current calibration
    min_detector_feedback: int = 5  # feedback rows on which a detector fired before its calibration moves
    max_platt_shift: float = 2.0
    pattern_dedup: float = 0.9  # cosine (TF-IDF) at or above which a new attack is a copy of a known pattern
    pattern_max_chars: int = 2000
    exemplar_categories: tuple[str, ...] = ("prompt_injection", "jailbreak", "prompt_extraction",
                                            "adversarial_suffix")  # () turns exemplars off
    exemplar_gap: float = 0.1  # an exemplar's cosine threshold sits this far above its closest benign buffer text
    exemplar_floor: float = 0.3  # ... and never below this
    # n-grams in more than this share of benign buffer texts are left out of exemplars (1.0: none). Pruning at 0.01
    # made scoring ~2x cheaper but lost most of the recall gain on the dev sources at the same thresholds.
    exemplar_max_df: float = 1.0
    seed: int = 0
    lock_timeout: float = 60.0
    cache_dir: str | None = None  # featurised replay sample; None: $AIMDS_LEARNER_CACHE, else $AIMDS_HOME/cache


# --- small numeric helpers ----------------------------------------------------------------------------------------


@njit(cache=True)
def _head0(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """Logit of head 0 (manipulation) per CSR row; w is W[0] (contiguous), so this is a cache-friendly dot."""
    n = indptr.shape[0] - 1
    out = np.empty(n, dtype=np.float64)
    for d in range(n):
        acc = b
        for p in range(indptr[d], indptr[d + 1]):
            acc += w[indices[p]] * values[p]
        out[d] = acc
    return out


@njit(cache=True)
def _mark_new(idx: np.ndarray, saved: np.ndarray) -> np.ndarray:
    """np.unique(idx[~saved[idx]]) and mark them saved, in one pass (no sort of the whole index array)."""
    out = np.empty(idx.shape[0], dtype=idx.dtype)
    n = 0
    for j in idx:
        if not saved[j]:
            saved[j] = True
            out[n] = j
            n += 1
    return np.sort(out[:n])


@njit(cache=True)
def _take_cols(A: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A[:, cols] (a copy) for a C-ordered (heads, D) matrix."""
    out = np.empty((A.shape[0], cols.shape[0]), dtype=A.dtype)
    for h in range(A.shape[0]):
        for t in range(cols.shape[0]):
            out[h, t] = A[h, cols[t]]
    return out


def _sigmoid(z: np.ndarray | float) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def learned_feature(p: np.ndarray) -> np.ndarray:
    """What fusion sees from the learned signal for p(manipulation): its clipped logit, or LEARNED_ABSENT below the
    signal's reporting floor (`fusion.detector_features`)."""
    pc = np.clip(p, 1e-4, 1 - 1e-4)
    return np.where(p < REPORT_FLOOR, LEARNED_ABSENT, np.log(pc / (1 - pc)))


def fused_scores(x_learned: np.ndarray, R: np.ndarray, rule_names: Sequence[str],
                 platt: dict[str, tuple[float, float]]) -> np.ndarray:
    """Vectorised `fusion.fuse`: noisy-OR of per-detector Platt probabilities (rules count only when x > 0)."""
    miss = np.ones(len(x_learned))
    if "learned" in platt:
        a, b = platt["learned"]
        miss *= 1.0 - _sigmoid(a * x_learned + b)
    for j, nm in enumerate(rule_names):
        ab = platt.get(nm)
        if ab is None:
            continue
        x = R[:, j]
        miss *= np.where(x > 0, 1.0 - _sigmoid(ab[0] * x + ab[1]), 1.0)
    return 1.0 - miss


def _cat_csr(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    ptrs = [np.zeros(1, np.int64)]
    off = 0
    for ip, _, _ in parts:
        ptrs.append(ip[1:].astype(np.int64) + off)
        off += int(ip[-1])
    return (np.concatenate(ptrs), np.concatenate([p[1] for p in parts]).astype(np.int32),
            np.concatenate([p[2] for p in parts]).astype(np.float32))


def _inverted_lists(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature -> (row, value) postings of CSR rows, built as `VectorIndex._inverted` builds them (for
    `vector_index.sparse_scores`)."""
    nnz = int(indptr[-1])
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int32), np.diff(indptr))
    order = np.argsort(indices[:nnz], kind="stable")
    uniq, starts = np.unique(indices[:nnz][order], return_index=True)
    return uniq.astype(np.int32), np.append(starts, nnz).astype(np.int64), rows[order], values[:nnz][order]


def _ranges(seqs: Iterable[int]) -> list[list[int]]:
    """[1,2,3,7,8] -> [[1,3],[7,8]]: how bundle metrics list the feedback they include, compactly."""
    out: list[list[int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def _unranges(r: Iterable[Sequence[int]]) -> set[int]:
    return {s for a, b in r for s in range(int(a), int(b) + 1)}


def redact_text(text: str) -> str:
    """Feedback texts are stored and learned PII-redacted (placeholders), so the log and patterns hold no PII."""
    m = find_pii(text)
    return redact(text, m, "placeholder") if m else text


# --- texts with precomputed features ------------------------------------------------------------------------------


@dataclass
class _Item:
    text: str
    label: int
    category: str
    train: tuple[np.ndarray, np.ndarray, np.ndarray]  # primary normalised view of each window (what training reads)
    views: tuple[np.ndarray, np.ndarray, np.ndarray]  # every view of every window (what the learned signal reads)
    rule: np.ndarray  # rule detectors' features (detector_features without 'learned')
    kind: str = "base"  # base | feedback | observed
    seq: int = 0


class _Pool:
    """Items whose view features are kept concatenated (CSR) so a guard scores them in one kernel call. The arrays
    grow geometrically and an add writes past the used length, so appending one item costs its own size, not the
    pool's (a concatenate per add cost ~3 ms on the attack pool); views handed out earlier stay valid."""

    def __init__(self, capacity: int | None = None) -> None:
        self.items: deque[_Item] | list[_Item] = deque(maxlen=capacity) if capacity else []
        self._buf: dict[str, np.ndarray] | None = None  # ip, idx, val, starts, R (capacity >= used)
        self._n = (0, 0)  # (view rows, nnz) in use

    def add(self, item: _Item) -> None:
        full = isinstance(self.items, deque) and self.items.maxlen is not None and len(self.items) == self.items.maxlen
        self.items.append(item)
        if self._buf is None or full:
            self._buf = None  # a full ring buffer drops its oldest item: rebuilt on the next arrays()
            return
        nr, nz = self._n
        ip, idx, val = item.views
        k, m, ni = len(ip) - 1, len(idx), len(self.items) - 1
        bf = self._buf
        bf["ip"] = _reserve(bf["ip"], nr + k + 1)
        bf["idx"] = _reserve(bf["idx"], nz + m)
        bf["val"] = _reserve(bf["val"], nz + m)
        bf["starts"] = _reserve(bf["starts"], ni + 1)
        R = bf["R"]
        if R.shape[1:] != item.rule.shape:  # an empty pool's (0, 0) placeholder: the first item fixes the width
            assert ni == 0
            R = np.zeros((0,) + item.rule.shape, item.rule.dtype)
        bf["R"] = _reserve(R, ni + 1)
        bf["ip"][nr + 1 : nr + k + 1] = ip[1:] + nz
        bf["idx"][nz : nz + m] = idx
        bf["val"][nz : nz + m] = val
        bf["starts"][ni] = nr
        bf["R"][ni] = item.rule
        self._n = (nr + k, nz + m)

    def __len__(self) -> int:
        return len(self.items)

    def arrays(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
        """(views CSR, row start of each item in it, rule matrix): views of the buffers, valid after later adds."""
        if self._buf is None:
            items = list(self.items)
            X = _cat_csr([it.views for it in items])
            counts = np.array([len(it.views[0]) - 1 for it in items], np.int64)
            starts = np.zeros(len(items), np.int64)
            if len(items):
                np.cumsum(counts[:-1], out=starts[1:])
            R = np.stack([it.rule for it in items]) if items else np.zeros((0, 0))
            # built with headroom, so the adds of the next updates never pay a copy of the whole pool
            self._buf = {"ip": _reserve(X[0], len(X[0]) + 1, 0.5), "idx": _reserve(X[1], len(X[1]) + 1, 0.5),
                         "val": _reserve(X[2], len(X[2]) + 1, 0.5), "starts": _reserve(starts, len(items) + 1, 0.5),
                         "R": _reserve(R, len(items) + 1, 0.5) if R.ndim == 2 and R.shape[1] else R}
            self._n = (len(X[0]) - 1, len(X[1]))
        bf, (nr, nz), n = self._buf, self._n, len(self.items)
        return (bf["ip"][: nr + 1], bf["idx"][:nz], bf["val"][:nz]), bf["starts"][:n], bf["R"][:n]


def _reserve(a: np.ndarray, n: int, grow: float = 1.0) -> np.ndarray:
    """`a` itself if it holds n rows, else a copy with room for (1 + grow) times that (geometric growth)."""
    if len(a) >= n:
        return a
    out = np.zeros((max(int(n * (1 + grow)), 16),) + a.shape[1:], a.dtype)
    out[: len(a)] = a
    return out


class Learner:
    """Feedback in, guarded model updates out. Thread-safe; one learner per `$AIMDS_HOME` (an exclusive file lock)."""

    def __init__(self, config: LearnerConfig | None = None, *, home: str | os.PathLike[str] | None = None,
                 aimds_config: AimdsConfig | None = None,
                 on_update: Callable[[ModelBundle], None] | None = None) -> None:
        self.cfg = config or LearnerConfig()
        self.home = Path(home) if home is not None else aimds_home()
        self.aimds_config = aimds_config or load_config()
        self._mutex = threading.RLock()
        self._listeners: list[Callable[[ModelBundle], None]] = [on_update] if on_update else []
        self._lock = FileLock(self.home / "feedback" / ".lock", self.cfg.lock_timeout).acquire()
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise

    # --- start-up -------------------------------------------------------------------------------------------------

    def _open(self) -> None:
        from aimds_ray.core.training import _with_signals

        t0 = time.perf_counter()
        self.store = ModelStore(self.home / "models")
        self.log = FeedbackLog(self.home / "feedback")
        sigs = tuple(s for s in self.aimds_config.detector.signals if s != "learned")
        self.rule_names: list[str] = list(sigs)
        self._rules_config = _with_signals(self.aimds_config, sigs)
        self._rules: Any = None  # a rules-only Detector, built per loaded version (some rule signals read the bundle)
        self._manip = set(MANIPULATION_CATEGORIES)
        if self.aimds_config.detector.harmful_request:
            self._manip.add(Category.HARMFUL_REQUEST)
        self._exemplars_raised = False  # benign texts raised exemplar thresholds since the last publish
        self._recent = RecentRequests(forward=False)  # request id -> text, for feedback that names a request
        self._observed: list[str] = []  # benign traffic waiting to be featurised
        self._load_version(self.store.current_version())
        self._build_base()
        self._replay_log()
        self.startup_seconds = round(time.perf_counter() - t0, 3)
        # what an operator checks after a crash: how long the start took, what was re-applied, what the log repaired
        self.startup = {"seconds": self.startup_seconds, "version": self.version, "replayed": self.replayed,
                        "log_torn_bytes": self.log.torn_bytes,
                        "log_torn_copy": str(self.log.torn_copy) if self.log.torn_copy else None,
                        "log_skipped_lines": self.log.skipped}

    def _load_version(self, version: str | None) -> None:
        bundle = self.store.load(version) if version else None
        if bundle is None:  # no model anywhere: start from zero weights, the learned signal uncalibrated-but-on
            bundle = ModelBundle(version="v0", linear=LinearModel.zeros(18), threshold=0.5,
                                 fusion_weights={"learned": [1.0, 0.0]})
        # fields of the bundle this learner does not manage (e.g. models other signals read) travel with every version
        self.extras = {f.name: getattr(bundle, f.name) for f in dataclasses.fields(ModelBundle)
                       if f.name not in _MANAGED}
        from aimds_ray.core.detector import Detector

        helper = ModelBundle(version="rules", linear=LinearModel.zeros(4), **self.extras)
        self._rules = Detector(self._rules_config, model=helper)
        lin = bundle.linear
        if lin.G is None:
            lin.G, lin.Gb = np.zeros_like(lin.W), np.zeros_like(lin.b)
        lin.round_as_stored()  # a float16 overflow on disk reads as "seen a lot" (see LinearModel.round_as_stored)
        self.base_version = bundle.version
        self.lin = lin
        self.bits = lin.bits
        self.platt: dict[str, tuple[float, float]] = {k: (float(v[0]), float(v[1]))
                                                       for k, v in bundle.fusion_weights.items()}
        self.threshold = float(bundle.threshold) if bundle.threshold is not None else \
            float(self.aimds_config.detector.thresholds.threat)
        tf = self.cfg.target_fpr if self.cfg.target_fpr is not None else bundle.metrics.get("target_fpr", 0.004)
        self.target_fpr = float(tf)
        self.parent_metrics = dict(bundle.metrics)
        fb = bundle.metrics.get("feedback", {}) if isinstance(bundle.metrics.get("feedback"), dict) else {}
        self.included: set[int] = _unranges(fb.get("included", []))
        self.patterns: list[dict[str, Any]] = [dict(p) for p in bundle.patterns]
        self.pending: list[int] = []  # accepted seqs applied on top of base_version, not yet checkpointed
        self.pending_since: float | None = None
        self.bundle_notes = bundle.notes
        self._index = None  # pattern VectorIndex, built lazily
        self._pinv: tuple[Any, int, tuple[np.ndarray, ...]] | None = None  # its inverted lists (_pattern_top)
        self._exemplars: Exemplars = bundle_exemplars(bundle, self.aimds_config) or Exemplars.empty()
        self._published: ModelBundle | None = None
        self._pub_W: np.ndarray | None = None

    def _data_dir(self) -> Path | None:
        if not self.cfg.use_shared_data:
            return None
        cands = [self.cfg.data_dir, os.environ.get("AIMDS_DATA_DIR"),
                 str(Path(__file__).resolve().parents[3] / "shared" / "data"), str(Path.cwd().parent / "shared" / "data")]
        for c in cands:
            if c and Path(c).is_dir():
                return Path(c)
        return None

    def _base_rows(self) -> list[dict[str, Any]]:
        """A seeded sample of the licence-clean training files (read now, never copied into the repo) plus synthetic
        mechanisms; synthetic only when the data is not there."""

        rows: list[dict[str, Any]] = []
        d = self._data_dir()
        self.data_source = "synthetic"
        if d is not None:
            spec = load_yaml((Path(__file__).resolve().parent.parent / "data" / "training.yaml").read_text())
            files = [d / f for f in spec.get("files", []) if (d / f).exists()]
            if files:
                from aimds_ray.core.training import read_corpora, read_jsonl

                # the shipped benign corpora too: a retrained model must not forget that manuals are benign
                allrows = [r for r in read_jsonl(files) + read_corpora(spec.get("corpora", []))
                           if isinstance(r.get("text"), str)
                           and not (int(r["label"]) == 1 and r.get("file") in self.cfg.holdout_files)]
                rng = random.Random(self.cfg.seed)
                rng.shuffle(allrows)
                att = [r for r in allrows if int(r["label"]) == 1][: self.cfg.base_attacks]
                ben = [r for r in allrows if int(r["label"]) == 0][: self.cfg.base_benign]
                rows = att + ben
                self.data_source = f"{d} ({len(files)} licence-clean files)"
        rows += synth.generate(self.cfg.synth_attacks, self.cfg.synth_benign, seed=self.cfg.seed + 101)
        if d is None:
            rows += synth.generate(self.cfg.base_attacks, self.cfg.base_benign, seed=self.cfg.seed + 202)
        seen: set[str] = set()
        return [r for r in rows if not (r["text"] in seen or seen.add(r["text"]))]

    def _cache_key(self) -> str:
        """What the featurised replay sample depends on: data files, sizes, seed, featuriser and rule config."""
        from aimds_ray import __version__

        d = self._data_dir()
        files = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in d.glob("*.jsonl")) if d else []
        data = Path(__file__).resolve().parent.parent / "data"
        pats = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime))
                      for p in [*data.rglob("*.yaml"), *data.rglob("*.jsonl.gz")])
        c = self.cfg
        key = {"v": 1, "aimds": __version__, "files": files, "pats": pats, "bits": self.bits,
               "concepts": self.lin.lexicon.fingerprint if self.lin.lexicon else None,
               "sizes": [c.base_attacks, c.base_benign, c.synth_attacks, c.synth_benign, c.seed],
               **({"holdout": sorted(c.holdout_files)} if c.holdout_files else {}),
               "signals": self.rule_names, "normalize": repr(self.aimds_config.normalize),
               "limits": repr(self.aimds_config.limits), "harmful": self.aimds_config.detector.harmful_request,
               "origin": self.parent_metrics.get("origin") or self.base_version}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

    def _cache_dir(self) -> Path:
        return Path(self.cfg.cache_dir or os.environ.get("AIMDS_LEARNER_CACHE") or self.home / "cache" / "learner")

    def _build_base(self) -> None:
        path = self._cache_dir() / f"replay-{self._cache_key()}"
        items = _load_items(path)
        if items is None:
            rows = self._base_rows()
            items = self._make_items([r["text"] for r in rows], [int(r["label"]) for r in rows],
                                     [str(r.get("category", "")) for r in rows], "base")
            try:
                _save_items(path, items, self.data_source)
            except OSError:
                pass  # a read-only cache only costs start-up time
        else:
            self.data_source = _cache_source(path)
        self.base_pos = [it for it in items if it.label == 1]
        self.base_neg = [it for it in items if it.label == 0]
        self.benign_pool = _Pool()  # training-mix benign rows + benign feedback
        self.fresh_pool = _Pool(self.cfg.fresh_benign)  # observed benign traffic (the threshold refit's data)
        self.attack_pool = _Pool()  # manipulation rows of the mix + attack feedback
        for it in items:
            if it.label == 0:
                self.benign_pool.add(it)
            elif it.category != "harmful_request":
                self.attack_pool.add(it)
        self._df: np.ndarray | None = None
        self.reservoir: list[_Item] = []
        self.reservoir_seen = 0
        self._res_rng = random.Random(self.cfg.seed + 303)

    def _windows(self, text: str) -> list[str]:
        lim = self.aimds_config.limits
        if len(text) <= lim.window_chars:
            return [text]
        out, step, start = [], lim.window_chars - lim.window_overlap, 0
        while True:
            out.append(text[start : start + lim.window_chars])
            if start + lim.window_chars >= len(text):
                return out
            start += step

    def _make_items(self, texts: Sequence[str], labels: Sequence[int], cats: Sequence[str], kind: str,
                    seqs: Sequence[int] | None = None, rules: bool = True) -> list[_Item]:
        """Featurise texts the way the pipeline reads them: per window, the primary normalised view for training
        and every view for scoring; rule features from a rules-only `Detector`."""
        ncfg = self.aimds_config.normalize
        prim_texts: list[str] = []
        prim_owner: list[int] = []
        view_texts: list[str] = []
        view_owner: list[int] = []
        for i, t in enumerate(texts):
            for w in self._windows(t):
                doc = normalize(w, ncfg)
                prim_texts.append(doc.text)
                prim_owner.append(i)
                for v in doc.variants:
                    view_texts.append(v.text)
                    view_owner.append(i)
        P = featurize(prim_texts, self.bits, self.lin.lexicon) if prim_texts else None
        V = featurize(view_texts, self.bits, self.lin.lexicon) if view_texts else None
        R = self._rule_matrix(texts) if rules else np.zeros((len(texts), len(self.rule_names)))
        items = []
        po, vo = np.asarray(prim_owner), np.asarray(view_owner)
        pstart = np.searchsorted(po, np.arange(len(texts) + 1))
        vstart = np.searchsorted(vo, np.arange(len(texts) + 1))
        for i, t in enumerate(texts):
            items.append(_Item(t, int(labels[i]), cats[i], _rows(P, pstart[i], pstart[i + 1]),
                               _rows(V, vstart[i], vstart[i + 1]), R[i], kind,
                               int(seqs[i]) if seqs is not None else 0))
        return items

    def _rule_matrix(self, texts: Sequence[str]) -> np.ndarray:
        R = np.zeros((len(texts), len(self.rule_names)))
        for s in range(0, len(texts), 512):
            for k, rep in enumerate(self._rules.scan_batch(list(texts[s : s + 512]))):
                f = detector_features(rep.evidence, self._manip)
                for j, nm in enumerate(self.rule_names):
                    R[s + k, j] = f.get(nm, 0.0)
        return R

    def _replay_log(self) -> None:
        """Rebuild state from the log: the feedback reservoir and patterns along the current version's lineage, and
        re-apply accepted feedback made on top of the current version after its last checkpoint."""
        last_rollback = max((int(r["seq"]) for r in self.log.records("rollback")), default=0)
        redo: list[dict[str, Any]] = []
        lineage: list[dict[str, Any]] = []
        for r in self.log.records("feedback"):
            if r.get("status") != "accepted":
                continue
            s = int(r["seq"])
            if s in self.included:
                lineage.append(r)
            elif r.get("base") == self.base_version and s > last_rollback:
                lineage.append(r)
                redo.append(r)
        redo_seqs = {int(r["seq"]) for r in redo}
        self.replayed = len(redo)
        for r in lineage:
            it = self._make_items([r["text"]], [int(r["label"])], [r["category"]], "feedback", [int(r["seq"])])[0]
            if int(r["seq"]) in redo_seqs:
                if r.get("updated"):
                    self._train(it, self._aug_items(it), np.random.default_rng([self.cfg.seed, int(r["seq"])]),
                                passes=int(r.get("passes", 1)))
                added = False
                if int(r["label"]) == 1 and r.get("category") != "harmful_request":
                    added = bool(self._add_pattern(r["text"], r["category"], r.get("source", "?"),
                                                   int(r["seq"])).get("added"))
                self._exemplars_raised = False
                self._remember_item(it)
                self._note_change(r, added or self._exemplars_raised)  # as _accept decided when it came
                continue
            self._remember_item(it)
        self._publish()
        self._guard_now = self._guard_figures(self.platt, self.threshold)

    # --- listeners and publishing ---------------------------------------------------------------------------------

    def add_listener(self, fn: Callable[[ModelBundle], None]) -> None:
        """`fn(bundle)` after every accepted update, checkpoint and rollback (e.g. `detector.reload`)."""
        with self._mutex:
            self._listeners.append(fn)

    def attach(self, detector: Any) -> None:
        """Keep an in-process `Detector` on the newest weights: reload it now and after every change."""
        self.add_listener(detector.reload)
        detector.reload(self.current_bundle())

    def current_bundle(self) -> ModelBundle:
        """The model the next scan should use (weights rounded to float16, as a committed version holds them)."""
        assert self._published is not None
        return self._published

    @property
    def version(self) -> str:
        return self.current_bundle().version

    def _publish(self, cols: np.ndarray | None = None) -> None:
        """A new immutable bundle object: scans in flight keep the old arrays; the next scan sees the new ones."""
        # the published weights are kept transposed (what `LinearModel.logits` scores with), so a publish copies
        # one array and patches the touched columns, and the next scan does not have to transpose 7 MB
        k = len(self.lin.heads)
        if self._pub_W is None or cols is None:
            WT = scoring_layout(self.lin.W.astype(np.float16).astype(np.float32))
        else:
            WT = self._pub_W.copy()
            WT[cols, :k] = self.lin.W[:, cols].astype(np.float16).astype(np.float32).T
        WT.flags.writeable = False  # a published bundle is immutable (its head-0 column is a copy taken once)
        self._pub_W = WT
        self._sync_exemplar_platt()
        name = self.base_version + (f"+{len(self.pending)}" if self.pending else "")
        lin = LinearModel(WT[:, :k].T, self.lin.b.copy(), self.bits, self.lin.heads, lexicon=self.lin.lexicon)
        if hasattr(lin, "scoring_weights"):
            object.__setattr__(lin, "_WT", WT)
        b = ModelBundle(version=name, linear=lin, threshold=round(self.threshold, 6),
                        fusion_weights={k: [v[0], v[1]] for k, v in self.platt.items()},
                        metrics=self._metrics(), parent=self.base_version, patterns=list(self.patterns),
                        notes=self.bundle_notes, **self.extras)
        if self._index is not None:
            b.vector_index = self._index  # type: ignore[attr-defined]  # read by the similarity signal
        b.exemplars = self._exemplars  # type: ignore[attr-defined]  # read by the learned signal
        self._published = b
        for fn in list(self._listeners):
            fn(b)

    # --- scoring ----------------------------------------------------------------------------------------------------

    def _learned_p(self, X: tuple[np.ndarray, np.ndarray, np.ndarray], starts: np.ndarray, n: int,
                   W0: np.ndarray | None = None, b0: float | None = None) -> np.ndarray:
        """Max p(manipulation) over each item's views (the learned signal keeps its best view)."""
        if n == 0:
            return np.zeros(0)
        z = _head0(X[0], X[1], X[2], self.lin.W[0] if W0 is None else W0, float(self.lin.b[0] if b0 is None else b0))
        return _sigmoid(np.maximum.reduceat(z, starts))

    def _item_scores(self, it: _Item) -> tuple[float, float]:
        """(learned calibrated logit, fused score) of one item under the working weights."""
        p = self._learned_p(it.views, np.zeros(1, np.int64), 1)
        x = learned_feature(p)
        a, b = self.platt.get("learned", (1.0, 0.0))
        fused = fused_scores(x, it.rule[None, :], self.rule_names, self.platt)
        return float(a * x[0] + b), float(fused[0])

    def _pool_scores(self, pool: _Pool, platt: dict[str, tuple[float, float]]) -> np.ndarray:
        X, starts, R = pool.arrays()
        if len(pool) == 0:
            return np.zeros(0)
        return fused_scores(learned_feature(self._learned_p(X, starts, len(pool))), R, self.rule_names, platt)

    def _guard_figures(self, platt: dict[str, tuple[float, float]], threshold: float) -> dict[str, float]:
        ben = np.concatenate([self._pool_scores(self.benign_pool, platt), self._pool_scores(self.fresh_pool, platt)])
        att = self._pool_scores(self.attack_pool, platt)
        return {"fpr": float((ben >= threshold).mean()) if len(ben) else 0.0,
                "recall": float((att >= threshold).mean()) if len(att) else 1.0,
                "benign_rows": int(len(ben)), "attack_rows": int(len(att))}

    # --- feedback -----------------------------------------------------------------------------------------------------

    def remember(self, request_id: str, text: str) -> None:
        """Let later feedback name a request by id (bounded memory of recent requests)."""
        with self._mutex:
            self._recent.add(request_id, text)

    def observe(self, texts: Iterable[str]) -> None:
        """Recent traffic the system let through: the benign replay buffer the threshold is re-fitted on (it is
        featurised at the next checkpoint, never on the update path)."""
        with self._mutex:
            self._observed.extend(t for t in texts if isinstance(t, str) and t.strip())
            del self._observed[: max(0, len(self._observed) - self.cfg.fresh_benign)]

    def submit(self, text: str | None = None, label: int = 1, *, category: str | None = None, source: str = "local",
               request_id: str | None = None, feedback_id: str | None = None) -> dict[str, Any]:
        """Apply one piece of feedback; returns the acknowledgement (after the log record is on disk).

        `status` is accepted (the model changed, or was already right), rejected (a guard or the budget said no; the
        model is unchanged) or refused (unauthorised source). Re-sending a `feedback_id` returns the first answer.
        """
        t0 = time.perf_counter()
        for name, v in (("text", text), ("source", source), ("request_id", request_id), ("feedback_id", feedback_id)):
            # a lone surrogate cannot be written to the log (or featurised): refuse it before any work
            if isinstance(v, str) and (bad := lone_surrogate(v)) >= 0:
                raise FeedbackError(f"{name} is not valid Unicode: lone surrogate at character {bad}")
        with self._mutex:
            if feedback_id is not None:
                prev = self.log.find(feedback_id)
                if prev is not None:
                    if diff := _differs(prev, text, label, category, source, request_id):
                        raise FeedbackConflict(f"feedback_id {feedback_id!r} was first sent with another {diff}; "
                                               "send new feedback under a new id")
                    return self._ack(prev, t0, duplicate=True)
            label, category, text = self._validate(text, label, category, request_id)
            fid = feedback_id or uuid.uuid4().hex
            base = {"kind": "feedback", "id": fid, "label": label, "category": category, "source": source,
                    "request_id": request_id, "base": self.base_version, "ts": time.time()}
            if source not in self.cfg.allowed_sources:
                rec = self.log.append({**base, "status": "refused", "text": None,
                                       "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                                       "reason": f"source {source!r} is not authorised "
                                                 f"(allowed: {', '.join(self.cfg.allowed_sources)})"})
                return self._ack(rec, t0)
            red = redact_text(text)
            rec = self._apply(base, red)
            ack = self._ack(rec, t0)
            if rec["status"] == "accepted" and self._checkpoint_due():
                self.checkpoint_into(ack)
            return ack

    def checkpoint_into(self, ack: dict[str, Any]) -> None:
        """Commit pending updates into `ack["committed_version"]` (None if nothing was pending). A commit that fails
        (a full disk) leaves the feedback acknowledged, since the log already holds it: the next checkpoint, or the
        next learner's replay, commits it. Said in the answer rather than raised, so that a client does not send
        acknowledged feedback again."""
        try:
            ack["committed_version"] = self.checkpoint()
        except OSError as e:
            ack["committed_version"] = None
            ack["commit_deferred"] = f"the feedback is recorded; committing a new model version failed " \
                                     f"({type(e).__name__}: {e}) and is retried at the next checkpoint"

    def _validate(self, text: str | None, label: Any, category: str | None,
                  request_id: str | None) -> tuple[int, str, str]:
        if text is None and request_id is not None:
            if self._recent.ambiguous(request_id):
                raise FeedbackError(f"request id {request_id!r} was sent with more than one text: give the text")
            text = self._recent.get(request_id)
            if text is None:
                raise FeedbackError(f"unknown request id {request_id!r}: give the text")
        if not isinstance(text, str) or not text.strip():
            raise FeedbackError("feedback needs a non-empty text (or a known request id)")
        if len(text) > self.aimds_config.limits.max_input_chars:
            raise FeedbackError("text is longer than limits.max_input_chars")
        try:  # 0/1 or "0"/"1" (the CLI's text); a float or bool label is a caller's mistake, not a rounding job
            if isinstance(label, bool) or not isinstance(label, int | str):
                raise TypeError
            label = int(label)
        except (TypeError, ValueError):
            raise FeedbackError(f"label must be 0 or 1, got {label!r}") from None
        if label not in (0, 1):
            raise FeedbackError(f"label must be 0 or 1, got {label!r}")
        if label == 0:
            category = category or "benign"
            if category not in BENIGN_CATEGORIES:
                raise FeedbackError(f"category for label 0 must be one of {', '.join(sorted(BENIGN_CATEGORIES))}")
        else:
            if category is None:
                category = self._guess_category(text)
            if category not in LABEL_CATEGORIES:
                raise FeedbackError(f"unknown category {category!r} (one of {', '.join(sorted(LABEL_CATEGORIES))})")
        return label, category, text

    def _guess_category(self, text: str) -> str:
        doc = normalize(text[:4096], self.aimds_config.normalize)
        P = self.lin.proba(*featurize([doc.text], self.bits, self.lin.lexicon))
        return HEADS[1 + int(np.argmax(P[0, 1 : len(HEADS) - 1]))]

    def _budget_used(self, source: str, now: float) -> tuple[int, float]:
        n, l2 = 0, 0.0
        for r in self.log.records("feedback"):
            if r.get("source") == source and r.get("status") == "accepted" and r.get("updated") \
                    and now - float(r.get("ts", 0)) <= self.cfg.budget_window_s:
                n += 1
                l2 += float(r.get("delta_l2", 0.0))
        return n, l2

    def _aug_items(self, it: _Item) -> list[_Item]:
        """Near-copies of a confirmed attack (word drops, a word swap, case change): cheap insurance that the
        update learns the attack's n-grams rather than its exact string."""
        if it.label != 1 or self.cfg.augment <= 0:
            return []
        r = random.Random(hashlib.blake2b(it.text.encode("utf-8"), digest_size=8).digest())
        words = it.text.split()
        out: list[str] = []
        for k in range(self.cfg.augment * 3):
            if len(out) >= self.cfg.augment or len(words) < 3:
                break
            w = list(words)
            m = k % 3
            if m == 0:
                w = [x for x in w if r.random() > 0.15] or w
            elif m == 1:
                i = r.randrange(len(w) - 1)
                w[i], w[i + 1] = w[i + 1], w[i]
            else:
                w = [x.lower() if r.random() < 0.5 else x.upper() for x in w]
            s = " ".join(w)
            if s != it.text and s not in out:
                out.append(s)
        if not out:
            return []
        return self._make_items(out, [1] * len(out), [it.category] * len(out), "augment", rules=False)

    def _targets(self, label: int, category: str) -> np.ndarray:
        y = np.zeros(len(HEADS), np.float32)
        if label == 1:
            y[0] = 0.0 if category == "harmful_request" else 1.0
            for h, nm in enumerate(HEADS[1:], 1):
                y[h] = 1.0 if category == nm else 0.0
        return y

    def _goal(self, it: _Item) -> Callable[[], bool]:
        th = _logit(self.threshold)
        if it.label == 1 and it.category != "harmful_request":
            return lambda: self._item_scores(it)[0] >= th + self.cfg.margin
        return lambda: self._item_scores(it)[0] <= min(th - self.cfg.margin, 0.0)  # well below, and below even odds

    def _train(self, it: _Item, aug: list[_Item], rng: np.random.Generator, passes: int | None = None,
               goal: Callable[[], bool] | None = None) -> tuple[int, dict[str, Any]]:
        """AdaGrad passes over the feedback rows plus a fresh replay minibatch each pass; stop at `goal`. Returns
        (passes, undo) where undo restores every touched column."""
        W, G = self.lin.W, self.lin.G
        assert G is not None and self.lin.Gb is not None
        undo: dict[str, Any] = {"b": self.lin.b.copy(), "Gb": self.lin.Gb.copy(), "cols": [], "W": [], "G": []}
        saved = np.zeros(W.shape[1], bool)
        rep_k = max(1, self.cfg.repeat)
        fb_rows = [it.train] * rep_k + [a.train for a in aug]
        fb_y = [self._targets(it.label, it.category)] * ((len(it.train[0]) - 1) * rep_k)
        fb_w = [self.cfg.feedback_weight] * ((len(it.train[0]) - 1) * rep_k)
        for a in aug:
            fb_y += [self._targets(a.label, a.category)] * (len(a.train[0]) - 1)
            fb_w += [0.5 * self.cfg.feedback_weight] * (len(a.train[0]) - 1)
        limit = passes if passes is not None else self.cfg.max_passes
        done = 0
        g0 = np.float32(self.cfg.adagrad_floor)
        self.lin.Gb[:] += g0
        for _ in range(limit):
            rep = self._replay_sample(rng)
            X = _cat_csr(fb_rows + [r.train for r in rep])
            Y = np.stack(fb_y + [self._targets(r.label, r.category) for r in rep
                                 for _ in range(len(r.train[0]) - 1)])
            w = np.array(fb_w + [POS_WEIGHT if r.label == 1 else NEG_WEIGHT for r in rep
                                 for _ in range(len(r.train[0]) - 1)], np.float32)
            new = _mark_new(X[1], saved)
            if len(new):
                undo["cols"].append(new)
                undo["W"].append(_take_cols(W, new))
                undo["G"].append(_take_cols(G, new))
                if g0:
                    G[:, new] += g0
            self.lin.fit(X, Y, w, epochs=1, lr=self.cfg.lr, l2=self.cfg.l2, seed=int(rng.integers(1 << 31)))
            done += 1
            if goal is not None and done >= self.cfg.min_passes and goal():
                break
        if g0:  # the floor was only for this update's step sizes
            for c in undo["cols"]:
                G[:, c] = np.maximum(G[:, c] - g0, 0.0)
            self.lin.Gb[:] = np.maximum(self.lin.Gb - g0, 0.0)
        return done, undo

    def _undo(self, undo: dict[str, Any]) -> None:
        assert self.lin.G is not None
        for cols, w, g in zip(undo["cols"], undo["W"], undo["G"], strict=True):
            self.lin.W[:, cols] = w
            self.lin.G[:, cols] = g
        self.lin.b[:] = undo["b"]
        self.lin.Gb[:] = undo["Gb"]
        self.lin.W = self.lin.W  # in-place edits: drop the model's cached transposed copy

    def _delta_l2(self, undo: dict[str, Any]) -> tuple[float, np.ndarray]:
        cols = np.concatenate(undo["cols"]) if undo["cols"] else np.zeros(0, np.int64)
        ss = float(((self.lin.b - undo["b"]) ** 2).sum())
        for c, w in zip(undo["cols"], undo["W"], strict=True):
            ss += float(((self.lin.W[:, c] - w) ** 2).sum())
        return math.sqrt(ss), cols

    def _replay_sample(self, rng: np.random.Generator) -> list[_Item]:
        k = self.cfg.replay_batch
        out: list[_Item] = []
        if self.reservoir:
            kr = min(len(self.reservoir), max(1, int(k * self.cfg.reservoir_share)))
            out += [self.reservoir[i] for i in rng.choice(len(self.reservoir), kr, replace=False)]
        rest = k - len(out)
        npos = rest // 2
        if self.base_pos:
            out += [self.base_pos[i] for i in rng.integers(0, len(self.base_pos), npos)]
        if self.base_neg:
            out += [self.base_neg[i] for i in rng.integers(0, len(self.base_neg), rest - npos)]
        return out

    def _remember_item(self, it: _Item) -> None:
        """Accepted feedback joins the replay reservoir and the guard buffers."""
        self.reservoir_seen += 1
        if len(self.reservoir) < self.cfg.feedback_reservoir:
            self.reservoir.append(it)
        else:
            j = self._res_rng.randrange(self.reservoir_seen)
            if j < self.cfg.feedback_reservoir:
                self.reservoir[j] = it
        if it.label == 0:
            self.benign_pool.add(it)
            self._raise_exemplar_thresholds(it.views)
        elif it.category != "harmful_request":
            self.attack_pool.add(it)

    def _apply(self, base: dict[str, Any], text: str) -> dict[str, Any]:
        seq = self.log.next_seq
        it = self._make_items([text], [base["label"]], [base["category"]], "feedback", [seq])[0]
        # which rule detectors fired on it (their features), before the update
        feats = {nm: float(it.rule[j]) for j, nm in enumerate(self.rule_names) if it.rule[j] > 0}
        cal_before, score_before = self._item_scores(it)
        fired = self._fired(feats, cal_before)
        rec: dict[str, Any] = {**base, "text": text, "features": {k: round(v, 6) for k, v in feats.items()},
                               "fired": fired, "score_before": round(score_before, 6),
                               "threat_before": score_before >= self.threshold, "updated": False,
                               "passes": 0, "delta_l2": 0.0}
        goal = self._goal(it)
        if goal():  # already right with margin: nothing to learn; it still joins the replay buffers
            rec.update(status="accepted", reason="already correct", score_after=rec["score_before"],
                       threat_after=rec["threat_before"])
            return self._accept(rec, it, None)
        n_used, l2_used = self._budget_used(base["source"], base["ts"])
        if n_used >= self.cfg.budget_updates or l2_used >= self.cfg.budget_delta_l2:
            rec.update(status="rejected", reason=f"source budget exhausted ({n_used} updates, weight change "
                                                  f"{l2_used:.2f} in the last {self.cfg.budget_window_s:.0f}s)")
            return self.log.append(rec)
        rng = np.random.default_rng([self.cfg.seed, seq])
        passes, undo = self._train(it, self._aug_items(it), rng, goal=goal)
        delta, cols = self._delta_l2(undo)
        _, score_after = self._item_scores(it)
        rec.update(updated=True, passes=passes, delta_l2=round(delta, 6), score_after=round(score_after, 6),
                   threat_after=score_after >= self.threshold)
        reason = None
        if l2_used + delta > self.cfg.budget_delta_l2:
            reason = f"source budget: this change ({delta:.2f}) would exceed {self.cfg.budget_delta_l2} " \
                     f"(used {l2_used:.2f})"
        else:
            g = self._guard_figures(self.platt, self.threshold)
            before = self._guard_now
            rec["guard"] = {"fpr_before": round(before["fpr"], 6), "fpr_after": round(g["fpr"], 6),
                            "recall_before": round(before["recall"], 6), "recall_after": round(g["recall"], 6)}
            if g["fpr"] > self.target_fpr and g["fpr"] > before["fpr"]:
                reason = f"benign-buffer FPR would rise to {g['fpr']:.4f} above the target {self.target_fpr}"
            elif g["fpr"] - before["fpr"] > self.cfg.max_fpr_increase:
                reason = f"benign-buffer FPR would rise by {g['fpr'] - before['fpr']:.4f} " \
                         f"(> {self.cfg.max_fpr_increase})"
            elif before["recall"] - g["recall"] > self.cfg.max_recall_drop:
                reason = f"attack-buffer recall would fall by {before['recall'] - g['recall']:.4f}"
        if reason is not None:
            self._undo(undo)
            rec.update(status="rejected", reason=reason, updated=False, score_after=rec["score_before"],
                       threat_after=rec["threat_before"])
            return self.log.append(rec)
        rec.update(status="accepted", reason="updated")
        try:
            return self._accept(rec, it, cols, guard=g)
        except BaseException:
            self._undo(undo)
            raise

    def _accept(self, rec: dict[str, Any], it: _Item, cols: np.ndarray | None,
                guard: dict[str, float] | None = None) -> dict[str, Any]:
        rec = self.log.append(rec)  # durable before it is visible or acknowledged
        if rec["updated"] and guard is not None:
            self._guard_now = guard
        it.seq = int(rec["seq"])
        raised = self._exemplars_raised
        self._exemplars_raised = False
        self._remember_item(it)
        if it.label == 1 and it.category != "harmful_request":
            rec["pattern"] = self._add_pattern(rec["text"], rec["category"], rec["source"], int(rec["seq"]))
        changed = self._note_change(rec, bool(rec.get("pattern", {}).get("added")) or self._exemplars_raised)
        if changed or raised:
            self._exemplars_raised = False
            self._publish(cols if cols is not None else np.zeros(0, np.int64))
        return rec

    def _note_change(self, rec: dict[str, Any], other: bool) -> bool:
        """Pending (committed at the next checkpoint, counted in the published `vN+k` name) when the feedback
        changed the model: its weights, or its patterns / exemplar thresholds (`other`), which a scan of the version
        on disk would otherwise never see; else included (nothing to re-apply after a crash)."""
        seq = int(rec["seq"])
        if rec.get("updated") or other:
            self.pending.append(seq)
            self.pending_since = self.pending_since or float(rec.get("ts", time.time()))
            return True
        self.included.add(seq)
        return False

    def _fired(self, feats: dict[str, float], cal_learned: float) -> dict[str, bool]:
        th = _logit(self.threshold)
        out = {nm: feats.get(nm, 0.0) > 0 for nm in self.rule_names if nm in self.platt}
        out["learned"] = cal_learned >= th
        return out

    def _ack(self, rec: dict[str, Any], t0: float, duplicate: bool = False) -> dict[str, Any]:
        keys = ("id", "seq", "status", "reason", "label", "category", "source", "base", "score_before",
                "score_after", "threat_before", "threat_after", "passes", "delta_l2", "fired", "guard", "pattern")
        ack = {k: rec[k] for k in keys if k in rec}
        ack["model_version"] = self.version
        ack["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        if duplicate:
            ack["duplicate"] = True
        return ack

    # --- patterns -----------------------------------------------------------------------------------------------------

    def _pattern_index(self) -> Any:
        if self._index is None:
            from aimds_ray.core.vector_index import PHRASE_INDEX_PATH, VectorIndex

            try:
                idx = VectorIndex.load(PHRASE_INDEX_PATH)
            except (FileNotFoundError, ValueError):
                from aimds_ray.core.vector_index import fit_idf

                idx = VectorIndex(fit_idf([p["text"] for p in self.patterns] or ["x"]))
            if self.patterns:
                idx.add([p["text"] for p in self.patterns], [_pattern_meta(p) for p in self.patterns], dedup=None)
            self._index = idx
        return self._index

    def _add_pattern(self, text: str, category: str, source: str, seq: int) -> dict[str, Any]:
        """A confirmed attack becomes a pattern unless it is a near copy (cosine >= pattern_dedup) of a known one."""
        idx = self._pattern_index()
        text = text[: self.cfg.pattern_max_chars]
        p = {"text": text, "category": category, "source": source, "added_at": time.time(), "feedback_seq": seq}
        hit = self._pattern_top(idx, text)
        if hit is not None and hit[1] >= self.cfg.pattern_dedup:
            return {"added": False, "duplicate_of": hit[0], "cosine": hit[1]}
        # dedup already decided above (a rounded cosine below pattern_dedup is a raw one below it), so the index
        # need not score the text again (that would rebuild its inverted lists, ~1-4 ms per update)
        ids = idx.add([text], [_pattern_meta(p)], dedup=None if idx.dense_dim is None else self.cfg.pattern_dedup)
        if not ids:
            return {"added": False}
        self.patterns.append(p)
        out: dict[str, Any] = {"added": True, "id": ids[0], "n_patterns": len(self.patterns)}
        if category in self.cfg.exemplar_categories:
            row = exemplar_row(text, self.aimds_config, self.bits, lexicon=self.lin.lexicon)
            if self.cfg.exemplar_max_df < 1.0:
                rare = np.sort(row[1][self._benign_df()[row[1]] <= self.cfg.exemplar_max_df])
                row = exemplar_row(text, self.aimds_config, self.bits, rare, self.lin.lexicon)
                p["exemplar_ids"] = rare.tolist()
            th = self._exemplar_threshold(row)
            p["exemplar_th"] = th
            self._exemplars = self._exemplars.add(row, th, category, len(self.patterns) - 1)
            out["exemplar_threshold"] = th
        return out

    def _pattern_top(self, idx: Any, text: str) -> tuple[int, float] | None:
        """`idx.find_similar(text, k=1)[0][:2]`, bit for bit, without the index rebuilding its inverted lists after
        every add: rows present at first use are scored through lists built once (`_pinv`), rows added since
        through small lists of those rows alone. Same kernel, same per-cell summation order, same tie-break."""
        if idx.dense_dim is not None:
            hits = idx.find_similar(text, k=1)
            return (hits[0][0], hits[0][1]) if hits else None
        n = len(idx.ids)
        if n == 0:
            return None
        pinv = self._pinv
        if pinv is None or pinv[0] is not idx or int(idx.indptr[n]) - int(idx.indptr[pinv[1]]) > \
                max(50_000, int(idx.indptr[pinv[1]]) // 4):  # fold a long tail into the base lists (rare)
            pinv = self._pinv = (idx, n, _inverted_lists(idx.indptr[: n + 1], idx.indices, idx.values))
        nb = pinv[1]
        q = idx.embed([text])
        row = sparse_scores(*q, *pinv[2], nb)[0]
        if n > nb:
            s0 = int(idx.indptr[nb])
            tail = _inverted_lists(idx.indptr[nb : n + 1] - s0, idx.indices[s0:], idx.values[s0:])
            row = np.concatenate([row, sparse_scores(*q, *tail, n - nb)[0]])
        r = int(np.argpartition(-row, 0)[0]) if n > 1 else 0  # what VectorIndex._topk picks for k=1
        return int(idx.ids[r]), round(float(row[r]), 6)

    def _benign_df(self) -> np.ndarray:
        """Share of the benign replay buffer's texts holding each feature (any view), computed once per base."""
        if self._df is None:
            X, starts, _ = self.benign_pool.arrays()
            item = np.repeat(np.searchsorted(starts, np.arange(len(X[0]) - 1), side="right") - 1, np.diff(X[0]))
            pairs = np.unique(item.astype(np.int64) << self.bits | X[1].astype(np.int64))
            df = np.bincount(pairs & ((1 << self.bits) - 1), minlength=1 << self.bits)
            self._df = (df / max(1, len(self.benign_pool))).astype(np.float32)
        return self._df

    def _exemplar_threshold(self, row: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
        """`exemplar_gap` above the highest cosine of any view of any benign buffer text (floor `exemplar_floor`)."""
        w = np.zeros(1 << self.bits, np.float32)
        w[row[1]] = row[2]
        m = 0.0
        for pool in (self.benign_pool, self.fresh_pool):
            if len(pool):
                X = pool.arrays()[0]
                m = max(m, float(_head0(X[0], X[1], X[2], w, 0.0).max(initial=0.0)))
        return round(max(self.cfg.exemplar_floor, m + self.cfg.exemplar_gap), 4)

    def _raise_exemplar_thresholds(self, X: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """A new benign text (feedback or observed traffic) keeps every exemplar threshold `exemplar_gap` above it."""
        ex = self._exemplars
        if not len(ex) or len(X[0]) < 2:
            return
        need = ex.scores(X, self.bits).max(axis=0) + self.cfg.exemplar_gap
        if not (need > ex.th).any():
            return
        th = np.round(np.maximum(ex.th, need), 4)
        for j in np.nonzero(th != ex.th)[0].tolist():
            self.patterns[ex.pattern[j]]["exemplar_th"] = float(th[j])
        self._exemplars = ex.with_thresholds(th)
        self._exemplars_raised = True

    def _sync_exemplar_platt(self) -> None:
        """Fusion's calibration of exemplar evidence: an exemplar hit (score >= EXEMPLAR_SCORE_AT_TH) alone scores
        just above the decision threshold, a closer copy higher."""
        if len(self._exemplars):
            a = 4.0
            self.platt[EXEMPLAR] = (a, round(_logit(self.threshold) + 0.5 - a * EXEMPLAR_SCORE_AT_TH, 6))

    def nearest_pattern(self, text: str) -> tuple[float, dict[str, Any]] | None:
        """The exemplar check: cosine of `text` with its nearest learned pattern (phrase-library rows excluded)."""
        with self._mutex:
            idx = self._pattern_index()
            for _id, cos, meta in idx.find_similar(redact_text(text), k=20):
                if str(meta.get("family", "")).startswith("learned"):
                    return cos, meta
            return None

    # --- meta level -----------------------------------------------------------------------------------------------------

    def _lineage(self) -> list[dict[str, Any]]:
        keep = self.included | set(self.pending)
        return [r for r in self.log.records("feedback") if r.get("status") == "accepted" and int(r["seq"]) in keep]

    def detector_stats(self) -> dict[str, dict[str, Any]]:
        """Per-detector (and fused) precision/recall on the feedback this model includes, judged by what fired on
        each text when it was reported. Feedback is mostly about mistakes, so these are pessimistic."""
        with self._mutex:
            stats: dict[str, dict[str, Any]] = {}
            for r in self._lineage():
                y = int(r["label"]) == 1 and r.get("category") != "harmful_request"
                fired = dict(r.get("fired", {}))
                fired["fused"] = bool(r.get("threat_before"))
                for det, f in fired.items():
                    s = stats.setdefault(det, {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
                    s["tp" if f and y else "fp" if f else "fn" if y else "tn"] += 1
            for s in stats.values():
                s["precision"] = round(s["tp"] / (s["tp"] + s["fp"]), 4) if s["tp"] + s["fp"] else None
                s["recall"] = round(s["tp"] / (s["tp"] + s["fn"]), 4) if s["tp"] + s["fn"] else None
            return stats

    def _refit_platt(self) -> dict[str, tuple[float, float]]:
        """Shift each rule detector's Platt intercept so its mean calibrated probability on the feedback where it
        fired matches (prior pseudo-counts + observed positives) / (prior + n)."""
        platt = dict(self.platt)
        rows = self._lineage()
        for nm in self.rule_names:
            ab = platt.get(nm)
            if ab is None:
                continue
            xs, ys = [], []
            for r in rows:
                x = float(r.get("features", {}).get(nm, 0.0))
                if x > 0:
                    xs.append(x)
                    ys.append(1.0 if int(r["label"]) == 1 and r.get("category") != "harmful_request" else 0.0)
            if len(xs) < self.cfg.min_detector_feedback:
                continue
            x = np.array(xs)
            a, b = ab
            prior = float(_sigmoid(a * x + b).mean())
            target = (self.cfg.platt_prior * prior + sum(ys)) / (self.cfg.platt_prior + len(ys))
            lo, hi = b - self.cfg.max_platt_shift, b + self.cfg.max_platt_shift
            for _ in range(50):
                mid = 0.5 * (lo + hi)
                if float(_sigmoid(a * x + mid).mean()) < target:
                    lo = mid
                else:
                    hi = mid
            platt[nm] = (a, round(0.5 * (lo + hi), 6))
        return platt

    def _refit_threshold(self, platt: dict[str, tuple[float, float]]) -> float:
        th = self.threshold
        fresh = self._pool_scores(self.fresh_pool, platt)
        fb = np.array([s for it, s in zip(self.benign_pool.items, self._pool_scores(self.benign_pool, platt),
                                          strict=True) if it.kind == "feedback"])
        fresh = np.concatenate([fresh, fb])
        if len(fresh) >= self.cfg.min_fresh_benign:
            q = float(np.quantile(fresh, 1 - self.target_fpr))
            th = min(max(q, th - self.cfg.max_threshold_step), th + self.cfg.max_threshold_step)
        allb = np.concatenate([self._pool_scores(self.benign_pool, platt), self._pool_scores(self.fresh_pool, platt)])
        if len(allb) and float((allb >= th).mean()) > self.target_fpr:  # never knowingly above the target
            th = max(th, min(float(np.quantile(allb, 1 - self.target_fpr)) + 1e-6, th + self.cfg.max_threshold_step))
        return round(min(max(th, 0.05), 0.999999), 6)

    def recalibrate(self) -> dict[str, Any]:
        """Refit rule-detector Platt intercepts and the threshold; keep them only if the guards pass."""
        with self._mutex:
            self._featurise_observed()
            platt = self._refit_platt()
            th = self._refit_threshold(platt)
            before = self._guard_figures(self.platt, self.threshold)
            after = self._guard_figures(platt, th)
            changed = platt != self.platt or abs(th - self.threshold) > 1e-9
            ok = (after["fpr"] <= max(self.target_fpr, before["fpr"])
                  and before["recall"] - after["recall"] <= self.cfg.max_recall_drop)
            ev = {"kind": "recalibration", "accepted": bool(ok and changed), "changed": changed,
                  "threshold_before": self.threshold, "threshold_after": th,
                  "platt_before": {k: list(v) for k, v in self.platt.items()},
                  "platt_after": {k: list(v) for k, v in platt.items()},
                  "guard_before": before, "guard_after": after, "base": self.base_version}
            if changed:
                self.log.append(ev)
            if ok and changed:
                self.platt, self.threshold = platt, th
                self._guard_now = after
            return ev

    def _featurise_observed(self) -> None:
        if not self._observed:
            return
        obs, self._observed = self._observed, []
        for it in self._make_items(obs, [0] * len(obs), ["benign"] * len(obs), "observed"):
            self.fresh_pool.add(it)
            self._raise_exemplar_thresholds(it.views)

    # --- versions -------------------------------------------------------------------------------------------------------

    def _checkpoint_due(self) -> bool:
        if not self.pending:
            return False
        if self.cfg.checkpoint_every and len(self.pending) >= self.cfg.checkpoint_every:
            return True
        return bool(self.cfg.checkpoint_seconds and self.pending_since is not None
                    and time.time() - self.pending_since >= self.cfg.checkpoint_seconds)

    def checkpoint_if_due(self) -> str | None:
        """Commit if `checkpoint_every` / `checkpoint_seconds` say so (the version, else None). Feedback checks this
        as it arrives; a host that keeps the learner running calls it on a timer, so updates made before feedback
        stopped are committed `checkpoint_seconds` later, not at the next feedback."""
        with self._mutex:
            return self._checkpoint() if self._checkpoint_due() else None

    def checkpoint(self, *, force: bool = False) -> str | None:
        """Commit the current weights as version N+1 (if anything changed, or `force`). Returns the version.
        Pending feedback stays pending if the commit fails (OSError raised; the log holds it)."""
        with self._mutex:
            if not self.pending and not force:
                return None
            return self._checkpoint()

    def _metrics(self) -> dict[str, Any]:
        fb = self.log.records("feedback")
        return {
            "target_fpr": self.target_fpr,
            "feedback": {"included": _ranges(self.included | set(self.pending)),
                         "last_seq": max(self.included | set(self.pending), default=0),
                         "accepted": sum(r.get("status") == "accepted" for r in fb),
                         "rejected": sum(r.get("status") == "rejected" for r in fb),
                         "refused": sum(r.get("status") == "refused" for r in fb)},
            "origin": self.parent_metrics.get("origin") or self.base_version,
            "trained": self.parent_metrics.get("trained") or {k: v for k, v in self.parent_metrics.items()
                                                              if k in ("rows", "oof_tpr", "oof_fpr", "files")},
            "n_patterns": len(self.patterns),
        }

    def _checkpoint(self) -> str:
        if self.cfg.recalibrate_on_checkpoint:
            self.recalibrate()
        version = self.store.next_version()
        self._sync_exemplar_platt()
        lin = self.lin.copy()
        metrics = self._metrics()
        metrics["guard"] = {k: round(v, 6) if isinstance(v, float) else v for k, v in self._guard_now.items()}
        metrics["detector_stats"] = self.detector_stats()
        metrics["updates"] = len(self.pending)
        bundle = ModelBundle(version=version, linear=lin, threshold=round(self.threshold, 6),
                             fusion_weights={k: [v[0], v[1]] for k, v in self.platt.items()}, metrics=metrics,
                             parent=self.base_version, patterns=list(self.patterns),
                             notes=f"learner: {len(self.pending)} feedback updates on {self.base_version}",
                             **self.extras)
        self.store.commit(bundle)
        # go on from the weights as committed (float16 on disk): a restart that replays later feedback onto this
        # version then holds exactly what this process holds
        self.lin.round_as_stored()
        self.log.append({"kind": "checkpoint", "version": version, "parent": self.base_version,
                         "upto": max(self.included | set(self.pending), default=0)})
        self.included |= set(self.pending)
        self.pending = []
        self.pending_since = None
        self.base_version = version
        self.parent_metrics = metrics
        self.bundle_notes = bundle.notes
        self._publish()
        return version

    def rollback(self, version: str) -> dict[str, Any]:
        """Make `version` current again (on disk and here); feedback made after it is no longer replayed."""
        with self._mutex:
            self.store.path_of(version)
            prev = self.base_version
            self.log.append({"kind": "rollback", "to": version, "from": prev,
                             "dropped": len(self.pending)})
            self.store.rollback(version)
            listeners = self._listeners
            self._load_version(version)
            self._listeners = listeners
            self._build_base()
            self._replay_log()
            return {"current": version, "previous": prev}

    def close(self) -> None:
        """Release the lock (uncommitted updates stay in the log and are re-applied by the next learner)."""
        with self._mutex:
            self.log.close()
            self._lock.release()

    def __enter__(self) -> Learner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pattern_meta(p: dict[str, Any]) -> dict[str, Any]:
    return {"label": 1, "family": f"learned:{p.get('category', 'prompt_injection')}",
            "category": p.get("category", "prompt_injection"), "text": p["text"][:200],
            "source": f"feedback:{p.get('source', '?')}"}


def _save_items(path: Path, items: Sequence[_Item], source: str) -> None:
    """Featurised items as npz (arrays) + json (texts, labels): start-up reads this instead of re-normalising."""
    path.parent.mkdir(parents=True, exist_ok=True)
    T = _cat_csr([it.train for it in items])
    V = _cat_csr([it.views for it in items])
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, t_ptr=T[0], t_idx=T[1], t_val=T[2], v_ptr=V[0], v_idx=V[1], v_val=V[2],
             t_n=np.array([len(it.train[0]) - 1 for it in items], np.int64),
             v_n=np.array([len(it.views[0]) - 1 for it in items], np.int64),
             R=np.stack([it.rule for it in items]))
    meta = {"source": source, "texts": [it.text for it in items], "labels": [it.label for it in items],
            "cats": [it.category for it in items]}
    tmpj = path.with_name(path.name + f".{os.getpid()}.tmp.json")
    tmpj.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    os.replace(tmpj, path.with_suffix(".json"))
    os.replace(tmp, path.with_suffix(".npz"))  # the npz last: its presence means the pair is complete


def _load_items(path: Path) -> list[_Item] | None:
    try:
        z = np.load(path.with_suffix(".npz"), allow_pickle=False)
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    with z:
        T = (z["t_ptr"], z["t_idx"], z["t_val"])
        V = (z["v_ptr"], z["v_idx"], z["v_val"])
        ts = np.concatenate([[0], np.cumsum(z["t_n"])])
        vs = np.concatenate([[0], np.cumsum(z["v_n"])])
        R = z["R"]
    if len(meta["texts"]) != len(R):
        return None
    return [_Item(t, int(y), c, _rows(T, int(ts[i]), int(ts[i + 1])), _rows(V, int(vs[i]), int(vs[i + 1])), R[i])
            for i, (t, y, c) in enumerate(zip(meta["texts"], meta["labels"], meta["cats"], strict=True))]


def _cache_source(path: Path) -> str:
    try:
        return str(json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("source", "cache"))
    except (OSError, ValueError):
        return "cache"


def _rows(X: tuple[np.ndarray, np.ndarray, np.ndarray] | None, a: int, b: int,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if X is None or b <= a:
        return np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    ip, idx, val = X
    s, e = int(ip[a]), int(ip[b])
    return (ip[a : b + 1] - s).astype(np.int64), idx[s:e], val[s:e]


def rollback(version: str, home: str | os.PathLike[str] | None = None, lock_timeout: float = 60.0
             ) -> dict[str, Any]:
    """Switch `$AIMDS_HOME`'s current model to `version` without building a learner (the CLI path): takes the learner
    lock, logs the rollback (so uncheckpointed feedback on the old version is not replayed onto it), switches.
    `dropped`: the accepted feedback made on the old version since its last commit, which is no longer applied
    (rolling back to the current version is how such updates are discarded; they stay in the log)."""
    h = Path(home) if home is not None else aimds_home()
    with FileLock(h / "feedback" / ".lock", lock_timeout):
        store = ModelStore(h / "models")
        store.path_of(version)
        prev = store.current_version()
        log = FeedbackLog(h / "feedback")
        try:
            dropped = _uncommitted(log, prev)
            log.append({"kind": "rollback", "to": version, "from": prev, "dropped": len(dropped)})
        finally:
            log.close()
        store.rollback(version)
        return {"current": version, "previous": prev, "dropped": len(dropped), "dropped_seqs": dropped}


def prune(keep: int, home: str | os.PathLike[str] | None = None, *, dry_run: bool = False,
          lock_timeout: float = 60.0) -> dict[str, Any]:
    """Delete the local versions but the `keep` newest and the current one (under the learner lock, so no commit
    races it). The shipped version is never among them; the feedback log keeps every record, so nothing learned is
    lost that a new training or feedback run could not rebuild, but a deleted version can no longer be rolled back to."""
    h = Path(home) if home is not None else aimds_home()
    with FileLock(h / "feedback" / ".lock", lock_timeout):
        store = ModelStore(h / "models")
        local = [v for v in store.versions() if (store.root / v / "bundle.json").exists()]
        current = store.current_version()
        kept = set(local[-keep:]) | {current}
        gone = [v for v in local if v not in kept]
        if not dry_run:
            for v in gone:
                shutil.rmtree(store.root / v)
        return {"deleted": gone, "kept": [v for v in local if v in kept], "current": current, "dry_run": dry_run}


def _uncommitted(log: FeedbackLog, version: str | None) -> list[int]:
    """Seqs of accepted feedback made on `version` after its last checkpoint or rollback: what a learner on it would
    replay (and commit at its next checkpoint)."""
    last = max((int(r["seq"]) for r in log.records("rollback")), default=0)
    last = max([last] + [int(r["seq"]) for r in log.records("checkpoint") if r.get("version") == version])
    return [int(r["seq"]) for r in log.records("feedback") if r.get("status") == "accepted"
            and r.get("base") == version and int(r["seq"]) > last]


def list_versions(home: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every version with its metrics and a `current` flag (the included-feedback ranges left out for brevity)."""
    store = ModelStore(Path(home) / "models" if home is not None else None)
    out = []
    for v in store.versions():
        d = store.describe(v)
        fb = d.get("metrics", {}).get("feedback")
        if isinstance(fb, dict):
            fb = {k: v for k, v in fb.items() if k != "included"}
            d["metrics"] = {**d["metrics"], "feedback": fb}
        out.append(d)
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def _differs(prev: dict[str, Any], text: str | None, label: Any, category: str | None, source: str,
             request_id: str | None) -> str:
    """The first field in which a re-sent feedback_id's payload differs from the record it was first applied as
    ("" when it is the same feedback: a retry). The text is compared as the log holds it (redacted, or by hash)."""
    try:
        same_label = not isinstance(label, bool) and int(label) == prev.get("label")
    except (TypeError, ValueError):
        same_label = False
    if not same_label:
        return "label"
    if category is not None and category != prev.get("category"):
        return "category"
    if source != prev.get("source"):
        return "source"
    if request_id != prev.get("request_id"):
        return "request_id"
    if text is not None:
        same = (redact_text(text) == prev["text"] if prev.get("text") is not None
                else hashlib.sha256(text.encode("utf-8")).hexdigest() == prev.get("text_sha256"))
        if not same:
            return "text"
    return ""


__all__ = ["FeedbackConflict", "FeedbackError", "Learner", "LearnerConfig", "fused_scores", "learned_feature",
           "list_versions", "redact_text", "rollback"]
