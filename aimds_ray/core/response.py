"""Screening what an LLM returns: its instructions leaked, a planted canary repeated, data sent out through a link.

Why a path of its own: a response is judged against the exchange it belongs to (the system prompt, the user's
prompt, canary tokens the application planted), which the prompt path never sees, and what matters in it is what
leaves, not what it asks. Each check is a small class behind `ResponseCheck`, registered in `CHECKS`;
`Detector.scan_response` runs them on the same normalised views as the prompt path (so a system prompt returned in
base64, letter-spaced or in leetspeak is read decoded), after the prompt-path signals named in `response.signals`
(invisible characters, i.e. ASCII smuggling in Unicode tags, and PII by default).

- `prompt_leak`: how much of the system prompt the response reproduces, as shared runs of `leak_shingle` words
  (case, punctuation and layout ignored). A run counts only when at least two of its words are not common words
  (`seqmatch.NON_ANCHOR`): "I want you to act as" opens a thousand system prompts and says nothing. The score is
  the larger of the share of the system prompt's words that reproduced runs cover (sparse edits leave most of
  them covered) and the longest reproduced stretch, each against its `full` value: a correct answer may repeat a
  procedure or a fact its system prompt holds, so a sentence or two is evidence, not a leak. Paraphrase and
  translation keep no runs of words: this check does not see them.
- `canary`: every copy of a canary token in any view, also with everything but letters and digits removed (so
  "C-A-N-A-R-Y") and still base64- or hex-encoded in the raw text.
- `exfil_link`: a URL that carries data (query names and values, fragment, path, subdomain labels, user info) to
  a host not on `allowed_link_hosts`. What loads without a click (markdown and reference-style images, HTML `src`,
  `srcset`, `poster`, `background`, CSS `url()`) weighs most: the markdown-image exfiltration of indirect
  injections. Data taken from the exchange (a canary, PII, a run of the system prompt) weighs more than words of
  the user's prompt or text of unknown origin (a chart, a map, a badge: allow their hosts). URLs are read as a
  browser reads them: protocol-relative, backslashes as slashes, tabs and newlines dropped.
"""

from __future__ import annotations

import base64
import binascii
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlsplit

from aimds_ray.core.config import ResponseConfig
from aimds_ray.core.normalize import Normalized, Variant, fold_text
from aimds_ray.core.pii import PiiMatch, find_pii
from aimds_ray.core.report import Category, Evidence
from aimds_ray.core.seqmatch import NON_ANCHOR

_WORD = re.compile(r"[^\W_]+")
_ALNUM = re.compile(r"[\W_]+")
PROMPT_RUN = 3  # words of the user's prompt in a row that, inside an image URL, are the conversation leaving


@dataclass(frozen=True)
class Exchange:
    """What the application knows of the exchange a response belongs to; every part is optional."""

    system_prompt: str | None = None
    prompt: str | None = None
    canaries: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptIndex:
    """A system prompt's (or user prompt's) distinctive runs of words, prepared once per text."""

    runs: dict[tuple[str, ...], tuple[int, ...]]  # run -> every word position it starts at
    firsts: frozenset[str]  # the words a run starts with (most positions of a response start none)
    words: int  # word positions the runs cover (the denominator of the coverage)
    joined: dict[str, tuple[tuple[tuple[str, ...], str], ...]]  # 12-char prefix of a run's joined words -> runs

    @classmethod
    def of(cls, text: str, k: int, spaced: bool = True) -> PromptIndex:
        """`spaced`: also the letter-spaced lookup (the system prompt's; a user prompt is only looked for in URLs)."""
        words = _WORD.findall(fold_text(text).lower())
        rare = [w not in NON_ANCHOR for w in words]
        runs: dict[tuple[str, ...], list[int]] = {}
        for i in range(len(words) - k + 1):
            if sum(rare[i : i + k]) >= 2:
                runs.setdefault(tuple(words[i : i + k]), []).append(i)
        cover = {j for starts in runs.values() for i in starts for j in range(i, i + k)}
        joined: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for run in runs if spaced else ():
            j = "".join(run)
            if len(j) >= SPACED_KEY:  # shorter: found anywhere in squeezed text by chance
                joined.setdefault(j[:SPACED_KEY], []).append((run, j))
        return cls({r: tuple(v) for r, v in runs.items()}, frozenset(r[0] for r in runs), len(cover),
                   {key: tuple(v) for key, v in joined.items()})


