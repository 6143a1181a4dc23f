"""A foreign task inside a document: the indirect injection that reads like an ordinary request.

Why a structural signal: an instruction planted in an email, a table or a code answer ("What is the capital of
Brazil?", "Develop a speech on community service.") has no attack vocabulary at all; the same sentence sent by a
user is a fine request. What gives it away is where it stands and what it is about: a request line at the edge of,
or breaking into, a document (an email with its headers, a markdown table, a fenced code answer), that does not
point at the document ("this email", "the table above") and shares next to no content words with it. A user asking
about a document refers to it or to what is in it; a planted task does neither.

The lexicons (request openers, words that point at the document, stop words) are data in
`aimds_ray/data/document.yaml`. Plain-ASCII single-paragraph prompts, by far the common case, are rejected by a
line count before anything else runs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aimds_ray.core.config import load_yaml
from aimds_ray.core.normalize import Normalized
from aimds_ray.core.report import Category, Evidence
from aimds_ray.core.signals.base import Signal, SignalContext, register

LEXICON_PATH = Path(__file__).resolve().parent.parent.parent / "data" / "document.yaml"
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_OWN_QUOTE = re.compile(r"[:?]\s*[\"'\u201c\u2018].{8,}$")


@dataclass(frozen=True)
class DocumentLexicon:
    opener: re.Pattern[str]  # a request line starts with one of these (case-insensitive, at a word boundary)
    opener_first: frozenset[str]  # the openers' first words, lower case: a cheap test before the regex
    pointer: re.Pattern[str]  # words that point at the surrounding document
    pointer_lower: re.Pattern[str]  # the same, case-sensitive, for lower-cased ASCII lines (~3.5x faster)
    email_field: re.Pattern[str]  # matched at a line start or after "|": a header field and its colon
    email_line: re.Pattern[str]  # matched at a line start: a header field or a greeting ("Hi Anna,"), one regex
    email_next: re.Pattern[str]  # searched: the same after a newline, its leading blanks kept inside the line
    stop: frozenset[str]
    min_lines: int
    min_doc_chars: int
    max_line_chars: int
    max_shared: int
    edge_score: float
    inside_score: float


@lru_cache(maxsize=2)
def load_document_lexicon(path: str = str(LEXICON_PATH)) -> DocumentLexicon:
    spec = load_yaml(Path(path).read_text(encoding="utf-8"))
    openers = spec["openers"]

    def alt(words: list[str]) -> str:  # longest first, so a phrase wins over its first word
        return "|".join(map(re.escape, sorted({w.lower() for w in words}, key=len, reverse=True)))

    pointers, dets = alt(spec["pointers"]), alt(spec["determiners"])
    nouns, times = alt(spec["document_nouns"]), alt(spec["time_words"])
    pointer = rf"\b(?:{pointers})\b|\b(?:{dets})\s+(?:\w+\s+)?(?:{nouns})\b|\b(?:this|these)\b(?!\s+(?:{times})\b)"
    sc = spec.get("scoring", {})
    return DocumentLexicon(
        re.compile(rf"\s*(?:{alt(openers)})(?=[\s,])", re.IGNORECASE),  # "Check-in opens ..." is no request
        frozenset(o.split()[0].lower() for o in openers),
        re.compile(pointer, re.IGNORECASE),
        re.compile(pointer),
        re.compile(rf"\s*(?:{alt(spec['email_fields'])})\s*:", re.IGNORECASE),
        re.compile(rf"\s*(?:(?:{alt(spec['email_fields'])})\s*:|(?:{alt(spec['email_greetings'])})\s+[a-z][\w.-]*\s*,)",
                   re.IGNORECASE),
        re.compile(rf"\n[^\S\n]*(?:(?:{alt(spec['email_fields'])})\s*:|(?:{alt(spec['email_greetings'])})\s+"
                   r"[a-z][\w.-]*\s*,)", re.IGNORECASE),
        frozenset(w.lower() for w in spec["stop_words"]),
        int(sc.get("min_lines", 3)), int(sc.get("min_doc_chars", 200)), int(sc.get("max_line_chars", 220)),
        int(sc.get("max_shared", 1)), float(sc.get("edge_score", 0.6)), float(sc.get("inside_score", 0.7)),
    )


def _is_row(line: str) -> bool:
    s = line.strip()
    return len(s) >= 3 and s[0] == "|" and s[-1] == "|"


def has_email_header(text: str, lex: DocumentLexicon) -> bool:
    """A header field at a line start or after "|", or a greeting at a line start. Not one regex search for
    "(?m)(?:^|\\|)...": that tries every position of the text (~50-85 us per 2 KB). Here the text's start is matched,
    then a search for a newline and what follows it (the regex engine skips to each newline itself: ~3 us per 2 KB
    of multi-line prompts, a Python loop over the lines took ~7-20), then each "|". Leading blanks that cross lines
    need not be followed: such a match implies one from the start of the line its field stands on. Blank lines
    are never re-read (a match from each of 4,000 blank lines once took over a second per scan)."""
    if lex.email_line.match(text) or lex.email_next.search(text):
        return True
    field = lex.email_field.match
    pos = text.find("|")
    while pos >= 0:
        if field(text, pos + 1):
            return True
        pos = text.find("|", pos + 1)
    return False


def document_kind(text: str, lex: DocumentLexicon) -> str:
    """'table', 'email', 'code' or '' (not document-shaped)."""
    if text.count("|") >= 6 and sum(_is_row(x) for x in text.split("\n")) >= 3:  # a row holds two bars: count first
        return "table"
    if has_email_header(text, lex):
        return "email"
    if "`" in text and "```" in text:  # (memchr first: a three-character search costs ~1.5 us per 2 KB)
        return "code"
    return ""


def _words(text: str) -> list[str]:
    return list(map(str.lower, _WORD.findall(text)))  # findall + map: no match objects (~2x finditer + group)


def is_request_line(line: str, lex: DocumentLexicon) -> bool:
    s = line.strip()
    if not (12 <= len(s) <= lex.max_line_chars) or s[0].islower() or "|" in s or "`" in s or "://" in s:
        return False  # a request line reads as a sentence; a cut line, a table cell or code does not
    # an ASCII line's first word (up to a blank or comma, as the opener regex ends) names an opener's first word,
    # or the regex cannot match: most lines of a document are skipped for a set lookup (~0.9 us a regex each)
    if s.isascii() and s.split(None, 1)[0].split(",", 1)[0].lower() not in lex.opener_first:
        return False
    if lex.opener.match(s) is None:
        return False
    own = _OWN_QUOTE.search(s)  # "the sentiment of this comment: '...'" brings its own material
    head = s[: own.start()] if own else s
    # an ASCII line lower-cased meets the case-sensitive regex exactly where the original meets the case-blind one
    hit = lex.pointer_lower.search(head.lower()) if head.isascii() else lex.pointer.search(head)
    return hit is None or own is not None


def foreign_requests(text: str, lex: DocumentLexicon) -> list[tuple[int, int, float, str]]:
    """(start, end, score, where) of request lines that stand in a document and are not about it."""
    if text.count("\n") + 1 < lex.min_lines or len(text) < lex.min_doc_chars:
        return []
    kind = document_kind(text, lex)  # before the lines are cut: most multi-line prompts are no document
    if not kind:
        return []
    spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    lines = [text[a:b] for a, b in spans]
    filled = [i for i, x in enumerate(lines) if x.strip()]
    if len(filled) < lex.min_lines:
        return []
    candidates: list[tuple[int, str]] = [(filled[0], "start"), (filled[-1], "end")]
    if kind == "table":  # a sentence breaking into the rows
        rows = [i for i in filled if _is_row(lines[i])]
        candidates += [(i, "inside") for i in filled if rows[0] < i < rows[-1] and not _is_row(lines[i])]
    elif kind == "email":  # a line of its own in the body
        candidates += [(i, "body") for i in filled[1:-1]]
    out = []
    total: Counter[str] | None = None  # word counts of the whole text, built once (per line it was quadratic)
    for i, where in candidates:
        line = lines[i]
        if not is_request_line(line, lex):
            continue
        if where == "body" and (line.rstrip()[-1:] not in ".?!" or len(line.split()) < 4):
            continue  # inside an email only a whole sentence counts (headings like "Find the perfect hotel" do not)
        line_words = _words(line)
        words = set(line_words).difference(lex.stop)
        if not words:
            continue
        if total is None:
            total = Counter(_words(text))
        own = Counter(line_words)
        shared = sum(1 for w in words if total[w] > own[w])  # the line's words that also occur elsewhere
        if shared > lex.max_shared or 2 * shared >= len(words):
            continue  # a question about what the document says
        a, b = spans[i]
        out.append((a, b, lex.inside_score if where == "inside" else lex.edge_score, f"{kind}:{where}"))
    return out


@register
class DocumentSignal(Signal):
    """A request line at the edge of or inside a document that neither points at it nor shares its content."""

    name = "doc_hijack"

    def __init__(self, ctx: SignalContext) -> None:
        super().__init__(ctx)
        self.lex = load_document_lexicon()

    def scan(self, doc: Normalized) -> list[Evidence]:
        text = doc.original
        off = doc.offset
        return [Evidence(self.name, Category.INDIRECT_INJECTION, score, off + a, off + b, text[a:b][:200], "raw",
                         f"a request unrelated to the {where.replace(':', ' it stands in (')})")
                for a, b, score, where in foreign_requests(text, self.lex)]
