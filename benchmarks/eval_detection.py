"""Detection quality: leave-one-source-out over ../shared/data, the shipped model on every file, and the seed's
npm implementation (@claude-flow/aidefence) on the same rows, side by side.

LOSO: for each file, train a bundle on all the other files (evaluation-only files included: these bundles are
never shipped) and score the held-out file with the default config. Reported per category TPR (manipulation
categories; harmful_request is reported separately and is not part of the manipulation TPR), per benign category
FPR, and ROC AUC of the fused score. The last stdout line is one JSON object.

    python benchmarks/eval_detection.py [--data ../shared/data] [--no-loso] [--no-peer] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aimds_ray.core.config import load_config  # noqa: E402
from aimds_ray.core.detector import Detector  # noqa: E402
from aimds_ray.core.model import load_current_model  # noqa: E402
from aimds_ray.core.training import TrainParams, read_corpora, read_jsonl, train_bundle  # noqa: E402

MANIP = {"jailbreak", "prompt_injection", "prompt_extraction", "indirect_injection", "adversarial_suffix"}


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    allv = np.concatenate([pos, neg])
    # average ranks for ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = sums[inv] / counts[inv]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def score_rows(det: Detector, rows: list[dict], per_detector: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flags and fused scores; with `per_detector`, also each row's strongest evidence score per detector."""
    flags, scores = [], []
    texts = [r["text"] for r in rows]
    for i in range(0, len(texts), 256):
        for rep in det.scan_batch(texts[i : i + 256]):
            flags.append(rep.is_threat)
            scores.append(rep.score)
            if per_detector is not None:
                per: dict[str, float] = {}
                for e in rep.evidence:
                    per[e.detector] = max(per.get(e.detector, 0.0), round(e.score, 4))
                per_detector.append(per)
    return np.array(flags, bool), np.array(scores)


def tally(rows: list[dict], flags: np.ndarray, acc: dict) -> None:
    for r, f in zip(rows, flags, strict=True):
        key = r["category"]
        acc[key][0] += int(f)
        acc[key][1] += 1


def summarise(acc: dict) -> dict:
    per = {k: {"flagged": v[0], "n": v[1], "rate": round(v[0] / v[1], 4)} for k, v in sorted(acc.items())}
    tp = sum(v[0] for k, v in acc.items() if k in MANIP)
    npos = sum(v[1] for k, v in acc.items() if k in MANIP)
    fp = sum(v[0] for k, v in acc.items() if k.startswith("benign"))
    nneg = sum(v[1] for k, v in acc.items() if k.startswith("benign"))
    return {"manipulation_tpr": round(tp / max(npos, 1), 4), "benign_fpr": round(fp / max(nneg, 1), 4),
            "n_manipulation": npos, "n_benign": nneg, "per_category": per}


