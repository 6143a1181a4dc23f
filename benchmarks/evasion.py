"""Robustness to evasion: the share of attacks still caught, and of benign texts flagged, under each mutator.

42 attacks (override, extraction, jailbreaks, indirect injections, exfiltration, refusal suppression; written by a
helper session for this study, `benchmarks/data/evasion_texts.json`) that the detector catches as written, and 30
benign texts, each passed through every mutator of `benchmarks/mutators.py` (187, garak-buff style) with `--seeds`
random seeds; plus German / French / Spanish translations. Benign texts go through the same mutators: a benign
sentence in base64 should not be flagged unless the obfuscation itself is the evidence (an invisible character
inside a word, a word mixing scripts; those rows say so by being flagged whatever the content).

These texts shaped the eighteenth session's normaliser, so the figures are a regression check, not a held-out
estimate. Prints a table, then one JSON object: mean rates, per-mutator rates, the worst mutators, errors and scans
slower than `--slow-ms`.

    python benchmarks/evasion.py [--seeds 3] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from mutators import MUTATORS, apply  # noqa: E402

from aimds_ray.core.config import load_config  # noqa: E402
from aimds_ray.core.detector import Detector  # noqa: E402
from aimds_ray.core.model import ModelBundle  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--model", help="a model bundle directory (default: the current model)")
    ap.add_argument("--slow-ms", type=float, default=50.0)
    args = ap.parse_args()
    data = json.loads((ROOT / "data" / "evasion_texts.json").read_text(encoding="utf-8"))
    det = Detector(load_config(), model=ModelBundle.load(Path(args.model)) if args.model else None)
    for a in data["attacks"][:5]:  # warm-up: first calls load compiled kernels
        det.scan(a["text"])

    slow: list[float] = []
    errors: list[str] = []

    def flagged(text: str) -> bool | None:
        t0 = time.perf_counter()
        try:
            r = det.scan(text)
        except Exception as e:  # noqa: BLE001 - a crash is a finding, reported with the rest
            errors.append(f"{type(e).__name__}: {e}"[:200])
            return None
        ms = (time.perf_counter() - t0) * 1000
        if ms > args.slow_ms:
            slow.append(ms)
        return r.is_threat

    attacks = [a for a in data["attacks"] if flagged(a["text"])]
    benign_plain = sum(bool(flagged(t)) for t in data["benign"])
    rates: dict[str, dict[str, float]] = {}
    for name in MUTATORS:
        if name == "identity":
            continue
        hit = n_a = fp = n_b = 0
        for seed in range(args.seeds):
            for a in attacks:
                t = apply(name, a["text"], a["key"], random.Random(f"{name}|{a['id']}|{seed}"))
                hit += bool(flagged(t))
                n_a += 1
            for i, text in enumerate(data["benign"]):
                t = apply(name, text, text, random.Random(f"{name}|{i}|{seed}"))
                fp += bool(flagged(t))
                n_b += 1
        rates[name] = {"attack_caught": round(hit / n_a, 4), "benign_flagged": round(fp / n_b, 4)}
    known = {a["id"] for a in attacks}
    tr = [t for aid, langs in data["translations"].items() if aid in known for t in langs.values()]
    rates["translated"] = {"attack_caught": round(sum(bool(flagged(t)) for t in tr) / max(1, len(tr)), 4),
                           "benign_flagged": round(sum(bool(flagged(t)) for t in data["benign_translations"])
                                                   / max(1, len(data["benign_translations"])), 4)}
    for name, r in sorted(rates.items(), key=lambda kv: kv[1]["attack_caught"]):
        print(f"{name:32s} caught {r['attack_caught']:7.1%}   benign flagged {r['benign_flagged']:7.1%}")
    worst = sorted(rates, key=lambda k: rates[k]["attack_caught"])[:15]
    print(json.dumps({
        "model_version": det.model_version, "attacks": len(data["attacks"]), "attacks_caught_plain": len(attacks),
        "benign": len(data["benign"]), "benign_flagged_plain": benign_plain, "mutators": len(rates),
        "seeds": args.seeds,
        "mean_attack_caught": round(statistics.mean(r["attack_caught"] for r in rates.values()), 4),
        "mean_benign_flagged": round(statistics.mean(r["benign_flagged"] for r in rates.values()), 4),
        "mutators_below_50pct": sum(r["attack_caught"] < 0.5 for r in rates.values()),
        "worst": {k: rates[k] for k in worst}, "errors": len(errors), "error_examples": errors[:3],
        "scans_over_slow_ms": len(slow), "slowest_ms": round(max(slow), 1) if slow else None,
        "per_mutator": rates,
    }))


if __name__ == "__main__":
    main()
