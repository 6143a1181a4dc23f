"""Signals: small detectors behind one interface, registered in one place.

The pipeline (`aimds_ray.core.detector.Detector`) never names a concrete signal; it instantiates the ones listed in
`detector.signals` of the config from this registry. A new signal is a subclass of `Signal` decorated with
`@register`, imported in `_builtin()` below.
"""

from __future__ import annotations

from aimds_ray.core.signals.base import Signal, SignalContext, register, registered_signals

__all__ = ["Signal", "SignalContext", "register", "registered_signals"]
