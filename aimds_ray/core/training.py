"""Training a model bundle from labelled JSONL: linear heads, fusion stacker and a threshold at a target FPR.

1. Rows (`text`, `label`, `category`) from the given files, plus this project's synthetic mechanisms
   (`aimds_ray.core.synth`), and synthetic indirect injections inserted into the benign documents of the data.
2. K-fold out-of-fold probabilities of the linear heads, so the stacker and the threshold are fitted on scores of
   rows the linear model did not see (fitting them on training-set scores would make both over-confident).
3. The stacker: logistic regression over one feature per detector (`fusion.detector_features`).
4. The threshold: the (1 - target_fpr) quantile of the out-of-fold fused scores of the real (not synthetic) benign
   rows. Rows marked `fusion_only` (synthetic documents) calibrate the stacker but never train the linear heads.
5. The final linear heads on all rows but the fusion-only ones. Weights are rounded to float16 before the
   threshold is applied, because that is what the saved bundle holds.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimds_ray.core import synth
from aimds_ray.core.classifier import HEADS, LinearModel
from aimds_ray.core.concepts import load_lexicon
from aimds_ray.core.config import AimdsConfig, load_config
from aimds_ray.core.features import featurize
from aimds_ray.core.fusion import detector_features, fuse
from aimds_ray.core.model import ModelBundle
from aimds_ray.core.normalize import normalize
from aimds_ray.core.report import MANIPULATION_CATEGORIES


@dataclass(frozen=True)
class TrainParams:
    bits: int = 18
    epochs: int = 6
    lr: float = 0.3
    l2: float = 1e-6
    folds: int = 4
    target_fpr: float = 0.004
    synth_attacks: int = 2500
    synth_benign: int = 900
    synth_indirect_docs: int = 300
    synth_multilingual: int = 0
    synth_roleplay: int = 0
    synth_suffix: int = 0
    synth_flood: int = 0
    synth_documents: int = 0
    synth_corpus_injections: int = 0
    # sample-weight multiplier per training file or shipped corpus (file name -> factor); others weigh 1
    corpus_weights: dict[str, float] = field(default_factory=dict)
    # concept n-gram features from aimds_ray/data/concepts.yaml (the model keeps a copy of the lexicon)
    concepts: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.corpus_weights.items()
               if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0}
        if bad:
            raise ValueError(f"corpus_weights must be positive numbers, got {bad}")
        if not isinstance(self.concepts, bool):
            raise ValueError(f"concepts must be true or false, got {self.concepts!r}")


class TrainingDataError(ValueError):
    """A training file the trainer cannot use; the message names the file and line."""


def read_jsonl(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Labelled rows: one JSON object per line with `text` (string) and `label` (0 or 1), optionally `category`
    and `source`. A bad line is an error naming it, not a row silently dropped."""
    rows = []
    for p in paths:
        with open(p, encoding="utf-8", errors="strict") as f:
            try:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        rows.append(_training_row(line, f"{p}:{n}"))
                        rows[-1].setdefault("source", Path(p).name)
                        rows[-1]["file"] = Path(p).name
            except UnicodeDecodeError as e:
                raise TrainingDataError(f"{p}: not UTF-8 ({e.reason} at byte {e.start})") from None
    return rows


def _training_row(line: str, where: str) -> dict[str, Any]:
    try:
        r = json.loads(line)
    except json.JSONDecodeError as e:
        raise TrainingDataError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(r, dict):
        raise TrainingDataError(f"{where}: expected a JSON object, got {type(r).__name__}")
    if not isinstance(r.get("text"), str):
        raise TrainingDataError(f"{where}: 'text' must be a string" + ("" if "text" in r else " (missing)"))
    label = r.get("label")
    if isinstance(label, bool) or label not in (0, 1):
        raise TrainingDataError(f"{where}: 'label' must be 0 or 1, got {label!r}" + ("" if "label" in r else
                                                                                          " (missing)"))
    if "category" in r and not isinstance(r["category"], str):
        raise TrainingDataError(f"{where}: 'category' must be a string")
    return r


CORPORA_DIR = Path(__file__).resolve().parent.parent / "data" / "corpora"


