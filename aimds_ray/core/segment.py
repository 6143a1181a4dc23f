"""Word segmentation of glued text: "ignoreallpreviousinstructions" -> "ignore all previous instructions".

Writing a sentence without spaces hides its words from word n-grams and signature regexes, while a model reading it
still understands it. A unigram model and Viterbi over the run's split points give the most likely words (the
classic approach of Norvig's "Natural Language Corpus Data" chapter); a run is read as words only when nearly all of
its letters fall in known words of plausible length, so random letters, base64 and hashes are left alone.

The word counts come from the shipped corpora (this project's written probes and the Python documentation chunks),
kept as `aimds_ray/data/words.txt.gz` so that loading them costs milliseconds, not the half second of counting;
`python -m aimds_ray.core.segment` rebuilds the file, and a test checks that it matches the corpora.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
WORDS_PATH = DATA / "words.txt.gz"
CORPORA = (DATA / "corpora" / "probes.jsonl.gz", DATA / "corpora" / "docs.jsonl.gz")
MAX_WORD = 20
MIN_COUNT = 3
_WORD = re.compile(r"[a-z]{2,20}|\b[ai]\b")  # single letters: only the words "a" and "i"


def count_words(paths: tuple[Path, ...] = CORPORA) -> Counter[str]:
    """Lower-case word counts of the corpora's texts (words seen fewer than MIN_COUNT times dropped)."""
    c: Counter[str] = Counter()
    for p in paths:
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    c.update(_WORD.findall(json.loads(line)["text"].lower()))
    return Counter({w: n for w, n in c.items() if n >= MIN_COUNT})


def write_words(path: Path = WORDS_PATH) -> None:
    counts = count_words()
    body = "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime 0: the same counts give the same bytes
        f.write(body.encode("ascii"))


class Segmenter:
    """Most likely split of a letter run into words under a unigram model (cost = -log p; an unknown letter costs
    more than any known word, so known words are always preferred)."""

    def __init__(self, counts: dict[str, int]) -> None:
        total = float(sum(counts.values())) or 1.0
        self.cost = {w: math.log(total / n) for w, n in counts.items()}
        self.unknown = math.log(total) + 5.0

    def split(self, run: str) -> list[str]:
        n = len(run)
        best = [0.0] + [math.inf] * n
        back = [0] * (n + 1)
        cost = self.cost
        for i in range(1, n + 1):
            for j in range(max(0, i - MAX_WORD), i):
                c = cost.get(run[j:i])
                if c is None:
                    if j != i - 1:
                        continue
                    c = self.unknown
                c += best[j]
                if c < best[i]:
                    best[i] = c
                    back[i] = j
        words = []
        i = n
        while i > 0:
            words.append(run[back[i] : i])
            i = back[i]
        return words[::-1]

    def words_of(self, run: str, min_words: int = 4, known_share: float = 0.9, mean_len: float = 3.0
                 ) -> list[str] | None:
        """The words of a glued run, or None when it does not read as words: fewer than `min_words`, under
        `known_share` of its letters in known words, or words shorter than `mean_len` on average (short known
        words tile random letters too)."""
        if run in self.cost:
            return None  # one (long) known word
        words = self.split(run)
        known = sum(len(w) for w in words if w in self.cost)
        if len(words) < min_words or known < known_share * len(run) or len(run) < mean_len * len(words):
            return None
        return words


@lru_cache(maxsize=1)
def segmenter() -> Segmenter:
    with gzip.open(WORDS_PATH, "rt", encoding="ascii") as f:
        return Segmenter({w: int(n) for w, n in (line.split("\t") for line in f if line.strip())})


def main() -> None:
    ap = argparse.ArgumentParser(description="Rebuild the word counts of the segmenter from the shipped corpora.")
    ap.add_argument("--out", default=str(WORDS_PATH))
    write_words(Path(ap.parse_args().out))


if __name__ == "__main__":
    main()
