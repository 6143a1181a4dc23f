"""The synthetic grammars: deterministic, labelled as intended, and independent of each other's counts."""

from __future__ import annotations

import re

from aimds_ray.core import synth


def test_roleplay_rows_are_benign_deterministic_and_do_not_move_the_others() -> None:
    base = synth.generate(200, 100, seed=3, n_multilingual=50)
    with_rp = synth.generate(200, 100, seed=3, n_multilingual=50, n_roleplay=80)
    assert with_rp == synth.generate(200, 100, seed=3, n_multilingual=50, n_roleplay=80)
    others = [r for r in with_rp if r["source"] != "aimds-synth-rp"]
    assert others == base  # adding role-play rows leaves every other grammar's rows as they were
    rp = [r for r in with_rp if r["source"] == "aimds-synth-rp"]
    assert len(rp) >= 40  # duplicates are dropped, but the grammar has far more than 80 distinct outputs
    assert all(r["label"] == 0 and r["category"] == "benign" for r in rp)


def test_roleplay_grammar_never_unlocks_anything() -> None:
    """The benign personas share the framing of persona jailbreaks, never what those unlock."""
    unlock = re.compile(r"\b(?:no (?:rules|restrictions|limits|filters)|unfiltered|uncensored|jailbr|dan|"
                        r"without (?:any )?(?:restrictions|rules|ethics)|ignore|anything now)\b", re.I)
    rows = synth.generate(0, 0, seed=1, n_roleplay=500)
    assert rows and not [r["text"] for r in rows if unlock.search(r["text"])]