EMPTY_INDEX = PromptIndex({}, frozenset(), 0, {})
SPACED_KEY = 12  # letters of a run's joined words looked up in letter-spaced text
CACHE_MAX_CHARS = 65_536  # longer prompts are prepared per call: a cache entry holds ~30x its text


@lru_cache(maxsize=256)
def _cached_index(text: str, k: int) -> PromptIndex:
    return PromptIndex.of(text, k)


def prompt_index(text: str | None, k: int) -> PromptIndex:
    """A system prompt's index. An application sends the same one with every response: prepared once (a bounded
    cache)."""
    if not text:
        return EMPTY_INDEX
    return _cached_index(text, k) if len(text) <= CACHE_MAX_CHARS else PromptIndex.of(text, k)


@dataclass(frozen=True)
class Canary:
    index: int  # in `Exchange.canaries`
    pattern: re.Pattern[str]  # its folded form, case-insensitive (positions stay those of the searched text)
    alnum: str  # letters and digits only, lower case
    encoded: tuple[tuple[re.Pattern[str], str], ...]  # base64 / hex forms as they appear inside encoded text


@lru_cache(maxsize=1024)
def _canary(raw: str, index: int) -> Canary | None:
    low = fold_text(raw).lower().strip()
    if not low:
        return None
    b = raw.encode("utf-8")
    enc = tuple((re.compile(re.escape(f)), "base64") for f in _base64_forms(b))
    return Canary(index, re.compile(re.escape(low), re.IGNORECASE), _ALNUM.sub("", low),
                  (*enc, (re.compile(re.escape(b.hex()), re.IGNORECASE), "hex")))


def _base64_forms(b: bytes) -> list[str]:
    """What `b` looks like inside any base64 text: its encoding at each of the three byte alignments, cut to the
    characters that depend on `b` alone (too short to say anything: left out). The normaliser decodes base64 runs of
    `min_base64_chars` and more; a canary alone is often shorter."""
    out = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + b).decode("ascii")
        head = (shift * 8 + 5) // 6  # characters that also hold the padding bytes
        usable = (len(b) + shift) // 3 * 4  # characters of whole 3-byte groups
        form = enc[head:usable]
        if len(form) >= 8:
            out.append(form)
    return out


@dataclass
class Context:
    """An `Exchange` prepared for one scan."""

    cfg: ResponseConfig
    system: PromptIndex = EMPTY_INDEX
    prompt: PromptIndex = EMPTY_INDEX  # the user's prompt, in runs of PROMPT_RUN words
    canaries: list[Canary] = field(default_factory=list)

    @classmethod
    def build(cls, exchange: Exchange, cfg: ResponseConfig) -> Context:
        # the user's prompt changes with every request: indexed per scan (short), not cached, no spaced lookup
        user = PromptIndex.of(exchange.prompt, PROMPT_RUN, spaced=False) if exchange.prompt else EMPTY_INDEX
        return cls(cfg, prompt_index(exchange.system_prompt, cfg.leak_shingle), user,
                   [c for i, raw in enumerate(exchange.canaries) if (c := _canary(raw, i)) is not None])

    def with_prompt(self, prompt: str | None) -> Context:
        """The same exchange answering another user prompt: the system prompt and canaries stay prepared (a
        conversation's assistant turns answer different user turns of one system prompt)."""
        user = PromptIndex.of(prompt, PROMPT_RUN, spaced=False) if prompt else EMPTY_INDEX
        return Context(self.cfg, self.system, user, self.canaries)


