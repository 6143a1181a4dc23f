"""Worst-case scan time on pathological inputs: 4 KB texts made of one short unit repeated.

Why: regexes and per-line or per-anchor loops that are linear on prose can turn quadratic on degenerate input (4,000
blank lines, 4,000 "#", a run of spaced letters); a screening service must answer those as fast as any other text.
Each input is scanned twice and the second (steady) time is reported: the first scan of a new input shape may load a
compiled kernel from the numba cache once. Prints one JSON object: the worst input, its time, and how many took
longer than `--slow-ms`.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aimds_ray.core.detector import Detector  # noqa: E402

WORDS = ["ignore", "you", "system", "prompt", "what", "is", "the", "password", "end", "of", "http://", "www.", "@",
         "key", "token", "=", "'", '"', "\\x", "0x", "%20", "##", "==", "**", "---", "|", "```", "Subject:", "Hi",
         "dear", "please", "write", "reveal", "secret", "1", "12", ":", "::", "-", "_", ".", ",", "(", ")", "[", "]",
         "{", "}", "<", ">", "/", "\\", "+", "$", "!", "?", "\n", "\t", " "]
CHARS = list(string.printable) + ["é", "😀", "\u200b", "ß", "İ", "中", "\u00a0", "’", "“", "օ", "ɐ", "⠁", "\u034f"]


def units(n_random: int, seed: int) -> list[str]:
    """Every printable character and word alone, then random short combinations of them."""
    r = random.Random(seed)
    out = list(dict.fromkeys(CHARS + WORDS + ["a\n", " \n", "|a|\n", "Hi a,\n", "## ", "== end", "x" * 15 + " "]))
    for i in range(n_random):
        pool, k = (CHARS, r.randint(1, 6)) if i % 2 else (WORDS, r.randint(1, 4))
        out.append("".join(r.choice(pool) for _ in range(k)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--random", type=int, default=1500, help="random units on top of the fixed ones")
    ap.add_argument("--slow-ms", type=float, default=15.0)
    args = ap.parse_args()
    det = Detector()
    times: list[tuple[float, str]] = []
    for u in units(args.random, seed=7):
        text = (u * (args.size // len(u) + 1))[: args.size]
        det.scan(text)
        t0 = time.perf_counter()
        det.scan(text)
        times.append(((time.perf_counter() - t0) * 1e3, u))
    times.sort(reverse=True)
    ms = sorted(t for t, _ in times)
    print(json.dumps({
        "inputs": len(times), "chars": args.size,
        "worst_ms": round(times[0][0], 2), "worst_unit": times[0][1],
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2), "median_ms": round(ms[len(ms) // 2], 2),
        "slower_than_ms": args.slow_ms, "n_slower": sum(t > args.slow_ms for t in ms),
        "top5": [[round(t, 2), u] for t, u in times[:5]],
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
