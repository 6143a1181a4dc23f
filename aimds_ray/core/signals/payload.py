"""A harmful payload in a manipulation wrapper: harm topic x pretext, and an adversarial suffix after a harm topic.

Why combinations: a harmful question alone is `harmful_request` (not manipulation), a persona or a story frame alone
is ordinary role-play, and a run of symbols alone is ordinary code. The jailbreaks a linear n-gram model does not
generalise to are exactly their combinations: PAIR-style pretexts ("you are a novelist... for research purposes
only") around a harmful goal, and GCG/DSN-style optimised token suffixes after one. The lexicons are data
(`aimds_ray/data/payload.yaml`); one Aho-Corasick pass finds every term, and the suffix shape is computed only when
a harm term is present, so benign traffic pays one automaton pass. The two mechanisms are two pieces of evidence
(`payload`: harm strength x pretext strength; `payload_suffix`: the suffix's strength, gated by a harm term), each
calibrated on its own by the fusion step. Optimised suffixes also follow requests the lexicon has no term for
("... posing as an expert arguing that 5G causes COVID-19 $\\{fen AS en ..."): a text that opens with a request
verb and ends in a clearly odd tail with stray brackets counts too, at a reduced strength (code in a question
closes its brackets; on the dev data no benign row takes this path).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from pathlib import Path

import numpy as np

from aimds_ray.core import literal_pass
from aimds_ray.core import multimatch as M
from aimds_ray.core.config import load_yaml
from aimds_ray.core.normalize import Normalized, fold_text
from aimds_ray.core.report import Category, Evidence
from aimds_ray.core.signals.base import Signal, SignalContext, register

LEXICON_PATH = Path(__file__).resolve().parent.parent.parent / "data" / "payload.yaml"
_CAMEL = re.compile(r"[a-z][A-Z]")
_MARKUP = re.compile(r"`[^`\s]+`|\{[\w.-]+\}|\|[\w.-]+\|")
# a function named in prose ("'readline()'", "get_content_type()."), a plural "(s)", a reST field (":param")
_PROSE_CODE = re.compile(r"[\"'`(]*[A-Za-z_][\w.]*\(\)[\"'`.,;:)]*|[A-Za-z]+\(s\)[\"'.,;:)]*|:[a-z]+:?")
# emoticons (":)", ";-D", "(:", "<3", "^_^", "xD") are people, not optimisers: not odd, and their brackets are no
# stray brackets
_EMOTICON_CORE = r"(?:[:;=8][-'^]?[()\[\]DPpOo3/\\|*]+|[()\[\]]+[-'^]?[:;=8]|<3+|\^_*\^|[xX]D+)"
_EMOTICON = re.compile(rf"{_EMOTICON_CORE}[.,!?]*")
_EMOTICONS_IN = re.compile(rf"(?<!\S){_EMOTICON_CORE}(?=[.,!?]*(?:\s|$))")
# typographic quotes, apostrophes, dashes and the ellipsis are prose ("“OneLove”", "Qatar’s", "world,”"): judged
# as their ASCII forms, not as symbols glued to letters; so is CJK punctuation, which sits inside the long
# whitespace-free tokens of Chinese or Japanese sentences
_TYPOGRAPHIC = str.maketrans({**dict.fromkeys("‘’‚‛′`", "'"), **dict.fromkeys("“”„‟″«»", '"'),
                              **dict.fromkeys("‐‑‒–—―", "-"), "…": "...", **dict.fromkeys("，。、；：！？・", ".")})
SUFFIX_DETECTOR = "payload_suffix"  # the evidence's detector name for the suffix mechanism


@dataclass(frozen=True)
class SuffixShape:
    window: int = 8
    min_tokens: int = 10
    head_fraction: float = 0.4
    head_max_odd: float = 0.1
    min_odd: float = 0.25
    full_odd: float = 0.5
    head_chars: int = 300
    tail_chars: int = 600
    # a long text (over head_chars + tail_chars: technical documents, pasted pages) is searched over a hundred
    # windows of its tail, where two stray symbols in eight tokens (a reference link, a `$variable`) are common;
    # there the suffix must be at least this odd
    long_min_odd: float = 0.375
    # without a harm term: a suffix counts only after a text that opens with a request verb, when it is at least
    # `ungated_min_odd` odd and its brackets do not balance (optimised suffixes leave stray brackets; code closes
    # them), at `ungated_factor` of the gated strength
    request_verbs: tuple[str, ...] = ()
    ungated_min_odd: float = 0.5
    ungated_min_unbalanced: int = 2
    ungated_factor: float = 0.8


@dataclass(frozen=True)
class Lexicon:
    automaton: M.Automaton
    harm: np.ndarray  # per literal: True for a harm term
    wrapper: np.ndarray  # per literal: True for a wrapper term
    group: tuple[str, ...]  # per literal: "harm:<topic>" or "wrapper:<technique>"
    suffix: SuffixShape
    harm_full: int
    wrapper_full: int
    min_score: float
    request_head: re.Pattern[str] | None = None  # the text opens with one of `suffix.request_verbs`
    literal_set: literal_pass.LiteralSet | None = None  # the literals as registered with the shared pass


def lexicon_set(path: str) -> str:
    """The name of the lexicon file's literal set in `literal_pass`."""
    return f"payload.lexicon:{path}"


