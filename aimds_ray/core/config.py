"""Typed configuration, validated once at the edge.

`configs/default.yaml` (shipped inside the package as well, so an installed wheel works without the repo) is read
into these dataclasses. Unknown keys and wrongly typed or out-of-range values raise `ConfigError` naming the full
key path, e.g. ``detector.thresholds.block: expected a number in [0, 1], got 'high'``. Inner code receives these
objects, never dicts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(stream: Any) -> Any:
    """`yaml.safe_load`, through libyaml where PyYAML has it: the pure-Python parser took 0.25 s of a fresh
    process's first scan (the pattern files), libyaml 0.02 s."""
    return yaml.load(stream, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the fused threat score."""

    threat: float = 0.5  # score >= threat -> is_threat
    block: float = 0.8  # score >= block -> action block (else escalate)

    def validate(self, path: str) -> None:
        for name in ("threat", "block"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{path}.{name}: expected a number in [0, 1], got {v!r}")
        if self.block < self.threat:
            raise ConfigError(f"{path}.block: must be >= {path}.threat ({self.block} < {self.threat})")


@dataclass(frozen=True)
class NormalizeConfig:
    max_decode_depth: int = 3  # nested encodings unwrapped at most this deep
    max_decoded_chars: int = 200_000  # total decoded text per scan window (decompression-bomb bound)
    max_variants: int = 16  # decoded variants scanned per window
    min_base64_chars: int = 16
    min_hex_chars: int = 16

    def validate(self, path: str) -> None:
        _positive(self, path, "max_decode_depth", "max_decoded_chars", "max_variants", "min_base64_chars",
                  "min_hex_chars")


@dataclass(frozen=True)
class PiiConfig:
    enabled: bool = True
    redaction: str = "placeholder"  # mask | placeholder | hash
    entities: tuple[str, ...] = (
        "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET",
    )
    counts_as_threat: bool = False  # PII alone redacts; it is not a manipulation attempt

    def validate(self, path: str) -> None:
        if self.redaction not in ("mask", "placeholder", "hash"):
            raise ConfigError(f"{path}.redaction: expected one of mask|placeholder|hash, got {self.redaction!r}")
        from aimds_ray.core.pii import ENTITY_TYPES

        for e in self.entities:
            if e not in ENTITY_TYPES:
                raise ConfigError(f"{path}.entities: unknown entity {e!r} (known: {', '.join(ENTITY_TYPES)})")


@dataclass(frozen=True)
class LimitsConfig:
    max_input_chars: int = 16_000_000  # past this: InputTooLarge (HTTP 413), never a silent truncation
    window_chars: int = 4096  # long inputs are scanned in windows of this size ...
    window_overlap: int = 512  # ... overlapping so a phrase across a boundary is still seen whole

    def validate(self, path: str) -> None:
        _positive(self, path, "max_input_chars", "window_chars")
        if not 0 <= self.window_overlap < self.window_chars // 2:
            raise ConfigError(f"{path}.window_overlap: must be in [0, window_chars/2), got {self.window_overlap}")


@dataclass(frozen=True)
class FloodConfig:
    """The `flood` signal: one short token repeated back to back (see core/repetition.py)."""

    min_run: int = 24  # repetitions before it is evidence at all
    full_run: int = 64  # repetitions at which the evidence is full
    max_token_chars: int = 4
    min_closers: int = 24  # closing delimiters in a row (") ] } ) ] } ..."): a context-escape attempt

    def validate(self, path: str) -> None:
        _positive(self, path, "min_run", "full_run", "max_token_chars", "min_closers")
        if self.full_run < self.min_run:
            raise ConfigError(f"{path}.full_run: must be >= min_run ({self.min_run}), got {self.full_run}")


@dataclass(frozen=True)
class DetectorConfig:
    signals: tuple[str, ...] = ("invisible", "encoding", "signatures", "pii")
    thresholds: Thresholds = field(default_factory=Thresholds)
    flood: FloodConfig = field(default_factory=FloodConfig)
    harmful_request: bool = False  # flag plain harmful questions (not a manipulation) as threats
    category_weights: dict[str, float] = field(default_factory=dict)  # per-category multipliers in fusion
    batch_defers_gc: bool = True  # scan_batch holds Python's cyclic collector until its end (core/process.py)

    def validate(self, path: str) -> None:
        from aimds_ray.core.signals import registered_signals

        known = registered_signals()
        for s in self.signals:
            if s not in known:
                raise ConfigError(f"{path}.signals: unknown signal {s!r} (known: {', '.join(sorted(known))})")
        self.thresholds.validate(f"{path}.thresholds")
        self.flood.validate(f"{path}.flood")
        for k, v in self.category_weights.items():
            if v < 0:
                raise ConfigError(f"{path}.category_weights.{k}: must be >= 0, got {v}")


@dataclass(frozen=True)
class ResponseConfig:
    """`Detector.scan_response` (core/response.py): what a model's response is checked for, and when it is a threat.
    Scores of the checks are evidence strengths in [0, 1]; the response's threat score is the top category's."""

    signals: tuple[str, ...] = ("invisible", "pii")  # prompt-path signals also run on responses
    checks: tuple[str, ...] = ("prompt_leak", "canary", "exfil_link")
    thresholds: Thresholds = field(default_factory=Thresholds)
    leak_shingle: int = 5  # words per run compared between the system prompt and the response
    leak_full_share: float = 0.8  # share of the system prompt's words that reproduced runs cover, for full evidence ...
    leak_full_words: int = 60  # ... or a reproduced stretch this long (words); threat at half of either
    leak_min_words: int = 12  # ... the share counts once this many of its words are reproduced (below: evidence)
    min_evidence: float = 0.2  # leak evidence weaker than this is not reported (one shared run is coincidence)
    canary_min_chars: int = 6  # canaries at least this long also match with separators removed
    allowed_link_hosts: tuple[str, ...] = ()  # hosts (and their subdomains) a response may send data to
    link_data_chars: int = 24  # a URL value this long ...
    link_data_words: int = 4  # ... holding this many words is "text" leaving through the URL
    image_exchange_data: float = 1.0  # an image URL carrying a canary, PII or system-prompt words
    link_exchange_data: float = 0.9  # a link (needs a click) carrying the same
    image_text_data: float = 0.6  # an image URL carrying text of unknown origin
    link_text_data: float = 0.3  # a link carrying text of unknown origin (a search link): evidence, no threat
    stream_step_chars: int = 512  # a streamed response is scanned each time this many characters arrived ...
    stream_overlap_chars: int = 1024  # ... together with this many before them (a canary or URL cut in two)

    def validate(self, path: str) -> None:
        from aimds_ray.core.response import CHECKS
        from aimds_ray.core.signals import registered_signals

        known = registered_signals()
        for s in self.signals:
            if s not in known:
                raise ConfigError(f"{path}.signals: unknown signal {s!r} (known: {', '.join(sorted(known))})")
        for c in self.checks:
            if c not in CHECKS:
                raise ConfigError(f"{path}.checks: unknown check {c!r} (known: {', '.join(sorted(CHECKS))})")
        self.thresholds.validate(f"{path}.thresholds")
        _positive(self, path, "leak_full_share", "leak_full_words", "leak_min_words", "canary_min_chars",
                  "link_data_chars", "link_data_words", "stream_step_chars", "stream_overlap_chars")
        if self.leak_shingle < 2:  # a run must hold two uncommon words to count
            raise ConfigError(f"{path}.leak_shingle: must be >= 2, got {self.leak_shingle}")
        if self.leak_full_share > 1.0:
            raise ConfigError(f"{path}.leak_full_share: a share, at most 1, got {self.leak_full_share}")
        for name in ("min_evidence", "image_exchange_data", "link_exchange_data", "image_text_data",
                     "link_text_data"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{path}.{name}: expected a number in [0, 1], got {getattr(self, name)!r}")


@dataclass(frozen=True)
class AimdsConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    response: ResponseConfig = field(default_factory=ResponseConfig)
    extensions: dict[str, Any] = field(default_factory=dict)  # sections owned by other layers (serve, graph, ...)

    def validate(self, path: str = "") -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if hasattr(v, "validate"):
                v.validate(f"{path}{f.name}")


def _positive(obj: Any, path: str, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if v <= 0:
            raise ConfigError(f"{path}.{n}: must be > 0, got {v!r}")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan / .inf: no threshold, weight or time is meant by them
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (inner, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(inner, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_coerce(kt, k, path): _coerce(vt, v, f"{path}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in typing.get_args(tp):
            if alt is type(None) and value is None:
                return None
            try:
                return _coerce(alt, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if tp is Any:
        return value
    raise ConfigError(f"{path}: unsupported type {tp!r}")


def from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build dataclass `cls` from a mapping; unknown keys are errors that name the key."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key_path = f"{path}.{k}" if path else str(k)
        if k not in names:
            raise ConfigError(f"{key_path}: unknown key (allowed: {', '.join(sorted(names))})")
        kwargs[k] = _coerce(hints[k], v, key_path)
    return cls(**kwargs)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def default_config_path() -> Path:
    """The shipped default (a copy of configs/default.yaml inside the package)."""
    return Path(__file__).resolve().parent.parent / "data" / "default.yaml"


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> AimdsConfig:
    """Load the default config, then `path` (or $AIMDS_CONFIG) on top, then `overrides`; validate the result."""
    raw: dict[str, Any] = _read_yaml(default_config_path())
    user = path or os.environ.get("AIMDS_CONFIG")
    if user:
        raw = _merge(raw, _read_yaml(Path(user)))
    if overrides:
        raw = _merge(raw, overrides)
    cfg = from_dict(AimdsConfig, raw)
    cfg.validate()
    return cfg


def _read_yaml(p: Path) -> dict[str, Any]:
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {yaml_error(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    return data


def yaml_error(e: Exception) -> str:
    """A YAML error in one line: what is wrong and where (PyYAML's own text spans several lines)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def aimds_home() -> Path:
    """Local state (models, feedback, graph, caches) lives here: $AIMDS_HOME, default ~/.aimds."""
    p = Path(os.environ.get("AIMDS_HOME") or Path.home() / ".aimds")
    p.mkdir(parents=True, exist_ok=True)
    return p
