"""Detection on written probes that no model or rule was fitted to, five sets:

- `benchmarks/data/probes_heldout.jsonl` (set 4, thirteenth session): 469 texts (218 attacks, 251 benign: 60 %
  everyday requests, 40 % hard negatives; three that another helper had written word for word and that are in the
  training corpus were removed);
- `benchmarks/data/probes_heldout2.jsonl` (set 8, fourteenth session): 448 texts (215 attacks, 233 benign: about
  60 % everyday traffic in several languages, 40 % hard negatives), written as a balanced cross-section (30 %
  hijacks, 25 % jailbreaks, 20 % extraction, 15 % indirect, 10 % obfuscated and app-bot attacks); 42 rows that
  shared a run of 8 words with a training text were removed (after two earlier models had
  been scored on all 490; every figure reported is on the 448);
- `benchmarks/data/probes_heldout3.jsonl` (set 11, fifteenth session): 398 texts (227 attacks, 171 benign) from
  three helpers (a cross-section with deepset/Gandalf-style and other-language texts; long jailbreaks and
  HackAPrompt/Tensor Trust tricks; indirect injections and app-bot hijacks with their benign documents); 82 rows
  that repeated, or shared a run of 8 words with, a dev, training or held-out text were removed before any model
  was scored on it. It was scored for three decisions (whether to ship concept features, probe set 12 and set 13)
  and for nothing else; no rule or text was written from its misses.
- `benchmarks/data/probes_heldout4.jsonl` (set 14, sixteenth session): 478 texts (274 attacks: 96 jailbreaks, 72
  direct injections, 62 indirect, 44 extraction; 204 benign: 94 everyday, 44 documents, 34 borderline, 32 role-play)
  from three helpers; 120 rows that repeated, or shared a run of 8 words with, a dev, training or held-out text were
  removed before any model was scored on it. First scored with the shipped model after the target-FPR decision of
  that session had been taken on LOSO figures alone.
- `benchmarks/data/probes_heldout5.jsonl` (set 16, seventeenth session): 726 texts (429 attacks: 127 direct
  injections, 112 jailbreaks, 101 indirect, 89 extraction; 297 benign: 164 everyday, 49 documents, 47 borderline,
  37 role-play) from two helpers (a cross-section in the styles of public benchmarks; what a production gateway
  sees); 193 rows that repeated, or shared a run of 8 words with, a dev, training or held-out text or the probe
  corpus's set 15 (written beside it) were removed before any model was scored on it.

- `benchmarks/data/probes_heldout6.jsonl` (set 18, twenty-seventh session): 451 texts (217 attacks: 71 direct
  injections, 63 jailbreaks, 46 extraction, 37 indirect; 234 benign: 137 everyday, 36 documents, 35 borderline, 26
  role-play) from two helpers asked for the styles of public sets (deepset, HackAPrompt, Gandalf, Tensor Trust,
  WildJailbreak, MultiJail, in-the-wild jailbreaks; Dolly / ShareGPT-like requests), about a sixth in other
  languages; 149 rows that repeated, or shared a run of 8 words with, a dev, training or held-out text were removed
  before any model was scored on it. Its misses were read after it was first scored (12 of 23 not in English),
  so it is no longer clean.
- `benchmarks/data/probes_heldout7.jsonl` (set 19, twenty-seventh session): 475 texts (232 attacks: 76 direct
  injections, 71 jailbreaks, 49 extraction, 36 indirect; 243 benign: 133 everyday, 42 role-play, 34 borderline,
  34 documents) from two helpers asked for production gateway traffic with about a third in other languages (17
  languages, 8 scripts); 125 rows that repeated, or shared a run of 8 words with, a dev, training, held-out or set
  18 text were removed before any model was scored on it. Written blind while the session's multilingual
  signatures were being written, and scored after them (182 of 232 attacks, 78.4 %, at 2 of 243 benign, 0.8 %;
  the signatures changed none of its verdicts). Its misses were then read, so it is no longer clean.
- `benchmarks/data/probes_heldout8.jsonl` (set 20, twenty-seventh session): 461 texts (218 attacks: 77 direct
  injections, 63 jailbreaks, 43 extraction, 35 indirect; 243 benign: 142 everyday, 37 role-play, 35 borderline,
  29 documents), mostly English (about 15 % German, Spanish, French, Italian, Portuguese, Dutch or Chinese), from
  two helpers asked for the styles of public sets and production traffic; 139 rows that repeated, or shared a run
  of 8 words with, a dev, training or held-out text (sets 18 and 19 included) were removed before any model was
  scored on it. Written blind while signatures were written from the misses of sets 18 and 19 (which moved one
  of its attacks; they were taken out after a false-positive audit); its misses were not read.
- `benchmarks/data/benign_lookalikes.jsonl` (set 21, twenty-seventh session): 307 benign texts only, a helper's
  false-positive hunt aimed at the words of rules this session wrote and then took out (scam warnings, German
  "der Umsatz betrug", a heat pump's "bomba", Japanese prompt-writing guides, call-centre software, regulation
  headlines, AGENTS.md files, multilingual everyday text). Those rules flagged 221 of them, the detection files
  they were taken out for 55. Run a new rule against it before it lands: the dev data holds little of this
  vocabulary. Grouped by the rule each text was aimed at.
- `benchmarks/data/probes_heldout_obf.jsonl` (set 17, eighteenth session): 224 texts, obfuscated attacks (150:
  encodings, classical ciphers, translations into 23 languages, markup and tool-output hiding, invisible and
  styled Unicode, leetspeak, word games, symbol codes, splitting, several combined) and benign texts with the same
  surface features for legitimate reasons (74: decoding and cipher puzzles, hex dumps, ordinary non-Latin text,
  HTML, JSON escapes, zalgo, security-class quotes), from one helper that saw neither the detector nor the
  session's evasion mutators; 16 rows sharing an 8-word run with a dev, training or held-out text were removed
  after its first scoring (benchmarks/HISTORY.md, eighteenth session). Grouped by technique family.

Each was written by a helper session of this project that saw neither the detector nor any data set, in the styles
of public injection and jailbreak sets. They estimate how the detector generalises to phrasings nobody tuned for;
they are not benchmarks of record (the texts are the project's own). Keep them out of
`aimds_ray/data/training.yaml` and do not write rules from their misses (a test checks the first); measure with
them, then write new probes for the next round.

    python benchmarks/probe_eval.py [--model DIR] [--misses] [--peer]

With `--peer`, the seed's reference implementation (`@claude-flow/aidefence@3.0.3`, as `eval_detection.py` runs it)
scores the same texts, its figures under "peer" in each set's entry.
Prints TPR and FPR of each set, per-style (set 4) and per-category (sets 8, 11, 14 and 16) rates; the last stdout line
is one JSON object (set 4 at the top level, set 8 under "heldout2", set 11 under "heldout3", set 14 under "heldout4",
set 16 under "heldout5", set 17 under "heldout_obf", set 18 under "heldout6", set 19 under "heldout7", set 20 under
"heldout8", set 21 under "lookalikes": benign texts only, its TPR is null). Every set's
entry also gives the attack and benign flag rates by the script a text is mostly written in (`per_script`:
ascii, latin for Latin letters with accents, or the Unicode script's name).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from aimds_ray.core.detector import Detector  # noqa: E402
from aimds_ray.core.model import ModelBundle  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
# (name, key in the printed JSON: set 4 at the top level, how its rows are grouped, file)
SETS = (("set 4", None, "style", DATA / "probes_heldout.jsonl"),
        ("set 8", "heldout2", "category", DATA / "probes_heldout2.jsonl"),
        ("set 11", "heldout3", "category", DATA / "probes_heldout3.jsonl"),
        ("set 14", "heldout4", "category", DATA / "probes_heldout4.jsonl"),
        ("set 16", "heldout5", "category", DATA / "probes_heldout5.jsonl"),
        ("set 17", "heldout_obf", "category", DATA / "probes_heldout_obf.jsonl"),
        ("set 18", "heldout6", "category", DATA / "probes_heldout6.jsonl"),
        ("set 19", "heldout7", "category", DATA / "probes_heldout7.jsonl"),
        ("set 20", "heldout8", "category", DATA / "probes_heldout8.jsonl"),
        ("set 21", "lookalikes", "style", DATA / "benign_lookalikes.jsonl"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="a model bundle directory (default: the current model)")
    ap.add_argument("--misses", action="store_true", help="print the missed attacks and flagged benign texts")
    ap.add_argument("--peer", action="store_true", help="also run the npm peer on the same texts")
    args = ap.parse_args()
    det = Detector(model=ModelBundle.load(Path(args.model))) if args.model else Detector()
    out: dict = {}
    for name, key, group, path in SETS:
        rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
        h = measure(det, rows, group, args.misses)
        if args.peer:
            from eval_detection import run_peer

            # set 4 has styles, not categories: any attack counts as a manipulation, any benign text as benign
            peer_rows = [{"text": r["text"], "category": r.get("category") or
                          ("prompt_injection" if r["label"] else "benign")} for r in rows]
            h["peer"] = run_peer({path.name: peer_rows}, None)
        tpr = f"{h['tpr']:.3f}" if h["tpr"] is not None else "-"
        line = f"{name + ':':8s}TPR {h['tp']}/{h['attacks']} = {tpr}   FPR {h['fp']}/{h['benign']} = {h['fpr']:.3f}"
        peer = h.get("peer")
        if peer and "error" not in peer:
            line += f"   peer: TPR {peer['manipulation_tpr']:.3f} FPR {peer['benign_fpr']:.3f}"
        print(line)
        if key is None:
            out.update(h)
        else:
            out[key] = h
    out["model_version"] = det.model_version
    print(json.dumps(out))


def measure(det: Detector, rows: list[dict], group: str, misses: bool) -> dict:
    """TPR/FPR of `det` on `rows`, and the flag rate per `group` value (style or category) and label."""
    total, flagged = Counter(), Counter()
    by_script, flagged_script = Counter(), Counter()
    t0 = time.perf_counter()
    for r in rows:
        rep = det.scan(r["text"])
        key = (r["label"], r[group])
        total[key] += 1
        flagged[key] += rep.is_threat
        sk = (r["label"], script_of(r["text"]))
        by_script[sk] += 1
        flagged_script[sk] += rep.is_threat
        if misses and rep.is_threat != bool(r["label"]):
            print(f"{'MISS' if r['label'] else 'FP  '} {rep.score:.3f} {r[group]}: {r['text'][:140]!r}")
    seconds = time.perf_counter() - t0

    def rate(label: int) -> tuple[int, int]:
        n = sum(v for (lab, _), v in total.items() if lab == label)
        return sum(v for (lab, _), v in flagged.items() if lab == label), n

    (tp, na), (fp, nb) = rate(1), rate(0)
    tpr = round(tp / na, 4) if na else None  # (set 21 holds no attacks)
    per = {f"{'attack' if lab else 'benign'}/{st}": round(flagged[(lab, st)] / n, 3)
           for (lab, st), n in sorted(total.items())}
    scripts = {f"{'attack' if lab else 'benign'}/{sc}": f"{flagged_script[(lab, sc)]}/{n}"
               for (lab, sc), n in sorted(by_script.items())}
    return {"rows": len(rows), "tpr": tpr, "fpr": round(fp / nb, 4), "tp": tp, "fp": fp,
            "attacks": na, "benign": nb, "seconds": round(seconds, 2), f"per_{group}": per, "per_script": scripts}


def script_of(text: str) -> str:
    """The script most of a text's letters are written in: "ascii", "latin" (Latin letters, some with accents), or
    the first word of the Unicode name of its letters ("CJK", "CYRILLIC", "ARABIC", ...)."""
    import unicodedata

    counts: Counter = Counter()
    for ch in text:
        if ch.isalpha():
            counts[unicodedata.name(ch, "OTHER").split()[0]] += 1
    if not counts:
        return "none"
    top = counts.most_common(1)[0][0]
    if top == "LATIN":
        return "ascii" if all(ord(ch) < 128 for ch in text if ch.isalpha()) else "latin"
    return top


if __name__ == "__main__":
    main()