class ResponseCheck(ABC):
    """One check of a response against its exchange; evidence spans are in the original response."""

    name: str

    @abstractmethod
    def check(self, text: str, docs: Sequence[Normalized], ctx: Context) -> list[Evidence]: ...


CHECKS: dict[str, type[ResponseCheck]] = {}


def register(cls: type[ResponseCheck]) -> type[ResponseCheck]:
    CHECKS[cls.name] = cls
    return cls


def _merged(spans: dict[tuple[int, int], str]) -> list[tuple[tuple[int, int], str]]:
    """Overlapping spans (the same stretch read in two views) as one, named by the first view that saw it."""
    out: list[tuple[tuple[int, int], str]] = []
    for (s, e), kind in sorted(spans.items()):
        if out and s < out[-1][0][1]:
            (s0, e0), k0 = out[-1]
            out[-1] = ((s0, max(e0, e)), k0)
        else:
            out.append(((s, e), kind))
    return out


def _squeeze(text: str) -> tuple[str, list[int]]:
    """`text` with everything but letters and digits removed, and where each kept character was."""
    chars: list[str] = []
    where: list[int] = []
    for m in _WORD.finditer(text):
        chars.append(m.group(0))
        where.extend(range(m.start(), m.end()))
    return "".join(chars), where


def _views(docs: Sequence[Normalized]) -> Iterable[Variant]:
    for d in docs:
        yield from d.variants


def _lower_words(text: str) -> tuple[list[str], list[re.Match[str]] | None]:
    """A view's words in lower case, and their matches when lower-casing changed the text's length (then
    positions come from the matches over the text itself; else `_WORD.finditer(text.lower())` gives them)."""
    low = text.lower()
    if len(low) == len(text):
        return _WORD.findall(low), None
    ms = list(_WORD.finditer(text))
    return [m.group(0).lower() for m in ms], ms


# letter-spaced text: twelve single letters or digits in a row, each followed by a space
_SPACED_RUN = re.compile(r"(?<![^\W_])[^\W_](?:[ \t]+[^\W_](?![^\W_])){11}")


@register
class PromptLeakCheck(ResponseCheck):
    name = "prompt_leak"

    def check(self, text: str, docs: Sequence[Normalized], ctx: Context) -> list[Evidence]:
        idx = ctx.system
        if not idx.runs:
            return []
        k, cfg = ctx.cfg.leak_shingle, ctx.cfg
        found: set[tuple[str, ...]] = set()
        stretches: list[tuple[int, int, int, Variant]] = []  # (words, start, end in the view, view)
        runs, firsts = idx.runs, idx.firsts
        for v in _views(docs):
            words, ms = _lower_words(v.text)
            hits = [i for i in range(len(words) - k + 1)
                    if words[i] in firsts and tuple(words[i : i + k]) in runs]
            if _SPACED_RUN.search(v.text):  # "y o u  a r e ...": no words to compare
                stretches += self._spaced(v, idx, found)
            if not hits:
                continue
            covered = [False] * len(words)
            for i in hits:
                found.add(tuple(words[i : i + k]))
                covered[i : i + k] = [True] * k
            if ms is None:
                ms = list(_WORD.finditer(v.text.lower()))  # word spans, only for a view that reproduced something
            i = 0
            while i < len(words):  # the stretches of covered words
                if covered[i]:
                    j = i
                    while j < len(words) and covered[j]:
                        j += 1
                    stretches.append((j - i, ms[i].start(), ms[j - 1].end(), v))
                    i = j
                i += 1
        if not found:
            return []
        reproduced = len({j for r in found for i in runs[r] for j in range(i, i + k)})
        share = reproduced / idx.words
        longest = max(w for w, *_ in stretches)
        # the share counts once leak_min_words words are reproduced; below, it is evidence under the threat line: a
        # one-line system prompt ("answer questions about the Python programming language") restated leaks nothing
        cover = share / cfg.leak_full_share
        if reproduced < cfg.leak_min_words:
            cover = min(cover, 0.5 * reproduced / cfg.leak_min_words)
        score = min(1.0, max(cover, longest / cfg.leak_full_words))
        if score < cfg.min_evidence:
            return []
        detail = (f"{share:.0%} of the system prompt's words ({reproduced}) reproduced in runs of {k}; longest "
                  f"stretch {longest} words")
        spans: dict[tuple[int, int], str] = {}
        for _w, a, b, v in stretches:  # every stretch, so that `sanitized_text` hides all of what leaked
            spans.setdefault(v.span(a, b), v.kind)
        return [Evidence(self.name, Category.PROMPT_EXTRACTION, round(score, 6), s, e, text[s:e][:200], kind, detail)
                for (s, e), kind in _merged(spans)]

    @staticmethod
    def _spaced(v: Variant, idx: PromptIndex, found: set[tuple[str, ...]]) -> list[tuple[int, int, int, Variant]]:
        """Runs whose joined words occur in the view with every separator removed; looked up by their first
        SPACED_KEY letters at each position, so the cost is the view's length, not runs x length."""
        squeezed, where = _squeeze(v.text)
        low = squeezed.lower()
        out: list[tuple[int, int, int, Variant]] = []
        if len(low) != len(squeezed):  # lower case changed the length ("İ"): positions would not hold
            return out
        squeezed = low
        for j in range(len(squeezed) - SPACED_KEY + 1):
            for run, joined in idx.joined.get(squeezed[j : j + SPACED_KEY], ()):
                if squeezed.startswith(joined, j):
                    found.add(run)
                    a, b = where[j], where[j + len(joined) - 1] + 1
                    if out and a <= out[-1][2]:  # overlaps the previous run: one stretch, a word longer
                        out[-1] = (out[-1][0] + 1, out[-1][1], max(out[-1][2], b), v)
                    else:
                        out.append((len(run), a, b, v))
        return out