def read_corpora(names: Iterable[str]) -> list[dict[str, Any]]:
    """The shipped corpora (gzip JSONL in `aimds_ray/data/corpora`: see its README)."""
    import gzip

    rows = []
    for name in names:
        with gzip.open(CORPORA_DIR / name, "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                r["file"] = f"corpus:{name}"
                rows.append(r)
    return rows


def augment(rows: list[dict[str, Any]], params: TrainParams) -> list[dict[str, Any]]:
    """Synthetic mechanisms, and synthetic indirect injections embedded in benign documents of `rows`."""
    out = synth.generate(params.synth_attacks, params.synth_benign, seed=params.seed + 7,
                         n_multilingual=params.synth_multilingual, n_roleplay=params.synth_roleplay)
    docs = [r["text"] for r in rows if r.get("category") == "benign_document"]
    r = random.Random(params.seed + 11)
    for i in range(min(params.synth_indirect_docs, 3 * len(docs))):
        doc = docs[i % len(docs)]
        out.append({"text": synth.embed_in_document(doc, synth.indirect_sentence(r), r), "label": 1,
                    "category": "indirect_injection", "source": "aimds-synth-doc", "file": "synthetic"})
    requests = [r_["text"] for r_ in rows if r_.get("category") == "harmful_request"]
    rs = random.Random(params.seed + 13)  # its own stream: the rows above do not move when this count changes
    for i in range(min(params.synth_suffix, 3 * len(requests))):
        out.append({"text": synth.adversarial_suffix(rs, requests[i % len(requests)]), "label": 1,
                    "category": "adversarial_suffix", "source": "aimds-synth-suffix", "file": "synthetic"})
    rd = random.Random(params.seed + 23)
    tasks = [r_["text"].strip() for r_ in rows if r_.get("category") == "benign" and 12 <= len(r_["text"]) <= 150
             and "\n" not in r_["text"].strip()]
    for _ in range(params.synth_documents):
        kind, doc = synth.document(rd)
        task = rd.choice(tasks) if tasks and rd.random() < 0.7 else synth.benign(rd)
        task = task[:1].upper() + task[1:]
        # fusion only: the planted tasks are ordinary requests, and an n-gram model cannot see where they stand,
        # so these rows would only teach it that ordinary requests (or documents) are attacks; they calibrate the
        # structural `doc_hijack` detector and the stacker instead
        out += [{"text": doc, "label": 0, "category": "benign_document", "source": "aimds-synth-doc-plain",
                 "fusion_only": True},
                {"text": synth.about_document(rd, kind, doc), "label": 0, "category": "benign",
                 "source": "aimds-synth-doc-about", "fusion_only": True},
                {"text": synth.plant_task(rd, doc, task), "label": 1, "category": "indirect_injection",
                 "source": "aimds-synth-doc-task", "fusion_only": True}]
    # injections planted in documentation chunks: the corpus teaches that technical prose is benign, these keep an
    # instruction inside such prose an attack (without them its n-grams would only ever pull scores down)
    corpus = [r_["text"] for r_ in rows if str(r_.get("file", "")).startswith("corpus:")]
    rc = random.Random(params.seed + 29)
    for i in range(min(params.synth_corpus_injections, len(corpus))):
        out.append({"text": synth.embed_in_document(corpus[(i * 7919) % len(corpus)], synth.indirect_sentence(rc), rc),
                    "label": 1, "category": "indirect_injection", "source": "aimds-synth-corpus", "file": "synthetic"})
    rf = random.Random(params.seed + 17)
    for _ in range(params.synth_flood):
        out.append({"text": synth.flood(rf), "label": 1, "category": "prompt_injection",
                    "source": "aimds-synth-flood", "file": "synthetic"})
    for row in out:
        row.setdefault("file", "synthetic")
    return out


def label_matrix(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Y (n, heads) in {1, 0, -1 = no label} and balanced sample weights."""
    n, k = len(rows), len(HEADS)
    Y = np.zeros((n, k), np.float32)
    for i, r in enumerate(rows):
        cat = r.get("category", "")
        if int(r["label"]) == 1:
            Y[i, 0] = 0.0 if cat == "harmful_request" else 1.0
            for h, name in enumerate(HEADS[1:], 1):
                Y[i, h] = 1.0 if cat == name else 0.0
        else:
            Y[i, :] = 0.0
    pos = Y[:, 0] == 1
    w = np.ones(n, np.float32)
    if pos.any() and (~pos).any():
        w[pos] = 0.5 * n / pos.sum()
        w[~pos] = 0.5 * n / (~pos).sum()
    return Y, w


def norm_texts(rows: Sequence[dict[str, Any]], config: AimdsConfig) -> list[str]:
    return [normalize(r["text"], config.normalize).text for r in rows]


def _fold_of(text: str, folds: int) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "little") % folds


def rule_features(rows: Sequence[dict[str, Any]], config: AimdsConfig) -> list[dict[str, float]]:
    """Per-row detector features of every non-learned signal (the stacker's inputs besides the model)."""
    from aimds_ray.core.detector import Detector
    from aimds_ray.core.report import Category

    sigs = tuple(s for s in config.detector.signals if s != "learned")
    det = Detector(_with_signals(config, sigs), load_model=False)
    manip = set(MANIPULATION_CATEGORIES)
    if config.detector.harmful_request:
        manip.add(Category.HARMFUL_REQUEST)
    feats = []
    texts = [r["text"] for r in rows]
    for i in range(0, len(texts), 512):
        for rep in det.scan_batch(texts[i : i + 512]):
            f = detector_features(rep.evidence, manip)
            f.pop("learned", None)
            feats.append(f)
    return feats


def _with_signals(config: AimdsConfig, signals: tuple[str, ...]) -> AimdsConfig:
    import dataclasses

    return dataclasses.replace(config, detector=dataclasses.replace(config.detector, signals=signals))


def fit_platt(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, iters: int = 2000) -> tuple[float, float]:
    """1-D logistic calibration p = sigmoid(a*x + b) by full-batch gradient descent. Unweighted: the probability
    is P(manipulation | the detector said x) under the training mix, which is what noisy-OR needs."""
    n = len(x)
    sw = np.ones(n)
    a, b = 1.0, 0.0
    scale = max(1.0, float(np.abs(x).max()))
    lr = 0.5 / scale
    for _ in range(iters):
        z = np.clip(a * x + b, -30, 30)
        g = (1 / (1 + np.exp(-z)) - y) * sw
        a -= lr * (float((g * x).mean()) + l2 * a)
        b -= 0.5 * float(g.mean())
    return float(a), float(b)


def fit_fusion(F: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, list[float]]:
    """Calibrate each detector on the rows where it said something (the learned model: on all rows)."""
    out: dict[str, list[float]] = {}
    for j, nm in enumerate(names):
        mask = np.ones(len(y), bool) if nm == "learned" else F[:, j] > 0
        if mask.sum() < 5:
            continue
        yj = y[mask]
        if yj.min() == yj.max():  # only one class seen: trust it, but not blindly
            p = 0.98 if yj[0] == 1 else 0.02
            out[nm] = [0.0, float(np.log(p / (1 - p)))]
            continue
        a, b = fit_platt(F[mask, j], yj)
        out[nm] = [round(a, 6), round(b, 6)]
    return out


def stack_matrix(rule_feats: list[dict[str, float]], learned_logit: np.ndarray,
                 names: list[str]) -> np.ndarray:
    F = np.zeros((len(rule_feats), len(names)))
    for i, f in enumerate(rule_feats):
        for j, nm in enumerate(names):
            F[i, j] = learned_logit[i] if nm == "learned" else f.get(nm, 0.0)
    return F


def _learned_logit(P: np.ndarray) -> np.ndarray:
    p = np.clip(P[:, 0].astype(np.float64), 1e-4, 1 - 1e-4)
    x = np.log(p / (1 - p))
    return np.where(p < 0.05, -4.0, x)  # below the signal's reporting floor it is LEARNED_ABSENT


def train_bundle(
    rows: list[dict[str, Any]], *, config: AimdsConfig | None = None, params: TrainParams | None = None,
    version: str = "v1", notes: str = "", log: Any = print,
) -> ModelBundle:
    config = config or load_config()
    params = params or TrainParams()
    t0 = time.perf_counter()
    rows = list(rows) + augment(rows, params)
    seen: set[str] = set()
    rows = [r for r in rows if isinstance(r.get("text"), str) and not (r["text"] in seen or seen.add(r["text"]))]
    texts = norm_texts(rows, config)
    lexicon = load_lexicon() if params.concepts else None
    X = featurize(texts, params.bits, lexicon)
    linear = np.array([not r.get("fusion_only") for r in rows])
    Y, _ = label_matrix(rows)
    sw = np.zeros(len(rows), np.float32)  # class balance over the rows the linear heads train on
    sw[linear] = label_matrix([r for r, keep in zip(rows, linear, strict=True) if keep])[1]
    # the written probes are realistic phrasings, outnumbered by the synthetic grammars' templates, and the docs
    # corpus is the only technical prose: both weighted up in training.yaml (chosen on probe sets held out from
    # training: probes at 3x took set 6 from 46.4 % to 49.1 % TPR; docs at 3x then cost set 7 2 of 886 attacks
    # and took documentation chunks from 1.60 % to 1.52 % flagged)
    sw *= np.array([params.corpus_weights.get(str(r.get("file", "")).removeprefix("corpus:"), 1.0) for r in rows],
                   np.float32)
    log(f"train: {len(rows)} rows ({int((Y[:, 0] == 1).sum())} manipulation), "
        f"{X[1].size} feature entries, {time.perf_counter() - t0:.1f}s")

    # out-of-fold linear scores
    folds = np.array([_fold_of(t, params.folds) for t in texts])
    oof = np.zeros((len(rows), len(HEADS)), np.float32)
    indptr, indices, values = X
    for k in range(params.folds):
        tr = np.nonzero((folds != k) & linear)[0]
        te = np.nonzero(folds == k)[0]
        m = LinearModel.zeros(params.bits, lexicon=lexicon)
        m.fit(_subset(X, tr), Y[tr], sw[tr], epochs=params.epochs, lr=params.lr, l2=params.l2, seed=params.seed)
        oof[te] = m.proba(*_subset(X, te))
    log(f"train: out-of-fold scores done, {time.perf_counter() - t0:.1f}s")

    rules = rule_features(rows, config)
    names = ["learned"] + sorted({k for f in rules for k in f})
    F = stack_matrix(rules, _learned_logit(oof), names)
    y = (Y[:, 0] == 1).astype(np.float64)
    weights = fit_fusion(F, y, names)
    platt = {k: (v[0], v[1]) for k, v in weights.items()}
    fused = np.array([fuse(dict(zip(names, row, strict=True)), platt) for row in F])
    benign = np.array([int(r["label"]) == 0 for r in rows])
    real = benign & np.array([r.get("file") != "synthetic" and not r.get("hard_negative") for r in rows])
    if not real.any():
        real = benign
    # the target FPR is a rate on traffic: fitted on the real benign rows, not on the synthetic hard negatives
    # (role-play framings, documents, look-alikes) nor the written ones (`hard_negative` rows of the probe corpus),
    # which are there to teach the model and are deliberately near the boundary (on the dev data the synthetic ones
    # are 8 % of the benign rows and two thirds of the top 1 %; with the probes counted as traffic the threshold
    # rose from 0.889 to 0.928)
    threshold = float(np.quantile(fused[real], 1 - params.target_fpr)) if real.any() else 0.5
    threshold = min(max(threshold, 0.05), 0.999999)
    manip = y == 1
    oof_tpr = float((fused[manip] >= threshold).mean()) if manip.any() else float("nan")
    oof_fpr = float((fused[real] >= threshold).mean()) if real.any() else float("nan")
    log(f"train: fusion {weights}; threshold {threshold:.4f} "
        f"(out-of-fold TPR {oof_tpr:.3f} FPR {oof_fpr:.4f})")

    final = LinearModel.zeros(params.bits, lexicon=lexicon)
    lin = np.nonzero(linear)[0]
    final.fit(_subset(X, lin), Y[lin], sw[lin], epochs=params.epochs, lr=params.lr, l2=params.l2, seed=params.seed)
    final.W = final.W.astype(np.float16).astype(np.float32)
    metrics = {"rows": len(rows), "manipulation_rows": int(manip.sum()), "oof_tpr": round(oof_tpr, 4),
               "oof_fpr": round(oof_fpr, 4), "target_fpr": params.target_fpr,
               "train_seconds": round(time.perf_counter() - t0, 1),
               "files": sorted({r.get("file", "?") for r in rows})}
    return ModelBundle(version=version, linear=final, threshold=round(threshold, 6),
                       fusion_weights=weights, metrics=metrics, notes=notes)


def _subset(X: tuple[np.ndarray, np.ndarray, np.ndarray], idx: np.ndarray) -> tuple[np.ndarray, ...]:
    indptr, indices, values = X
    starts, ends = indptr[idx], indptr[idx + 1]
    lens = ends - starts
    new_ptr = np.zeros(len(idx) + 1, np.int64)
    np.cumsum(lens, out=new_ptr[1:])
    take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)]) if len(idx) else \
        np.zeros(0, np.int64)
    return new_ptr, indices[take], values[take]


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
