"""Parser: binding and associativity from the contract, errors with positions, declared atoms."""

from __future__ import annotations

import pytest

from aimds_ray.core.ltl import PolicySyntaxError, UnknownAtomError, parse, verify


@pytest.mark.parametrize(("text", "same_as"), [
    ("a & b | c", "(a & b) | c"),
    ("a | b & c", "a | (b & c)"),
    ("a -> b -> c", "a -> (b -> c)"),
    ("a <-> b -> c", "a <-> (b -> c)"),
    ("a | b -> c", "(a | b) -> c"),
    ("a U b U c", "a U (b U c)"),
    ("a R b S c", "a R (b S c)"),
    ("a U b & c", "(a U b) & c"),
    ("G a U b", "(G a) U b"),
    ("!a U b", "(!a) U b"),
    ("X !a & F[0,10ms] b", "(X (!a)) & (F[0s,0.01s] b)"),
    ("GF p", "G (F p)"),
    ("Xp", "X p"),
    ("G[0,1s] !tool_call", "G[0ms,1000ms] (!tool_call)"),
    ("O[1,2] p", "O[1s,2s] p"),
    ('score >= 0.9 & category == "pii"', '(score >= 0.9) & (category == "pii")'),
])
def test_binding(text: str, same_as: str) -> None:
    assert parse(text) == parse(same_as)


@pytest.mark.parametrize(("text", "pos", "expected"), [
    ("G (p ->", 7, "operand"),
    ("p U U q", 4, "operand"),
    ("F[0,10xs] p", 6, "ms or s"),
    ("(p & q", 6, "')'"),
    ("p q", 2, "operator"),
    ("F[0 10ms] p", 4, "','"),
    ("p $ q", 2, "operator"),
    ("Pq", 0, "atom"),
    ('s >= "x"', 5, "number"),
    ("F[2s,1s] p", 2, "lower bound"),
    ('c == "open', 5, 'closing "'),
])
def test_errors_name_position_and_expectation(text: str, pos: int, expected: str) -> None:
    with pytest.raises(PolicySyntaxError) as ei:
        parse(text)
    assert ei.value.pos == pos
    assert expected in ei.value.expected
    assert f"position {pos}" in str(ei.value)


def test_unknown_atoms_rejected_unless_declared() -> None:
    with pytest.raises(UnknownAtomError, match="redactd"):
        parse("G (pii -> F redactd)", atoms={"pii", "redacted"})
    assert parse("G (pii -> F redacted)", atoms={"pii", "redacted"})
    events = [{"t": 0, "type": "pii"}, {"t": 1, "type": "redacted"}]
    with pytest.raises(UnknownAtomError):
        verify("F redactd", events, strict=True)
    with pytest.raises(UnknownAtomError):
        verify("F redactd", events, atoms=["pii"])
    assert verify("F redacted", events, strict=True).verdict == "satisfied"  # inferred from the trace
    r = verify("F redactd", events)  # lenient default: false everywhere, but reported
    assert r.verdict == "violated" and r.unknown_atoms == ["redactd"]


def test_atom_semantics_type_or_true_field_and_comparisons() -> None:
    ev = [{"t": 0.0, "type": "detect", "pii": True, "score": 0.93, "threat_type": "prompt_extraction",
           "flag": "true", "n": 3}]
    for f, want in [("detect", True), ("pii", True), ("flag", False), ("response", False),
                    ("score >= 0.9", True), ("score > 0.93", False), ('threat_type == "prompt_extraction"', True),
                    ('threat_type != "prompt_extraction"', False), ('missing != "x"', False), ("n == 3", True),
                    ("pii == true", True), ("pii != false", True), ("score < -1", False), ('n == "3"', False)]:
        assert (verify(f, ev).verdict == "satisfied") is want, f


@pytest.mark.parametrize("text", ["(" * 3000 + "a" + ")" * 3000, "X " * 5000 + "a", "!" * 3000 + "a",
                                  " & ".join(["a"] * 3000), "(" * 65 + "a" + ")" * 65])
def test_deep_nesting_is_a_syntax_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(PolicySyntaxError, match="nested"):
        parse(text)


def test_nesting_up_to_the_limit_parses_and_verifies() -> None:
    from aimds_ray.core.ltl.syntax import MAX_NESTING

    ev = [{"t": 0, "type": "a"}, {"t": 1, "type": "b"}]
    for text in ["(" * MAX_NESTING + "a" + ")" * MAX_NESTING, "X " * MAX_NESTING + "a", "!" * MAX_NESTING + "a",
                 " | ".join(["b"] * MAX_NESTING + ["a"])]:
        assert verify(parse(text), ev).verdict in ("satisfied", "violated")