@register
class CanaryCheck(ResponseCheck):
    name = "canary"

    def check(self, text: str, docs: Sequence[Normalized], ctx: Context) -> list[Evidence]:
        out: list[Evidence] = []
        if not ctx.canaries:
            return out
        views = [_View(v) for v in _views(docs)]
        for c in ctx.canaries:
            spans: dict[tuple[int, int], tuple[str, str]] = {}
            for span, kind, how in self._sightings(text, views, c, ctx.cfg.canary_min_chars):
                spans.setdefault(span, (kind, how))
            for (s, e), (kind, how) in sorted(spans.items()):
                out.append(Evidence(self.name, Category.PROMPT_EXTRACTION, 1.0, s, e, "", kind,
                                    f"canary #{c.index} found {how}"))
        return out

    @staticmethod
    def _sightings(text: str, views: list[_View], c: Canary, min_chars: int
                   ) -> Iterable[tuple[tuple[int, int], str, str]]:
        """(original span, view, how) of every copy: as written in a view, with separators removed, or still
        encoded in the raw text (too short a run for the normaliser to decode)."""
        for w in views:
            for m in c.pattern.finditer(w.v.text):
                yield w.v.span(m.start(), m.end()), w.v.kind, "as written"
            if len(c.alnum) >= min_chars and c.alnum in w.squeezed:
                squeezed, where = _squeeze(w.v.text)
                low = squeezed.lower()
                j = low.find(c.alnum)
                while j >= 0 and len(low) == len(squeezed):
                    yield w.v.span(where[j], where[j + len(c.alnum) - 1] + 1), w.v.kind, "with its separators removed"
                    j = low.find(c.alnum, j + 1)
        for pat, enc in c.encoded:
            for m in pat.finditer(text):
                yield (m.start(), m.end()), "raw", f"{enc}-encoded"


class _View:
    """A view and, when first asked, its letters and digits alone in lower case: the test every canary makes
    before any position is computed (positions only for a hit)."""

    def __init__(self, v: Variant) -> None:
        self.v = v
        self._squeezed: str | None = None

    @property
    def squeezed(self) -> str:
        if self._squeezed is None:
            self._squeezed = _ALNUM.sub("", self.v.text).lower()
        return self._squeezed


