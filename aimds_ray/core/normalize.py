"""Text normalisation and de-obfuscation, with every character mapped back to the original text.

`normalize(text)` returns the views the signals scan:

* ``normalized`` – NFKD-folded, diacritics and invisible/format characters removed (default-ignorable ones too),
  case-folded, homoglyphs folded to Latin (Cyrillic, Greek, small capitals and other Latin letter forms; Armenian
  look-alikes inside Latin words). ASCII input without control characters takes a fast path (a `lower()` with an
  identity mapping).
* ``leet`` – digits and symbols inside words read as letters (``1gn0r3`` -> ``ignore``), when there are any.
* ``despaced`` – runs of single letters joined (``i g n o r e`` -> ``ignore``), when there are any.
* ``markup`` – tags removed, HTML entities and JSON ``\\uXXXX`` escapes decoded, when that joins a word split by
  tags (``ign<b></b>ore``) or spells escaped letters.
* decoded variants – base64 (nested too), base32, Ascii85, hex, octal escapes, quoted-printable, uuencode, URL-encoding, Unicode tag characters
  ("ASCII smuggling"), rot13 and the other Caesar shifts, Atbash, reversed text, Morse, binary octets, decimal / 0x
  character codes, Braille cells, NATO code words, upside-down text; found inside the text and decoded recursively up to
  ``max_decode_depth`` and ``max_decoded_chars`` (so a nested or huge payload costs a bounded amount of work).

Each `Variant` carries a map from its characters to character spans of the original text, so evidence found in any
view points at the original. Removed invisible characters and decoded payloads are reported as `Evidence`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import html
import quopri
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote_to_bytes

import numpy as np

from aimds_ray.core import asciigates as G
from aimds_ray.core import literal_pass
from aimds_ray.core.config import NormalizeConfig
from aimds_ray.core.multimatch import WORD_END, WORD_START
from aimds_ray.core.report import Category, Evidence

# --- character classes --------------------------------------------------------------------------------------------

# Homoglyphs that NFKD does not fold: Cyrillic, Greek and a few Latin look-alikes -> ASCII.
_CONFUSABLES = {
    # Cyrillic lower / upper
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ѵ": "v",
    "ӏ": "l", "ɡ": "g", "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c",
    "Т": "t", "У": "y", "Х": "x", "Ѕ": "s", "І": "i", "Ј": "j", "Ԁ": "d", "Ԛ": "q", "Ԝ": "w",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m",
    "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
    # Latin and symbol look-alikes
    "ı": "i", "ȷ": "j", "ℓ": "l", "ß": "ss", "ø": "o", "Ø": "o", "đ": "d", "ħ": "h", "ł": "l", "ŀ": "l",
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u00a0": " ",
    "\u2800": " ",
    # other scripts' letters in Latin look-alike sets (TR39 confusables): Greek lunate sigma and yot, Cyrillic
    # abkhasian che, Coptic, Latin alpha / iota / r without handle / lenis f
    "ϲ": "c", "ϳ": "j", "ҽ": "e", "ⲣ": "p", "ⲕ": "k", "ⲟ": "o", "ɑ": "a", "ɩ": "i", "ꭇ": "r", "ꬵ": "f",
    # Latin tone six and kra; Cherokee capitals shaped as Latin letters (the small ones case-fold to them)
    "ƅ": "b", "ĸ": "k", "Ꭰ": "d", "Ꭱ": "r", "Ꭲ": "t", "Ꭵ": "i", "Ꭹ": "y", "Ꭺ": "a", "Ꭻ": "j", "Ꭼ": "e", "Ꮃ": "w",
    "Ꮇ": "m", "Ꮋ": "h", "Ꮐ": "g", "Ꮓ": "z", "Ꮟ": "b", "Ꮩ": "v", "Ꮪ": "s", "Ꮮ": "l", "Ꮯ": "c", "Ꮲ": "p", "Ꮶ": "k",
    "Ᏼ": "b",
}
# Letters that read as Latin ones in most fonts (TR39 confusables) but are ordinary in their own script's text:
# Armenian, and Cyrillic ghe and soft sign ("г" as r, "ь" as b). Folded only inside a word that is Latin or mixes
# scripts ("ignօre", "ignoгe"): Armenian and Russian text keep these letters (the model reads them as written)
_LATIN_WORD_LOOKALIKES = {"օ": "o", "ս": "u", "ո": "n", "հ": "h", "ց": "g", "զ": "q", "г": "r", "ь": "b"}


def _latin_variants() -> dict[str, str]:
    """Latin letters NFKD leaves alone, read as their base letter by their Unicode name: small capitals ("ɪɢɴᴏʀᴇ"),
    letters with a hook, stroke or tail ("ƈ", "ɨ", "ꞓ"), dotless and script forms. Derived from the names, not
    listed, so the whole of each block is covered; ~1,900 code points looked at once, on import (~1 ms)."""
    name_rx = re.compile(r"LATIN (?:LETTER SMALL CAPITAL|(?:SMALL|CAPITAL) LETTER(?: DOTLESS| SCRIPT)?) ([A-Z])"
                         r"(?: WITH [A-Z ]+)?$")
    out = {}
    for lo, hi in ((0x80, 0x2B0), (0x1D00, 0x1DC0), (0x1E00, 0x1F00), (0x2C60, 0x2C80), (0xA720, 0xA800),
                   (0xAB30, 0xAB70)):
        for cp in range(lo, hi):
            ch = chr(cp)
            plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            if plain.isascii() and plain.isalpha():
                continue  # NFKD already reads it
            m = name_rx.match(unicodedata.name(ch, ""))
            if m:
                out[ch] = m.group(1).lower()
    return out


_CONFUSABLES = {**_latin_variants(), **_CONFUSABLES}
_CONFUSABLE_SCRIPTS_CHARS = frozenset(c for c in _CONFUSABLES if ord(c) >= 0x370 and c.isalpha())

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i",
                       "|": "l", "8": "b", "9": "g"})
# the same as a byte table: str.translate walks a non-ASCII string character by character through the dict (~25-100
# us per 2 KB); the map is ASCII to ASCII, so UTF-8 bytes translate to the same text (~2 us)
_LEET_BYTES = bytes.maketrans("".join(map(chr, _LEET)).encode(), "".join(_LEET.values()).encode())


def _leet(text: str) -> str:
    if text.isascii():
        return text.translate(_LEET)
    return text.encode("utf-8", "surrogatepass").translate(_LEET_BYTES).decode("utf-8", "surrogatepass")


_LEET_HINT = re.compile(r"[a-z][013457@$!|]|[013457@$][a-z]")
# a leet spelling puts a digit or symbol inside a word ("h3ll0", "t3ll") or in front of letters ("4ll", "1gn0r3");
# prose only borders words with them ("great!", "1990s", "3d", "mp3"), which is no reason to read the text twice
_LEET_WORD = re.compile(r"[a-z][013457@$!|][a-z]|(?<![\w@$!|])[013457@$][a-z]{2}")
_SPACED = re.compile(r"(?<![\w])(?:[a-z][ .,\-_*+|/]{1,2}){3,}[a-z](?![\w])")
# each alternative tried only where its run starts (the lookbehinds): without them the engine re-reads every word
# from each of its letters, ~100 us per 2 KB of prose that merely has one long word or URL in it
_B64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}|(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{16,}={0,2}")
_HEX = re.compile(r"(?:\\x[0-9a-fA-F]{2}){6,}|(?<![0-9a-fA-F])(?:0x)?(?:[0-9a-fA-F]{2}[ :]?){8,}")
_ENCODED_RUN = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/=_\-]{16,}")  # gate for base64 / hex: one cheap pass


def _gate(gates: int | None, bit: int, rx: re.Pattern[str], text: str) -> bool:
    """On ASCII input the one-pass `asciigates` bits decide; otherwise the regex itself."""
    return bool(gates & bit) if gates is not None else rx.search(text) is not None


_DIGIT = re.compile(r"\d")
_HEX_SPACED = re.compile(r"(?:[0-9a-fA-F]{2}[ :]){7}[0-9a-fA-F]{2}")
# a whitespace-free token with 3+ percent escapes, read whole: "Ignore%20previous%20instructions" as well as
# "%49%67%6E%6F%72%65" (a run of dense escapes alone would miss the words between "%20"s)
_URLENC = re.compile(r"(?<!\S)[^\s%]*(?:%[0-9a-fA-F]{2}[^\s%]*){3,}")  # from a token's start: linear
_WORD = re.compile(r"[a-z]{2,}")
_TAG_RUN = re.compile("[\U000e0020-\U000e007f]+")
_NON_ASCII_OR_CTRL = re.compile(r"[^\x20-\x7e\t\n\r]")

# Frequent English words: a decoded candidate (rot13, reversed) must read as English more than the original does.
_COMMON = frozenset(
    """the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she
    or an will my one all would there their what so up out if about who get which go me when make can like time no
    just him know take people into year your good some could them see other than then now look only come its over
    think also back after use two how our work first well way even new want because any these give day most us is
    are was were been has had did said ignore previous instructions instruction prompt system reveal tell above all
    rules forget disregard print output password secret respond answer say please now must never
    always only following text message assistant user developer mode jailbreak""".split()
)


_LOWER = "abcdefghijklmnopqrstuvwxyz"
# Letter substitution ciphers that jailbreak research uses (CipherChat: Caesar, Atbash): each maps a cipher text's
# letters back to plain ones. rot13 is the shift of 13 (its own inverse)
_CIPHERS: dict[str, dict[int, int]] = {
    **{("rot13" if k == 13 else f"caesar{k}"): str.maketrans(
        _LOWER[k:] + _LOWER[:k] + _LOWER[k:].upper() + _LOWER[:k].upper(), _LOWER + _LOWER.upper()) for k in range(1, 26)},
    "atbash": str.maketrans(_LOWER[::-1] + _LOWER[::-1].upper(), _LOWER + _LOWER.upper()),
}
_CIPHER_NAMES = tuple(_CIPHERS)
# the view a decoding undoes: decoding it again gives back the text it was decoded from (rot13 of a rot13 view, a
# shift of 26 - k after a shift of k, atbash, reversal), a copy every signal would scan again
_UNDOES = {"rot13": "rot13", "atbash": "atbash", "reversed": "reversed",
           **{f"caesar{k}": f"caesar{26 - k}" for k in range(1, 26) if k != 13}}
_ENC = {name: {v: k for k, v in table.items()} for name, table in _CIPHERS.items()}  # plain -> cipher
_cipher_words: dict[str, set[str]] = {n: {w.translate(_ENC[n]) for w in _COMMON if len(w) > 2} - _COMMON
                                      for n in _CIPHER_NAMES}
_shared = {w for a in _CIPHER_NAMES for b in _CIPHER_NAMES if a < b for w in _cipher_words[a] & _cipher_words[b]}
_CIPHER_OF = {w: n for n in _CIPHER_NAMES for w in _cipher_words[n] - _shared}  # cipher word -> its cipher
_COMMON_REV = frozenset(w[::-1] for w in _COMMON if len(w) > 2) - _COMMON - set(_CIPHER_OF)
# Whole words that are common words in rot13 or reversed, found in one compiled pass: most texts have fewer than
# two of either kind, and then there is nothing to decode and no word list to build.
# Attack words split by a space, hyphen or dot so that word matching misses them ("ig nore", "instruc-tions"). A split
# into two pieces is a whole-word literal of the same pass; where one occurs, the text's split words are rejoined.
_SPLIT_WORDS = frozenset("""ignore disregard forget previous instructions instruction prompt system reveal secret
    password override bypass jailbreak pretend restrictions unrestricted unfiltered uncensored guidelines output
    hidden confidential developer everything repeat refuse enable apologize include content policy filter filters
    warnings disclaimers summarize verbatim""".split())
_SPLIT_FORMS = frozenset(w[:k] + sep + w[k:] for w in _SPLIT_WORDS for k in range(2, len(w) - 1) for sep in " -.")
_NATO_WORDS = frozenset("alfa alpha bravo charlie delta echo foxtrot golf hotel india juliet juliett kilo lima mike "
                        "november oscar papa quebec romeo sierra tango uniform victor whiskey whisky xray x-ray yankee "
                        "zulu".split())
_DISGUISED = sorted(set(_CIPHER_OF) | _COMMON_REV) + sorted(_SPLIT_FORMS - set(_CIPHER_OF) - _COMMON_REV)
_DISGUISED += sorted(_NATO_WORDS - set(_DISGUISED))
# group 0: a reversed common word, 1: a split attack word, 2: a NATO code word, 3 + i: a common word in cipher i
_G_REV, _G_SPLIT, _G_NATO, _G_CIPHER = 0, 1, 2, 3
_DISGUISED_GROUP = np.array([_G_CIPHER + _CIPHER_NAMES.index(_CIPHER_OF[w]) if w in _CIPHER_OF else
                             _G_REV if w in _COMMON_REV else _G_NATO if w in _NATO_WORDS else _G_SPLIT
                             for w in _DISGUISED], dtype=np.int64)
_N_DISGUISED_GROUPS = _G_CIPHER + len(_CIPHER_NAMES)
DISGUISED_SET = "normalize.disguised"  # counted by the shared pass over the main view (`literal_pass`); this module
# alone registers it
literal_pass.register(DISGUISED_SET, _DISGUISED, [WORD_START | WORD_END] * len(_DISGUISED), _DISGUISED_GROUP.tolist(),
                      _N_DISGUISED_GROUPS)
_SPLIT_TOKEN = re.compile(r"[a-z]+(?:[ .\-][a-z]+)*")


# Kinds of the views that decode a payload (what fusion also counts as obfuscation), and of those that rewrite the
# text's own characters
DECODED_KINDS = frozenset({"base64", "base32", "ascii85", "hex", "octal", "quoted_printable", "uuencode", "url",
                           "unicode_tags", "morse", "binary", "charcodes", "braille", "nato", "upside_down",
                           "reversed", "pig_latin", "assembled", *_CIPHER_NAMES})
REWRITTEN_KINDS = frozenset({"leet", "despaced", "markup", "camel", "segmented", "word_reversed"})

# --- data model ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Variant:
    """One view of the text. `starts[i]`/`ends[i]` give the original span of character i.

    `starts is None` means the identity mapping (character i is original character i + `offset`); `fixed` maps
    every character to one span (a decoded payload maps to the encoded run it came from).
    """

    kind: str
    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None
    fixed: tuple[int, int] | None = None
    depth: int = 0
    offset: int = 0
    raw: str | None = None  # a decoded payload as decoded, before folding (case kept: PII formats need it)

    def span(self, s: int, e: int) -> tuple[int, int]:
        """Original-text span of variant characters [s, e)."""
        if self.fixed is not None:
            return self.fixed
        if self.starts is None:
            return s + self.offset, e + self.offset
        if not self.starts:
            return self.offset, self.offset
        e = max(e, s + 1)
        s = min(s, len(self.starts) - 1)
        e = min(e, len(self.starts))
        return min(self.starts[s:e]) + self.offset, max(self.ends[s:e]) + self.offset

    def char_spans(self, s: int, e: int, reverse: bool = False) -> tuple[list[int], list[int]]:
        """The starts and ends of `span(j, j + 1)` for j in [s, e) (descending when `reverse`), as two lists: a
        decoded line maps each of its characters, thousands of calls of `span` at ~1 us each."""
        n, o = max(0, e - s), self.offset
        if self.fixed is not None:
            st, en = [self.fixed[0]] * n, [self.fixed[1]] * n
        elif self.starts is None:
            st, en = list(range(s + o, e + o)), list(range(s + o + 1, e + o + 1))
        elif not self.starts:
            st, en = [o] * n, [o] * n
        elif e <= len(self.starts) and not o:
            st, en = self.starts[s:e], self.ends[s:e]
        else:
            last = len(self.starts) - 1  # `span` reads the last character for positions past the end
            st = [self.starts[min(j, last)] + o for j in range(s, e)]
            en = [self.ends[min(j, last)] + o for j in range(s, e)]
        if reverse:
            st.reverse()
            en.reverse()
        return st, en


@dataclass(slots=True)
class Normalized:
    original: str
    variants: list[Variant]
    evidence: list[Evidence] = field(default_factory=list)
    gates: int | None = None  # `asciigates` bits of the original (None: not plain ASCII, every scan must run)
    windowed: bool = False  # one window of a longer input (signals' `scan_original` read the whole of it)
    bits: int | None = None  # `asciigates` bits of the original with each non-ASCII character read as "?"
    # the shared literal pass over the main view (`literal_pass`): each registered stage's counts, read instead of
    # walking the view again (None: built without it)
    counts: literal_pass.Counts | None = None

    @property
    def words(self) -> frozenset[str]:
        """Distinct words (2+ letters) of the main view."""
        return frozenset(_WORD.findall(self.variants[0].text))

    @property
    def text(self) -> str:
        """The main normalised view."""
        return self.variants[0].text

    @property
    def offset(self) -> int:
        """Where this window starts in the whole input."""
        return self.variants[0].offset


# --- the pipeline -------------------------------------------------------------------------------------------------


# Default_Ignorable_Code_Point characters outside category Cf (combining grapheme joiner, Hangul fillers, Khmer
# inherent vowels, Mongolian variation selectors): they render as nothing, so inside a word they hide it from a
# filter as a zero-width space does. (The blank Braille pattern, a visible blank, is read as a space (_CONFUSABLES),
# except between two letters, where it is removed as they are.)
_IGNORABLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0")


def is_invisible(ch: str) -> bool:
    """Renders as nothing: format and control characters, variation selectors, default-ignorable fillers."""
    cat = unicodedata.category(ch)
    if cat == "Cf":  # zero-width, bidi controls, tags, soft hyphen
        return True
    if cat == "Cc":
        return ch not in "\t\n\r"
    return 0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF or ch in _IGNORABLE  # variation selectors


_EMOJI_JOINERS = frozenset("\u200d\ufe0e\ufe0f")  # zero-width joiner, text / emoji presentation selectors


def _invisible_score(text: str, s: int, e: int, bidi: int) -> float:
    """How suspicious the run of invisible characters text[s:e] is; 0 for the ones ordinary text carries.

    Tags (4+) smuggle ASCII, bidi controls reorder what a reviewer sees, runs of variation selectors or the
    supplementary ones (U+E0100..) encode bytes behind one visible character: those are evidence. Ordinary text
    carries the rest: an emoji's presentation selector and the joiner of an emoji sequence ("❤️", "👨‍👩‍👧",
    "🏳️‍🌈": a symbol on the left), a joiner between letters of non-Latin scripts (Persian, Indic orthography),
    a soft hyphen between letters (a hyphenation point), a byte-order mark or a zero-width character beside a space
    or at either end (it splits no word, so it can hide no keyword). A zero-width character inside a word ("ig<ZWSP>nore") is what filter evasion looks like.
    """
    run = text[s:e]
    prev = text[s - 1] if s > 0 else " "
    nxt = text[e] if e < len(text) else " "
    if sum(1 for c in run if 0xE0000 <= ord(c) <= 0xE007F) >= 4:
        if prev == "\U0001f3f4" and run[-1] == "\U000e007f":
            return 0.0  # an emoji subdivision flag (England, Scotland, Wales): black flag, tag letters, cancel tag
        return 0.9
    if all(c == "\u034f" for c in run) and (unicodedata.combining(prev) or unicodedata.combining(nxt)):
        return 0.0  # a grapheme joiner among combining marks: stacked diacritics ("zalgo" text), not a hidden split
    if all(c in _DIRECTION_MARKS for c in run):
        # left-to-right / right-to-left marks are how mixed Hebrew or Arabic and Latin text is written; only one
        # inside a Latin word is evasion
        return 0.25 if prev.isascii() and prev.isalpha() and nxt.isascii() and nxt.isalpha() else 0.0
    if bidi:
        return 0.6
    vs = sum(1 for c in run if 0xFE00 <= ord(c) <= 0xFE0F or 0xE0100 <= ord(c) <= 0xE01EF)
    if vs >= 2 or any(0xE0100 <= ord(c) <= 0xE01EF for c in run):
        return 0.6
    if all(c in _EMOJI_JOINERS for c in run) and unicodedata.category(prev)[0] == "S":
        return 0.0
    if prev.isspace() or nxt.isspace():
        return 0.0
    if prev.isalpha() and nxt.isalpha() and (run == "\u00ad" or (run in ("\u200c", "\u200d")
                                                                 and not (prev.isascii() or nxt.isascii()))):
        return 0.0  # a hyphenation point (soft hyphen, as web pages carry them) or script orthography
    return 0.25


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # embeddings, overrides, isolates
_DIRECTION_MARKS = frozenset("\u200e\u200f\u061c")  # LRM, RLM, ALM: ordinary in right-to-left writing


INVISIBLE_EVIDENCE_RUNS = 16  # runs reported one by one per window; the rest are one item (a report stays small)


def _invisible_evidence(text: str, runs: list[list[int]], bidi: int, evidence: list[Evidence]) -> None:
    """One item per suspicious run, the first INVISIBLE_EVIDENCE_RUNS of them, then one item spanning the rest
    with their strongest score: a zero-width space between every two letters of a 4 MB input was a million items
    (a 230 MB report). Fusion reads one detector's strongest evidence, so the decision is the same; past the
    listed runs, a run that cannot score higher than the summary already does is not scored."""
    found = 0
    rest_start, rest_end, rest_score = -1, 0, 0.0
    seen: dict[tuple[str, str, str], float] = {}
    for s, e in runs:
        # a run that cannot score above the summary is not scored: only tags reach 0.9; above 0.25, without a bidi
        # control in the window, only variation selectors (U+FE00.., U+E0100..) and tags; with one, almost any run
        # scores 0.6, so then nothing is skipped below 0.6
        if rest_score >= 0.9 or (rest_score >= 0.6 and max(text[s:e]) < "\U000e0000") or (
                rest_score >= 0.25 and not bidi and max(text[s:e]) < "\ufe00"):
            rest_end = e
            continue
        # a score depends on the run and its two neighbours only: a flood repeats a few of them thousands of times
        key = (text[s - 1] if s else "", text[s:e], text[e] if e < len(text) else "")
        if (score := seen.get(key)) is None:
            score = seen[key] = _invisible_score(text, s, e, bidi)
        if score <= 0.0:
            continue
        found += 1
        if found <= INVISIBLE_EVIDENCE_RUNS:
            evidence.append(Evidence("invisible", Category.ENCODING_OBFUSCATION, score, s, e, "", "raw",
                                     f"{e - s} invisible/format character(s) removed"))
            continue
        if rest_start < 0:
            rest_start = s
        rest_end, rest_score = e, max(rest_score, score)
    if rest_start >= 0:
        evidence.append(Evidence("invisible", Category.ENCODING_OBFUSCATION, rest_score, rest_start, rest_end, "",
                                 "raw", "more invisible/format characters removed (runs past the first "
                                 f"{INVISIBLE_EVIDENCE_RUNS} are not listed one by one)"))


FOLD_ARRAY_MIN_EXTRA_BYTES = 128  # UTF-8 bytes beyond one per character: ~64-128 non-ASCII characters


def _fold_fast(text: str, evidence: list[Evidence]) -> Variant | None:
    """The fold of a text whose characters each fold to exactly one character without looking at their context
    (the common case for text in another script), in array operations over its code points: the distinct
    characters are folded once, the positions keep their slots (identity map). None when some character needs
    the general path (invisible or control characters, look-alikes judged by their word, folds to 0 or 2+
    characters, surrogates)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    odd = codes > 126
    if ((codes < 32) & (codes != 9) & (codes != 10) & (codes != 13)).any():
        return None
    uniq, inverse = np.unique(codes[odd], return_inverse=True)
    folded = np.empty(len(uniq), dtype=np.uint32)
    mixable: bool | None = None
    lookalikes: list[int] = []  # code points of another script's letters that look Latin
    for n, c in enumerate(uniq.tolist()):
        ch = chr(c)
        if ch in _CONFUSABLE_SCRIPTS_CHARS:
            lookalikes.append(c)
        rep = _FOLD_MEMO.get(ch)
        if rep is None:
            if ch in _CYRILLIC_LOOKALIKE:
                if mixable is None:
                    mixable = _may_mix_scripts(text)
                if mixable:
                    return None
                rep = ch  # no word of the text can mix scripts: a Russian text keeps its letters
            elif 0xD800 <= c <= 0xDFFF or ch in _CONFUSABLES or ch in _LATIN_WORD_LOOKALIKES or is_invisible(ch):
                return None
            else:
                rep = _fold_char(ch)
        if len(rep) != 1:
            return None
        folded[n] = ord(rep)
    out = codes.copy()
    out[(out >= 65) & (out <= 90)] += 32  # ASCII capitals
    out[odd] = folded[inverse]
    if lookalikes and _has_latin_letter(text):  # a look-alike needs a Latin letter to hide among
        at = codes == lookalikes[0]
        for c in lookalikes[1:]:
            at |= codes == c
        _homoglyph_evidence(text, set(np.flatnonzero(at).tolist()), evidence)
    return Variant("normalized", out.tobytes().decode("utf-32-le"))


