"""One pass over ASCII input that says which normalisation and PII scans can find anything at all.

Most traffic is plain ASCII prose with no control characters, leet spellings, spaced-out letters or encoded
runs. Asking each regex ("is there a base64 run?", "are there spaced letters?") costs a full regex pass per
question; this numba kernel answers all of them in one pass over the bytes, and the regexes then run only on
the few texts a gate lets through. The gates are exact for CONTROL, LEET, LEET_WORD, ENCODED, HEX_SPACED, CAMEL and the PII
gates (the regexes they stand for are named below, and the tests check equality against them) and a superset for
SPACED, SHORT_RUN and CLOSERS (the floods of `repetition`: a token flood needs a run of short tokens, a delimiter
flood a run of closers).
"""

from __future__ import annotations

from collections.abc import Iterable

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
CAMEL = 16384  # two lower-capital-lower turns in one token ("IgnorePrevious"+"Instructions") (= normalize._CAMEL_HINT)
CODE_RUN = 32768  # a digit, then ten of [\d\s,;x]: a list of character codes   (= normalize._CODE_HINT)
# three whitespace-separated tokens in a row of 4+ base64 characters [A-Za-z0-9+/=_-], each with a digit, "+", "/",
# "=" or a capital after its first character: base64 cut into chunks ("aWdub3Jl IGFsbCBw ...")
B64_CHUNKS = 65536  # (= tests/test_asciigates._b64_chunks_ref)
B64_CHUNK_TOKENS = 3
ALPHA_RUN = 131072  # ALPHA_RUN_LETTERS letters in a row: words glued together   (= normalize._ALPHA_RUN)
ALPHA_RUN_LETTERS = 24
LONG_TOKEN = 262144  # a token of LONG_TOKEN_BYTES+ between str.split()'s whitespace   (= long_runs(b, 20) not empty)
LONG_TOKEN_BYTES = 20


# Byte classes: one table lookup per byte instead of chains of range tests (2 KB: 16 -> 12 us with the PII bits)
K_LETTER, K_DIGIT, K_HEX, K_SEP, K_B64, K_LEET_ANY, K_LEET_LEAD, K_WORD_OR_LEET = 1, 2, 4, 8, 16, 32, 64, 128
K_RUN, K_CLOSER, K_WS, K_CTRL, K_UPPER, K_CODE, K_B64MARK = 256, 512, 1024, 2048, 4096, 8192, 16384


