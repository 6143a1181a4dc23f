"""One pass over ASCII input that says which normalisation and PII scans can find anything at all.

Most traffic is plain ASCII prose with no control characters, leet spellings, spaced-out letters or encoded
runs. Asking each regex ("is there a base64 run?", "are there spaced letters?") costs a full regex pass per
question; this numba kernel answers all of them in one pass over the bytes, and the regexes then run only on
the few texts a gate lets through. The gates are exact for CONTROL, LEET, LEET_WORD, ENCODED, HEX_SPACED and the PII
gates (the regexes they stand for are named below, and the tests check equality against them) and a superset for
SPACED, SHORT_RUN and CLOSERS (the floods of `repetition`: a token flood needs a run of short tokens, a delimiter
flood a run of closers).
"""

from __future__ import annotations

import numpy as np
from numba import njit

CONTROL = 1  # a byte outside printable ASCII and \t \n \r           (= normalize._NON_ASCII_OR_CTRL)
LEET = 2  # a letter next to a leet digit/symbol                    (= normalize._LEET_HINT on lowered text)
SPACED = 4  # four single letters joined by 1-2 separators          (superset of normalize._SPACED)
ENCODED = 8  # a run of 16+ base64/hex alphabet characters          (= normalize._ENCODED_RUN)
DIGIT = 16  # an ASCII digit                                         (= normalize._DIGIT on ASCII text)
SHORT_RUN = 32  # SHORT_RUN_TOKENS whitespace-separated tokens of <= 4 bytes in a row (superset of a token flood)
SHORT_RUN_TOKENS = 16
CLOSERS = 64  # CLOSER_RUN closing delimiters ) ] } > " ' ` in a row, whitespace between them allowed (superset)
CLOSER_RUN = 16
HEX_SPACED = 256  # eight hex pairs joined by spaces or colons             (= normalize._HEX_SPACED)
LEET_WORD = 128  # a leet digit/symbol inside a word or before two letters   (= normalize._LEET_WORD on lowered text)
# PII rule gates (`pii._RULE_GATES` and the digit-run condition): each is the exact condition its regex stands for
DIGIT_RUN = 512  # a digit, then six of [\d .:()+-]                   (= pii._DIGIT_RUN)
DOT_DIGIT = 1024  # digit . digit                                      (= pii ipv4 gate)
IBAN_HEAD = 2048  # two capitals, two digits                             (= pii iban gate)
HEX_COLON = 4096  # hex digit, colon, hex digit or colon                 (= pii ipv6 gate)
SECRET_ASSIGN = 8192  # key|token|secret|password, blanks, then : or =   (= pii generic_secret gate, any case)


@njit(cache=True, inline="always")
def _letter(c: np.uint8) -> bool:
    return (97 <= c <= 122) or (65 <= c <= 90)


@njit(cache=True, inline="always")
def _leet_any(c: np.uint8) -> bool:  # [013457@$!|]
    return c == 48 or c == 49 or c == 51 or c == 52 or c == 53 or c == 55 or c == 64 or c == 36 or c == 33 or c == 124


@njit(cache=True, inline="always")
def _leet_lead(c: np.uint8) -> bool:  # [013457@$]
    return c == 48 or c == 49 or c == 51 or c == 52 or c == 53 or c == 55 or c == 64 or c == 36


@njit(cache=True, inline="always")
def _word_or_leet(c: np.uint8) -> bool:  # [\w@$!|] on ASCII
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57) or c == 95 or c == 64 or c == 36 or c == 33 \
        or c == 124


@njit(cache=True, inline="always")
def _hexd(c: np.uint8) -> bool:  # [0-9a-fA-F]
    return (48 <= c <= 57) or (97 <= c <= 102) or (65 <= c <= 70)


@njit(cache=True, inline="always")
def _sep(c: np.uint8) -> bool:  # [ .\-_*+|/]
    return c == 32 or c == 46 or c == 45 or c == 95 or c == 42 or c == 43 or c == 124 or c == 47


@njit(cache=True, inline="always")
def _b64(c: np.uint8) -> bool:  # [A-Za-z0-9+/=_\-]
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57) or c == 43 or c == 47 or c == 61 or c == 95 \
        or c == 45


@njit(cache=True, inline="always")
def _digit(c: np.uint8) -> bool:
    return 48 <= c <= 57


@njit(cache=True, inline="always")
def _run_char(c: np.uint8) -> bool:  # [\d .:()+-]
    return (48 <= c <= 57) or c == 32 or c == 46 or c == 58 or c == 40 or c == 41 or c == 43 or c == 45


@njit(cache=True, inline="always")
def _blank(c: np.uint8) -> bool:  # \s on ASCII (str patterns): \t \n \v \f \r, \x1c-\x1f, space
    return (9 <= c <= 13) or (28 <= c <= 32)