def _fold_char(ch: str) -> str:
    """The fold of a character that needs no context: NFKD without combining marks, case-folded, look-alikes
    mapped (memoised: a text in another script repeats a few dozen characters)."""
    rep = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)).casefold()
    rep = "".join(_CONFUSABLES.get(c, c) for c in rep)
    if len(_FOLD_MEMO) < _FOLD_MEMO_MAX:
        _FOLD_MEMO[ch] = rep
    return rep


def _fold_slow(text: str, evidence: list[Evidence]) -> Variant:
    """Per-character fold with a span map, for text that is not plain printable ASCII."""
    # text with many non-ASCII characters (another script) goes through array operations; a few curly quotes or
    # accents in English are cheaper one by one (the arrays cost ~60 us per 2 KB whatever they hold)
    if len(text.encode("utf-8", "surrogatepass")) - len(text) >= FOLD_ARRAY_MIN_EXTRA_BYTES:
        fast = _fold_fast(text, evidence)
        if fast is not None:
            return fast
    invisible_runs: list[list[int]] = []
    bidi = 0
    homoglyph_words: set[int] = set()
    latin_words: list[int] | None = None  # flat [start, end, start, end, ...] of Latin-ish words, built on demand
    disguised: dict[int, bool] = {}  # Latin-ish word (its index in latin_words) -> it mixes Cyrillic with another script
    mixable: bool | None = None  # the text has a letter that can disguise a Cyrillic word (see _may_mix_scripts)
    # the positions of the characters to fold, and the folds already known; only the rest is looked at one by one
    # (printable ASCII between them is copied whole: character by character a 2 KB prompt cost ~1 ms)
    memo = _FOLD_MEMO
    where = [m.start() for m in _NON_ASCII_OR_CTRL.finditer(text)]
    chars = list(map(text.__getitem__, where))
    reps: list[str | None] = list(map(memo.get, chars))
    if not _CONFUSABLE_SCRIPTS_CHARS.isdisjoint(chars):
        homoglyph_words.update(i for i, c in zip(where, chars, strict=True) if c in _CONFUSABLE_SCRIPTS_CHARS)
    for n in [n for n, r in enumerate(reps) if r is None]:
        i = where[n]
        ch = chars[n]
        if is_invisible(ch) or (ch == "\u2800" and 0 < i < len(text) - 1 and text[i - 1].isalpha()
                                and text[i + 1].isalpha()):  # a blank Braille cell inside a word splits it unseen
            if ch in _BIDI:
                bidi += 1
            if invisible_runs and invisible_runs[-1][1] == i:
                invisible_runs[-1][1] = i + 1
            else:
                invisible_runs.append([i, i + 1])
            reps[n] = ""
            continue
        if ch in _CONFUSABLES:
            rep = _CONFUSABLES[ch]  # (the Braille blank between words; the others are in the memo)
        elif ch in _LATIN_WORD_LOOKALIKES:
            if ch in _CYRILLIC_LOOKALIKE:
                if mixable is None:
                    mixable = _may_mix_scripts(text)
                if not mixable:  # no word of the text can mix scripts: a Russian text keeps its letters
                    reps[n] = ch
                    continue
            if latin_words is None:
                latin_words = _latin_word_spans(text)
            k = bisect.bisect_right(latin_words, i)
            # inside a word spelled in Latin (or in look-alikes of it); a Cyrillic letter only when the word mixes
            # scripts ("ignoгe", "aьove"), not in a Russian word
            if k % 2 and ch in _CYRILLIC_LOOKALIKE and k not in disguised:  # read once per word, not per letter
                disguised[k] = _disguised(text[latin_words[k - 1] : latin_words[k]])
            if k % 2 and (ch not in _CYRILLIC_LOOKALIKE or disguised[k]):
                rep = _LATIN_WORD_LOOKALIKES[ch]
                homoglyph_words.add(i)
            else:
                rep = ch
        else:
            rep = _fold_char(ch)
        reps[n] = rep
    pieces = list(zip(where, reps, strict=True))  # (position, replacement; "" = removed)
    low = text.lower()
    if len(low) == len(text) and len(pieces) > 64:  # many replacements: each in its slot (C-speed joins)
        chars = list(low)
        for i, rep in pieces:
            chars[i] = rep
        out = chars
    else:  # a few (or a character whose lower case is longer, "İ"): ASCII stretches lowered between them
        out = []
        pos = 0
        for i, rep in pieces:
            out.append(text[pos:i].lower())
            out.append(rep)
            pos = i + 1
        out.append(text[pos:].lower())
    if invisible_runs:
        _invisible_evidence(text, invisible_runs, bidi, evidence)
    if homoglyph_words and _has_latin_letter(low):  # (a look-alike needs a Latin letter to hide among)
        _homoglyph_evidence(text, homoglyph_words, evidence)
    if set(map(len, reps)) <= {1}:
        # one character for one (curly quotes, accents, dashes, other scripts): positions are unchanged, and the
        # identity map costs nothing where per-character lists cost ~30 us per 2 KB
        return Variant("normalized", "".join(out))
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for i, rep in pieces:
        starts.extend(range(pos, i))
        ends.extend(range(pos + 1, i + 1))
        starts.extend([i] * len(rep))
        ends.extend([i + 1] * len(rep))
        pos = i + 1
    starts.extend(range(pos, len(text)))
    ends.extend(range(pos + 1, len(text) + 1))
    return Variant("normalized", "".join(out), starts, ends)


