"""False positives on benign text from nowhere near the training data: this machine's documentation, chunked.

The dev data's benign rows are short requests and a few hundred BIPIA documents; a screening service also sees pasted
manuals, changelogs, licences, API references and READMEs (RAG context, tool output). This scans documentation files
found on the machine (Markdown, reStructuredText, text; Node.js, Vim, Git, CMake, Rust, Java, Cloud SDK, ...), cut
into 80-2,000 character chunks of whole paragraphs, with the shipped model and the default config. Paths that could
overlap the shipped benign corpus (anything under a Python installation or a site-packages directory, and this
repository) are left out, so none of these texts was trained on. A file contributes at most `--per-file` chunks (a
long changelog would otherwise be most of the sample). The seed's npm implementation runs on the same chunks.

    python benchmarks/ood_benign.py [--roots /usr /opt /root] [--max 5000] [--per-file 20] [--no-peer]

Prints per-root FPR and the flagged detectors; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aimds_ray.core.config import load_config  # noqa: E402
from aimds_ray.core.corpus import paragraph_chunks  # noqa: E402
from aimds_ray.core.detector import Detector  # noqa: E402
from aimds_ray.core.model import ModelBundle  # noqa: E402

EXCLUDE = re.compile(r"/lib/python|site-packages|dist-packages|/\.pyenv/|/venv|/shared/|/tmp/|" + re.escape(str(ROOT)))
SUFFIXES = (".md", ".rst", ".txt")


def doc_files(roots: list[str]) -> list[str]:
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            if dirpath.startswith(("/proc", "/sys", "/dev")) or EXCLUDE.search(dirpath + "/"):
                dirnames[:] = []
                continue
            out += [os.path.join(dirpath, f) for f in filenames if f.endswith(SUFFIXES)]
    return sorted(out)


def chunks_of(text: str, r: random.Random) -> list[str]:
    """Cut like the training corpus (`aimds_ray.core.corpus.paragraph_chunks`), chunks of 80+ characters."""
    return [c for c in paragraph_chunks(text, r) if len(c) >= 80]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--roots", nargs="*", default=["/usr", "/opt", "/root", "/farm"])
    ap.add_argument("--max", type=int, default=5000)
    ap.add_argument("--per-file", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--model", default=None, help="a model bundle directory (default: the current model)")
    ap.add_argument("--dump", default=None, help="write the flagged chunks (JSON lines) here")
    args = ap.parse_args()
    r = random.Random(args.seed)
    seen, rows = set(), []
    for path in doc_files([x for x in args.roots if os.path.isdir(x)]):
        try:
            if os.path.getsize(path) < 200:
                continue
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        cs = [c for c in chunks_of(text, r) if not (c in seen or seen.add(c))]
        r.shuffle(cs)
        rows += [{"text": c, "label": 0, "category": "benign_document", "path": path} for c in cs[: args.per_file]]
    r.shuffle(rows)
    rows = rows[: args.max]
    if not rows:
        print(json.dumps({"error": "no documentation files found under " + " ".join(args.roots)}))
        return
    det = Detector(load_config(), model=ModelBundle.load(Path(args.model)) if args.model else None)
    det.scan("warm up")
    t0 = time.perf_counter()
    reports = det.scan_batch([x["text"] for x in rows])
    secs = time.perf_counter() - t0
    by_root: Counter = Counter()
    flagged_by_root: Counter = Counter()
    detectors: Counter = Counter()
    flagged = []
    for row, rep in zip(rows, reports, strict=True):
        root = "/".join(row["path"].split("/")[:4])
        by_root[root] += 1
        if rep.is_threat:
            flagged_by_root[root] += 1
            names = sorted({e.detector for e in rep.evidence if e.category != "data_leakage"})
            detectors[",".join(names)] += 1
            flagged.append({"path": row["path"], "text": row["text"], "detectors": names, "score": rep.score})
    if args.dump:
        with open(args.dump, "w") as f:
            f.writelines(json.dumps(x) + "\n" for x in flagged)
    per_root = {k: {"chunks": n, "fpr": round(flagged_by_root[k] / n, 4)} for k, n in by_root.most_common(12)}
    for k, v in per_root.items():
        print(f"{k}: {v}", file=sys.stderr)
    result = {"chunks": len(rows), "files": len({x['path'] for x in rows}), "flagged": len(flagged),
              "fpr": round(len(flagged) / len(rows), 4), "flagged_detectors": dict(detectors.most_common(8)),
              "per_root": per_root, "texts_per_s": round(len(rows) / secs, 1), "model_version": det.model_version}
    if not args.no_peer:
        from eval_detection import run_peer

        peer = run_peer({"docs": rows}, None)
        result["peer_aidefence_3_0_3"] = ({"fpr": peer["benign_fpr"], "mean_latency_us": peer["mean_latency_us"]}
                                          if peer and "benign_fpr" in peer else peer)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
