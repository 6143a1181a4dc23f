"""The signal interface and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aimds_ray.core.config import AimdsConfig
from aimds_ray.core.normalize import Normalized
from aimds_ray.core.report import Evidence


@dataclass
class SignalContext:
    """What a signal may use besides the text: the config and the loaded model bundle (weights, index)."""

    config: AimdsConfig
    model: Any = None  # aimds_ray.core.model.ModelBundle when a learned model is loaded
    extras: dict[str, Any] = field(default_factory=dict)


class Signal(ABC):
    """One detector over normalised text. `scan` returns evidence with a category and a score in [0, 1]."""

    name: ClassVar[str]

    def __init__(self, ctx: SignalContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def scan(self, doc: Normalized) -> list[Evidence]: ...

    def scan_batch(self, docs: Sequence[Normalized]) -> list[list[Evidence]]:
        """Override when a signal can vectorise over many texts (the learned model does)."""
        return [self.scan(d) for d in docs]

    def scan_original(self, text: str) -> list[Evidence]:
        """For an input cut into windows: evidence read from the whole original text at once (a signal whose
        matches can be longer than the windows' overlap reads it here, and skips it in `scan` of a window)."""
        return []

    def reload(self, ctx: SignalContext) -> None:
        """Pick up a new model bundle (a new model version) without rebuilding the pipeline."""
        self.ctx = ctx


_REGISTRY: dict[str, type[Signal]] = {}


def register(cls: type[Signal]) -> type[Signal]:
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    _REGISTRY[cls.name] = cls
    return cls


def _builtin() -> None:
    # imported here so the registry is complete whenever it is read; each module registers its classes
    from aimds_ray.core.signals import (  # noqa: F401
        document,
        learned,
        obfuscation,
        payload,
        pii_signal,
        sequence,
        signatures,
        similarity,
    )


def registered_signals() -> dict[str, type[Signal]]:
    _builtin()
    return dict(_REGISTRY)