@njit(cache=True, inline="always")
def _ends_with(b: np.ndarray, j: int, word: np.ndarray) -> bool:
    """b[..j] ends with `word` (lower case), compared case-insensitively."""
    k = word.shape[0]
    if j + 1 < k:
        return False
    for t in range(k):
        c = b[j - k + 1 + t]
        if 65 <= c <= 90:
            c += 32
        if c != word[t]:
            return False
    return True


_KEY = np.frombuffer(b"key", dtype=np.uint8)
_TOKEN = np.frombuffer(b"token", dtype=np.uint8)
_SECRET = np.frombuffer(b"secret", dtype=np.uint8)
_PASSWORD = np.frombuffer(b"password", dtype=np.uint8)


@njit(cache=True)
def _secret_assign(b: np.ndarray, i: int) -> bool:
    """b[i] is ':' or '=' after blanks after key/token/secret/password."""
    j = i - 1
    while j >= 0 and _blank(b[j]):
        j -= 1
    return (_ends_with(b, j, _KEY) or _ends_with(b, j, _TOKEN) or _ends_with(b, j, _SECRET)
            or _ends_with(b, j, _PASSWORD))


@njit(cache=True)
def ascii_gates(b: np.ndarray) -> int:
    """Bit set of the flags above that hold for `b`."""
    n = b.shape[0]
    flags = 0
    run = 0
    chain = 0
    last = -10
    tok = 0  # length of the current token
    short = 0  # tokens of <= 4 bytes in a row
    closers = 0  # closing delimiters in a row (whitespace skipped)
    units = np.zeros(3, dtype=np.int64)  # "hh " / "hh:" units ending 3 apart, per position mod 3
    run_digit = -1  # first digit of the current run of [\d .:()+-], -1 if none
    for i in range(n):
        c = b[i]
        if _run_char(c):
            if run_digit < 0 and _digit(c):
                run_digit = i
            if run_digit >= 0 and i - run_digit >= 6:
                flags |= DIGIT_RUN
        else:
            run_digit = -1
        if i >= 2 and _digit(c) and b[i - 1] == 46 and _digit(b[i - 2]):
            flags |= DOT_DIGIT
        if i >= 3 and _digit(c) and _digit(b[i - 1]) and 65 <= b[i - 2] <= 90 and 65 <= b[i - 3] <= 90:
            flags |= IBAN_HEAD
        if c == 58 and 0 < i < n - 1 and _hexd(b[i - 1]) and (_hexd(b[i + 1]) or b[i + 1] == 58):
            flags |= HEX_COLON
        if (c == 58 or c == 61) and not flags & SECRET_ASSIGN and _secret_assign(b, i):
            flags |= SECRET_ASSIGN
        if i + 2 < n and _hexd(c) and _hexd(b[i + 1]) and (b[i + 2] == 32 or b[i + 2] == 58):
            units[i % 3] += 1
            if units[i % 3] >= 7 and i + 4 < n and _hexd(b[i + 3]) and _hexd(b[i + 4]):
                flags |= HEX_SPACED
        else:
            units[i % 3] = 0
        if c == 32 or c == 9 or c == 10 or c == 13:
            if tok > 0:
                short = short + 1 if tok <= 4 else 0
                if short >= SHORT_RUN_TOKENS:
                    flags |= SHORT_RUN
            tok = 0
        else:
            tok += 1
            if c == 41 or c == 93 or c == 125 or c == 62 or c == 34 or c == 39 or c == 96:
                closers += 1
                if closers >= CLOSER_RUN:
                    flags |= CLOSERS
            else:
                closers = 0
        if (c < 32 or c > 126) and c != 9 and c != 10 and c != 13:
            flags |= CONTROL
        if 48 <= c <= 57:
            flags |= DIGIT
        if _b64(c):
            run += 1
            if run >= 16:
                flags |= ENCODED
        else:
            run = 0
        if i + 1 < n:
            d = b[i + 1]
            if (_letter(c) and _leet_any(d)) or (_leet_lead(c) and _letter(d)):
                flags |= LEET
                if i + 2 < n and _letter(b[i + 2]) and (
                        (_letter(c) and _letter(b[i + 2]))  # "t3ll"
                        or (_letter(d) and not (i > 0 and _word_or_leet(b[i - 1])))):  # "4ll", "1gn0r3"
                    flags |= LEET_WORD
        if _letter(c) and not (i > 0 and _letter(b[i - 1])) and not (i + 1 < n and _letter(b[i + 1])):
            gap = i - last
            if (gap == 2 and _sep(b[i - 1])) or (gap == 3 and _sep(b[i - 1]) and _sep(b[i - 2])):
                chain += 1
            else:
                chain = 1
            last = i
            if chain >= 4:
                flags |= SPACED
    if 0 < tok <= 4 and short + 1 >= SHORT_RUN_TOKENS:
        flags |= SHORT_RUN
    return flags


def gates_of(raw_ascii: bytes) -> int:
    return ascii_gates(np.frombuffer(raw_ascii, dtype=np.uint8))
