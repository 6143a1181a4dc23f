import pytest

from aimds_ray.core.config import ConfigError, load_config


def test_default_config_loads() -> None:
    cfg = load_config()
    assert cfg.detector.thresholds.threat == 0.5
    assert "signatures" in cfg.detector.signals


@pytest.mark.parametrize(
    "override,key",
    [
        ({"detector": {"threshold": 0.5}}, "detector.threshold"),
        ({"detector": {"thresholds": {"threat": "high"}}}, "detector.thresholds.threat"),
        ({"detector": {"thresholds": {"threat": 1.5}}}, "detector.thresholds.threat"),
        ({"detector": {"thresholds": {"threat": 0.9, "block": 0.5}}}, "detector.thresholds.block"),
        ({"detector": {"signals": ["nope"]}}, "detector.signals"),
        ({"detector": {"flood": {"min_run": 0}}}, "detector.flood.min_run"),
        ({"detector": {"flood": {"min_run": 30, "full_run": 10}}}, "detector.flood.full_run"),
        ({"detector": {"flood": {"repeats": 3}}}, "detector.flood.repeats"),
        ({"pii": {"redaction": "shred"}}, "pii.redaction"),
        ({"pii": {"entities": ["EMAIL", "DNA"]}}, "pii.entities"),
        ({"limits": {"window_chars": 0}}, "limits.window_chars"),
        ({"limits": {"window_overlap": 4000}}, "limits.window_overlap"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_values_name_the_key(override: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(overrides=override)
    assert str(e.value).startswith(key)


def test_user_file_is_merged(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("pii:\n  redaction: mask\n")
    cfg = load_config(p)
    assert cfg.pii.redaction == "mask" and cfg.detector.thresholds.threat == 0.5


def test_invalid_yaml_is_a_config_error(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("pii: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(tmp_path, value: str) -> None:
    """YAML's .nan / .inf pass a type check but break fusion (a NaN weight made every score NaN)."""
    f = tmp_path / "c.yaml"
    f.write_text(f"detector:\n  category_weights:\n    jailbreak: {value}\n")
    with pytest.raises(ConfigError, match="detector.category_weights.jailbreak: expected a finite number"):
        load_config(f)