def _class_table() -> np.ndarray:
    t = np.zeros(256, dtype=np.uint16)

    def mark(chars: Iterable[int], bit: int) -> None:
        for c in chars:
            t[c] |= bit

    letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    digits = b"0123456789"
    mark(letters, K_LETTER)
    mark(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", K_UPPER)
    mark(digits, K_DIGIT)
    mark(digits + b"abcdefABCDEF", K_HEX)
    mark(b" .,-_*+|/", K_SEP)  # spaced-out letters' separators
    mark(letters + digits + b"+/=_-", K_B64)
    mark(digits + b"+/=", K_B64MARK)
    mark(b"013457@$!|", K_LEET_ANY)
    mark(b"013457@$", K_LEET_LEAD)
    mark(letters + digits + b"_@$!|", K_WORD_OR_LEET)
    mark(digits + b" .:()+-", K_RUN)  # digit runs of phone / card / IP numbers
    mark(b")]}>\"'`", K_CLOSER)
    mark(b" \t\n\r", K_WS)
    mark(digits + b" ,;x\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f", K_CODE)  # character-code lists (\s on ASCII)
    mark([c for c in range(256) if (c < 32 or c > 126) and c not in (9, 10, 13)], K_CTRL)
    return t


_CLASS = _class_table()
_PLAIN = int(_CLASS[ord("g")]) | K_HEX  # a lower-case letter other than x, with the hex bit set (a-f have it)


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
def ascii_gates(b: np.ndarray, skip_words: bool = True) -> int:
    """Bit set of the flags above that hold for `b`. The classes of the bytes around position i (i-3 .. i+2) ride
    along in registers; past either end the class is 0, which fails every test as the bounds checks did.
    `skip_words=False` steps through every byte: the definition the skipping is tested against."""
    n = b.shape[0]
    cls = _CLASS
    flags = 0
    run = 0
    chain = 0
    last = -10
    tok = 0  # length of the current token
    short = 0  # tokens of <= 4 bytes in a row
    closers = 0  # closing delimiters in a row (whitespace skipped)
    u0 = u1 = u2 = 0  # "hh " / "hh:" units ending 3 apart, for positions i, i+1, i+2 (mod 3), rotated each step
    run_digit = -1  # first digit of the current run of [\d .:()+-], -1 if none
    code_digit = -1  # first digit of the current run of [\d ,;x], -1 if none
    turns = 0  # lower-capital-lower turns in the current token
    tok_b64 = 1  # the current token is all base64 characters so far
    tok_mark = 0  # ... and has a digit, "+", "/" or a capital after its first character
    chunks = 0  # such tokens of 4+ bytes in a row
    letters = 0  # letters in a row
    unsplit = 0  # bytes in a row without str.split()'s whitespace
    kp3 = kp2 = kp1 = 0
    p1 = 0  # byte i-1
    k = np.int64(cls[b[0]]) if n > 0 else 0
    kn1 = np.int64(cls[b[1]]) if n > 1 else 0
    n1 = np.int64(b[1]) if n > 1 else 0
    i = 0
    while i < n:
        if skip_words and (k | K_HEX) == _PLAIN and (kn1 | K_HEX) == _PLAIN and i + 2 < n \
                and (cls[b[i + 2]] | K_HEX) == _PLAIN:
            # inside a word of lower-case letters (not x): every step below only counts (the run, token, letter
            # and unbroken-bytes counters), clears the digit, code and closer runs and shifts the hex-pair units.
            # Skip to the last position whose next two bytes are still such letters, as that many steps would.
            j = i + 3
            while j < n and (cls[b[j]] | K_HEX) == _PLAIN:
                j += 1
            steps = j - 2 - i
            run_digit = code_digit = -1
            closers = 0
            tok += steps
            letters += steps
            unsplit += steps
            run += steps
            u0 = u1 = u2 = 0  # no hex pair here ends before a blank or colon (u1, u2 were 0 already: b[i..i+2])
            if unsplit >= LONG_TOKEN_BYTES:
                flags |= LONG_TOKEN
            if letters >= ALPHA_RUN_LETTERS:
                flags |= ALPHA_RUN
            if run >= 16:
                flags |= ENCODED
            i = j - 2  # >= 1: the registers are reloaded from the bytes around it
            p1 = np.int64(b[i - 1])
            kp1 = np.int64(cls[p1])
            kp2 = np.int64(cls[b[i - 2]]) if i >= 2 else 0
            kp3 = np.int64(cls[b[i - 3]]) if i >= 3 else 0
            k = np.int64(cls[b[i]])
            kn1 = np.int64(cls[b[i + 1]])
            n1 = np.int64(b[i + 1])
        c = np.int64(b[i])
        n2 = np.int64(b[i + 2]) if i + 2 < n else 0
        kn2 = np.int64(cls[n2]) if i + 2 < n else 0
        # the tests that flip at every word are written as arithmetic (selects, no branches to mispredict); the
        # branches left are taken rarely in text
        is_run = (k >> 8) & 1  # K_RUN
        run_digit = -1 if is_run == 0 else (i if run_digit < 0 and k & K_DIGIT else run_digit)
        if run_digit >= 0 and i - run_digit >= 6:
            flags |= DIGIT_RUN
        if k & K_CODE:
            if code_digit < 0 and k & K_DIGIT:
                code_digit = i
            elif code_digit >= 0 and i - code_digit >= 10:
                flags |= CODE_RUN
        else:
            code_digit = -1
        if k & K_DIGIT:
            flags |= DIGIT
            if p1 == 46 and kp2 & K_DIGIT:
                flags |= DOT_DIGIT
            if kp1 & K_DIGIT and kp2 & K_UPPER and kp3 & K_UPPER:
                flags |= IBAN_HEAD
        elif c == 58 or c == 61:
            if c == 58 and kp1 & K_HEX and (kn1 & K_HEX or n1 == 58):
                flags |= HEX_COLON
            if not flags & SECRET_ASSIGN and _secret_assign(b, i):
                flags |= SECRET_ASSIGN
        unit = ((k & kn1) >> 2) & 1 & ((n2 == 32) | (n2 == 58))  # K_HEX here and next, then space or colon
        u0 = (u0 + 1) * unit
        if u0 >= 7 and i + 4 < n and cls[b[i + 3]] & K_HEX and cls[b[i + 4]] & K_HEX:
            flags |= HEX_SPACED
        u0, u1, u2 = u1, u2, u0
        ws = (k >> 10) & 1  # K_WS
        ended = ws & (tok > 0)
        short = ((short + 1) * (tok <= 4)) if ended else short
        if ended:
            chunks = (chunks + 1) * (tok >= 4) * tok_b64 * tok_mark
            if chunks >= B64_CHUNK_TOKENS:
                flags |= B64_CHUNKS
            tok_b64, tok_mark = 1, 0
        elif not ws:
            tok_b64 &= (k >> 4) & 1  # K_B64
            tok_mark |= ((k >> 14) & 1) | (((k >> 12) & 1) & (tok > 0))  # K_B64MARK, or K_UPPER past the first
        tok = (tok + 1) * (1 - ws)
        closers = closers if ws else (closers + 1) * ((k >> 9) & 1)  # K_CLOSER
        if short >= SHORT_RUN_TOKENS:
            flags |= SHORT_RUN
        if closers >= CLOSER_RUN:
            flags |= CLOSERS
        if k & K_CTRL:
            flags |= CONTROL
        if k & K_UPPER and (kp1 & (K_LETTER | K_UPPER)) == K_LETTER and (kn1 & (K_LETTER | K_UPPER)) == K_LETTER:
            turns += 1
            if turns >= 2:
                flags |= CAMEL
        elif k & K_WS:
            turns = 0
        letters = (letters + 1) * (k & 1)  # K_LETTER
        unsplit = (unsplit + 1) * (1 - _blank(c))
        if unsplit >= LONG_TOKEN_BYTES:
            flags |= LONG_TOKEN
        if letters >= ALPHA_RUN_LETTERS:
            flags |= ALPHA_RUN
        run = (run + 1) * ((k >> 4) & 1)  # K_B64
        if run >= 16:
            flags |= ENCODED
        # a letter before a leet character, or a leading leet character before a letter
        if ((k & (kn1 >> 5)) | ((k >> 6) & kn1)) & 1:
            flags |= LEET
            if kn2 & K_LETTER and (k & K_LETTER  # "t3ll"
                                   or (kn1 & K_LETTER and not kp1 & K_WORD_OR_LEET)):  # "4ll", "1gn0r3"
                flags |= LEET_WORD
        if k & ~kp1 & ~kn1 & K_LETTER:  # a single letter
            gap = i - last
            if (gap == 2 and kp1 & K_SEP) or (gap == 3 and kp1 & K_SEP and kp2 & K_SEP):
                chain += 1
            else:
                chain = 1
            last = i
            if chain >= 4:
                flags |= SPACED
        kp3, kp2, kp1, k, kn1 = kp2, kp1, k, kn1, kn2
        p1, n1 = c, n2
        i += 1
    if 0 < tok <= 4 and short + 1 >= SHORT_RUN_TOKENS:
        flags |= SHORT_RUN
    if tok >= 4 and tok_b64 and tok_mark and chunks + 1 >= B64_CHUNK_TOKENS:
        flags |= B64_CHUNKS
    return flags


def gates_of(raw_ascii: bytes) -> int:
    return ascii_gates(np.frombuffer(raw_ascii, dtype=np.uint8))


@njit(cache=True)
def long_runs(b: np.ndarray, n: int) -> np.ndarray:
    """(start, end) rows of the runs of `n`+ bytes without whitespace (what str.split() separates on ASCII: \t \n
    \v \f \r, \x1c-\x1f, space): the tokens a base64 or hex run can lie in, found in one pass."""
    out = np.empty((b.shape[0] // max(n, 1) + 1, 2), dtype=np.int64)
    k = 0
    s = -1
    for i in range(b.shape[0]):
        c = b[i]
        if (9 <= c <= 13) or (28 <= c <= 32):
            if s >= 0 and i - s >= n:
                out[k, 0] = s
                out[k, 1] = i
                k += 1
            s = -1
        elif s < 0:
            s = i
    if s >= 0 and b.shape[0] - s >= n:
        out[k, 0] = s
        out[k, 1] = b.shape[0]
        k += 1
    return out[:k]