# folds of characters that need no context (not invisible, not a look-alike judged by its word, not the Braille
# blank): a 2 KB text in another script repeats a few dozen characters; each was folded ~1,000 times
_FOLD_MEMO: dict[str, str] = {c: r for c, r in _CONFUSABLES.items() if c != "\u2800"}
_FOLD_MEMO_MAX = 20_000


def _latin_word_spans(text: str) -> list[int]:
    """[start, end, start, end, ...] of the words that hold an ASCII letter or a look-alike of one from another
    script (a word spelled from several scripts' look-alikes is Latin in disguise); one pass over the text."""
    out: list[int] = []
    for m in _LETTERS.finditer(text):
        w = m.group()
        if any("a" <= c <= "z" or "A" <= c <= "Z" or c in _CONFUSABLES or _accented_latin(c) for c in w):
            out += m.span()
    return out


_LETTERS = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=8192)
def _accented_latin(c: str) -> bool:
    """A Latin letter with marks ("ţ", "é"): NFKD leaves an ASCII letter first."""
    return not c.isascii() and unicodedata.normalize("NFKD", c)[:1].isascii()
_CYRILLIC_LOOKALIKE = frozenset("гь")


def _may_mix_scripts(text: str) -> bool:
    """Whether any word of `text` can be `_disguised`: the text has an ASCII letter, an accented Latin letter or a
    look-alike from outside Cyrillic. A text in Russian alone has none, and its words need not be read one by one."""
    return _has_latin_letter(text) or any(
        _accented_latin(c) or (c in _CONFUSABLES and not "\u0400" <= c <= "\u04ff") for c in odd_chars(text))


def _disguised(word: str) -> bool:
    """A word that mixes Cyrillic with letters of another script (an ASCII or accented Latin letter, a Greek or
    other look-alike): a Russian word ("мать", "город") has none, even when all its letters look Latin."""
    return any(c.isascii() or _accented_latin(c) or (c in _CONFUSABLES and not "\u0400" <= c <= "\u04ff")
               for c in word)


_ASCII_LOWER = re.compile(r"[a-z]")  # (on the lowered word: also the Kelvin sign, dotted capital I)
# the non-ASCII characters a case-blind [a-z] matches (dotted and dotless i, long s, the Kelvin sign): where a text
# holds none, lower-casing it reads it as such a regex does (the PII gates and the order-to-assemble test rely on it)
CASE_FOLDS_TO_ASCII = "\u0130\u0131\u017f\u212a"
_ASCII_LETTER = re.compile(rb"[A-Za-z]")
_LOWERS_TO_ASCII = ("\u0130", "\u212a")  # the characters whose lower case holds an ASCII letter (i with a dot, k)


def _has_latin_letter(text: str) -> bool:
    """Whether `text.lower()` holds an ASCII letter: read from the text's ASCII bytes and two substring tests (the
    lowering and the regex read every character: ~20 us against ~8 per 2 KB of Russian)."""
    return _ASCII_LETTER.search(text.encode("ascii", "ignore")) is not None or any(c in text for c in _LOWERS_TO_ASCII)


def _homoglyph_evidence(text: str, positions: set[int], evidence: list[Evidence]) -> None:
    """Report words that mix Latin letters with Cyrillic/Greek look-alikes (a classic filter evasion): the first
    INVISIBLE_EVIDENCE_RUNS one by one, then one item spanning the rest (see `_invisible_evidence`)."""
    found, rest = 0, None
    for m in re.finditer(r"\w+", text):
        word = m.group()
        if word.isascii() or not _ASCII_LOWER.search(word.lower()):
            continue  # no look-alike in it, or no Latin letter for one to hide among (a word of another script)
        s, e = m.span()
        if any(i in positions for i in range(s, e)):
            found += 1
            if found <= INVISIBLE_EVIDENCE_RUNS:
                evidence.append(Evidence("invisible", Category.ENCODING_OBFUSCATION, 0.5, s, e, word, "raw",
                                         "word mixes Latin letters with look-alike letters of another script"))
            else:
                rest = (rest[0] if rest else s, e)
    if rest:
        evidence.append(Evidence("invisible", Category.ENCODING_OBFUSCATION, 0.5, rest[0], rest[1], "", "raw",
                                 "more words mix Latin letters with look-alike letters of another script (words "
                                 f"past the first {INVISIBLE_EVIDENCE_RUNS} are not listed one by one)"))


def _fold(text: str, evidence: list[Evidence], gates: int | None = None) -> Variant:
    """Printable ASCII only needs its case folded (identity map); anything else goes character by character."""
    if gates is not None and not gates & G.CONTROL:
        return Variant("normalized", text.lower())
    if gates is None and text.isascii() and not _NON_ASCII_OR_CTRL.search(text):
        return Variant("normalized", text.lower())
    return _fold_slow(text, evidence)


def fold_text(text: str) -> str:
    """The main view's folding of `text` alone (for pattern literals, which must be written as the views read)."""
    return _fold(text, []).text


def _copy_mapped(v: Variant, a: int, b: int, out: list[str], starts: list[int], ends: list[int],
                 drop: set[int] | None = None) -> None:
    """Append v.text[a:b] (but the positions in `drop`) to a new view with each character's original span (relative
    to `v.offset`). Whole slices, not a call per character (that cost ~3 ms per 2 KB view with a map)."""
    if drop:  # the runs between dropped positions, each as a slice (a list of every kept position: ~0.2 ms per 2 KB)
        for j in sorted(x for x in drop if a <= x < b):
            if j > a:
                _copy_mapped(v, a, j, out, starts, ends)
            a = j + 1
        if a < b:
            _copy_mapped(v, a, b, out, starts, ends)
        return
    keep = range(a, b)
    out.extend(v.text[a:b])
    if v.fixed is not None:
        s, e = v.fixed[0] - v.offset, v.fixed[1] - v.offset
        starts.extend([s] * len(keep))
        ends.extend([e] * len(keep))
    elif v.starts is None or v.ends is None:
        starts.extend(keep)
        ends.extend(range(a + 1, b + 1))
    else:
        starts.extend(v.starts[a:b])
        ends.extend(v.ends[a:b])


