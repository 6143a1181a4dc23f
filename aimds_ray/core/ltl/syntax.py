"""Formula syntax: AST, lexer and a precedence-climbing parser with errors that name position and expected token.

The grammar is documented in the package docstring (`aimds_ray.core.ltl`). Formulas are immutable, hashable
dataclasses so they can be hash-consed (shared sub-formulas across policies are evaluated once) and memoised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "Atom", "Formula", "PolicySyntaxError", "UnknownAtomError", "parse", "atoms_of", "compare",
    "FUTURE_OPS", "PAST_OPS", "TIMED_OPS",
]


class PolicySyntaxError(ValueError):
    """A formula does not parse. `pos` is the 0-based character offset, `expected` what the parser wanted."""

    def __init__(self, message: str, text: str, pos: int, expected: str = "") -> None:
        self.text, self.pos, self.expected = text, pos, expected
        caret = f"\n  {text}\n  {' ' * pos}^" if text and "\n" not in text else ""
        super().__init__(f"{message} at position {pos}{caret}")


class UnknownAtomError(ValueError):
    """A formula names atoms that are not declared (typos are the usual cause)."""

    def __init__(self, atoms: Iterable[str], declared: Iterable[str]) -> None:
        self.atoms = sorted(set(atoms))
        known = sorted(set(declared))
        hint = f"; declared: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}" if known else ""
        super().__init__(f"unknown atom(s) {', '.join(self.atoms)} (declare them or check the spelling){hint}")


@dataclass(frozen=True, slots=True)
class Atom:
    """An event predicate. `op is None`: the event's type is `name` or its field `name` is true.
    Otherwise a comparison `field op value` (false when the field is missing or of another type)."""

    name: str
    op: str | None = None
    value: float | int | str | bool | None = None

    @property
    def key(self) -> str:
        if self.op is None:
            return self.name
        v = self.value
        lit = ("true" if v else "false") if isinstance(v, bool) else (
            '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' if isinstance(v, str) else repr(v))
        return f"{self.name} {self.op} {lit}"


FUTURE_OPS = frozenset({"X", "N", "F", "G", "U", "R", "Ft", "Gt"})
PAST_OPS = frozenset({"Y", "O", "H", "S", "Ot", "Ht"})
TIMED_OPS = frozenset({"Ft", "Gt", "Ot", "Ht"})
_BINARY_SYM = {"and": "&", "or": "|", "implies": "->", "iff": "<->", "U": "U", "R": "R", "S": "S"}


@dataclass(frozen=True, slots=True)
class Formula:
    """One node. op in: true false atom not and or implies iff X N F G U R Y O H S Ft Gt Ot Ht (timed ones carry
    the closed interval [lo, hi] in seconds)."""

    op: str
    args: tuple[Formula, ...] = ()
    atom: Atom | None = None
    lo: float = 0.0
    hi: float = 0.0
    _hash: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.op, self.args, self.atom, self.lo, self.hi)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return to_str(self)

    @property
    def has_future(self) -> bool:
        return self.op in FUTURE_OPS or any(a.has_future for a in self.args)

    @property
    def has_past(self) -> bool:
        return self.op in PAST_OPS or any(a.has_past for a in self.args)

    def subformulas(self) -> list[Formula]:
        """Distinct sub-formulas, children before parents."""
        seen: dict[Formula, None] = {}

        def walk(f: Formula) -> None:
            if f in seen:
                return
            for a in f.args:
                walk(a)
            seen[f] = None

        walk(self)
        return list(seen)


TRUE = Formula("true")
FALSE = Formula("false")


def _fmt_time(x: float) -> str:
    if x != 0 and abs(x) < 1 and float(round(x * 1000, 9)).is_integer():
        return f"{round(x * 1000)}ms"
    return f"{int(x)}s" if float(x).is_integer() else f"{x!r}s"


def to_str(f: Formula) -> str:
    """Fully parenthesised text that parses back to the same formula."""
    op = f.op
    if op in ("true", "false"):
        return op
    if op == "atom":
        assert f.atom is not None
        return f.atom.key if f.atom.op is None else f"({f.atom.key})"
    if op == "not":
        return f"!{to_str(f.args[0])}"
    if op in _BINARY_SYM:
        return f"({to_str(f.args[0])} {_BINARY_SYM[op]} {to_str(f.args[1])})"
    if op in TIMED_OPS:
        return f"{op[0]}[{_fmt_time(f.lo)},{_fmt_time(f.hi)}] {to_str(f.args[0])}"
    return f"{op} {to_str(f.args[0])}"


def atoms_of(f: Formula) -> set[Atom]:
    return {s.atom for s in f.subformulas() if s.atom is not None}


def compare(v: object, op: str, lit: object) -> bool:
    """Comparison-atom semantics, shared by every evaluator: numbers compare with numbers (bool is not a number),
    strings with strings (== and != only), booleans with == / !=; a missing field or a type mismatch is false."""
    if isinstance(lit, bool):
        if not isinstance(v, bool):
            return False
        return (v is lit) if op == "==" else (v is not lit) if op == "!=" else False
    if isinstance(lit, str):
        if not isinstance(v, str):
            return False
        return v == lit if op == "==" else v != lit if op == "!=" else False
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    if op == "==":
        return v == lit
    if op == "!=":
        return v != lit
    if op == "<":
        return v < lit  # type: ignore[operator]
    if op == "<=":
        return v <= lit  # type: ignore[operator]
    if op == ">":
        return v > lit  # type: ignore[operator]
    return v >= lit  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------------- lexer

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<op><->|->|<=|>=|==|!=|[!&|()\[\],<>-])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)

_GLUED_RE = re.compile(r"[XNFGYOH]+(?:[a-z_][a-z0-9_]*)?\Z")
_UNARY = {"!": "not", "X": "X", "N": "N", "F": "F", "G": "G", "Y": "Y", "O": "O", "H": "H"}
_TIMED = {"F": "Ft", "G": "Gt", "O": "Ot", "H": "Ht"}
_TEMPORAL_BIN = {"U": "U", "R": "R", "S": "S"}
_OPERATOR_WORDS = set(_UNARY) | set(_TEMPORAL_BIN)
_ATOM_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")
_CMP = {"==", "!=", "<", "<=", ">", ">="}


@dataclass(slots=True)
class _Tok:
    kind: str  # num str op word end
    text: str
    pos: int


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN_RE.match(text, i)
        if not m:
            bad = text[i]
            if bad == '"':
                raise PolicySyntaxError("unterminated string", text, i, 'a closing "')
            raise PolicySyntaxError(f"unexpected character {bad!r}", text, i, "an operator, atom or '('")
        kind = m.lastgroup or ""
        word = m.group()
        if kind == "word" and _GLUED_RE.match(word):  # "GF p", "Xp": operator letters glued together
            lead = len(word) - len(word.lstrip("XNFGYOH"))
            toks.extend(_Tok("word", c, i + k) for k, c in enumerate(word[:lead]))
            if lead < len(word):
                toks.append(_Tok("word", word[lead:], i + lead))
        elif kind != "ws":
            toks.append(_Tok(kind, word, i))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# ---------------------------------------------------------------------------------------------------- parser

# binding, loosest first; every binary level is right-associative (for & | <-> that changes nothing semantically)
_LEVELS: list[dict[str, str]] = [{"<->": "iff"}, {"->": "implies"}, {"|": "or"}, {"&": "and"}, _TEMPORAL_BIN]


MAX_NESTING = 64  # operators and parentheses nested in one another (keeps every recursive pass far from the limit)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.i = 0
        self.depth = 0

    def nest(self) -> None:
        """One more level of nesting; a formula deeper than MAX_NESTING is refused, not a RecursionError."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise PolicySyntaxError(f"formula nested more than {MAX_NESTING} levels deep", self.text, self.tok.pos,
                                    "a shallower formula")

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, expected: str, tok: _Tok | None = None) -> PolicySyntaxError:
        tok = tok or self.tok
        got = "end of formula" if tok.kind == "end" else repr(tok.text)
        return PolicySyntaxError(f"expected {expected}, got {got}", self.text, tok.pos, expected)

    def expect(self, text: str, what: str | None = None) -> _Tok:
        if self.tok.text != text or self.tok.kind in ("str", "end"):
            raise self.fail(what or repr(text))
        t = self.tok
        self.i += 1
        return t

    def parse(self) -> Formula:
        if self.tok.kind == "end":
            raise self.fail("a formula")
        f = self.binary(0)
        if self.tok.kind != "end":
            raise self.fail("an operator (& | -> <-> U R S) or end of formula")
        return f

    def binary(self, level: int) -> Formula:
        if level == len(_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        ops = _LEVELS[level]
        if self.tok.kind in ("op", "word") and self.tok.text in ops:
            op = ops[self.tok.text]
            self.i += 1
            self.nest()
            right = self.binary(level)  # right-associative
            self.depth -= 1
            return Formula(op, (left, right))
        return left

    def unary(self) -> Formula:
        t = self.tok
        if t.kind == "op" and t.text == "!":
            self.i += 1
            self.nest()
            f = Formula("not", (self.unary(),))
        elif t.kind == "word" and t.text in _UNARY:
            self.i += 1
            self.nest()
            if t.text in _TIMED and self.tok.text == "[" and self.tok.kind == "op":
                lo, hi = self.interval()
                f = Formula(_TIMED[t.text], (self.unary(),), lo=lo, hi=hi)
            else:
                f = Formula(_UNARY[t.text], (self.unary(),))
        else:
            return self.primary()
        self.depth -= 1
        return f

    def interval(self) -> tuple[float, float]:
        self.expect("[")
        lo_tok = self.tok
        lo = self.duration()
        self.expect(",", "',' between the bounds")
        hi = self.duration()
        self.expect("]", "']' closing the interval")
        if hi < lo:
            raise PolicySyntaxError(f"empty interval: upper bound {hi}s < lower bound {lo}s", self.text,
                                    lo_tok.pos, "lower bound <= upper bound")
        return lo, hi

    def duration(self) -> float:
        t = self.tok
        if t.kind != "num":
            raise self.fail("a non-negative number with unit ms or s (e.g. 10ms)")
        self.i += 1
        x = float(t.text)
        unit = self.tok
        if unit.kind == "word" and unit.text in ("ms", "s") and unit.pos == t.pos + len(t.text):
            self.i += 1
            return x / 1000.0 if unit.text == "ms" else x
        if unit.kind == "word" and unit.pos == t.pos + len(t.text):
            raise PolicySyntaxError(f"unknown time unit {unit.text!r}", self.text, unit.pos, "ms or s")
        return x  # bare numbers are seconds

    def primary(self) -> Formula:
        t = self.tok
        if t.kind == "op" and t.text == "(":
            self.i += 1
            self.nest()
            f = self.binary(0)
            self.expect(")", "')'")
            self.depth -= 1
            return f
        if t.kind == "word":
            if t.text == "true":
                self.i += 1
                return TRUE
            if t.text == "false":
                self.i += 1
                return FALSE
            if t.text in _OPERATOR_WORDS:
                raise self.fail("an operand (atom, true, false, '(' or a unary operator)")
            if not _ATOM_RE.match(t.text):
                raise PolicySyntaxError(f"invalid atom {t.text!r}: atoms are lower-case [a-z_][a-z0-9_]*",
                                        self.text, t.pos, "an atom [a-z_][a-z0-9_]*")
            self.i += 1
            if self.tok.kind == "op" and self.tok.text in _CMP:
                op = self.tok.text
                self.i += 1
                return Formula("atom", atom=Atom(t.text, op, self.literal(op)))
            return Formula("atom", atom=Atom(t.text))
        raise self.fail("an operand (atom, true, false, '(' or a unary operator)")

    def literal(self, op: str) -> float | int | str | bool:
        t = self.tok
        neg = False
        if t.kind == "op" and t.text == "-":
            neg = True
            self.i += 1
            t = self.tok
        if t.kind == "num":
            self.i += 1
            v: float | int = float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
            if isinstance(v, float) and not math.isfinite(v):
                raise PolicySyntaxError("number out of range", self.text, t.pos, "a finite number")
            return -v if neg else v
        if neg:
            raise self.fail("a number after '-'")
        if t.kind == "str":
            self.i += 1
            if op not in ("==", "!="):
                raise PolicySyntaxError(f"strings compare only with == or !=, not {op}", self.text, t.pos,
                                        "a number")
            return re.sub(r"\\(.)", r"\1", t.text[1:-1])
        if t.kind == "word" and t.text in ("true", "false"):
            self.i += 1
            if op not in ("==", "!="):
                raise PolicySyntaxError(f"booleans compare only with == or !=, not {op}", self.text, t.pos,
                                        "a number")
            return t.text == "true"
        raise self.fail('a number, a "string", true or false')


def parse(text: str, atoms: Iterable[str] | None = None) -> Formula:
    """Parse `text`. With `atoms`, every atom name (plain or compared field) must be declared, else
    UnknownAtomError. `atoms=None` accepts any well-formed atom."""
    if not isinstance(text, str):
        raise TypeError(f"formula must be a string, got {type(text).__name__}")
    try:
        f = _Parser(text).parse()
    except RecursionError:  # MAX_NESTING keeps normal callers far from this; a very deep caller may still hit it
        raise PolicySyntaxError("formula nested too deeply", text, 0, "a shallower formula") from None
    if atoms is not None:
        declared = set(atoms)
        unknown = {a.name for a in atoms_of(f)} - declared
        if unknown:
            raise UnknownAtomError(unknown, declared)
    return f
