"""PII and secret detection with validators, and redaction.

Each entity is a candidate regex plus a validator: payment cards pass Luhn and a known issuer prefix, IBANs pass
ISO 13616 mod-97 with the country's length, US SSNs obey the SSA's allocation rules, IP addresses parse with
`ipaddress`, JWTs carry a JSON header with "alg", phone numbers have 10-15 digits. A regex alone would flag order
numbers and version strings; the validators are what keeps benign traffic quiet.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aimds_ray.core import asciigates as G
from aimds_ray.core import literal_pass
from aimds_ray.core.multimatch import Automaton
from aimds_ray.core.normalize import CASE_FOLDS_TO_ASCII, is_invisible, odd_chars

ENTITY_TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET")


@dataclass(frozen=True, slots=True)
class PiiMatch:
    entity: str  # one of ENTITY_TYPES
    start: int
    end: int
    value: str
    kind: str  # finer type: "visa", "aws_access_key", "ipv6", ...


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_PREFIX = (
    ("visa", re.compile(r"4\d{12}(?:\d{3}){0,2}$")),
    ("mastercard", re.compile(r"(?:5[1-5]\d{2}|222[1-9]|22[3-9]\d|2[3-6]\d{2}|27[01]\d|2720)\d{12}$")),
    ("amex", re.compile(r"3[47]\d{13}$")),
    ("discover", re.compile(r"(?:6011|65\d{2}|64[4-9]\d)\d{12,15}$")),
    ("jcb", re.compile(r"35(?:2[89]|[3-8]\d)\d{12,15}$")),
    ("diners", re.compile(r"3(?:0[0-5]|[68]\d)\d{11,13}$")),
    ("unionpay", re.compile(r"62\d{14,17}$")),
)


def card_kind(digits: str) -> str | None:
    """Issuer of a Luhn-valid card number, or None."""
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits) or len(set(digits)) < 2:
        return None
    for name, rx in _CARD_PREFIX:
        if rx.match(digits):
            return name
    return None


# ISO 13616 lengths per country (the common ones; an unknown country code fails validation).
_IBAN_LEN = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24,
    "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    if len(s) < 15 or _IBAN_LEN.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in moved)
    return int(num) % 97 == 1


def ssn_ok(ssn: str) -> bool:
    d = re.sub(r"\D", "", ssn)
    if len(d) != 9:
        return False
    area, group, serial = int(d[:3]), int(d[3:5]), int(d[5:])
    if area == 0 or area == 666 or area >= 900 or group == 0 or serial == 0:
        return False
    return d not in ("078051120", "219099999", "123456789")  # famous advertising / test numbers


def _jwt_ok(tok: str) -> bool:
    head = tok.split(".", 1)[0]
    try:
        data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "alg" in data


def _ip_ok(s: str) -> bool:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return False
    if ip.version == 4:
        # 1.2.3.4-like version strings are common in text; require a dotted quad that is not a version number
        return not ip.is_unspecified
    return not ip.is_unspecified and ":" in s and s.count(":") >= 2


# (entity, kind, regex, validator or None)
_Rule = tuple[str, str, re.Pattern[str], Callable[[str], bool] | None]

_RULES: list[_Rule] = [
    ("EMAIL", "email", re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"),
     None),
    ("SECRET", "private_key", re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]{16,}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"), None),
    ("SECRET", "jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), _jwt_ok),
    ("SECRET", "aws_access_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z2-7]{16}\b"), None),
    ("SECRET", "aws_secret_key", re.compile(
        r"(?i)aws.{0,20}?(?:secret|private).{0,20}?['\"=:\s]([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"), None),
    ("SECRET", "github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"),
     None),
    ("SECRET", "gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), None),
    ("SECRET", "slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), None),
    ("SECRET", "stripe_key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b"), None),
    ("SECRET", "google_api_key", re.compile(r"\bAIza[A-Za-z0-9_-]{35}\b"), None),
    ("SECRET", "openai_key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}\b"), None),
    ("SECRET", "generic_secret", re.compile(
        r"(?i)\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret|password)"
        r"\s*[:=]\s*['\"]?([A-Za-z0-9_\-/+=.]{16,})"), None),
    ("CREDIT_CARD", "card", re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"), None),
    ("IBAN", "iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), iban_ok),
    ("US_SSN", "ssn", re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), ssn_ok),
    ("IP_ADDRESS", "ipv4", re.compile(
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"),
     _ip_ok),
    ("IP_ADDRESS", "ipv6", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::?[0-9A-Fa-f]{1,4}){1,7}(?![\w:])"
                                      r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}:(?![\w:])"), _ip_ok),
    ("PHONE", "phone", re.compile(
        r"(?<![\w+.-])(?<!\d )(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?![\w])(?![ .-]?\d)"
        r"|(?<![\w])\+\d{10,14}(?!\w)"), None),
]

_RULE_BY_KIND = {r[1]: r for r in _RULES}
# Substrings one of which must occur for a rule's regex to match. Matched case-insensitively (a superset for
# the case-sensitive rules), all in one automaton pass over the text instead of one search per substring.
_HINTS: dict[str, tuple[str, ...]] = {
    "email": ("@",),
    "private_key": ("private key",),
    "jwt": ("eyj",),
    "aws_secret_key": ("aws",),
    "github_token": ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"),
    "gitlab_token": ("glpat-",),
    "slack_token": ("xox",),
    "stripe_key": ("k_live_", "k_test_"),
    "google_api_key": ("aiza",),
    "openai_key": ("sk-",),
    "aws_access_key": ("akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa"),
    "generic_secret": ("key", "token", "secret", "password"),
}
_HINT_KINDS = tuple(_HINTS)
_HINT_LITERALS = [h for hs in _HINTS.values() for h in hs]
_HINT_GROUP = np.array([i for i, hs in enumerate(_HINTS.values()) for _ in hs], dtype=np.int64)  # literal -> kind
_HINT_AC = Automaton.build(_HINT_LITERALS, [0] * len(_HINT_LITERALS), casefold=True)
# the same literals in the normaliser's shared pass over the main view: for printable ASCII (the main view is the
# text lower-cased) its counts are this automaton's, so the PII signal passes them as `hints`
HINT_SET = "pii.hints"
HINT_LITERAL_SET = literal_pass.register(HINT_SET, _HINT_LITERALS, [0] * len(_HINT_LITERALS), _HINT_GROUP.tolist(),
                                        len(_HINT_KINDS))
_DIGIT_RUN = re.compile(r"\d[\d .:()+-]{6,}")


_DIGITS = re.compile(r"\d")


def _gates_see(odd: frozenset[str]) -> bool:
    """Whether a PII gate can see any of a text's distinct non-ASCII characters (`odd_chars`, which the normaliser
    has computed): other scripts' digits (\\d), Unicode blanks (\\s), the four letters a case-blind [a-z] matches
    ("\\u212aEY"). Text without them has the `asciigates` PII bits of its ASCII characters. (A regex over every
    character of a text in another script cost ~70 us per 2 KB.)"""
    return any(c > "\x7f" and (c.isdecimal() or c.isspace() or c in CASE_FOLDS_TO_ASCII) for c in odd)


_NEEDS_RUNS = frozenset({"CREDIT_CARD", "US_SSN", "PHONE"})
_NEEDS_DIGITS = frozenset({"IP_ADDRESS", "IBAN"})


def _hex_colon(t: str) -> bool:
    """A hex digit, a colon, then a hex digit or a second colon: in every IPv6 match, rare in prose (a text's few
    colons are looked at one by one)."""
    i = t.find(":")
    while i >= 0:
        if 0 < i < len(t) - 1 and t[i - 1] in _HEX_CHARS and (t[i + 1] in _HEX_CHARS or t[i + 1] == ":"):
            return True
        i = t.find(":", i + 1)
    return False


_HEX_CHARS = frozenset("0123456789abcdefABCDEF")
# Cheap necessary conditions of costly rules, checked after a rule's digit or hint condition: most texts with a digit
# ("10am", "#123") or a hint word ("password", "key") hold none of them, and the full IP/IBAN regexes cost ~18 us per
# 200 characters, the IPv6 and case-insensitive generic-secret ones ~80-110 us per 2 KB. On ASCII text each is one bit
# of the `asciigates` pass (together with "has a digit" and "has a digit run"); these regexes serve other scripts.
_RULE_GATES: dict[str, tuple[int, Callable[[str], bool]]] = {
    "ipv4": (G.DOT_DIGIT, lambda t, _rx=re.compile(r"\d\.\d"): "." in t and _rx.search(t) is not None),
    "ipv6": (G.HEX_COLON, _hex_colon),
    # a secret key is a run of 40 base64 characters: inside an ENCODED run (16+ of [A-Za-z0-9+/=_-])
    "aws_secret_key": (G.ENCODED, lambda t, _rx=re.compile(r"(?i)[a-z0-9/+]{40}"): _rx.search(t) is not None),
    # case-sensitive prefixes (the hint automaton matches any case: "Asia", "aida"); no bit, always this test
    "aws_access_key": (0, lambda t: any(p in t for p in ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA",
                                                           "AIPA"))),
    "iban": (G.IBAN_HEAD, lambda t, _rx=re.compile(r"[A-Z]{2}\d\d"): _rx.search(t) is not None),
    "generic_secret": (G.SECRET_ASSIGN, lambda t, _rx=re.compile(r"(?:key|token|secret|password)\s*[:=]"):
                       _rx.search(t.lower()) is not None),
}


def _gated(kind: str, text: str, gates: int | None) -> bool:
    if kind not in _RULE_GATES:
        return True
    bit, test = _RULE_GATES[kind]
    return bool(gates & bit) if bit and gates is not None else test(text)


@lru_cache(maxsize=16)
def _plan(wanted: frozenset[str]) -> tuple[list[_Rule], list[tuple[_Rule, int | None]], list[_Rule]]:
    """The wanted rules in order, split by what must hold before their regex can match: (needs a digit run,
    gated by hint substrings or nothing, needs a digit). Decided once per entity set, not per text."""
    runs, hinted, digits = [], [], []
    for rule in _RULES:
        entity, kind = rule[0], rule[1]
        if entity not in wanted:
            continue
        if entity in _NEEDS_RUNS:
            runs.append(rule)
        elif entity in _NEEDS_DIGITS:
            digits.append(rule)
        else:
            hinted.append((rule, _HINT_KINDS.index(kind) if kind in _HINTS else None))
    return runs, hinted, digits


# Where a rule can match at all, so its regex is searched there instead of over the whole text (the digit rules'
# regexes open with lookbehinds and try every position: ~90-130 us per 2 KB each). Lookbehinds still see the text
# before a window (`pos` does not hide it); each window's end leaves the one character a lookahead reads.
_RUN_KINDS = frozenset({"card", "ssn", "phone", "ipv4"})  # every match is digits and [ .()+-] with a digit run
_DOMAIN_RUN = re.compile(r"[A-Za-z0-9.-]*")
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")


def _run_windows(text: str) -> list[tuple[int, int]]:
    """The maximal runs of [\\d .:()+-] holding a digit run (+1 character for lookaheads): every card, SSN, phone
    and IPv4 match is inside one, as its characters are all in the run class and it holds a digit run itself."""
    out = []
    for m in _DIGIT_RUN.finditer(text):  # starts at the run's first digit with six run characters after it
        s = m.start()
        while s > 0 and (text[s - 1] in " .:()+-" or text[s - 1].isdecimal()):  # back to the run's start
            s -= 1
        out.append((s, min(len(text), m.end() + 1)))  # greedy: m ends where the run does
    return out


def _email_iter(rx: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """`rx.finditer(text)` for the email rule, searched around each "@": a match holds exactly one "@", starts inside
    the run of local-part characters before it (at most 64 back) and ends inside the domain-character run after it,
    so a search from that run's start to one past the domain run finds the leftmost match of this "@" or proves
    there is none."""
    pos, n = 0, len(text)
    at = text.find("@")
    while at >= 0:
        start, low = at, max(pos, at - 64)
        while start > low and text[start - 1] in _LOCAL_CHARS:  # the local part ends at the "@": its run back
            start -= 1
        if start < at:  # else no local part: no match holds this "@" (a text of "@"s costs no regex)
            end = _DOMAIN_RUN.match(text, at + 1).end()  # type: ignore[union-attr]  # "*" always matches
            m = rx.search(text, start, min(n, end + 1))
            if m is not None:
                yield m
                pos = m.end()
        at = text.find("@", max(pos, at + 1))


_HEX_OR_COLON = frozenset("0123456789abcdefABCDEF:")


def _colon_windows(text: str) -> list[tuple[int, int]]:
    """The maximal runs of [0-9A-Fa-f:] with two colons or more (+1 character for the lookahead): every IPv6 match
    is one of hex digits and colons with at least two colons. Found from the colons, few in most text."""
    out = []
    n = len(text)
    i = text.find(":")
    while i >= 0:
        s = i
        while s > 0 and text[s - 1] in _HEX_OR_COLON:
            s -= 1
        e = i + 1
        while e < n and text[e] in _HEX_OR_COLON:
            e += 1
        if text.count(":", s, e) >= 2:
            out.append((s, min(n, e + 1)))
        i = text.find(":", e)
    return out


def _finditer(kind: str, rx: re.Pattern[str], text: str, runs: list[tuple[int, int]]) -> Iterable[re.Match[str]]:
    if kind == "email":
        return _email_iter(rx, text)
    if kind == "ipv6":  # the regex opens with a lookbehind and tries every position: ~120 us per 2 KB
        return (m for s, e in _colon_windows(text) for m in rx.finditer(text, s, e))
    if kind in _RUN_KINDS:
        return (m for s, e in runs for m in rx.finditer(text, s, e))
    return rx.finditer(text)


def _card_in_run(value: str) -> tuple[int, int, str] | None:
    """(start, end, issuer) of the card number in a run of digit groups: the whole run, or else the longest run of
    whole groups that is one ("4111 1111 1111 1111 123" with its CVV, "qty 2 4111 1111 1111 1111"). An unbroken run
    of digits is taken whole or not at all: where a number inside it would start is anyone's guess."""
    ck = card_kind(re.sub(r"\D", "", value))
    if ck is not None:
        return 0, len(value), ck
    groups = [m.span() for m in re.finditer(r"\d+", value)]
    if len(groups) > 8:  # card formats have at most five groups (and a CVV or a number beside them): not a card
        return None
    best: tuple[int, int, str] | None = None
    for i in range(len(groups)):
        n = 0
        for j in range(i, len(groups)):
            n += groups[j][1] - groups[j][0]
            if n > 19:
                break
            a, b = groups[i][0], groups[j][1]
            if n < 13 or (i, j) == (0, len(groups) - 1) or (best is not None and b - a <= best[1] - best[0]):
                continue
            ck = card_kind(re.sub(r"\D", "", value[a:b]))
            if ck is not None:
                best = (a, b, ck)
    return best