def _despace(v: Variant, gates: int | None = None) -> Variant | None:
    """Join spaced-out letters ("i g n o r e" -> "ignore"), keeping the span map."""
    t = v.text
    if (gates is not None and not gates & G.SPACED) or not _SPACED.search(t):
        return None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0

    def copy(a: int, b: int) -> None:
        _copy_mapped(v, a, b, out, starts, ends)

    for m in _SPACED.finditer(t):
        copy(pos, m.start())
        letters = [j for j in range(m.start(), m.end()) if t[j].isalpha()]
        gaps = [b - a for a, b in zip(letters, letters[1:], strict=False)]
        narrow = min(gaps)
        seps = [t[a + 1 : b] for a, b in zip(letters, letters[1:], strict=False)]
        # letters mostly joined by dots or dashes: a space between two of them is a word break ("i.g.n.o.r.e y.o.u")
        counts = Counter(seps)  # the most common separator, the first of equals (max(seps, key=seps.count) was
        top = max(counts.values())  # quadratic: 20 ms for a 4 KB run of spaced letters)
        dotted = " " not in next(x for x in seps if counts[x] == top)
        for i, j in enumerate(letters):
            if i and (gaps[i - 1] > narrow or (dotted and " " in seps[i - 1])):
                # a wider gap is a word break ("i g n o r e  y o u r")
                copy(j - 1, j)  # the separator before the letter stands for the space
                out[-1] = " "
            copy(j, j + 1)
        pos = m.end()
    copy(pos, len(t))
    return Variant("despaced", "".join(out), starts, ends, offset=v.offset)


REJOIN_BUDGET = 600  # letters per window re-segmented when attack words are found split (as SEGMENT_BUDGET)


def _rejoin(v: Variant) -> Variant:
    """Join words split by spaces, hyphens or dots ("ig nore all pre.vious in struc tions" -> "ignore all previous
    instructions"), in a text where an attack word is found split: two to four adjacent pieces that together make a
    word of `_SPLIT_WORDS` always, and, within `REJOIN_BUDGET` letters, wherever the segmenter reads a run of
    pieces with its letters together as fewer words ("rep eat the text sta rti ng with" -> "repeat the text
    starting with"; a sentence of whole words segments into the same words)."""
    from aimds_ray.core.segment import segmenter  # word counts loaded on the first such text

    seg = segmenter()
    t = v.text
    drop: set[int] = set()  # separators to remove
    budget = REJOIN_BUDGET
    for m in _SPLIT_TOKEN.finditer(t):
        pieces = [(m.start() + p.start(), m.start() + p.end()) for p in re.finditer(r"[a-z]+", m.group())]
        if len(pieces) < 2:
            continue
        i = 0
        while i < len(pieces):
            for n in (4, 3, 2):
                group = pieces[i : i + n]
                if len(group) == n and "".join(t[a:b] for a, b in group) in _SPLIT_WORDS:
                    drop.update(b for _, b in group[:-1])  # the separators after all but the last piece
                    i += n
                    break
            else:
                i += 1
        letters = "".join(t[a:b] for a, b in pieces)
        if len(letters) > budget:
            continue
        budget -= len(letters)
        bounds: set[int] = set()
        k = 0
        for w in seg.split(letters):
            k += len(w)
            bounds.add(k)
        k = 0
        for a, b in pieces[:-1]:
            k += b - a
            if k not in bounds:
                drop.add(b)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    _copy_mapped(v, 0, len(t), out, starts, ends, drop)
    return Variant("despaced", "".join(out), starts, ends, offset=v.offset)


_MARKUP = re.compile(r"<!--|-->|</?[a-z][a-z0-9]{0,15}(?:\s[^<>]{0,200})?/?>"
                     r"|&(?:#\d{1,7}|#x[0-9a-f]{1,6}|[a-z][a-z0-9]{1,31});|\\u[0-9a-f]{4}")
_BLOCK_TAGS = frozenset("address article aside blockquote br dd div dl dt figure footer h1 h2 h3 h4 h5 h6 header hr li "
                        "main nav ol p pre section table tbody td tfoot th thead tr ul".split())


def _unmarkup(v: Variant) -> Variant | None:
    """The view with markup read as a browser or a JSON parser would: tags removed (a block tag is a space), HTML
    entities and JSON "\\uXXXX" escapes decoded. Added only when that splices words together ("ign<b></b>ore", one
    tag per letter), spells letters that were escaped (3+), or strips a tag around every word or two (markup is
    then most of the text): what hides a phrase from a scan of the raw text."""
    t = v.text
    if "<" not in t and "&" not in t and ("\\" not in t or "\\u" not in t):
        return None
    # first what the markup hides, without building anything: most texts with a "<" or "&" hide nothing
    toks: list[tuple[int, int, str]] = []  # (start, end, replacement)
    letters = tags = 0
    for m in _MARKUP.finditer(t):
        a, b = m.span()
        tok = m.group()
        if tok[0] == "<" or tok == "-->":
            name = tok.strip("</>").split(None, 1)[0] if tok[1:2] not in ("!", "") and tok != "-->" else ""
            rep = " " if name in _BLOCK_TAGS or tok in ("<!--", "-->") else ""
            tags += not rep
        else:
            if tok[0] == "&":
                rep = html.unescape(tok)
            else:
                cp = int(tok[2:], 16)
                rep = "" if 0xD800 <= cp <= 0xDFFF else chr(cp)  # half a surrogate pair spells nothing
            rep = _fold(rep, []).text if not rep.isascii() else rep.lower()
            letters += sum(c.isalpha() for c in rep)
        toks.append((a, b, rep))
    if not toks:
        return None
    spliced = False
    i = 0
    while i < len(toks) and not spliced:  # a run of removed tags with a letter on both sides
        j = i
        while j < len(toks) and toks[j][2] == "" and (j == i or toks[j][0] == toks[j - 1][1]):
            j += 1
        if j > i:
            a, b = toks[i][0], toks[j - 1][1]
            # a neighbour may itself be an entity or escape: its decoded letter is what the view will hold
            left = toks[i - 1][2][-1:] if i > 0 and toks[i - 1][1] == a else t[a - 1 : a]
            right = toks[j][2][:1] if j < len(toks) and toks[j][0] == b else t[b : b + 1]
            spliced = left.isalpha() and right.isalpha()
        i = max(j, i + 1)
    kept = len(t) - sum(b - a for a, b, _ in toks) + sum(len(rep) for _, _, rep in toks)
    wrapped = tags >= 4 and kept < 0.7 * len(t)  # a tag around every word or two: markup is most of the text
    if letters < 3 and not spliced and not wrapped:
        return None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for a, b, rep in toks:
        _copy_mapped(v, pos, a, out, starts, ends)
        pos = b
        sa, sb = v.span(a, b)
        for c in rep:
            out.append(c)
            starts.append(sa - v.offset)
            ends.append(sb - v.offset)
    _copy_mapped(v, pos, len(t), out, starts, ends)
    return Variant("markup", "".join(out), starts, ends, offset=v.offset)


# emoji and pictographs between two letters of a word ("ign🔥ore"): the word a filter would look for is split by them
_SYMBOL_IN_WORD = re.compile("(?<=[a-z])[\u2190-\u2bff\U0001f000-\U0001faff\ufe0f\u200d]{1,6}(?=[a-z])")
# or standing between words ("never 💡 refuse 😀 my 🎉 requests"): with its space before it, in a text with 3+ of them
_SYMBOL_BETWEEN_WORDS = re.compile("(?<=[a-z0-9.,;:!?'\"]) [\u2190-\u2bff\U0001f000-\U0001faff\ufe0f\u200d]{1,6}(?= )")
# three or more capitalised words run together ("IgnorePreviousInstructions"); read with the spaces put back
# what the CAMEL gate stands for: two lower-capital-lower turns in one token (the view needs a run of three words)
_CAMEL_HINT = re.compile(r"[a-z][A-Z][a-z][^ \t\n\r]*?(?<=[a-z])[A-Z][a-z]")
_CODE_HINT = re.compile(r"\d[\d\s,;x]{10}")  # what the CODE_RUN gate stands for
_CAMEL_RUN = re.compile(r"(?<![A-Za-z])[A-Za-z][a-z]+(?:[A-Z][a-z]+){2,}(?![A-Za-z])")


def _is_symbol(c: str) -> bool:  # the character class of _SYMBOL_IN_WORD and _SYMBOL_BETWEEN_WORDS
    return "\u2190" <= c <= "\u2bff" or "\U0001f000" <= c <= "\U0001faff" or c in "\ufe0f\u200d"


_BEFORE_SPACED_SYMBOL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"")