# --- URLs ----------------------------------------------------------------------------------------------------------

# a URL as a browser would follow it: absolute or protocol-relative, an IPv6 host in brackets
_URL = re.compile(r"(?:https?:)?//(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#<>\"'`\\\[\]()]+)[^\s<>\"]*", re.IGNORECASE)
# attributes that load what they name without a click, and CSS url(); their values may span lines
# (a quoted value is read up to its quote or 64 KB, whichever comes first: padding a URL past any bound must not
# turn it into something else, and an unclosed quote must not make each later attribute rescan the rest)
_LOAD_ATTR = re.compile(r"\b(?:src|srcset|poster|background|data)\s*=\s*(?:\"([^\"]{0,65536})|'([^']{0,65536})"
                        r"|([^\s>\"']+))|url\(\s*[\"']?([^\"')]{1,65536})", re.IGNORECASE)
_REF_DEF = re.compile(r"^[ \t]{0,3}\[([^\]\n]{1,200})\]:[ \t]*<?(\S+?)>?[ \t]*$", re.MULTILINE)
_REF_IMAGE = re.compile(r"!\[([^\]\n]{0,2000})\](?:\[([^\]\n]{0,200})\])?")
_HEXLIKE = re.compile(r"[0-9a-fA-F]+")
_TRAIL = ".,;:!?'`"


def _trim(url: str) -> str:
    """Drop trailing punctuation and closing brackets the URL did not open (markdown's "(...)" around it)."""
    while url:
        c = url[-1]
        if c in _TRAIL or (c == ")" and url.count("(") < url.count(")")) or (c == "]" and url.count("[") < url.count("]")):
            url = url[:-1]
        else:
            break
    return url


def _is_image_destination(text: str, at: int) -> bool:
    """Whether the URL at `at` is the destination of a markdown image: "![alt](" right before it, the alt text
    found by counting brackets back (nested brackets and line breaks allowed, as CommonMark allows them)."""
    j = at - 1
    while j >= 0 and text[j] in " \t<":
        j -= 1
    if j < 1 or text[j] != "(" or text[j - 1] != "]":
        return False
    depth, j = 0, j - 1
    stop = max(-1, j - 4096)
    while j > stop:
        c = text[j]
        if c == "]":
            depth += 1
        elif c == "[":
            depth -= 1
            if depth == 0:
                return j > 0 and text[j - 1] == "!"
        j -= 1
    return False


