"""The Aho-Corasick kernel against the str.find reference, on random literal sets and texts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from aimds_ray.core.multimatch import POSITIONS, WORD_END, WORD_START, Automaton, find_all_ref


def _case(r: random.Random) -> tuple[list[str], list[int], str]:
    alpha = "ab c-"
    lits = sorted({"".join(r.choice(alpha) for _ in range(r.randint(1, 4))) for _ in range(r.randint(1, 12))})
    flags = [r.choice([0, WORD_START, WORD_END, WORD_START | WORD_END]) | r.choice([0, POSITIONS]) for _ in lits]
    text = "".join(r.choice(alpha + "é字") for _ in range(r.randint(0, 80)))
    return lits, flags, text


@pytest.mark.parametrize("seed", range(4))
def test_matches_reference(seed: int) -> None:
    r = random.Random(seed)
    for _ in range(400):
        lits, flags, text = _case(r)
        ids, pos = Automaton.build(lits, flags).find(text)
        rids, rpos = find_all_ref(lits, flags, text)
        assert ids == rids, (lits, flags, text)
        assert sorted(pos) == sorted(rpos), (lits, flags, text)


@pytest.mark.parametrize("seed", range(2))
def test_occurrences_across_the_cuts_between_the_chains(seed: int) -> None:
    """The kernels walk each quarter of a text with its own state chain: literals longer than the quarters and
    occurrences that straddle a cut are found once, as the reference finds them."""
    r = random.Random(100 + seed)
    for _ in range(300):
        lits = sorted({"".join(r.choice("ab ") for _ in range(r.randint(1, 14))) for _ in range(r.randint(1, 8))})
        flags = [r.choice([0, WORD_START, WORD_END]) | POSITIONS for _ in lits]
        text = "".join(r.choice("ab ") for _ in range(r.randint(0, 40)))
        a = Automaton.build(lits, flags)
        ids, pos = a.find(text)
        rids, rpos = find_all_ref(lits, flags, text)
        assert ids == rids and sorted(pos) == sorted(rpos), (lits, flags, text)
        group = np.zeros(len(lits), dtype=np.int64)
        assert a.group_counts(text, group, 1) == [len(rids)]


def test_large_automaton_uses_wide_states() -> None:
    """Past 32,767 states the table holds int32 state numbers instead of int16: the same answers either way."""
    r = random.Random(9)
    lits = sorted({"".join(r.choice("abcdefgh") for _ in range(12)) for _ in range(6000)})
    flags = [POSITIONS] * len(lits)
    big = Automaton.build(lits, flags)
    small = Automaton.build(lits[:50], flags[:50])
    assert big.delta.dtype == np.int32 and small.delta.dtype == np.int16
    texts = ["".join(r.choice("abcdefgh ") for _ in range(300)) + " " + r.choice(lits) for _ in range(20)]
    for a, ls in ((big, lits), (small, lits[:50])):
        for t in texts:
            ids, pos = a.find(t)
            rids, rpos = find_all_ref(ls, [POSITIONS] * len(ls), t)
            assert ids == rids and sorted(pos) == sorted(rpos)


def test_find_many_equals_find_per_text() -> None:
    r = random.Random(9)
    lits, flags, _ = _case(r)
    a = Automaton.build(lits, flags)
    texts = [_case(r)[2] for _ in range(200)] + [""]
    many = a.find_many(texts)
    for t, got in zip(texts, many, strict=True):
        ids, pos = a.find(t)
        assert got[0] == ids and sorted(got[1]) == sorted(pos), t


def test_group_counts_equal_distinct_found_literals() -> None:
    r = random.Random(5)
    for _ in range(300):
        lits, flags, text = _case(r)
        group = np.array([r.randint(0, 2) for _ in lits], dtype=np.int64)
        ids, _ = find_all_ref(lits, flags, text)
        want = [sum(1 for i in ids if group[i] == g) for g in range(3)]
        assert Automaton.build(lits, flags).group_counts(text, group, 3) == want, (lits, flags, text)


@pytest.mark.parametrize("seed", range(2))
def test_last_occurrence_of_each_literal(seed: int) -> None:
    """`scan_arrays` reports where each found literal last starts in each text (the signature prefilter drops an
    anchor when a required literal occurs only before it): the largest start the reference finds, across the cuts
    between the chains and when the first output buffers overflow."""
    r = random.Random(200 + seed)
    for _ in range(300):
        lits = sorted({"".join(r.choice("ab ") for _ in range(r.randint(1, 6))) for _ in range(r.randint(1, 8))})
        flags = [r.choice([0, WORD_START, WORD_END, WORD_START | WORD_END]) | r.choice([0, POSITIONS]) for _ in lits]
        texts = ["".join(r.choice("ab é") for _ in range(r.randint(0, r.choice((40, 400))))) for _ in range(3)]
        seen_doc, seen_lit, seen_last, *_ = Automaton.build(lits, flags).scan_arrays(texts)
        got = {(d, lit): at for d, lit, at in zip(seen_doc.tolist(), seen_lit.tolist(), seen_last.tolist(),
                                                  strict=True)}
        want = {}
        for d, t in enumerate(texts):
            for lid, at in find_all_ref(lits, [f | POSITIONS for f in flags], t)[1]:
                want[(d, lid)] = max(want.get((d, lid), -1), at)
        assert got == want, (lits, flags, texts)


def test_overflowing_positions_are_all_returned() -> None:
    a = Automaton.build(["aa", "a"], [POSITIONS, POSITIONS])
    ids, pos = a.find("a" * 500)  # 999 occurrences, more than the first output buffer
    assert ids == {0, 1} and len(pos) == 999
    many = a.find_many(["a" * 300, "b", "aa"])
    assert [len(p) for _, p in many] == [599, 0, 3]


def test_word_boundaries() -> None:
    a = Automaton.build(["ignor", "dan"], [WORD_START, WORD_START | WORD_END])
    assert a.find("please ignore this")[0] == {0}
    assert a.find("dontignore it")[0] == set()
    assert a.find("you are dan now")[0] == {1}
    assert a.find("dance and jordan")[0] == set()
    assert a.find("DAN 9dan")[0] == {1}  # digits are not word letters here


def test_casefold_matches_any_case() -> None:
    a = Automaton.build(["akia", "key"], [0, 0], casefold=True)
    assert a.find("AKIA1234 and a Key")[0] == {0, 1}
    assert a.find("monkey")[0] == {1}
    with pytest.raises(ValueError):
        Automaton.build(["AKIA"], [0], casefold=True)


def test_rejects_bad_literals() -> None:
    with pytest.raises(ValueError):
        Automaton.build(["ok", ""], [0, 0])
    with pytest.raises(ValueError):
        Automaton.build(["é"], [0])