@lru_cache(maxsize=2)
def load_lexicon(path: str = str(LEXICON_PATH)) -> Lexicon:
    spec = load_yaml(Path(path).read_text(encoding="utf-8"))
    literals: list[str] = []
    flags: list[int] = []
    groups: list[str] = []
    index: dict[str, int] = {}
    for kind in ("harm", "wrappers"):
        for topic, terms in spec[kind].items():
            for term in terms:
                prefix = term.endswith("*")
                lit = fold_text(term.rstrip("*")).strip()
                if not lit.isascii() or len(lit) < 2:
                    raise ValueError(f"{path}: {kind}.{topic}: term {term!r} must be ASCII and 2+ characters")
                if lit in index:
                    continue  # a term listed twice counts once (the first group names it)
                index[lit] = len(literals)
                literals.append(lit)
                flags.append(M.WORD_START | (0 if prefix else M.WORD_END))
                groups.append(f"{'harm' if kind == 'harm' else 'wrapper'}:{topic}")
    harm = np.array([g.startswith("harm:") for g in groups])
    # counted in the normaliser's shared pass over the main view too (group 0: harm terms, 1: wrapper terms)
    shared = literal_pass.register(lexicon_set(path), literals, flags, (~harm).astype(np.int64).tolist(), 2)
    sc = spec.get("scoring", {})
    shape_spec = dict(spec.get("suffix", {}))
    shape_spec["request_verbs"] = tuple(shape_spec.get("request_verbs", ()))
    shape = SuffixShape(**shape_spec)
    verbs = "|".join(map(re.escape, shape.request_verbs))
    head = re.compile(rf"\s*(?:{verbs})\b", re.IGNORECASE) if shape.request_verbs else None
    return Lexicon(M.Automaton.build(literals, flags), harm, ~harm, tuple(groups), shape,
                   int(sc.get("harm_full", 2)), int(sc.get("wrapper_full", 3)), float(sc.get("min_score", 0.45)),
                   head, shared)


@lru_cache(maxsize=1 << 13)  # tokens are at most head_chars + tail_chars (900) characters: ~30 MB at worst
def _odd_token(tok: str, markup: bool = False) -> bool:
    """A token GCG-style optimisation leaves and prose does not: symbols glued to letters, a camel-case junction
    inside a word, or a cluster of two or more different punctuation marks. Typographic quotes and dashes, emoticons
    and censored words are prose. Markup (links, `code` spans, {placeholders}, |tags|, snake_case, a lone symbol,
    "name()", "item(s)", ":param") is odd only when `markup` is set: it is not what optimisers emit (none of 1,512 odd tokens in the dev
    GCG/DSN tails, a third of those in 14,000 chunks of manuals), but it does mark a text as technical, not prose,
    which is what the head check asks. Memoised: prose repeats its words, and a 2 KB text's head and tail are
    ~150 tokens (suffix_oddness on 2 KB prompts: 52 -> 33 us)."""
    if not tok.isascii():
        tok = tok.translate(_TYPOGRAPHIC)
    s = tok.lstrip("(\"'*").rstrip(".,!?;:)\"'*")
    if s.isalpha():  # a word, the common case: odd only for a camel-case junction (emoticons like "xD" have none)
        if s[1:].islower() or s.isupper():
            return False  # "word", "Word", "WORD": no lower-case letter followed by a capital
        return _CAMEL.search(s, 1) is not None
    if _EMOTICON.fullmatch(tok):
        return False
    if not s:
        return len(tok) >= 2 and len(set(tok)) >= 2
    if ((len(s) == 1 and s not in "|()[]{}")  # "#", "=", ">" (bars and brackets stay: optimisers leave them)
            or "://" in s or s.startswith("www.") or (s[0] in "`{|" and _MARKUP.fullmatch(s) is not None)
            or ("_" in s[1:-1] and s.replace("_", "").isalnum())
            or (("(" in tok or tok[0] == ":") and _PROSE_CODE.fullmatch(tok) is not None)):
        return markup
    if _CAMEL.search(s, 1):
        return True
    core = s.replace("'", "").replace("-", "").replace(".", "").replace("/", "")
    if "*" in core and core.replace("*", "").isalpha():
        return False  # a censored word ("f**k", "sh*t"), as prose spells it
    if sum(c.isdigit() for c in core) * 2 >= len(core):
        return False  # numbers, dates, table cells: data, not optimised tokens
    return bool(core) and not core.isalnum()


