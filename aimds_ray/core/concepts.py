"""The concept lexicon of the learned model: words mapped to the mechanisms they name (override, prior, rules, reveal,
persona, ...), so that the hashed features carry concept n-grams next to word and character n-grams.

Word n-grams tie what the model learns to the phrasings it was trained on; concept n-grams ("override prior rules")
are shared by paraphrases and by translations, which is where held-out attacks differ from training ones. The data
is `aimds_ray/data/concepts.yaml`; entries are compiled through `normalize` (the text the model reads), hashed with
the feature kernel's FNV-1a and laid out as an open-addressing table the kernel probes (`features._lex_get`).
A trained model stores its lexicon (`to_json`), so a later edit of the YAML changes new models only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aimds_ray.core.config import load_yaml

LEXICON_PATH = Path(__file__).resolve().parent.parent / "data" / "concepts.yaml"
MIN_STEM = 4  # a shorter stem would prefix too many unrelated words
MAX_STEM = 12  # the kernel looks words up by their first MAX_STEM characters
SALT_LEX = 0x165667B1


class LexiconError(ValueError):
    """The concept lexicon file is malformed."""


def _is_word_char(c: str) -> bool:  # features._is_word on lower-cased text
    o = ord(c)
    return 97 <= o <= 122 or 48 <= o <= 57 or o >= 0xC0


def key_hash(word: str) -> int:
    """FNV-1a of a (normalised, lower-case) word's code points, salted: the value the kernel computes per prefix."""
    h = 2166136261 ^ SALT_LEX
    for ch in word:
        h = ((h ^ ord(ch)) * 16777619) & 0xFFFFFFFF
    return h


def _slot(h: int, size: int) -> int:
    return (h ^ (h >> 15)) & (size - 1)


@dataclass(frozen=True)
class Lexicon:
    """Compiled entries (normalised word, concept index, is-stem) and the kernel's table: `keys` (uint32) and
    `vals` (int32: concept * 2 + is_stem, -1 for an empty slot), a power-of-two size at most a quarter full."""

    names: tuple[str, ...]
    entries: tuple[tuple[str, int, bool], ...]
    window: int
    weight: float  # concept features' values relative to word and character n-grams' (before L2 normalisation)
    keys: np.ndarray = field(repr=False, compare=False)
    vals: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def build(cls, names: tuple[str, ...], entries: tuple[tuple[str, int, bool], ...], window: int,
              weight: float) -> Lexicon:
        size = 1
        while size < 4 * max(len(entries), 1):
            size *= 2
        keys = np.zeros(size, np.uint32)
        vals = np.full(size, -1, np.int32)
        for word, concept, stem in entries:
            h = key_hash(word)
            i = _slot(h, size)
            while vals[i] >= 0:
                if int(keys[i]) == h:
                    raise LexiconError(f"concept lexicon: {word!r} collides with another entry's hash")
                i = (i + 1) & (size - 1)
            keys[i] = h
            vals[i] = concept * 2 + int(stem)
        return cls(names, entries, window, weight, keys, vals)

    @classmethod
    def empty(cls) -> Lexicon:
        """No concepts: the kernel skips the lookups, features are word and character n-grams only."""
        return cls((), (), 0, 1.0, np.zeros(1, np.uint32), np.full(1, -1, np.int32))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def lookup(self, word: str) -> int:
        """The concept index of a normalised word (longest matching entry), -1 if none: the kernel's rule, in
        Python (the reference and the tests use it)."""
        best = -1
        for ln in range(1, min(len(word), MAX_STEM) + 1):
            if ln < MIN_STEM and ln != len(word):
                continue
            h = key_hash(word[:ln])
            i = _slot(h, len(self.vals))
            while self.vals[i] >= 0:
                if int(self.keys[i]) == h:
                    v = int(self.vals[i])
                    if v & 1 or ln == len(word):
                        best = v >> 1
                    break
                i = (i + 1) & (len(self.vals) - 1)
        return best

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "window": self.window, "weight": self.weight, "names": list(self.names),
                "entries": [[w, c, int(s)] for w, c, s in self.entries]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Lexicon:
        if d.get("version") != 1:
            raise LexiconError(f"unknown concept lexicon version {d.get('version')!r}")
        return cls.build(tuple(d["names"]), tuple((str(w), int(c), bool(s)) for w, c, s in d["entries"]),
                         int(d["window"]), float(d["weight"]))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def compile_lexicon(spec: dict[str, Any], source: str = "concepts") -> Lexicon:
    """A lexicon from its YAML form ({window, concepts: {name: [entry, ...]}}), each entry normalised as the
    detector normalises text; clear errors for what the kernel could not match as written."""
    from aimds_ray.core.normalize import normalize  # the text the model reads is normalised the same way

    if not isinstance(spec, dict) or set(spec) - {"window", "weight", "concepts"}:
        raise LexiconError(f"{source}: expected keys 'window', 'weight' and 'concepts', got {sorted(spec or {})}")
    window = spec.get("window", 6)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 32:
        raise LexiconError(f"{source}: window must be an integer in 1..32, got {window!r}")
    weight = spec.get("weight", 1.0)
    if not isinstance(weight, int | float) or isinstance(weight, bool) or not 0 < weight <= 100:
        raise LexiconError(f"{source}: weight must be a number in (0, 100], got {weight!r}")
    concepts = spec.get("concepts")
    if not isinstance(concepts, dict) or not concepts:
        raise LexiconError(f"{source}: 'concepts' must map concept names to lists of words")
    names = tuple(str(n) for n in concepts)
    owner: dict[str, tuple[int, bool]] = {}
    for ci, name in enumerate(names):
        words = concepts[name]
        if not isinstance(words, list) or not words:
            raise LexiconError(f"{source}: concept {name!r} needs a non-empty list of words")
        for raw in words:
            if not isinstance(raw, str) or not raw.strip("*"):
                raise LexiconError(f"{source}: concept {name!r}: entries are words, got {raw!r}")
            stem = raw.endswith("*")
            word = normalize(raw.rstrip("*")).text.lower()
            if not word or not all(map(_is_word_char, word)):
                raise LexiconError(f"{source}: {raw!r} ({name}) normalises to {word!r}, not one word")
            if len(word) > MAX_STEM or (stem and len(word) < MIN_STEM):
                raise LexiconError(f"{source}: {raw!r} ({name}): a stem has {MIN_STEM}-{MAX_STEM} characters and a "
                                   f"word at most {MAX_STEM} (normalised: {word!r})")
            prev = owner.get(word)
            if prev is not None and prev[0] != ci:
                raise LexiconError(f"{source}: {raw!r} is in both {names[prev[0]]!r} and {name!r}")
            owner[word] = (ci, stem or (prev is not None and prev[1]))
    entries = tuple((w, c, s) for w, (c, s) in owner.items())
    return Lexicon.build(names, entries, window, float(weight))


def load_lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    with open(path, encoding="utf-8") as f:
        spec = load_yaml(f)
    return compile_lexicon(spec, str(path))