# what `deobfuscated` undoes: format and control characters (category Cf / Cc, the common ranges), default-ignorable
# fillers, fullwidth ASCII and mathematical digits. Asked of a window's distinct non-ASCII characters (`odd_chars`,
# which the normaliser has computed), not searched for through the text (~60 us per 2 KB of another script)
_HIDER_CHARS = frozenset(chr(c) for a, b in (
    (0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x34F, 0x34F), (0x61C, 0x61C),
    (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFEFF, 0xFEFF),
    (0xFF01, 0xFF5E), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x1D7CE, 0x1D7FF), (0xE0000, 0xE007F)) for c in range(a, b + 1))


_READ_AS: dict[str, str] = {}  # a character -> what PII rules read ("" when removed); memoised, at most 65,536


def _read_as(ch: str) -> str:
    rep = _READ_AS.get(ch)
    if rep is None:
        if is_invisible(ch):
            rep = ""
        else:
            rep = unicodedata.normalize("NFKC", ch)
            rep = rep if len(rep) == 1 and rep.isascii() else ch
        if len(_READ_AS) < 65536:
            _READ_AS[ch] = rep
    return rep


def deobfuscated(text: str) -> tuple[str, list[int]] | None:
    """`text` as PII rules must read it when it hides a value from them: invisible and format characters removed
    (zero-width spaces, soft hyphens inside a card number or a key), fullwidth and other compatibility forms of
    ASCII read as ASCII, case kept (key formats are case-sensitive). Returns (text, original index of each
    character), or None when there is nothing to undo. Each distinct character is judged once and the text is
    rewritten as an array of code points (a loop over every non-ASCII character cost ~2 us each: 5 ms for 2 KB of
    Chinese, whose fullwidth commas pass the gate; `str.translate` with a table, ~0.45 us each)."""
    if text.isascii():
        return None
    odd = odd_chars(text)
    if _HIDER_CHARS.isdisjoint(odd):
        return None
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    out = codes
    removed: list[int] = []
    for ch in odd:
        rep = _read_as(ch)
        if not rep:
            removed.append(ord(ch))
        elif rep != ch:
            if out is codes:
                out = codes.copy()
            out[codes == ord(ch)] = ord(rep)
    if removed:
        keep = ~np.isin(codes, removed)
        return out[keep].tobytes().decode("utf-32-le", "surrogatepass"), np.flatnonzero(keep).tolist()
    return out.tobytes().decode("utf-32-le", "surrogatepass"), list(range(len(text)))