def _token_start(text: str, start: int, tokens: list[str], k: int) -> int:
    """Where tokens[k] starts in `text`, tokens being text[start:].split(): each token is the first occurrence of
    its string after the previous one (only whitespace lies between them)."""
    pos = start
    for tok in tokens[:k]:
        pos = text.find(tok, pos) + len(tok)
    return text.find(tokens[k], pos)


def suffix_oddness(text: str, shape: SuffixShape) -> tuple[float, int]:
    """(max fraction of odd tokens over a window in the text's tail, character start of that window); 0 when the
    text is short or its head does not read as prose (then the whole text is code or data, not prose + suffix).
    A long text is judged on its first `head_chars` and last `tail_chars` only: a suffix is at the end, and the
    cost stays flat in the length. Tokens come from `str.split` (the same whitespace as a regex's \\S+, ~6x
    faster); only the winning window's start is located."""
    if len(text) <= shape.head_chars + shape.tail_chars:
        base, tokens = 0, text.split()
        n = len(tokens)
        if n < max(shape.min_tokens, shape.window):
            return 0.0, 0
        skip = max(3, int(n * shape.head_fraction))
        head_odd = sum(map(_odd_token, tokens[:skip], repeat(True))) / skip
    else:
        head_toks = text[: shape.head_chars].split()[:-1]  # the last one may be cut
        head_odd = sum(map(_odd_token, head_toks, repeat(True))) / max(1, len(head_toks))
        base = len(text) - shape.tail_chars
        tokens, skip = text[base:].split(), 1  # the first one may be cut
    tail = tokens[skip:]
    if head_odd > shape.head_max_odd or not tail:
        return 0.0, 0
    if (("]" in text and ("](" in text or "]:" in text)) or ("`" in text and ":`" in text)) \
            and (blank := _blank_links(text)) != text:  # (each needle only where its rarer character is: memchr)
        base = _token_start(text, base, tokens, skip)  # where the tail starts: read again from the blanked text
        text, tokens, skip = blank, blank[base:].split(), 0
        tail = tokens
        if not tail:
            return 0.0, 0
    odd = np.fromiter(map(_odd_token, tail), dtype=np.float64, count=len(tail))
    if len(odd) >= shape.window:
        win = np.convolve(odd, np.ones(shape.window), "valid") / shape.window
    else:
        win = np.array([odd.mean()])
    j = int(win.argmax())
    return float(win[j]), _token_start(text, base, tokens, skip + j)


# Markup that spans tokens, which the token test cannot see whole: Markdown links ("[User guide](./guide.md)",
# "[the build repository][build]") and reference definitions ("[build]: https://..." alone on its line), reST roles
# (":attr:`~response.status`"). Documents' tails are full of them; optimisers do not write them. Blanked to their
# text (the same length, so positions hold) before a tail is judged
_LINK_MARKUP = re.compile(r"\[([^\]\n]{1,80})\](?:\([^\s()]{1,200}\)|\[[^\]\n]{0,80}\])"
                          r"|^[ \t]*\[[^\]\n]{1,80}\]:[ \t]+(?:\w+://|www\.|\.{0,2}/|#)\S*[ \t]*$"
                          r"|:[a-z]+(?::[a-z]+)?:`[^`\n]{1,120}`", re.MULTILINE)


