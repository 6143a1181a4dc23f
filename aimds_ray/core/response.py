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
  the larger of the share of the system prompt's distinctive runs found and the longest reproduced stretch, each
  against its `full` value. Paraphrase and translation keep no runs of words: this check does not see them.
- `canary`: a canary token anywhere in any view, also with everything but letters and digits removed (so
  "C-A-N-A-R-Y" and a base64 copy count).
- `exfil_link`: a URL whose query, fragment or path carries data to a host not on `allowed_link_hosts`. Images
  load without a click (the markdown-image exfiltration of indirect injections), so they weigh most; data taken
  from the exchange (a canary, PII, a run of the system prompt; for an image also three words of the user's
  prompt in a row) weighs more than data merely shaped like text. A link built from the user's question is what a
  search link is, so for links the prompt's words count as text.
"""

from __future__ import annotations

import base64
import binascii
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qsl, unquote_plus, urlsplit

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


@dataclass
class Context:
    """An `Exchange` prepared once per scan: the system prompt's runs of words, the canaries' searchable forms."""

    cfg: ResponseConfig
    exchange: Exchange
    runs: dict[tuple[str, ...], int] = field(default_factory=dict)  # distinctive run -> its first word index
    firsts: frozenset[str] = frozenset()  # the words a distinctive run starts with (most positions start none)
    prompt_runs: dict[tuple[str, ...], int] = field(default_factory=dict)  # the user prompt's, PROMPT_RUN words
    canaries: list[Canary] = field(default_factory=list)

    @classmethod
    def build(cls, exchange: Exchange, cfg: ResponseConfig) -> Context:
        ctx = cls(cfg, exchange)
        if exchange.system_prompt:
            ctx.runs, ctx.firsts = _prompt_runs(exchange.system_prompt, cfg.leak_shingle)
        if exchange.prompt:
            ctx.prompt_runs = _prompt_runs(exchange.prompt, PROMPT_RUN)[0]
        ctx.canaries = [c for i, raw in enumerate(exchange.canaries) if (c := _canary(raw, i)) is not None]
        return ctx


@dataclass(frozen=True)
class Canary:
    index: int  # in `Exchange.canaries`
    low: str  # folded, lower case
    alnum: str  # ... letters and digits only
    encoded: tuple[tuple[str, str], ...]  # (form, encoding) as it would appear inside encoded text


# An application sends the same system prompt and canaries with every response: prepared once (bounded caches)
@lru_cache(maxsize=256)
def _prompt_runs(system_prompt: str, k: int) -> tuple[dict[tuple[str, ...], int], frozenset[str]]:
    runs = distinctive_runs(_WORD.findall(fold_text(system_prompt).lower()), k)
    return runs, frozenset(r[0] for r in runs)


@lru_cache(maxsize=1024)
def _canary(raw: str, index: int) -> Canary | None:
    low = fold_text(raw).lower().strip()
    if not low:
        return None
    b = raw.encode("utf-8")
    return Canary(index, low, _ALNUM.sub("", low), (*((f, "base64") for f in _base64_forms(b)), (b.hex(), "hex")))


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


def distinctive_runs(words: Sequence[str], k: int) -> dict[tuple[str, ...], int]:
    """Every run of `k` consecutive words with at least two words that are not common, with where it first starts."""
    out: dict[tuple[str, ...], int] = {}
    rare = [w not in NON_ANCHOR for w in words]
    for i in range(len(words) - k + 1):
        if sum(rare[i : i + k]) >= 2:
            out.setdefault(tuple(words[i : i + k]), i)
    return out


class ResponseCheck(ABC):
    """One check of a response against its exchange; evidence spans are in the original response."""

    name: str

    @abstractmethod
    def check(self, text: str, docs: Sequence[Normalized], ctx: Context) -> list[Evidence]: ...


CHECKS: dict[str, type[ResponseCheck]] = {}


def register(cls: type[ResponseCheck]) -> type[ResponseCheck]:
    CHECKS[cls.name] = cls
    return cls


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


@register
class PromptLeakCheck(ResponseCheck):
    name = "prompt_leak"

    def check(self, text: str, docs: Sequence[Normalized], ctx: Context) -> list[Evidence]:
        if not ctx.runs:
            return []
        k, cfg = ctx.cfg.leak_shingle, ctx.cfg
        found: set[tuple[str, ...]] = set()
        stretches: list[tuple[int, int, int, Variant]] = []  # (words, start, end in the view, view)
        runs, firsts = ctx.runs, ctx.firsts
        for v in _views(docs):
            low = v.text.lower()
            words = _WORD.findall(low)
            hits = [i for i in range(len(words) - k + 1)
                    if words[i] in firsts and tuple(words[i : i + k]) in runs]
            if low.count(" ") * 5 >= len(low) * 2 > 0:  # letter-spaced ("y o u  a r e ..."): 40 %+ spaces
                stretches += self._spaced(v, ctx, found)
            if not hits:
                continue
            covered = [False] * len(words)
            for i in hits:
                found.add(tuple(words[i : i + k]))
                covered[i : i + k] = [True] * k
            ms = list(_WORD.finditer(low))  # word spans, only for a view that reproduced something
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
        longest = max(w for w, *_ in stretches)
        score = min(1.0, max(len(found) / len(ctx.runs) / cfg.leak_full_share, longest / cfg.leak_full_words))
        if score < cfg.min_evidence:
            return []
        detail = (f"{len(found)} of the system prompt's {len(ctx.runs)} distinctive {k}-word runs; longest stretch "
                  f"{longest} words")
        out, seen = [], set()
        for _w, a, b, v in stretches:  # every stretch, so that `sanitized_text` hides all of what leaked
            s, e = v.span(a, b)
            if (s, e) not in seen:
                seen.add((s, e))
                out.append(Evidence(self.name, Category.PROMPT_EXTRACTION, round(score, 6), s, e, text[s:e][:200],
                                    v.kind, detail))
        return out

    @staticmethod
    def _spaced(v: Variant, ctx: Context, found: set[tuple[str, ...]]) -> list[tuple[int, int, int, Variant]]:
        """Runs found in the view with every separator removed (each run's words joined): letter-spaced text has
        no words to compare. A stretch here is one run."""
        squeezed = _ALNUM.sub("", v.text.lower())
        out, where = [], None
        for run in ctx.runs:
            joined = "".join(run)
            j = squeezed.find(joined) if len(joined) >= 12 else -1  # shorter: found anywhere by chance
            if j >= 0:
                found.add(run)
                where = where or _squeeze(v.text.lower())[1]
                out.append((len(run), where[j], where[j + len(joined) - 1] + 1, v))
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
            hit = self._find(text, views, c, ctx.cfg.canary_min_chars)
            if hit is not None:
                (s, e), kind, how = hit
                out.append(Evidence(self.name, Category.PROMPT_EXTRACTION, 1.0, s, e, "", kind,
                                    f"canary #{c.index} found {how}"))
        return out

    @staticmethod
    def _find(text: str, views: list[_View], c: Canary, min_chars: int) -> tuple[tuple[int, int], str, str] | None:
        """(original span, view, how) of the first sighting: as written in a view, with separators removed, or
        still encoded in the raw text (too short a run for the normaliser to decode)."""
        for w in views:
            i = w.low.find(c.low)
            if i >= 0:
                return w.v.span(i, i + len(c.low)), w.v.kind, "as written"
            if len(c.alnum) >= min_chars and c.alnum in w.squeezed:
                squeezed, where = _squeeze(w.low)  # positions only for a hit
                j = squeezed.find(c.alnum)
                return w.v.span(where[j], where[j + len(c.alnum) - 1] + 1), w.v.kind, "with its separators removed"
        for form, enc in c.encoded:
            at = text.find(form) if enc == "base64" else text.lower().find(form)
            if at >= 0:
                return (at, at + len(form)), "raw", f"{enc}-encoded"
        return None


class _View:
    """A view's lower-case text and, when first asked, its letters and digits alone (shared by all canaries)."""

    def __init__(self, v: Variant) -> None:
        self.v = v
        self.low = v.text.lower()
        self._squeezed: str | None = None

    @property
    def squeezed(self) -> str:
        if self._squeezed is None:
            self._squeezed = _ALNUM.sub("", self.low)
        return self._squeezed


# markdown images ![alt](url) and links [text](url), HTML img/a, reference definitions [ref]: url, bare URLs
_IMAGE = re.compile(r"!\[[^\]\n]{0,500}\]\(\s*<?(https?://[^\s)>]+)|<img\b[^>]*?\bsrc\s*=\s*[\"']?(https?://[^\s\"'>]+)",
                    re.IGNORECASE)
_URL = re.compile(r"https?://[^\s)\]>\"'`]+", re.IGNORECASE)
_HEXLIKE = re.compile(r"[0-9a-fA-F]+")


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    return any(host == a or host.endswith("." + a) for a in allowed)


def _carried(url: str) -> list[str]:
    """The data a URL can carry: query values, the fragment and path segments, percent-decoded; base64 values also
    decoded when they decode to text."""
    parts = urlsplit(url)
    vals = [v for _, v in parse_qsl(parts.query, keep_blank_values=False)]
    vals += [unquote_plus(parts.fragment)] if parts.fragment else []
    vals += [unquote_plus(p) for p in parts.path.split("/") if p]
    out = []
    for v in vals:
        out.append(v)
        if len(v) >= 16 and not _HEXLIKE.fullmatch(v):
            try:
                d = base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_", validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
            if d.isprintable():
                out.append(d)
    return out


@register
class ExfilLinkCheck(ResponseCheck):
    name = "exfil_link"

    def check(self, text: str, docs: Sequence[Normalized], ctx: Context) -> list[Evidence]:
        if "http" not in text.lower():
            return []
        cfg = ctx.cfg
        images = {m.start(1) if m.group(1) else m.start(2) for m in _IMAGE.finditer(text)}
        out: list[Evidence] = []
        for m in _URL.finditer(text):
            url = m.group(0).rstrip(".,;:!?")
            try:
                host = (urlsplit(url).hostname or "").lower()
            except ValueError:
                continue  # not a URL a renderer would load either
            if not host or _host_allowed(host, cfg.allowed_link_hosts):
                continue
            why, source = self._data(url, ctx)
            if not why:
                continue
            image = m.start() in images
            if image:  # loads by itself: the conversation's words in it are the conversation leaving
                score = cfg.image_text_data if source == "text" else cfg.image_exchange_data
            else:  # a link built from the user's question (a search link) is what answers do
                score = cfg.link_exchange_data if source == "exchange" else cfg.link_text_data
            out.append(Evidence(self.name, Category.EXFILTRATION, score, m.start(), m.start() + len(url), url[:200],
                                "raw", f"{'image (loads without a click)' if image else 'link'} to {host} "
                                       f"carrying {why}"))
        return out

    @staticmethod
    def _data(url: str, ctx: Context) -> tuple[str, str]:
        """(what the URL carries, where it came from: "exchange" (a canary, PII, the system prompt), "prompt" (the
        user's words), "text" (words of unknown origin)); ("", "") when it carries nothing worth a word."""
        vals = _carried(url)
        if not vals:
            return "", ""
        blob = " ".join(vals)
        low = fold_text(blob).lower()
        alnum = _ALNUM.sub("", low)
        for c in ctx.canaries:
            if c.low in low or (len(c.alnum) >= ctx.cfg.canary_min_chars and c.alnum in alnum) \
                    or any(form in blob for form, _ in c.encoded):
                return f"canary #{c.index}", "exchange"
        pii = find_pii(blob)
        if pii:
            return f"{pii[0].entity.lower()} data", "exchange"
        words = _WORD.findall(low)
        k = ctx.cfg.leak_shingle
        if ctx.runs and any(tuple(words[i : i + k]) in ctx.runs for i in range(len(words) - k + 1)):
            return "words of the system prompt", "exchange"
        if ctx.prompt_runs and any(tuple(words[i : i + PROMPT_RUN]) in ctx.prompt_runs
                                   for i in range(len(words) - PROMPT_RUN + 1)):
            return "words of the user's prompt", "prompt"
        for v in vals:
            if len(v) >= ctx.cfg.link_data_chars and len(_WORD.findall(v)) >= ctx.cfg.link_data_words:
                return f"{len(v)} characters of text", "text"
        return "", ""


def check_response(text: str, docs: Sequence[Normalized], exchange: Exchange, cfg: ResponseConfig
                   ) -> list[Evidence]:
    """Evidence of every configured check (`cfg.checks`, in order)."""
    ctx = Context.build(exchange, cfg)
    out: list[Evidence] = []
    for name in cfg.checks:
        out.extend(CHECKS[name]().check(text, docs, ctx))
    return out


# what `sanitized_text` replaces in a response (besides PII): the link itself, a canary, a leaked stretch, and
# invisible characters that carry text (Unicode tags: what a smuggled instruction or stolen datum is written in)
_REDACT_AS = {"exfil_link": "LINK", "canary": "CANARY", "prompt_leak": "SYSTEM_PROMPT", "invisible": "HIDDEN_TEXT"}


def redactions(text: str, evidence: Sequence[Evidence], threat_th: float) -> list[PiiMatch]:
    """Spans of threat-level response evidence, as matches `pii.redact` can replace (entity names above)."""
    out = []
    for e in evidence:
        ent = _REDACT_AS.get(e.detector)
        if ent is not None and e.score >= threat_th and e.end > e.start:
            out.append(PiiMatch(ent, e.start, e.end, text[e.start : e.end], e.detector))
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
