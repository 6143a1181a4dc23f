"""The shipped benign corpus: what it holds, that it rebuilds identically, and how training uses it."""

from __future__ import annotations

import sys

import pytest

from aimds_ray.core import corpus
from aimds_ray.core.training import TrainParams, augment, read_corpora


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_corpora(["docs.jsonl.gz"])


def test_rows_are_licence_clean_benign_documents(rows: list[dict]) -> None:
    assert len(rows) > 1000
    assert {r["label"] for r in rows} == {0}
    assert {r["category"] for r in rows} == {"benign_document"}
    assert {r["license"] for r in rows} == {"PSF-2.0"}
    assert all(r["source"].startswith("python-") and 80 <= len(r["text"]) for r in rows)
    assert len({r["text"] for r in rows}) == len(rows)


def test_the_shipped_file_is_what_the_builder_makes(rows: list[dict]) -> None:
    version = f"python-{sys.version_info.major}.{sys.version_info.minor}-"
    if not rows[0]["source"].startswith(version):
        pytest.skip("built from another Python version's standard library")
    assert [{k: v for k, v in r.items() if k != "file"} for r in rows] == corpus.build()


def test_training_plants_injections_in_corpus_chunks(rows: list[dict]) -> None:
    params = TrainParams(synth_attacks=0, synth_benign=0, synth_indirect_docs=0, synth_corpus_injections=25)
    planted = [r for r in augment(rows[:50], params) if r.get("source") == "aimds-synth-corpus"]
    assert len(planted) == 25 and all(r["label"] == 1 for r in planted)
    texts = {r["text"] for r in rows[:50]}
    # the sentence goes before, after or inside the chunk: the chunk's start or end is still there
    assert all(any(p["text"].startswith(t[:40]) or p["text"].endswith(t[-40:]) for t in texts)
               and p["text"] not in texts for p in planted)


def test_probe_corpus_is_labelled_project_text_apart_from_the_dev_data() -> None:
    """The written probes train every model; none may be a dev row (the LOSO folds would then test on training
    text), and each carries a category the fusion's heads know."""
    import json

    from conftest import DATA_DIR

    probes = read_corpora(["probes.jsonl.gz"])
    assert len(probes) > 600 and len({r["text"] for r in probes}) == len(probes)
    assert {r["license"] for r in probes} == {"Apache-2.0"}
    assert {(r["label"], r["category"]) for r in probes} == {
        (0, "benign"), (1, "prompt_injection"), (1, "jailbreak"), (1, "prompt_extraction"), (1, "indirect_injection")}
    if DATA_DIR.is_dir():
        dev = {json.loads(line)["text"].strip() for p in DATA_DIR.glob("*.jsonl") for line in p.open(encoding="utf-8")
               if line.strip()}
        assert not [r["text"] for r in probes if r["text"].strip() in dev]


def test_held_out_probes_stay_out_of_training() -> None:
    """`benchmarks/probe_eval.py` measures generalisation on probes no model was fitted to: they must not be in
    the training spec nor in any shipped corpus."""
    import json
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    names = ("probes_heldout.jsonl", "probes_heldout2.jsonl", "probes_heldout3.jsonl", "probes_heldout4.jsonl",
             "probes_heldout5.jsonl", "probes_heldout_obf.jsonl", "probes_heldout6.jsonl", "probes_heldout7.jsonl",
             "probes_heldout8.jsonl", "benign_lookalikes.jsonl")
    held = [json.loads(line)["text"] for name in names
            for line in (root / "benchmarks/data" / name).open(encoding="utf-8")]
    assert len(held) > 4100
    spec = yaml.safe_load((root / "aimds_ray/data/training.yaml").read_text(encoding="utf-8"))
    assert not any("heldout" in str(x) for x in (spec.get("files") or []) + (spec.get("corpora") or []))
    trained = {r["text"].strip() for r in read_corpora(spec.get("corpora") or [])}
    assert not [t for t in held if t.strip() in trained]


def test_corpus_weights_are_checked() -> None:
    """`corpus_weights` (training.yaml) must be positive numbers: a zero or a string is a clear error."""
    import pytest

    from aimds_ray.core.training import TrainParams

    with pytest.raises(ValueError, match="positive"):
        TrainParams(corpus_weights={"probes.jsonl.gz": 0})
    with pytest.raises(ValueError, match="positive"):
        TrainParams(corpus_weights={"probes.jsonl.gz": "3"})
    assert TrainParams(corpus_weights={"probes.jsonl.gz": 3}).corpus_weights == {"probes.jsonl.gz": 3}
