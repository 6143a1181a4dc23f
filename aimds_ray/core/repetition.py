"""Token floods: the longest run of one short token repeated back to back ("ö ö ö ö ..." hundreds of times), and
runs of closing delimiters (") ] } ) ] } ...").

Why: flooding the context with a repeated glyph or syllable is a known way to derail a model's instructions (the
repeated tokens push the system prompt out of focus or hit under-trained tokens), and prose never does it. A run is
counted over whitespace-separated tokens of at most `max_len` characters that contain a letter (any script, or an
emoji: code points >= 128 count as letters), so rows of numbers or table rules (`0 0 0`, `| --- |`) are not floods.
A run of closing brackets, quotes and backticks (whitespace between them allowed) is the other flood: it tries
to close whatever quoting, JSON or code context the application wrapped the input in, and code never closes dozens
at once. `longest_run_ref` and `closer_run_ref` are the plain-Python definitions the kernels are tested against.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _ws(c: np.uint32) -> bool:
    return c == 32 or 9 <= c <= 13 or c == 0xA0 or c == 0x3000


@njit(cache=True, inline="always")
def _letter(c: np.uint32) -> bool:
    return 65 <= c <= 90 or 97 <= c <= 122 or c >= 128


@njit(cache=True)
def _longest_run(codes: np.ndarray, max_len: int) -> tuple[int, int, int]:
    """(run length, start of its first token, end of its last token) of the longest back-to-back repetition of
    one token; tokens longer than `max_len` or without a letter never repeat."""
    n = codes.shape[0]
    best = 0
    best_s = 0
    best_e = 0
    prev_s = -1
    prev_len = 0
    run = 0
    run_s = 0
    i = 0
    while i < n:
        while i < n and _ws(codes[i]):
            i += 1
        if i >= n:
            break
        s = i
        has_letter = False
        while i < n and not _ws(codes[i]):
            if _letter(codes[i]):
                has_letter = True
            i += 1
        length = i - s
        same = False
        if has_letter and length <= max_len and length == prev_len:
            same = True
            for k in range(length):
                if codes[s + k] != codes[prev_s + k]:
                    same = False
                    break
        if same:
            run += 1
        elif has_letter and length <= max_len:
            run = 1
            run_s = s
        else:
            run = 0
        if run > best:
            best = run
            best_s = run_s
            best_e = i
        prev_s = s
        prev_len = length
    return best, best_s, best_e


@njit(cache=True, inline="always")
def _closer(c: np.uint32) -> bool:  # ) ] } > " ' `
    return c == 41 or c == 93 or c == 125 or c == 62 or c == 34 or c == 39 or c == 96


@njit(cache=True)
def _closer_run(codes: np.ndarray) -> tuple[int, int, int]:
    """(closing delimiters in the longest run of them, its start, its end); whitespace inside a run is skipped."""
    best = 0
    best_s = 0
    best_e = 0
    run = 0
    run_s = 0
    for i in range(codes.shape[0]):
        c = codes[i]
        if _closer(c):
            if run == 0:
                run_s = i
            run += 1
            if run > best:
                best = run
                best_s = run_s
                best_e = i + 1
        elif not _ws(c):
            run = 0
    return best, best_s, best_e


def _codes(text: str) -> np.ndarray:
    """The code points as uint32, read-only either way: one argument type, so the kernels compile once."""
    if not text.isascii():
        return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.uint32)
    codes.flags.writeable = False
    return codes


def longest_run(text: str, max_len: int = 4) -> tuple[int, int, int]:
    if not text:
        return 0, 0, 0
    return _longest_run(_codes(text), max_len)


def closer_run(text: str) -> tuple[int, int, int]:
    if not text:
        return 0, 0, 0
    return _closer_run(_codes(text))


_WS = frozenset(" \t\n\v\f\r\u00a0\u3000")
_CLOSERS = frozenset(")]}>\"'`")


def closer_run_ref(text: str) -> tuple[int, int, int]:
    best, run, run_s = (0, 0, 0), 0, 0
    for i, ch in enumerate(text):
        if ch in _CLOSERS:
            if run == 0:
                run_s = i
            run += 1
            if run > best[0]:
                best = (run, run_s, i + 1)
        elif ch not in _WS:
            run = 0
    return best


def longest_run_ref(text: str, max_len: int = 4) -> tuple[int, int, int]:
    """Plain-Python definition: tokens are maximal runs of non-whitespace (the kernel's whitespace set)."""
    toks: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        if text[i] in _WS:
            i += 1
            continue
        s = i
        while i < len(text) and text[i] not in _WS:
            i += 1
        toks.append((s, i))
    best = (0, 0, 0)
    run, run_s = 0, 0
    prev = None
    for s, e in toks:
        tok = text[s:e]
        ok = len(tok) <= max_len and any(c.isascii() and c.isalpha() or ord(c) >= 128 for c in tok)
        if ok and tok == prev:
            run += 1
        elif ok:
            run, run_s = 1, s
        else:
            run = 0
        if run > best[0]:
            best = (run, run_s, e)
        prev = tok if ok else None
    return best