def run_peer(rows_by_file: dict[str, list[dict]], limit: int | None) -> dict | None:
    """The seed's reference implementation via Node.js, on the same rows; None when npm/node is unavailable."""
    if not shutil.which("node") or not shutil.which("npm"):
        return None
    work = Path(tempfile.gettempdir()) / "aimds-peer-aidefence"
    work.mkdir(exist_ok=True)
    if not (work / "node_modules" / "@claude-flow" / "aidefence").exists():
        r = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "@claude-flow/aidefence@3.0.3"],
                           cwd=work, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            return {"error": f"npm install failed: {r.stderr[-300:]}"}
    script = work / "run.mjs"
    script.write_text(
        "import { createAIDefence } from '@claude-flow/aidefence';\n"
        "import fs from 'fs';\n"
        "const d = createAIDefence({enableLearning: false});\n"
        "const lines = fs.readFileSync(process.argv[2], 'utf8').split('\\n').filter(Boolean);\n"
        "const out = []; let total = 0n;\n"
        "for (const l of lines) { const t = JSON.parse(l);\n"
        "  const s = process.hrtime.bigint(); let r = d.detect(t); if (r && r.then) r = await r;\n"
        "  total += process.hrtime.bigint() - s; out.push(r.safe ? 0 : 1); }\n"
        "console.log(JSON.stringify({flags: out, mean_us: Number(total) / 1000 / Math.max(1, lines.length)}));\n"
    )
    acc: dict = defaultdict(lambda: [0, 0])
    us = []
    for _name, rows in rows_by_file.items():
        rows = rows[:limit] if limit else rows
        inp = work / "in.jsonl"
        inp.write_text("\n".join(json.dumps(r["text"]) for r in rows) + "\n")
        r = subprocess.run(["node", str(script), str(inp)], cwd=work, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            return {"error": r.stderr[-300:]}
        res = json.loads(r.stdout.strip().splitlines()[-1])
        tally(rows, np.array(res["flags"], bool), acc)
        us.append(res["mean_us"])
    out = summarise(acc)
    out["mean_latency_us"] = round(float(np.mean(us)), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--no-loso", action="store_true")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="rows per file (quick runs)")
    ap.add_argument("--only", action="append", default=None, help="LOSO: hold out only these files")
    ap.add_argument("--dump", default=None, help="LOSO: write one JSON line per held-out row (file, category, "
                    "score, flag, detector scores) here, for reading the misses")
    args = ap.parse_args()
    dump = open(args.dump, "w") if args.dump else None  # noqa: SIM115
    files = sorted(Path(args.data).glob("*.jsonl"))
    rows_by_file = {f.name: read_jsonl([f]) for f in files}
    if args.limit:
        rows_by_file = {k: v[: args.limit] for k, v in rows_by_file.items()}
    config = load_config()
    result: dict = {"data": str(args.data), "files": len(files)}

    # the shipped model on every file (it was trained on the licence-clean files: in-sample for those)
    shipped = load_current_model()
    det = Detector(config, model=shipped)
    acc: dict = defaultdict(lambda: [0, 0])
    all_s, all_y = [], []
    t0 = time.perf_counter()
    per_file = {}
    for name, rows in rows_by_file.items():
        flags, scores = score_rows(det, rows)
        tally(rows, flags, acc)
        sub: dict = defaultdict(lambda: [0, 0])
        tally(rows, flags, sub)
        per_file[name] = {k: round(v[0] / v[1], 4) for k, v in sub.items()}
        for r, s in zip(rows, scores, strict=True):
            if r["category"] in MANIP or r["category"].startswith("benign"):
                all_s.append(s)
                all_y.append(1 if r["category"] in MANIP else 0)
    shipped_res = summarise(acc)
    shipped_res["roc_auc"] = auc(np.array(all_s), np.array(all_y))
    shipped_res["per_file_rates"] = per_file
    shipped_res["seconds"] = round(time.perf_counter() - t0, 1)
    shipped_res["model_version"] = det.model_version
    result["shipped"] = shipped_res
    print("shipped model:", json.dumps({k: v for k, v in shipped_res.items() if k != "per_file_rates"}),
          file=sys.stderr)

    if not args.no_loso:
        import yaml

        spec = yaml.safe_load((ROOT / "aimds_ray" / "data" / "training.yaml").read_text())
        spec_params = TrainParams(**spec.get("params", {}))  # the shipped model's hyper-parameters
        corpora = read_corpora(spec.get("corpora", []))  # shipped benign corpora: never held out, always trained on
        acc = defaultdict(lambda: [0, 0])
        all_s, all_y = [], []
        per_held = {}
        for name, rows in rows_by_file.items():
            if args.only and name not in args.only:
                continue
            train_rows = [r for n, rs in rows_by_file.items() if n != name for r in rs] + corpora
            bundle = train_bundle(train_rows, config=config, params=spec_params, version=f"loso-{name}",
                                  log=lambda m: None)
            d = Detector(config, model=bundle)
            per_det: list[dict[str, float]] = []
            flags, scores = score_rows(d, rows, per_det if dump else None)
            if dump:
                for r, f, sc, per in zip(rows, flags, scores, per_det, strict=True):
                    dump.write(json.dumps({"file": name, "category": r["category"], "score": float(sc),
                                           "flag": bool(f), "detectors": per, "text": r["text"][:2000]}) + "\n")
            tally(rows, flags, acc)
            sub = defaultdict(lambda: [0, 0])
            tally(rows, flags, sub)
            per_held[name] = {k: round(v[0] / v[1], 4) for k, v in sub.items()}
            for r, s in zip(rows, scores, strict=True):
                if r["category"] in MANIP or r["category"].startswith("benign"):
                    all_s.append(s)
                    all_y.append(1 if r["category"] in MANIP else 0)
            print(f"loso {name}: {per_held[name]}", file=sys.stderr)
        loso = summarise(acc)
        loso["roc_auc"] = auc(np.array(all_s), np.array(all_y))
        loso["per_heldout_file_rates"] = per_held
        result["loso"] = loso

    if not args.no_peer:
        result["peer_aidefence_3_0_3"] = run_peer(rows_by_file, args.limit)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