def _blank_links(text: str) -> str:
    return _LINK_MARKUP.sub(lambda m: (m.group(1) or ("role" if m.group(0)[0] == ":" else "")).ljust(len(m.group(0))),
                            text)


def unbalanced(text: str) -> int:
    """How many brackets of the three kinds are left unmatched by count (order ignored; emoticons' do not count)."""
    if ":" in text or ";" in text or "=" in text:
        text = _EMOTICONS_IN.sub(" ", text)
    return (abs(text.count("(") - text.count(")")) + abs(text.count("[") - text.count("]"))
            + abs(text.count("{") - text.count("}")))


# Code, not an optimiser's tokens: a question about a snippet ("How do I kill this process? os.kill(pid, ...)",
# "Explain this: const f = (a, b) => { return a.map(...") has the suffix shape, symbols glued to words and often
# unclosed brackets when the snippet is cut. Two signs of real code in the suffix (a method call, an assignment, a
# statement keyword) call it code; optimised suffixes show at most one (2 of 802 dev suffix hits had two).
_CODE_CALL = re.compile(r"\b[A-Za-z_]\w*\.[A-Za-z_]\w*\(")
_CODE_KEYWORD = re.compile(r"(?<![\w$])(?:def|function|const|let|var|return|import|print|printf|console\.log|select"
                           r"|elif|lambda)(?![\w$])", re.IGNORECASE)
_CODE_KEYWORD_LOWER = re.compile(_CODE_KEYWORD.pattern)
# a regular expression asked about: character-class ranges, counted repeats, class escapes
_CODE_REGEX = re.compile(r"\[\^?[\w\\]-[\w\\][^\]]*\]|\{\d+(?:,\d*)?\}|\\[dwsbDWSB](?![a-z])")
_CODE_ASSIGN = re.compile(r"\b[A-Za-z_]\w*(?:\[[^\]]*\])?\s*(?:=|\+=|-=|:=)\s*[\w\[(\"'{-]")


def looks_like_code(tail: str) -> bool:
    """At least two signs of program text (method calls, distinct statement keywords, assignments, regex syntax)."""
    # each regex only where its required characters are (a call needs "." and "(", an assignment "="); keywords
    # on lower-cased ASCII case-sensitively: the same matches, 1.5x faster
    n = len(_CODE_CALL.findall(tail)) if "(" in tail and "." in tail else 0
    n += len(_CODE_REGEX.findall(tail))
    if n >= 2:
        return True
    if tail.isascii():
        n += len(set(_CODE_KEYWORD_LOWER.findall(tail.lower())))
    else:
        n += len({m.group(0).lower() for m in _CODE_KEYWORD.finditer(tail)})
    return n >= 2 or n + (len(_CODE_ASSIGN.findall(tail)) if "=" in tail else 0) >= 2


def _long_floor(text: str, s: SuffixShape) -> float:
    return s.long_min_odd if len(text) > s.head_chars + s.tail_chars else 0.0


def request_suffix(original: str, lex: Lexicon) -> tuple[float, int]:
    """Suffix strength without a harm term (0 unless the text opens with a request verb, its last `tail_chars`
    leave brackets unmatched and its tail is odd enough) and where the suffix starts."""
    s = lex.suffix
    if lex.request_head is None or lex.request_head.match(original) is None:
        return 0.0, 0
    if unbalanced(original[-s.tail_chars:]) < s.ungated_min_unbalanced:
        return 0.0, 0  # checked first: six counts, where the shape needs a tokenisation of head and tail
    odd, at = suffix_oddness(original, s)
    if odd < max(s.ungated_min_odd, _long_floor(original, s)) or looks_like_code(original[at:]):
        return 0.0, 0
    return min(1.0, odd / s.full_odd) * s.ungated_factor, at