def _candidates(text: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, URL as a browser reads it, loads by itself) for every URL of the text: values of loading
    attributes and CSS url() (which may hold line breaks), reference-style image definitions, then the other URLs
    (a markdown image's destination loads by itself; anything else needs a click)."""
    out: list[tuple[int, int, str, bool]] = []
    taken: list[tuple[int, int]] = []
    if "=" in text or "url(" in text.lower():
        for m in _LOAD_ATTR.finditer(text):
            g = next(i for i in range(1, 5) if m.group(i) is not None)
            val, at = m.group(g), m.start(g)
            srcset = m.group(0)[:6].lower() == "srcset"
            for part in re.finditer(r"[^,]+", val) if srcset else [re.match(r"(?s).+", val)]:
                if part is None:
                    continue
                u = part.group(0).split()[0] if srcset and part.group(0).split() else part.group(0)
                if "//" in u:
                    out.append((at + part.start(), at + part.end(), _clean(u), True))
            taken.append((m.start(g), m.end(g)))
    if "![" in text and "]:" in text:
        defs = {m.group(1).strip().lower(): m for m in _REF_DEF.finditer(text)}
        for m in _REF_IMAGE.finditer(text):
            d = defs.get((m.group(2) or m.group(1) or "").strip().lower())
            if d is not None and "//" in d.group(2):
                out.append((d.start(2), d.end(2), _clean(d.group(2)), True))
                taken.append((d.start(2), d.end(2)))
    for m in _URL.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        raw = _trim(m.group(0))
        out.append((m.start(), m.start() + len(raw), _clean(raw), _is_image_destination(text, m.start())))
    return out


def _clean(url: str) -> str:
    """A URL as a browser reads it: tabs, newlines and surrounding spaces dropped, backslashes as slashes, a
    protocol-relative one given its scheme."""
    url = "".join(url.split()).replace("\\", "/")
    return "https:" + url if url.startswith("//") else url


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.rstrip(".")
    return any(host == a or host.endswith("." + a) for a in (x.lower().rstrip(".") for x in allowed))


def _carried(parts: SplitResult) -> tuple[list[str], list[str]]:
    """(what a URL can carry, of which the query and fragment: where free text is what a link is for) --
    percent-decoded; base64 values also decoded when they decode to text."""
    qs = [x for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _signing_param(k) for x in (k, v) if x]
    qs += [unquote_plus(parts.fragment)] if parts.fragment else []
    host = parts.hostname or ""
    labels = host.split(".")[:-2] if not host.startswith("[") else []  # subdomain labels of the host
    other = [unquote_plus(p) for p in parts.path.split("/") if p] + labels
    other += [unquote_plus(x) for x in (parts.username, parts.password) if x]
    query = [*qs, *filter(None, map(_b64_text, qs))]
    return [*query, *other, *filter(None, map(_b64_text, other))], query


def _signing_param(name: str) -> bool:
    """A pre-signed URL's credential parameters (S3, GCS, CloudFront, Azure SAS): opaque by design, and an access
    key id in them is how such a link is meant to look, not data leaving. (A canary or system prompt hidden in
    one is still found by those checks, which read the whole response.)"""
    n = name.lower()
    return n.startswith(("x-amz-", "x-goog-")) or n in _SIGNING


_SIGNING = frozenset({"signature", "key-pair-id", "policy", "expires", "sig", "se", "sp", "sv", "sr", "st", "skoid",
                      "sktid", "skt", "ske", "sks", "skv"})


def _b64_text(v: str) -> str | None:
    """`v` decoded, when it is base64 (either alphabet) of printable UTF-8 text; else None."""
    if len(v) < 16 or _HEXLIKE.fullmatch(v):
        return None
    try:
        d = base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return d if d.isprintable() else None


@register
class ExfilLinkCheck(ResponseCheck):
    name = "exfil_link"

    def check(self, text: str, docs: Sequence[Normalized], ctx: Context) -> list[Evidence]:
        if "//" not in text:
            return []
        cfg = ctx.cfg
        out: list[Evidence] = []
        for start, end, url, image in _candidates(text):
            try:
                parts = urlsplit(url)
                host = (parts.hostname or "").lower()
            except ValueError:
                continue  # not a URL a renderer would load either
            if not host or _host_allowed(host, cfg.allowed_link_hosts):
                continue
            why, source = self._data(parts, ctx)
            if not why:
                continue
            if image:  # loads by itself
                score = cfg.image_exchange_data if source == "exchange" else cfg.image_text_data
            else:  # a link built from the user's question (a search link) is what answers do
                score = cfg.link_exchange_data if source == "exchange" else cfg.link_text_data
            out.append(Evidence(self.name, Category.EXFILTRATION, score, start, end, text[start:end][:200], "raw",
                                f"{'image (loads without a click)' if image else 'link'} to {host} carrying {why}"))
        return out

    @staticmethod
    def _data(parts: SplitResult, ctx: Context) -> tuple[str, str]:
        """(what the URL carries, where it came from: "exchange" (a canary, PII, the system prompt), "prompt" (the
        user's words), "text" (words of unknown origin)); ("", "") when it carries nothing worth a word."""
        vals, query = _carried(parts)
        if not vals:
            return "", ""
        blob = " ".join(vals)
        low = fold_text(blob).lower()
        alnum = _ALNUM.sub("", low)
        for c in ctx.canaries:
            if c.pattern.search(low) or (len(c.alnum) >= ctx.cfg.canary_min_chars and c.alnum in alnum) \
                    or any(pat.search(blob) for pat, _ in c.encoded):
                return f"canary #{c.index}", "exchange"
        pii = find_pii(blob)
        if pii:
            return f"{pii[0].entity.lower()} data", "exchange"
        words = _WORD.findall(low)
        k = ctx.cfg.leak_shingle
        if ctx.system.runs and any(tuple(words[i : i + k]) in ctx.system.runs for i in range(len(words) - k + 1)):
            return "words of the system prompt", "exchange"
        if ctx.prompt.runs and any(tuple(words[i : i + PROMPT_RUN]) in ctx.prompt.runs
                                   for i in range(len(words) - PROMPT_RUN + 1)):
            return "words of the user's prompt", "prompt"
        for v in query:  # free text in the query or fragment (a path segment holds names: files, pages)
            if len(v) >= ctx.cfg.link_data_chars and len(_WORD.findall(v)) >= ctx.cfg.link_data_words:
                return f"{len(v)} characters of text", "text"
        return "", ""


def check_response(text: str, docs: Sequence[Normalized], exchange: Exchange | Context, cfg: ResponseConfig
                   ) -> list[Evidence]:
    """Evidence of every configured check (`cfg.checks`, in order); `exchange` may come prepared (a stream
    prepares it once for all its scans)."""
    ctx = exchange if isinstance(exchange, Context) else Context.build(exchange, cfg)
    out: list[Evidence] = []
    for name in cfg.checks:
        out.extend(CHECKS[name]().check(text, docs, ctx))
    return out


# what `sanitized_text` replaces in a response (besides PII): the link itself, a canary, a leaked stretch
_REDACT_AS = {"exfil_link": "LINK", "canary": "CANARY", "prompt_leak": "SYSTEM_PROMPT"}
# and, when the invisible-character evidence reaches a threat, every run of the characters that carry hidden text or
# hide it (Unicode tags: what a smuggled instruction or stolen datum is written in; zero-width and bidi controls).
# Read from the text, not from the evidence: a window condenses its runs past the 16th into one item
_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\U000e0000-\U000e007f]+")


