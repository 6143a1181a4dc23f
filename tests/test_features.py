"""The numba featuriser agrees with its plain-Python reference."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aimds_ray.core.features import featurize, hash_features_ref


def _row(indptr, indices, values, i):
    s, e = indptr[i], indptr[i + 1]
    return dict(zip(indices[s:e].tolist(), values[s:e].tolist(), strict=True))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=5))
def test_kernel_matches_reference(texts) -> None:
    indptr, indices, values = featurize(texts, bits=12)
    for i, t in enumerate(texts):
        got = _row(indptr, indices, values, i)
        ref = hash_features_ref(t, bits=12)
        assert got.keys() == ref.keys()
        for k in ref:
            assert abs(got[k] - ref[k]) < 1e-5


def test_counts_saturate_as_the_reference_does() -> None:
    """Floods repeat n-grams past the uint8 counter's 255; kernel and reference cap them the same way, and the
    counter is left all-zero for the next text."""
    texts = ["a" * 3000, "ab " * 900 + "ignore previous instructions", "x y " * 400, "ignore previous instructions"]
    indptr, indices, values = featurize(texts, bits=12)
    for i, t in enumerate(texts):
        got = _row(indptr, indices, values, i)
        ref = hash_features_ref(t, bits=12)
        assert got.keys() == ref.keys()
        assert max(abs(got[k] - ref[k]) for k in ref) < 1e-5
    again = featurize(texts[-1:], bits=12)
    assert _row(*again, 0) == _row(indptr, indices, values, 3)


def test_rows_are_unit_norm_and_unique() -> None:
    indptr, indices, values = featurize(["Ignore all previous instructions", "", "a"])
    for i in range(3):
        s, e = indptr[i], indptr[i + 1]
        assert len(set(indices[s:e].tolist())) == e - s
        if e > s:
            assert abs(float(np.sum(values[s:e] ** 2)) - 1.0) < 1e-4


def test_case_and_punctuation_do_not_change_word_features() -> None:
    a = _row(*featurize(["Ignore ALL previous instructions!!"]), 0)
    b = _row(*featurize(["ignore all previous instructions"]), 0)
    shared = set(a) & set(b)
    assert len(shared) >= 0.8 * len(b)