def payload_scores(seen: set[int], original: str, lex: Lexicon
                   ) -> tuple[float, float, float, int, list[str]]:
    """(harm, pretext, suffix) strengths in [0, 1], where the suffix starts in `original`, and the groups of the
    distinct terms seen (literal ids of `lex.automaton` found in the folded main view; the suffix shape is read
    from the original, case kept). The suffix counts only after a harm term: the term gates it."""
    if not seen:
        return 0.0, 0.0, 0.0, 0, []
    ids = sorted(seen)
    n_harm = sum(1 for i in ids if lex.harm[i])
    if n_harm == 0:
        return 0.0, 0.0, 0.0, 0, []
    n_wrap = len(ids) - n_harm
    harm = min(1.0, n_harm / lex.harm_full)
    pretext = min(1.0, n_wrap / lex.wrapper_full)
    odd, at = suffix_oddness(original, lex.suffix)
    s = lex.suffix
    floor = max(s.min_odd, _long_floor(original, s))
    suffix = 0.0 if odd < floor or looks_like_code(original[at:]) else min(1.0, odd / s.full_odd)
    return harm, pretext, suffix, at, [lex.group[i] for i in ids]


@register
class PayloadSignal(Signal):
    name = "payload"

    def __init__(self, ctx: SignalContext) -> None:
        super().__init__(ctx)
        self.lex = load_lexicon()
        self._set = lexicon_set(str(LEXICON_PATH))
        self._is_wrapper = self.lex.wrapper.astype(np.int64)  # group 0: harm terms, group 1: wrapper terms

    def _no_harm(self, doc: Normalized) -> bool:
        """No harm term in the main view: the common case, read from the normaliser's shared pass when it counted
        this lexicon, else in the automaton's lean counting pass (no id lists allocated)."""
        c = doc.counts.of(self._set, self.lex.literal_set) if doc.counts is not None else None
        if c is None:
            c = self.lex.automaton.group_counts(doc.text, self._is_wrapper, 2)
        return c[0] == 0

    def scan(self, doc: Normalized) -> list[Evidence]:
        if self._no_harm(doc):
            return self._request_suffix(doc)
        return self._evidence(doc, self.lex.automaton.find(doc.text)[0])

    def scan_batch(self, docs: Sequence[Normalized]) -> list[list[Evidence]]:
        """As `scan` for each; the texts with a harm term found in one compiled call."""
        harm = [not self._no_harm(d) for d in docs]
        found = iter(self.lex.automaton.find_many([d.text for d, h in zip(docs, harm, strict=True) if h]))
        return [self._evidence(d, next(found)[0]) if h else self._request_suffix(d)
                for d, h in zip(docs, harm, strict=True)]

    def _request_suffix(self, doc: Normalized) -> list[Evidence]:
        suffix, at = request_suffix(doc.original, self.lex)
        if suffix <= 0.0:
            return []
        return [Evidence(SUFFIX_DETECTOR, Category.ADVERSARIAL_SUFFIX, round(suffix, 6), doc.offset + at,
                         doc.offset + len(doc.original), doc.original[at : at + 60], "raw",
                         f"adversarial suffix {suffix:.2f} after a request (no harm term; stray brackets)")]

    def _evidence(self, doc: Normalized, seen: set[int]) -> list[Evidence]:
        harm, pretext, suffix, at, groups = payload_scores(seen, doc.original, self.lex)
        if harm == 0.0:  # wrapper terms only: the request path is the one left
            return self._request_suffix(doc)
        out: list[Evidence] = []
        topics = ", ".join(sorted({g.split(":", 1)[1] for g in groups if g.startswith("harm:")}))
        if harm * pretext >= self.lex.min_score:
            v = doc.variants[0]
            s, e = v.span(0, len(v.text)) if v.text else (v.offset, v.offset)
            wraps = ", ".join(sorted({g.split(":", 1)[1] for g in groups if g.startswith("wrapper:")}))
            out.append(Evidence(self.name, Category.JAILBREAK, round(harm * pretext, 6), s, e, "", v.kind,
                                f"harm {harm:.2f} ({topics}) x pretext {pretext:.2f} ({wraps})"))
        if suffix > 0.0:  # already at least min_odd / full_odd
            # its own detector name, so fusion calibrates the two mechanisms separately
            out.append(Evidence(SUFFIX_DETECTOR, Category.ADVERSARIAL_SUFFIX, round(suffix, 6), doc.offset + at,
                                doc.offset + len(doc.original), doc.original[at : at + 60], "raw",
                                f"adversarial suffix {suffix:.2f} after a harmful request ({topics})"))
        return out