def redactions(text: str, evidence: Sequence[Evidence], threat_th: float) -> list[PiiMatch]:
    """Spans of threat-level response evidence, as matches `pii.redact` can replace (entity names above)."""
    out = []
    hidden = False
    for e in evidence:
        ent = _REDACT_AS.get(e.detector)
        if ent is not None and e.score >= threat_th and e.end > e.start:
            out.append(PiiMatch(ent, e.start, e.end, text[e.start : e.end], e.detector))
        hidden = hidden or (e.detector == "invisible" and e.score >= threat_th)
    if hidden:
        out += [PiiMatch("HIDDEN_TEXT", m.start(), m.end(), m.group(0), "invisible") for m in _HIDDEN.finditer(text)]
    return out


def trace_event(report: dict[str, object], t: float, threat_th: float) -> dict[str, object]:
    """The session-trace event of one screened response (`/v1/detect/response` with a `session_id`), in the
    vocabulary of the shipped policies: a `response` that says what it leaked (`system_prompt_leak`: the system
    prompt or a canary at threat level, as `no_system_prompt_in_response` asks; `canary_leak`; `exfiltration`;
    `pii`) and how it was judged. `screened` tells it from the response the trace assumes after an allowed request."""
    evidence = report.get("evidence") or []
    strong = {str(e["detector"]) for e in evidence if isinstance(e, dict) and float(e["score"]) >= threat_th}
    return {"t": t, "type": "response", "screened": True, "is_threat": bool(report["is_threat"]),
            "threat_type": str(report["threat_type"]), "action": str(report["action"]),
            "score": float(report["score"]),  # type: ignore[arg-type]
            "system_prompt_leak": bool(strong & {"prompt_leak", "canary"}), "canary_leak": "canary" in strong,
            "exfiltration": "exfil_link" in strong,
            "pii": any(isinstance(e, dict) and e.get("category") == Category.DATA_LEAKAGE for e in evidence),
            "redacted": str(report["action"]) == "redact", "request_id": str(report.get("request_id", ""))}
