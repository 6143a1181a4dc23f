"""aimds-ray: an AI Manipulation Defense System that runs embedded or scales out on Ray."""

from aimds_ray.core.detector import Detector, InputError, InputTooLarge
from aimds_ray.core.report import Action, Category, Evidence, ThreatReport

__version__ = "0.1.0"

__all__ = ["Action", "Category", "Detector", "Evidence", "InputError", "InputTooLarge", "ThreatReport", "__version__"]