def _symbol_spans(t: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The spans `_SYMBOL_IN_WORD.finditer` and `_SYMBOL_BETWEEN_WORDS.finditer` give, read from the runs of symbol
    characters alone (found with str.find from the text's few distinct odd characters): the regexes, tried at
    every position behind their lookbehinds, cost ~0.1 ms per 2 KB of any text with one arrow or emoji. A match
    of either is a whole run of at most 6: it starts after a letter (or a space after a letter, digit or mark) and
    the next character is a letter (or a space)."""
    pos: list[int] = []
    for c in odd_chars(t):
        if _is_symbol(c):
            i = t.find(c)
            while i >= 0:
                pos.append(i)
                i = t.find(c, i + 1)
    pos.sort()
    in_word: list[tuple[int, int]] = []
    between: list[tuple[int, int]] = []
    n = len(t)
    k = 0
    while k < len(pos):
        s = e = pos[k]
        while k < len(pos) and pos[k] == e:
            e += 1
            k += 1
        if e - s > 6:
            continue
        after = t[e] if e < n else ""
        if s > 0 and "a" <= t[s - 1] <= "z" and "a" <= after <= "z":
            in_word.append((s, e))
        elif s > 1 and t[s - 1] == " " and t[s - 2] in _BEFORE_SPACED_SYMBOL and after == " ":
            between.append((s - 1, e))
    return in_word, between


def _unsplit(v: Variant) -> Variant | None:
    """The main view without pictographs inside words, or between words when 3+ stand there, when there are any
    (in the folded view: folding makes some, e.g. a halfwidth form into a geometric shape)."""
    t = v.text
    if not any("\u2190" <= c <= "\u2bff" or "\U0001f000" <= c <= "\U0001faff" for c in odd_chars(t)):
        return None
    in_word, between = _symbol_spans(t)
    drop = {j for a, b in in_word for j in range(a, b)}
    if len(between) >= 3:
        drop.update(j for a, b in between for j in range(a, b))
    if not drop:
        return None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    _copy_mapped(v, 0, len(t), out, starts, ends, drop)
    return Variant("despaced", "".join(out), starts, ends, offset=v.offset)


# leet letters drawn with several symbols ("|\\|" n, "/\\/\\" m, "|_|" u, "()" o) and the symbol letters that go
# with them; the longest spelling is read first. Single digits are left to the one-character leet view.
_LEET_MULTI = {"/\\/\\": "m", "|\\/|": "m", "|v|": "m", "\\/\\/": "w", "|\\|": "n", "/\\/": "n", "|_|": "u",
               "(_)": "u", "|-|": "h", "|<": "k", "|{": "k", "|)": "d", "|]": "d", "|3": "b", "|2": "r", "|>": "p",
               "|*": "p", "|=": "f", "|_": "l", "|_|_": "ll", "]-[": "h", "]\\[": "n", "/-\\": "a", "\\^/": "w",
               "()": "o", "[]": "o", "/\\": "a", "\\/": "v", "><": "x", "`/": "y",
               "€": "e", "£": "l", "§": "s", "¥": "y", "#": "h", "+": "t", "(": "c", "!": "i", "|": "l"}
_LEET_MULTI_RX = re.compile("|".join(map(re.escape, sorted(_LEET_MULTI, key=len, reverse=True))))
_LEET_MULTI_HINT = re.compile(r"\|[\\<{)\]32>*=_-]|/\\|\\/|`/|\(_\)|\]-\[")  # a letter one-symbol leet cannot spell


def _unleet(v: Variant) -> Variant | None:
    """The main view with multi-symbol leet read as letters ("|\\|()+ /\\|_|()\\/\\/€|)" -> "not allowed"),
    when it has 3+ such spellings and reading them makes more common English words (a table's "|" or a path's
    "\\" do not)."""
    t = v.text
    # (a needle of two or more characters costs a search of ~1.5 us per 2 KB, one character a memchr of ~0.05 us:
    # each is looked for only where its rarest character occurs)
    if "|" not in t and "\\" not in t and ("`" not in t or "`/" not in t) and ("_" not in t or "(_)" not in t) \
            and ("]" not in t or "]-[" not in t):
        return None
    if len(_LEET_MULTI_HINT.findall(t)) < 3:
        return None
    # first whether reading the symbols makes words (a table or a code snippet does not), then the span map
    text = _leet(_LEET_MULTI_RX.sub(_leet_letter, t))
    before = sum(1 for w in _WORD.findall(t) if w in _COMMON)
    if sum(1 for w in _WORD.findall(text) if w in _COMMON) < before + 3:
        return None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _LEET_MULTI_RX.finditer(t):
        a, b = m.span()
        _copy_mapped(v, pos, a, out, starts, ends)
        sa, sb = v.span(a, b)
        out.append(_LEET_MULTI[m.group()])
        starts.append(sa - v.offset)
        ends.append(sb - v.offset)
        pos = b
    _copy_mapped(v, pos, len(t), out, starts, ends)
    return Variant("leet", text, starts, ends, offset=v.offset)


def _leet_letter(m: re.Match[str]) -> str:
    return _LEET_MULTI[m.group()]


_ALPHA_RUN = re.compile(rf"[A-Za-z]{{{G.ALPHA_RUN_LETTERS},}}")
_LOWER_UPPER = re.compile(r"[a-z][A-Z]")
_TOKEN_EDGE = frozenset(" \t\n\r.,;:!?\"'()[]*")
CAMEL_SENTENCE_WORDS = 6
_CAMEL_CUT = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # "tell|Me|A|Joke"
_CODE_SIGNS = frozenset("(){}[]=<>_$#@/\\`")  # a glued sentence keeps its quotes, commas and full stops
SEGMENT_BUDGET = 600  # letters segmented per window at most (Viterbi reads each letter ~20 times: ~3 ms)


def _segmented(v: Variant, raw: str, gates: int | None) -> Variant | None:
    """The main view with glued words spaced ("ignoreallpreviousinstructions" -> "ignore all previous
    instructions"): whole tokens of 24+ letters that `segment` reads as 4+ common words, or that are CamelCase runs
    of 6+ known words outside code. Letters inside a URL, path or address, and shorter CamelCase runs (left to the
    camel view, which only the signatures read), are not sentences: identifiers and slugs are glued words too, and
    read as sentences they look like instructions."""
    t = v.text
    if not _gate(gates, G.ALPHA_RUN, _ALPHA_RUN, t):
        return None
    from aimds_ray.core.segment import segmenter  # word counts loaded on the first glued text, not at import

    seg = segmenter()
    same = v.starts is None and len(raw) == len(t)  # the raw text's case is at the view's positions
    cuts: list[int] = []
    code_lines: dict[int, bool] = {}
    budget = SEGMENT_BUDGET
    for m in _ALPHA_RUN.finditer(t):
        a, b = m.span()
        if b - a > budget:
            continue  # a run longer than what is left is not read (the runs after it may be)
        if (a > 0 and t[a - 1] not in _TOKEN_EDGE) or (b < len(t) and t[b] not in _TOKEN_EDGE):
            continue  # part of a URL, path, address or identifier ("example.com/forgetyourpassword")
        # the run as written: its case tells CamelCase; where the fold removed or expanded characters (a zero-width
        # space, a ligature) its positions are not the view's
        ra, rb = (a, b) if same else (x - v.offset for x in v.span(a, b))
        if _LOWER_UPPER.search(raw, ra, rb):
            if not same:
                continue  # CamelCase read through a fold that moved positions: left to the camel view
            budget -= b - a
            # CamelCase: a sentence when it is 6+ known words on a line without code marks; shorter runs and code
            # identifiers ("AbstractSingletonProxyFactoryBean", "resetSystemPromptCache();") stay with the camel view
            caps = [a] + [k.start() for k in _CAMEL_CUT.finditer(raw, a, b)] + [b]
            words = [t[i:j] for i, j in zip(caps, caps[1:], strict=False)]
            if _on_code_line(raw, a, b, code_lines, _CODE_SIGNS):
                continue
            if len(words) >= CAMEL_SENTENCE_WORDS and all(w in seg.cost for w in words):
                cuts += caps[1:-1]
                continue
            if all(len(w) < 16 or w in seg.cost for w in words):
                continue  # an identifier: each capital starts a word
            # a glued sentence with capitals inside ("ignorethewordHACKEDtentimes", "...whatIsay..."): read whole
        else:
            budget -= b - a
        words = seg.words_of(m.group())
        if words:
            pos = a
            for w in words[:-1]:
                pos += len(w)
                cuts.append(pos)
    return _spaced(v, cuts, "segmented") if cuts else None


def _spaced(v: Variant, cuts: list[int], kind: str) -> Variant:
    """`v` with a space inserted before each position in `cuts` (ascending); an inserted space maps to the empty
    span where the character after it begins."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for c in cuts:
        _copy_mapped(v, pos, c, out, starts, ends)
        out.append(" ")
        s = v.span(c, c + 1)[0] - v.offset
        starts.append(s)
        ends.append(s)
        pos = c
    _copy_mapped(v, pos, len(v.text), out, starts, ends)
    return Variant(kind, "".join(out), starts, ends, offset=v.offset)


_SENTENCE_END = frozenset(".!?")
_OPENERS = "\"'([“‘«"
_CLOSERS = "\"')]”’»"
_FIRST_WORD = re.compile(r"\s*(\S{1,40})\s")


def _word_reversed(raw: str, v: Variant) -> Variant | None:
    """The text read back to front word by word ("prompt. system your Reveal" -> "reveal your system prompt."), when
    it is written so: it begins with a lower-case word that ends a sentence and ends with a capitalised word without
    a full stop (the first word of the sentence it reverses). Ordinary text does not begin "pirates." and end
    "Ignore"; the checks read only the first and last words."""
    if not raw or not (raw[0].islower() or raw[0].isspace()):  # most texts: one character read
        return None
    m = _FIRST_WORD.match(raw)
    first = m.group(1).rstrip(_CLOSERS) if m else ""
    if len(first) < 2 or first[-1] not in _SENTENCE_END or not first[0].islower() or not first[:-1].isalpha():
        return None
    e = raw.rstrip()
    k = max(e.rfind(" "), e.rfind("\n"), e.rfind("\t"))
    last = e[k + 1 :].lstrip(_OPENERS)
    if k < 0 or not last or not last[0].isupper() or not last.rstrip(".!?").isalpha():
        return None
    tokens = [w.span() for w in _NON_BLANK.finditer(v.text)]
    if len(tokens) < 4:
        return None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, (a, b) in enumerate(reversed(tokens)):
        if i:  # the space between two words maps to the empty span where the next word begins
            out.append(" ")
            s0 = v.span(a, a + 1)[0] - v.offset
            starts.append(s0)
            ends.append(s0)
        _copy_mapped(v, a, b, out, starts, ends)
    return Variant("word_reversed", "".join(out), starts, ends, offset=v.offset)


_CODE_MARKS = frozenset("(){}[];=<>._$#@/\\`\"'")


def _on_code_line(raw: str, a: int, b: int, memo: dict[int, bool], marks: frozenset[str] | None = None) -> bool:
    """The line around raw[a:b] has code marks (by default `_CODE_MARKS`, where a full stop followed by a space, or
    ending the line, does not count). `memo` keeps each line's answer: a long line of many runs is read once."""
    ls = raw.rfind("\n", 0, a) + 1
    if ls not in memo:
        le = raw.find("\n", b)
        line = raw[ls : len(raw) if le < 0 else le]
        memo[ls] = bool(marks.intersection(line)) if marks is not None else \
            bool(_CODE_MARKS.intersection(line.replace(". ", " ").rstrip(".")))
    return memo[ls]


_SNAKE_RUN = re.compile(r"(?<![a-z0-9])[a-z]+(?:_[a-z]+){3,}(?![a-z0-9])")
_SNAKE_HINT = re.compile(r"_[a-z]+_[a-z]+_")
_SNAKE_CODE_SIGNS = frozenset("(){}[]=<>$#@/\\`")


def _unsnake(v: Variant, raw: str) -> Variant | None:
    """The main view with words joined by underscores spaced ("reveal_your_system_prompt." -> "reveal your system
    prompt."): runs of 4+ parts on a line without code marks (`def test_ignore_previous_instructions():` is code)."""
    t = v.text
    if t.count("_") < 3 or not _SNAKE_HINT.search(t):  # (a run of 4+ parts has 3+ underscores, and two of its parts
        return None  # between three of them; the hint's search starts only at underscores, the run's at every word)
    code_lines: dict[int, bool] = {}
    same = v.starts is None and len(raw) == len(t)
    spans = [m.span() for m in _SNAKE_RUN.finditer(t)
             if len(m.group()) >= 2.5 * (m.group().count("_") + 1)  # words, not letters ("h_e_l_l_o": despaced view)
             and not _on_code_line(raw if same else t, *m.span(), code_lines, _SNAKE_CODE_SIGNS)]
    if not spans:
        return None
    chars = list(t)
    for a, b in spans:
        for j in range(a, b):
            if chars[j] == "_":
                chars[j] = " "
    return Variant("despaced", "".join(chars), v.starts, v.ends, offset=v.offset)


def _camel(raw: str, v: Variant) -> Variant | None:
    """The main view with CamelCase runs split where their capitals are, when they look like glued sentences (a run
    of 4+ words, or two runs of 3+; the raw text has the case, its positions are the view's when the fold kept
    them). Runs on a line with code marks stay whole: `resetSystemPromptCache();` is not a sentence."""
    if v.starts is not None or len(raw) != len(v.text):
        return None
    runs = []
    code_lines: dict[int, bool] = {}
    for m in _CAMEL_RUN.finditer(raw):
        a, b = m.span()
        if _on_code_line(raw, a, b, code_lines):
            continue
        runs.append([a + k.start() for k in re.finditer(r"(?<=[a-z])[A-Z]", m.group())])
    # glued sentences, not a product or class name in prose: a run of 4+ words, or two runs
    if not runs or (len(runs) < 2 and max(len(r) for r in runs) < 3):
        return None
    return _spaced(v, [c for r in runs for c in r], "camel")


def _printable_ratio(s: str) -> float:
    if not s:
        return 0.0
    good = sum(1 for c in s if c.isprintable() or c in "\t\n\r")
    return good / len(s)


def _looks_like_text(s: str) -> bool:
    """Decoded bytes are worth scanning when they read as text, not as binary or random letters."""
    if len(s) < 4 or _printable_ratio(s) < 0.95:
        return False
    letters = sum(1 for c in s if c.isalpha())
    digits = sum(1 for c in s if c.isdigit())
    spaces = s.count(" ")
    # mostly letters, or letters and numbers (an account number, a key in a sentence), and words if it is long
    if letters < 0.5 * len(s):
        return letters >= 0.3 * len(s) and letters + digits + spaces >= 0.8 * len(s) and spaces >= 2
    return spaces >= 1 or len(s) < 24


def _decode_bytes(b: bytes) -> str | None:
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return s if _looks_like_text(s) else None


def _b64(run: str, min_chars: int = 0) -> str | None:
    if len(run) < min_chars:
        return None
    core = run.rstrip("=")
    if len(set(core)) < 8:  # "AAAAAAAAAAAAAAAAAAAA..." is not a payload
        return None
    pad = "=" * (-len(core) % 4)
    alt = "-" in core or "_" in core
    try:
        raw = base64.urlsafe_b64decode(core + pad) if alt else base64.b64decode(core + pad, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) >= 16 and _B64_ONLY.fullmatch(raw):
        return raw.decode("ascii")  # base64 inside base64: the recursion decodes the next layer
    return _decode_bytes(raw)


_B64_ONLY = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")
_QP_ESCAPE = re.compile(r"(?<=\w)=[0-9A-F]{2}(?=[\w=])")  # inside a word: "Ignore=20previous", "=49=67=6E"
_UU_BLOCK = re.compile(r"begin [0-7]{3} [^\n]*\r?\n((?:[ -`]{1,62}\r?\n){1,2000}?)`?\r?\n?end\b")


def _qp_escapes(raw: str) -> int:
    """len(_QP_ESCAPE.findall(raw)): every escape starts at an "=", so the regex is tried there only (a search of
    the whole text tries it at every position, ~40 us per 2 KB); matches are counted non-overlapping, as findall."""
    n = 0
    i = raw.find("=")
    while i >= 0:
        if _QP_ESCAPE.match(raw, i):
            n += 1
            i = raw.find("=", i + 3)
        else:
            i = raw.find("=", i + 1)
    return n


def _quoted_printable(raw: str) -> str | None:
    """Quoted-printable (MIME): taken for an encoding when its escapes are most of the text's "=" signs (a query
    string or code has "=" too, rarely followed by two capitals or digits each time)."""
    eq = raw.count("=")
    if eq < 4:  # each escape holds one: fewer than four cannot be enough
        return None
    n = _qp_escapes(raw)
    if n < 4 or n < 0.6 * eq:
        return None
    try:
        return _decode_bytes(quopri.decodestring(raw.encode("utf-8", "surrogatepass")))
    except (ValueError, UnicodeEncodeError):
        return None


def _uudecode(block: str) -> str | None:
    out = bytearray()
    try:
        for line in block.splitlines():
            if line.strip("`"):
                out += binascii.a2b_uu(line)
    except binascii.Error:
        return None
    return _decode_bytes(bytes(out))
_OCTAL = re.compile(r"(?:\\[0-3][0-7]{2}){6,}")


def _octal(run: str) -> str | None:
    return _decode_bytes(bytes(int(o, 8) for o in run.split("\\")[1:]))


def _hex(run: str) -> str | None:
    h = re.sub(r"\\x|0x|[ :]", "", run)
    if len(h) % 2:
        h = h[:-1]
    try:
        return _decode_bytes(bytes.fromhex(h))
    except ValueError:
        return None


def _url(run: str) -> str | None:
    return _decode_bytes(unquote_to_bytes(run))


_B32 = re.compile(r"(?<![A-Za-z0-9])[A-Z2-7]{16,}={0,6}(?![A-Za-z0-9])")
_A85_CHARS = frozenset(chr(c) for c in range(33, 118)) | {"z"}
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")


def _b32(run: str) -> str | None:
    core = run.rstrip("=")
    try:
        return _decode_bytes(base64.b32decode(core + "=" * (-len(core) % 8)))
    except (binascii.Error, ValueError):
        return None


def _a85(token: str) -> str | None:
    """Ascii85 (with or without Adobe's <~ ~> frame): tokens base64 cannot be, of characters Ascii85 uses."""
    t = token[2:-2] if token.startswith("<~") and token.endswith("~>") else token
    if len(t) < 20 or not set(t) <= _A85_CHARS or set(t) <= _B64_CHARS:
        return None
    try:
        return _decode_bytes(base64.a85decode(t))
    except (binascii.Error, ValueError):
        return None


# Symbol codes: Morse, binary octets, decimal or 0x character codes, Braille cells, NATO spelling alphabet
_MORSE = dict(zip(".- -... -.-. -.. . ..-. --. .... .. .--- -.- .-.. -- -. --- .--. --.- .-. ... - ..- ...- .-- -..- "
                  "-.-- --.. ----- .---- ..--- ...-- ....- ..... -.... --... ---.. ----. .-.-.- --..-- ..--.. "
                  "-.-.-- -..-. ---... .----.".split(), "abcdefghijklmnopqrstuvwxyz0123456789.,?!/:'", strict=True))
# possessive: a long run that ends badly must not be re-read from each of its letters (quadratic, 0.3 s per 9 KB)
_MORSE_RUN = re.compile(r"(?<![\w.\-])[.\-]{1,6}+(?:(?: {1,3}| *[/|] *)[.\-]{1,6}+){5,}+")
_BINARY_RUN = re.compile(r"(?<![01])(?:[01]{8}[ ,;]?\s*){4,}")
_CODES_RUN = re.compile(r"(?<![\w.])(?:(?:0x[0-9a-f]{2}|\d{2,3})(?:\s*[,;]\s*|\s+)){5,}(?:0x[0-9a-f]{2}|\d{2,3})(?![\w.])",
                        re.I)
_BRAILLE_LETTERS = dict(zip("⠁⠃⠉⠙⠑⠋⠛⠓⠊⠚⠅⠇⠍⠝⠕⠏⠟⠗⠎⠞⠥⠧⠺⠭⠽⠵⠲⠂⠦⠖⠄⠤", "abcdefghijklmnopqrstuvwxyz.,?!'-",
                            strict=True))
_BRAILLE_RUN = re.compile("(?<![\u2801-\u28ff])[\u2801-\u28ff]{3,}+(?:[ \u2800]++[\u2801-\u28ff]++){2,}")
_NATO = {w: w[0] for w in _NATO_WORDS}
_NATO_RUN = re.compile(r"\b(?:(?:" + "|".join(sorted(_NATO, key=len, reverse=True)) + r")\b[\s,/|-]*){6,}")


def _morse(run: str) -> str | None:
    words = re.split(r" *[/|] *| {3,}", run.strip())
    out = []
    for w in words:
        letters = [_MORSE.get(c) for c in w.split()]
        if not letters or None in letters:
            return None
        out.append("".join(letters))  # type: ignore[arg-type]
    s = " ".join(out)
    return s if _looks_like_text(s) else None


def _sentence(s: str | None) -> str | None:
    """A decoded list of numbers is taken for text only when it reads as words: 8+ characters, a space, and most
    tokens letters (a list of scores or quantities decodes to something like "x\\k@cqf")."""
    if s is None or len(s) < 8 or " " not in s.strip():
        return None
    toks = s.split()
    return s if sum(1 for t in toks if t.strip(".,!?;:'\"()").isalpha()) >= 0.6 * len(toks) else None


def _binary(run: str) -> str | None:
    return _sentence(_decode_bytes(bytes(int(b, 2) for b in re.findall(r"[01]{8}", run))))


def _char_codes(run: str) -> str | None:
    vals = [int(t, 16) if t[:2].lower() == "0x" else int(t) for t in re.findall(r"0x[0-9a-fA-F]{2}|\d+", run)]
    if any(v > 255 for v in vals):
        return None
    return _sentence(_decode_bytes(bytes(vals)))


def _braille(run: str) -> str | None:
    out = []
    cap = False
    for c in run:
        if c in " \u2800":
            out.append(" ")
        elif c == "⠠":  # capital sign
            cap = True
        elif c in _BRAILLE_LETTERS:
            ch = _BRAILLE_LETTERS[c]
            out.append(ch.upper() if cap else ch)
            cap = False
        else:
            return None
    s = "".join(out)
    return s if _looks_like_text(s) else None


def _nato(run: str) -> str:
    """Code words to letters; a separator of "/" or "|" (or two spaces) between them is a word break."""
    out = []
    for m in re.finditer(r"([a-z-]+)|(\s*[/|]\s*|\s{2,})", run):
        if m.group(1) in _NATO:
            out.append(_NATO[m.group(1)])
        elif m.group(2):
            out.append(" ")
    return "".join(out).strip()


# Upside-down text: turned letters (and b/d/n/p/q/u, which turn into each other), written right to left
_TURNED = dict(zip("ɐqɔpǝɟƃɥᴉɾʞlɯuodbɹsʇnʌʍxʎz∀ᗺƆᗡƎℲ⅁HIſꞰ˥WNOԀὉᴚS⊥∩ΛMX⅄Z˙'¡¿",
                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?", strict=True))
_TURNED_ONLY = frozenset("ɐɔǝɟƃɥᴉɾʞɯɹʇʌʍʎ∀ᗺƆᗡƎℲ⅁ꞰԀᴚ⊥∩Λ⅄")


def _upside_down(raw: str) -> str | None:
    if sum(raw.count(c) for c in _TURNED_ONLY.intersection(odd_chars(raw))) < 4:  # (C counts of the few present)
        return None
    s = "".join(_TURNED.get(c, c) for c in reversed(raw))
    return s if _looks_like_text(s) else None


@lru_cache(maxsize=8)  # a window's text is asked several times (normalize, the views, the look-alike check)
def odd_chars(text: str) -> frozenset[str]:
    """The distinct characters of `text` outside printable ASCII, computed once per window: the non-ASCII views and
    decoders ask this small set whether their characters occur, not the whole text."""
    if text.isascii():
        return frozenset()
    if len(text) < 256:
        return frozenset(text).difference(_PRINTABLE_ASCII)
    # a set of every character of a long text in another script allocates one string per character; the distinct
    # code points come from one array pass
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    odd = codes[(codes > 126) | ((codes < 32) & (codes != 9) & (codes != 10) & (codes != 13))]
    return frozenset(map(chr, np.unique(odd).tolist()))


_PRINTABLE_ASCII = frozenset(map(chr, range(32, 127))) | {"\t", "\n", "\r"}


def _symbol_codes(raw: str, folded: str, gates: int | None,
                  odd: frozenset[str] | None = None) -> list[tuple[str, str, int, int]]:
    """(kind, decoded, start, end) of the symbol-code runs of `raw` (NATO words are read from its folded view, so
    positions are the folded view's: the caller maps them). Each code is looked for only where its cheapest sign is."""
    found: list[tuple[str, str, int, int]] = []
    if "-" in raw and (".-" in raw or "-." in raw):  # (memchr first: see _unleet)
        for m in _MORSE_RUN.finditer(raw):
            if d := _morse(m.group()):
                found.append(("morse", d, *m.span()))
    if gates is None or gates & G.DIGIT:
        if "0" in raw and ("0000" in raw or "0100" in raw or "0110" in raw):
            for m in _BINARY_RUN.finditer(raw):
                if d := _binary(m.group()):
                    found.append(("binary", d, *m.span()))
        if _gate(gates, G.CODE_RUN, _CODE_HINT, raw):
            for m in _CODES_RUN.finditer(raw):
                if d := _char_codes(m.group()):
                    found.append(("charcodes", d, *m.span()))
    odd = odd_chars(raw) if odd is None else odd
    if odd & _TURNED_ONLY and (d := _upside_down(raw)):
        found.append(("upside_down", d, 0, len(raw)))
    if any("\u2801" <= c <= "\u28ff" for c in odd):
        for m in _BRAILLE_RUN.finditer(raw):
            if d := _braille(m.group()):
                found.append(("braille", d, *m.span()))
    return found



# payload splitting: string pieces in variables or a list, and an order to put them together
_QUOTED = r"""(?:'([^'\n\\]{1,200})'|"([^"\n\\]{1,200})")"""
_PIECE = re.compile(rf"\b\w{{1,16}}\s*=\s*{_QUOTED}")  # a variable holding a piece
_PIECE_LIST = re.compile(rf"\[\s*{_QUOTED}(?:\s*,\s*{_QUOTED})+\s*,?\s*\]")  # a list of them
_LIST_ITEM = re.compile(_QUOTED)
_ASSEMBLE = re.compile(r"concaten|\bjoin|\bcombin|\bassembl|\bmerge|put (?:them|these|it|the \w+) together"
                       r"|\b\w{1,16}\s*\+\s*\w{1,16}\s*\+", re.IGNORECASE)
# _ASSEMBLE read in parts: its case-blind alternation costs ~300 us on 2 KB of prompts with quotes in them (sre has
# no literal to skip ahead to); substring finds in the lower-cased text, a boundary test and regexes that start with a
# literal cost a few. Lower-casing matches the regex's case folding except for the characters it equates with ASCII
# letters (CASE_FOLDS_TO_ASCII): a text holding one is left to the regex.
_ASSEMBLE_AT_WORD = ("join", "combin", "assembl", "merge")  # after \b
_PUT_TOGETHER = re.compile(r"put (?:them|these|it|the \w+) together")
_PLUS_PAIR = re.compile(r"\+\s*\w{1,16}\s*\+")  # what the a + b + alternative needs
_PLUS_CHAIN = re.compile(r"\b\w{1,16}\s*\+\s*\w{1,16}\s*\+")


def _asks_to_assemble(raw: str) -> bool:
    """Whether `_ASSEMBLE` matches in `raw`."""
    if not raw.isascii() and any(c in raw for c in CASE_FOLDS_TO_ASCII):
        return _ASSEMBLE.search(raw) is not None
    if "+" in raw and _PLUS_PAIR.search(raw) and _PLUS_CHAIN.search(raw):
        return True
    low = raw.lower()
    if "concaten" in low or ("put " in low and _PUT_TOGETHER.search(low)):
        return True
    for h in _ASSEMBLE_AT_WORD:
        i = low.find(h)
        while i >= 0:
            if i == 0 or not (low[i - 1].isalnum() or low[i - 1] == "_"):
                return True
            i = low.find(h, i + 1)
    return False


def _assembled(raw: str) -> tuple[str, int, int] | None:
    """(text, start, end) of a payload split into 3+ quoted pieces held in variables or a list ("a = 'Ign'; b =
    'ore all'", '["Ign", "ore "]') when the text asks for them to be put together: the pieces joined in order (with
    spaces when none has one, as one word per variable)."""
    if raw.count("'") + raw.count('"') < 6 or not _asks_to_assemble(raw):
        return None
    ms = list(_PIECE.finditer(raw))
    if len(ms) >= 3:
        parts = [m.group(1) if m.group(1) is not None else m.group(2) for m in ms]
        start, end = ms[0].start(), ms[-1].end()
    else:
        lst = max(_PIECE_LIST.finditer(raw), key=lambda m: m.end() - m.start(), default=None)
        if lst is None:
            return None
        items = list(_LIST_ITEM.finditer(raw, lst.start(), lst.end()))
        if len(items) < 3:
            return None
        parts = [m.group(1) if m.group(1) is not None else m.group(2) for m in items]
        start, end = lst.span()
    sep = "" if any(c.isspace() for p in parts for c in p) else " "
    return sep.join(parts), start, end


_PIG_WORD = re.compile(r"[a-z]{3,}")
_VOWELS = frozenset("aeiou")


def _pig_latin(text: str) -> str | None:
    """Pig Latin read back ("ignoreway allway eviouspray instructionsway" -> "ignore all previous instructions"):
    the words ending in "ay" that are not English words ("today", "away", "Monday" are), when there are 4+ of them
    and they are 30 %+ of the words of 3+ letters, and most of them read back as English words (names and other
    languages end in "ay" too: "Uruguay", "Alipay", Tagalog's "bahay"). A word that began with consonants moved them
    before the "ay"; where they end is ambiguous ("omptpray": "prompt" or "tprompt"), so the reading that is a known
    word (`segment`'s counts) is taken, else the longest consonant run (at most 4: "str", "sch")."""
    from aimds_ray.core.segment import MAX_WORD, segmenter

    known = segmenter().cost
    words = _PIG_WORD.findall(text)
    pig = [w for w in words if w.endswith("ay") and w not in known and len(w) <= MAX_WORD + 3]
    if len(pig) < 4 or len(pig) < 0.3 * len(words):
        return None
    readings: dict[str, tuple[str | None, str]] = {}  # a pig word -> (the known word it reads as, or None; fallback)

    def read(w: str) -> tuple[str | None, str]:
        stem = w[:-2]
        options = [w[:-3]] if w.endswith("way") and w[0] in _VOWELS else []
        j = len(stem)
        while j > 1 and j > len(stem) - 4 and stem[j - 1] not in _VOWELS:
            j -= 1
            options.append(stem[j:] + stem[:j])
        fallback = stem[j:] + stem[:j]  # the longest consonant run moved back
        options.append(stem)
        return min((o for o in options if o in known), key=known.__getitem__, default=None), fallback

    for w in pig:
        if w not in readings:
            readings[w] = read(w)
    if sum(1 for w in pig if readings[w][0] is not None) < 0.6 * len(pig):
        return None

    def back(m: re.Match[str]) -> str:
        w = m.group()
        if w not in readings:
            return w
        r, fallback = readings[w]
        return r if r is not None else fallback

    out = _PIG_WORD.sub(back, text)
    return out if out != text else None


def _word_hits(text: str, counts: list[int] | None = None
               ) -> tuple[list[int], dict[str, list[tuple[int, int]]], bool, bool]:
    """Locate common English words and words that are common words reversed or in a letter cipher (rot13 and the
    other Caesar shifts, Atbash), and say whether an attack word occurs split in two and whether five or more NATO
    code words do. One automaton pass decides first whether there is anything to find (`counts`: its result for
    `text`, when the shared pass over the main view has it); only then are words located. Returns (starts of
    common words, {kind: spans}, split, nato)."""
    if counts is None:
        counts = literal_pass.counts(text).of(DISGUISED_SET)
    nato = counts[_G_NATO] >= 5  # a sentence spelled out uses many of the code words
    split = counts[_G_SPLIT] > 0
    ciphers = counts[_G_CIPHER:]
    # (most texts have no cipher word twice: one max() instead of a set built over the 27 cipher names)
    kinds = {n for n, c in zip(_CIPHER_NAMES, ciphers, strict=True) if c >= 2} if max(ciphers) >= 2 else set()
    if counts[_G_REV] >= 2:
        kinds.add("reversed")
    hits: dict[str, list[tuple[int, int]]] = {}
    common: list[int] = []
    if not kinds:
        return common, hits, split, nato  # nothing to decode: the plain words are not needed
    for m in _WORD.finditer(text):
        w = m.group()
        if w in _COMMON:
            common.append(m.start())
            continue
        kind = _CIPHER_OF.get(w) or ("reversed" if w in _COMMON_REV else None)
        if kind in kinds:
            hits.setdefault(kind, []).append(m.span())
    return common, hits, split, nato


def _cluster(spans: list[tuple[int, int]], gap: int = 60, min_words: int = 3) -> list[tuple[int, int]]:
    """Group nearby word hits into regions that hold at least `min_words` of them."""
    out: list[tuple[int, int]] = []
    if not spans:
        return out
    s0, e0 = spans[0]
    n = 1
    for s, e in spans[1:]:
        if s - e0 <= gap:
            e0, n = e, n + 1
        else:
            if n >= min_words:
                out.append((s0, e0))
            s0, e0, n = s, e, 1
    if n >= min_words:
        out.append((s0, e0))
    return out


def _expand_line(text: str, s: int, e: int) -> tuple[int, int]:
    """Widen a region to the enclosing line so the decoded sentence is whole."""
    ls = text.rfind("\n", 0, s) + 1
    le = text.find("\n", e)
    return ls, (len(text) if le < 0 else le)


def normalize(text: str, cfg: NormalizeConfig | None = None, offset: int = 0) -> Normalized:
    """Build every view of `text` (spans are shifted by `offset`, used for windows of a long input)."""
    cfg = cfg or NormalizeConfig()
    evidence: list[Evidence] = []
    # ASCII input is classified in one compiled pass; the regexes below run only where a gate says they can match
    raw_ascii = text.encode("ascii") if text.isascii() else None
    gates = G.gates_of(raw_ascii) if raw_ascii is not None else None
    # other text's bits with each non-ASCII character read as "?": exact for the gates whose regexes read ASCII
    # classes and any non-blank (CAMEL; PII's where `pii._gates_see` allows), so those regexes need not run (the
    # CAMEL regex alone cost ~30 us per 2 KB of text with a curly quote)
    bits = gates if gates is not None else G.gates_of(text.encode("ascii", "replace"))
    base = _fold(text, evidence, gates)
    base.offset = offset
    for ev in evidence:
        ev.start += offset
        ev.end += offset
    if gates is not None and gates & G.CONTROL:
        raw_ascii = gates = None  # control characters were removed: positions moved, use the general path
    view_gates = gates
    other_chars = False  # the bits below were read with the fold's non-ASCII characters as "?"
    if view_gates is None:
        # accents stripped and invisibles removed, the folded view is often ASCII: its bits decide the leet and
        # spaced views (read from it) exactly, and for the decoders they are a superset of the raw text's (a run
        # of base64 or digits in the raw text is one in its fold), so the gate regexes need not run. A fold that
        # keeps other characters (emoji, other scripts) is read with each as "?": none of them is in any gate's
        # ASCII classes, so the bits stay exact except LEET_WORD, whose lookbehind is a Unicode \w (then a
        # superset, confirmed by its regex)
        other_chars = not base.text.isascii()
        g = G.gates_of(base.text.encode("ascii", "replace") if other_chars else base.text.encode("ascii"))
        view_gates = None if g & G.CONTROL else g
        other_chars = other_chars and view_gates is not None  # without bits, _gate runs the regexes themselves
    variants = [base]
    if _gate(view_gates, G.LEET, _LEET_HINT, base.text) and _gate(view_gates, G.LEET_WORD, _LEET_WORD, base.text) \
            and (not other_chars or _LEET_WORD.search(base.text)):
        leet = _leet(base.text)
        if leet != base.text:
            variants.append(Variant("leet", leet, base.starts, base.ends, depth=0, offset=offset))
    desp = _despace(base, view_gates)
    if desp is not None:
        variants.append(desp)
    camel = bool(bits & G.CAMEL)
    odd = odd_chars(text)
    glued = view_gates is None or view_gates & G.ALPHA_RUN  # (most texts: no call)
    for extra in (_unmarkup(base), _unsplit(base), _unleet(base), _segmented(base, text, view_gates) if glued else None,
                  _camel(text, base) if camel else None, _word_reversed(text, base), _unsnake(base, text)):
        if extra is not None:
            variants.append(extra)
    budget = [cfg.max_decoded_chars]
    counts = literal_pass.counts(base.text)  # every registered stage's literals, one pass (see `Normalized.counts`)
    _decode_into(text, base, variants, evidence, cfg, depth=1, budget=budget, gates=view_gates, odd=odd, bits=bits,
                 disguised=counts.of(DISGUISED_SET))
    return Normalized(text, variants, evidence, gates, bits=bits, counts=counts)


def _add_decoded(
    kind: str, decoded: str, span: tuple[int, int], variants: list[Variant], evidence: list[Evidence],
    cfg: NormalizeConfig, depth: int, budget: list[int], mapped: Variant | None = None, encoded: bool = True,
) -> None:
    """Append a decoded view; `span` is the original-text span of the encoded run, `mapped` a per-char map.
    `encoded=False`: a view that is not an encoding (pieces put together) adds no `encoding` evidence: what the
    view says is the evidence, not that it exists (code that joins a list of strings is ordinary)."""
    if len(variants) >= cfg.max_variants or budget[0] <= 0:
        return
    decoded = decoded[: budget[0]]
    budget[0] -= len(decoded)
    folded = _fold(decoded, []).text
    if mapped is not None and len(folded) == len(mapped.starts or folded):
        v = mapped
        v.text = folded
    else:
        v = Variant(kind, folded, fixed=span, depth=depth)
    v.raw = decoded
    variants.append(v)
    if encoded:
        evidence.append(
            Evidence("encoding", Category.ENCODING_OBFUSCATION, 0.1, span[0], span[1], decoded[:80], kind,
                     f"{kind}-encoded text decoded (depth {depth})")
        )
    if depth < cfg.max_decode_depth:
        _decode_into(decoded, v, variants, evidence, cfg, depth + 1, budget)


def _chunk_gate(gates: int | None, raw: str, odd: frozenset[str] | None = None, bits: int | None = None) -> bool:
    """Whether `raw` may hold base64 cut into chunks (`asciigates.B64_CHUNKS`). The bit needs the raw text's case:
    for other text `gates` are the folded view's, so the raw text is read again, only when it has a digit (three
    chunks of base64 without one are rare: about 0.2 % of 36 random characters)."""
    if gates is not None and raw.isascii():
        return bool(gates & G.B64_CHUNKS)
    if gates is not None and not gates & G.DIGIT:
        return False
    if not _UNICODE_BLANK_CHARS.isdisjoint(odd if odd is not None else odd_chars(raw)):
        raw = raw.translate(_UNICODE_BLANKS)  # (str.translate with a dict: ~0.1 ms per KB, so only when needed)
    elif bits is not None:  # the normaliser's bits of this very text (`Normalized.bits`)
        return bool(bits & G.B64_CHUNKS)
    return bool(G.gates_of(raw.encode("ascii", "replace")) & G.B64_CHUNKS)


# chunks may be joined by no-break, thin or ideographic spaces as well
_UNICODE_BLANKS = {c: " " for c in (0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)}
_UNICODE_BLANK_CHARS = frozenset(map(chr, _UNICODE_BLANKS))
_B64_CHUNK = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_B64_MARK = re.compile(r"[0-9+/=A-Z]")  # searched from a token's second character
_NON_BLANK = re.compile(r"[^ \t\n\r\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def _b64_chunk_runs(raw: str, min_chars: int) -> list[tuple[str, int, int]]:
    """(decoded, start, end) of each run of base64 chunks that reads as text: whitespace-separated tokens of one
    length (4+) in a row, the last possibly shorter (the remainder, with its padding), joined and decoded."""
    toks = [m.span() for m in _NON_BLANK.finditer(raw)]
    sizes = [e - s for s, e in toks]
    checked: list[bool | None] = [None] * len(toks)

    def ok(k: int) -> bool:  # the token is all base64 characters (asked only where a run could decode)
        c = checked[k]
        if c is None:
            c = checked[k] = _B64_CHUNK.fullmatch(raw, *toks[k]) is not None
        return c

    out: list[tuple[str, int, int]] = []
    i, n = 0, len(toks)
    while i < n:
        size = sizes[i]
        if size < 4:
            i += 1
            continue
        # the stretch of tokens of this size from i, and the shorter token after it: if all of them joined are too
        # short to decode, or the stretch is one token with no remainder, no run that starts in it can decode (a
        # later start has fewer tokens), so it is passed whole: prose has many same-length words in a row, and
        # reading each as a possible run cost ~1 ms per 2 KB
        js = i + 1
        while js < n and sizes[js] == size:
            js += 1
        rest = sizes[js] if js < n and sizes[js] < size else 0
        if size * (js - i) + rest < min_chars or (js == i + 1 and not rest):
            i = js
            continue
        if not ok(i):
            i += 1
            continue
        j = i + 1
        while j < n and sizes[j] == size and ok(j):
            j += 1
        # the payload starts at the run's first token or, after words of the chunks' length ("what does this aWdu
        # b3Jl"), at its first token with a digit, "+", "/" or an inner capital; it ends with a shorter remainder or
        # without one (the next word is not the payload's)
        tail = [j + 1] if j < n and sizes[j] < size and ok(j) else []
        marked = next((k for k in range(i, j) if _B64_MARK.search(raw, toks[k][0] + 1, toks[k][1])
                       or raw[toks[k][0]].isdigit()), i)
        found = next(((start, end, d) for start in dict.fromkeys((i, marked)) for end in tail + [j] if end - start >= 2
                      and (d := _b64("".join(raw[s:e] for s, e in toks[start:end]), min_chars))), None)
        if found:
            start, end, d = found
            out.append((d, toks[start][0], toks[end - 1][1]))
            i = end
        else:
            i = max(j, i + 1)  # at most four tries per run: linear in the tokens, however many fail to decode
    return out


def _long_tokens(text: str, n: int) -> list[list[int]]:
    """[start, end] of the tokens of `n`+ characters between `str.split()`'s whitespace, for text that is not
    ASCII: its other whitespace made a space and every other character a "?" (one per code point, so positions
    hold), then the compiled pass ASCII text gets (a Python loop over `str.split()`'s ~350 tokens per 2 KB cost
    ~25 us)."""
    if not _SPLIT_SPACE_CHARS.isdisjoint(odd_chars(text)):
        text = text.translate(_SPLIT_SPACES)
    return G.long_runs(np.frombuffer(text.encode("ascii", "replace"), np.uint8), n).tolist()


_SPLIT_SPACES = {c: " " for c in range(0x80, 0x3001) if chr(c).isspace()}  # what else str.split() splits on
_SPLIT_SPACE_CHARS = frozenset(map(chr, _SPLIT_SPACES))


def _decode_into(
    raw: str, view: Variant, variants: list[Variant], evidence: list[Evidence], cfg: NormalizeConfig,
    depth: int, budget: list[int], gates: int | None = None, odd: frozenset[str] | None = None,
    bits: int | None = None, disguised: list[int] | None = None,
) -> None:
    """Find encoded runs in `raw` and decode them. `view` is the folded view of `raw`: at depth 1 `raw` is the
    original window (positions are original positions); deeper, `raw` is a payload mapped to one fixed span.
    `disguised`: the disguised-word counts of `view.text`, if the caller has them."""

    def span_of(s: int, e: int) -> tuple[int, int]:
        if view.fixed is not None:
            return view.fixed
        # a rot13 / reversed view maps each character (its positions are not the original's); depth 1: identity
        return view.span(s, e) if view.starts is not None and depth > 1 else (s + view.offset, e + view.offset)

    # base64 cut into chunks by whitespace is joined and decoded whole; its chunks are then not decoded one by one
    covered: list[tuple[int, int]] = []
    if (gates is None or gates & (G.B64_CHUNKS | G.DIGIT)) and _chunk_gate(gates, raw, odd, bits):  # (most: no call)
        for d, s0, e0 in _b64_chunk_runs(raw, cfg.min_base64_chars):
            _add_decoded("base64", d, span_of(s0, e0), variants, evidence, cfg, depth, budget)
            covered.append((s0, e0))
    long_run = _gate(gates, G.ENCODED, _ENCODED_RUN, raw)
    # a base64 run lies inside one whitespace-free token: only tokens of 16+ characters are searched (a regex pass
    # over the whole text re-reads every word, ~100 us per 2 KB)
    tokens: list = []
    if long_run:  # ASCII: one compiled pass; other text: str.split
        tokens = G.long_runs(np.frombuffer(raw.encode("ascii"), np.uint8), 16).tolist() if raw.isascii() \
            else _long_tokens(raw, 16)
    for s0, e0 in tokens:
        if covered and any(a <= s0 < b for a, b in covered):
            continue
        for m in _B64.finditer(raw, s0, e0):
            if len(m.group()) >= cfg.min_base64_chars:
                if d := _b64(m.group()):
                    _add_decoded("base64", d, span_of(*m.span()), variants, evidence, cfg, depth, budget)
                elif _B32.fullmatch(m.group()) and (d := _b32(m.group())):
                    _add_decoded("base32", d, span_of(*m.span()), variants, evidence, cfg, depth, budget)
    # Ascii85 has no run of the base64 alphabet to pass the gate above: its tokens are read in their own pass, where
    # the gates hold a token of 20+ characters (of the raw text, or a superset: its fold, whose tokens hold the raw
    # tokens without control characters, and a token with one is no Ascii85)
    a85_tokens = tokens if long_run else G.long_runs(np.frombuffer(raw.encode("ascii"), np.uint8), 20).tolist() \
        if raw.isascii() and (gates is None or gates & G.LONG_TOKEN) else []
    for s0, e0 in a85_tokens:
        if e0 - s0 >= 20 and not _B64_CHARS.issuperset(raw[s0:e0]) and (d := _a85(raw[s0:e0])):
            _add_decoded("ascii85", d, span_of(s0, e0), variants, evidence, cfg, depth, budget)
    for kind, d, s0, e0 in _symbol_codes(raw, view.text, gates, odd):
        _add_decoded(kind, d, span_of(s0, e0), variants, evidence, cfg, depth, budget)
    # hex pairs may be spaced ("de ad be ef ..."): the whole text when it has escapes or a spaced run, else the
    # long tokens
    hex_spans = [(0, len(raw))] if ("\\" in raw and "\\x" in raw) or _gate(gates, G.HEX_SPACED, _HEX_SPACED, raw) \
        else tokens
    for s0, e0 in hex_spans:
        for m in _HEX.finditer(raw, s0, e0):
            run = m.group().strip()
            if len(run) >= cfg.min_hex_chars and (d := _hex(run)):
                _add_decoded("hex", d, span_of(*m.span()), variants, evidence, cfg, depth, budget)
    if "=" in raw and (d := _quoted_printable(raw)) and d != raw:
        _add_decoded("quoted_printable", d, span_of(0, len(raw)), variants, evidence, cfg, depth, budget)
    if (gates is None or gates & G.DIGIT) and "begin " in raw:  # "begin 644 ...": no digit, no block
        for m in _UU_BLOCK.finditer(raw):
            if d := _uudecode(m.group(1)):
                _add_decoded("uuencode", d, span_of(*m.span()), variants, evidence, cfg, depth, budget)
    if "\\" in raw:
        for m in _OCTAL.finditer(raw):
            if d := _octal(m.group()):
                _add_decoded("octal", d, span_of(*m.span()), variants, evidence, cfg, depth, budget)
    if "%" in raw:
        for m in _URLENC.finditer(raw):
            if d := _url(m.group()):
                # a link's query string is percent-encoded as a matter of course: read, but no obfuscation evidence
                _add_decoded("url", d, span_of(*m.span()), variants, evidence, cfg, depth, budget,
                             encoded="://" not in m.group())
    # tag characters are outside the basic plane: without a surrogate pair in UTF-16 there are none (one C pass)
    if depth == 1 and not raw.isascii() and len(raw.encode("utf-16-le", "surrogatepass")) > 2 * len(raw):
        for m in _TAG_RUN.finditer(raw):
            if m.start() > 0 and raw[m.start() - 1] == "\U0001f3f4":
                continue  # emoji subdivision flags legitimately use tag characters
            d = "".join(chr(ord(c) - 0xE0000) for c in m.group())
            if len(d) >= 4:
                _add_decoded("unicode_tags", d, span_of(*m.span()), variants, evidence, cfg, depth, budget)
    # rot13 / reversed: only where such words cluster and outnumber plain English words
    folded = view.text
    common, hits_by_kind, split, nato = _word_hits(folded, disguised)
    if split and depth == 1 and len(variants) < cfg.max_variants:
        variants.append(_rejoin(view))
    if depth == 1 and (d_span := _assembled(raw)):
        _add_decoded("assembled", d_span[0], span_of(d_span[1], d_span[2]), variants, evidence, cfg, depth, budget,
                     encoded=False)
    if (n_ay := folded.count("ay")) >= 4 and 5 * n_ay >= folded.count(" ") and (d := _pig_latin(folded)):
        _add_decoded("pig_latin", d, span_of(0, len(raw)) if depth > 1 else view.span(0, len(folded)), variants,
                     evidence, cfg, depth, budget)
    if nato:
        for m in _NATO_RUN.finditer(folded):
            d = _nato(m.group())
            if len(d.split()) >= 2 and _looks_like_text(d):  # a sentence spelled out, not a name
                _add_decoded("nato", d, view.fixed or view.span(*m.span()), variants, evidence, cfg, depth, budget)
    for kind, hits in hits_by_kind.items():
        if len(hits) < 3 or view.kind == _UNDOES.get(kind):
            continue
        dense = len(hits) >= 0.5 * len(common)  # the cipher's words are much of the text
        done = (0, 0)  # the lines last decoded: clusters on one line are one view of it, not one each (a 4 KB line
        # of cipher words broken by plain ones made 15 copies of itself, each scanned by every signal: 90 ms)
        for s, e in _cluster(hits):
            # or they outnumber plain words twice where they cluster (cipher text behind a plain question)
            if not dense and sum(1 for a, _ in hits if s <= a < e) < 2 * (bisect.bisect_left(common, e)
                                                                        - bisect.bisect_left(common, s)):
                continue
            s, e = _expand_line(folded, s, e)
            if done[0] <= s and e <= done[1]:
                continue
            done = (s, e)
            seg = folded[s:e]
            dec = seg.translate(_CIPHERS[kind]) if kind != "reversed" else seg[::-1]
            mapped = None
            if view.fixed is None:
                mapped = Variant(kind, "", *view.char_spans(s, e, reverse=kind == "reversed"), depth=depth)
            _add_decoded(kind, dec, view.fixed or view.span(s, e), variants, evidence, cfg, depth, budget,
                         mapped)
