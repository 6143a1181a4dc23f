"""Detection on written probes that no model or rule was fitted to: `benchmarks/data/probes_heldout.jsonl`.

469 texts (218 attacks, 251 benign: 60 % everyday requests, 40 % hard negatives; three that another helper had
written word for word and that are in the training corpus were removed) written on 2026-12-06 by a helper
session of this project that saw neither the detector nor any data set, in the styles of public injection and
jailbreak sets. It is an estimate of how the detector generalises to phrasings nobody tuned for, not a benchmark of
record: the texts are the project's own. Keep it out of `aimds_ray/data/training.yaml` and do not write rules from
its misses (a test checks the first); measure with it, then write new probes for the next round.

    python benchmarks/probe_eval.py [--model DIR] [--misses]

Prints TPR, FPR and per-style rates; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aimds_ray.core.detector import Detector  # noqa: E402
from aimds_ray.core.model import ModelBundle  # noqa: E402

PROBES = Path(__file__).resolve().parent / "data" / "probes_heldout.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="a model bundle directory (default: the current model)")
    ap.add_argument("--misses", action="store_true", help="print the missed attacks and flagged benign texts")
    args = ap.parse_args()
    rows = [json.loads(line) for line in PROBES.open(encoding="utf-8") if line.strip()]
    det = Detector(model=ModelBundle.load(Path(args.model))) if args.model else Detector()
    total, flagged = Counter(), Counter()
    t0 = time.perf_counter()
    for r in rows:
        rep = det.scan(r["text"])
        key = (r["label"], r["style"])
        total[key] += 1
        flagged[key] += rep.is_threat
        if args.misses and rep.is_threat != bool(r["label"]):
            print(f"{'MISS' if r['label'] else 'FP  '} {rep.score:.3f} {r['style']}: {r['text'][:140]!r}")
    seconds = time.perf_counter() - t0

    def rate(label: int) -> tuple[int, int]:
        n = sum(v for (lab, _), v in total.items() if lab == label)
        return sum(v for (lab, _), v in flagged.items() if lab == label), n

    (tp, na), (fp, nb) = rate(1), rate(0)
    per_style = {f"{'attack' if lab else 'benign'}/{st}": round(flagged[(lab, st)] / n, 3)
                 for (lab, st), n in sorted(total.items())}
    print(f"TPR {tp}/{na} = {tp / na:.3f}   FPR {fp}/{nb} = {fp / nb:.3f}")
    print(json.dumps({"rows": len(rows), "tpr": round(tp / na, 4), "fpr": round(fp / nb, 4), "attacks": na,
                      "benign": nb, "model_version": det.model_version, "seconds": round(seconds, 2),
                      "per_style": per_style}))


if __name__ == "__main__":
    main()