class DisjointSpans:
    """Spans that do not overlap, kept sorted: whether a new one is free is two neighbours found by bisection (a scan
    of them all made 16,000 e-mail addresses in 400 KB cost 6.5 s, and a 16 MB input hours)."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        ordered = sorted(spans)
        self.starts = [s for s, _ in ordered]
        self.ends = [e for _, e in ordered]

    def add_if_free(self, s: int, e: int) -> bool:
        """Add [s, e) unless it overlaps a span already taken; whether it was added."""
        i = bisect.bisect_right(self.starts, s)
        if (i and self.ends[i - 1] > s) or (i < len(self.starts) and self.starts[i] < e):
            return False
        self.starts.insert(i, s)
        self.ends.insert(i, e)
        return True


def find_pii(text: str, entities: Iterable[str] = ENTITY_TYPES, bits: int | None = None,
             hints: list[int] | None = None) -> list[PiiMatch]:
    """All validated PII / secret matches, non-overlapping, in text order (earlier rules win overlaps).

    `bits`: the `asciigates` bits of `text` with each non-ASCII character read as "?", if the caller has them (the
    normaliser does: `Normalized.bits`); computed here otherwise. They stand for the PII regexes where they are exact:
    ASCII text, or text none of whose other characters a PII gate can see. `hints`: the `HINT_SET` counts of
    `text` lower-cased, if the caller has them (`Normalized.counts` of printable ASCII)."""
    run_rules, hinted, digit_rules = _plan(entities if isinstance(entities, frozenset) else frozenset(entities))
    # hint literals found per rule kind
    present = hints if hints is not None else _HINT_AC.group_counts(text, _HINT_GROUP, len(_HINT_KINDS))
    gates = None
    if text.isascii() or not _gates_see(odd_chars(text)):  # other characters read as "?" change no gate: same bits
        gates = bits if bits is not None else G.gates_of(text.encode("ascii", "replace"))
    if gates is not None:
        has_digits, has_runs = bool(gates & G.DIGIT), bool(gates & G.DIGIT_RUN)
    else:
        has_digits = _DIGITS.search(text) is not None
        has_runs = has_digits and _DIGIT_RUN.search(text) is not None
    active = {id(rule) for rule, k in hinted if (k is None or present[k]) and _gated(rule[1], text, gates)}
    if has_runs:
        active.update(id(r) for r in run_rules)
    if has_digits:
        active.update(id(r) for r in digit_rules if _gated(r[1], text, gates))
    if not active:
        return []
    found: list[PiiMatch] = []
    taken = DisjointSpans()
    run_spans = _run_windows(text) if has_runs else []
    for entity, kind, rx, validator in _RULES:  # rule order decides overlaps
        if id(_RULE_BY_KIND[kind]) not in active:
            continue
        for m in _finditer(kind, rx, text, run_spans):
            s, e = (m.span(1) if rx.groups else m.span())
            value = text[s:e]
            if validator is not None and not validator(value):
                continue
            if entity == "CREDIT_CARD":
                sub = _card_in_run(value)
                if sub is None:
                    continue
                s, e = s + sub[0], s + sub[1]
                value = text[s:e]
                kind_out = sub[2]
            elif entity == "PHONE":
                nd = sum(c.isdigit() for c in value)
                if not 10 <= nd <= 15:
                    continue
                kind_out = kind
            else:
                kind_out = kind
            if taken.add_if_free(s, e):
                found.append(PiiMatch(entity, s, e, value, kind_out))
    found.sort(key=lambda p: p.start)
    return found


def redact(text: str, matches: list[PiiMatch], mode: str = "placeholder") -> str:
    """Replace each match: mask (`*` per char), placeholder (`<EMAIL_1>`, same value -> same number) or hash."""
    if not matches:
        return text
    out: list[str] = []
    pos = 0
    numbers: dict[tuple[str, str], int] = {}
    counters: dict[str, int] = {}
    for m in matches:
        out.append(text[pos : m.start])
        if mode == "mask":
            out.append("*" * (m.end - m.start))
        elif mode == "hash":
            digest = hashlib.sha256(m.value.encode("utf-8")).hexdigest()[:12]
            out.append(f"<{m.entity}:{digest}>")
        else:
            key = (m.entity, m.value)
            if key not in numbers:
                counters[m.entity] = counters.get(m.entity, 0) + 1
                numbers[key] = counters[m.entity]
            out.append(f"<{m.entity}_{numbers[key]}>")
        pos = m.end
    out.append(text[pos:])
    return "".join(out)
