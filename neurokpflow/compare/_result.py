"""Result types shared by every comparison measure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

#: The conventions a score can follow. "similarity" and "score" grow with agreement;
#: "distance" and "angle" (radians) shrink with it.
CONVENTIONS = ("similarity", "distance", "angle", "score")


from ..errors import AlignmentError, DegenerateInputError, InputError, NeurokpflowWarning


class InSampleBiasWarning(NeurokpflowWarning):
    """Warned when an in-sample score is known to be biased for the given shapes."""


class BootstrapBiasWarning(NeurokpflowWarning):
    """Warned when a bootstrap finds a bias that is not small next to the standard error."""


def larger_is_more_similar(convention: str) -> bool:
    """True for similarities and scores, False for distances and angles."""
    if convention not in CONVENTIONS:
        raise InputError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention in ("similarity", "score")


@dataclass(frozen=True, repr=False)
class Score:
    """One comparison value with the convention it follows.

    Attributes
    ----------
    value : the number; ``float(score)`` returns it.
    measure : the short measure name, e.g. ``"procrustes"``.
    estimator : the full estimator name with every choice that changes the number,
        e.g. ``"procrustes-kind=angular-alpha=1-center=True"``.
    convention : ``"similarity"``, ``"distance"``, ``"angle"`` (radians) or ``"score"``.
    metric : True when the quantity satisfies the metric axioms (on equivalence classes of
        the measure's invariance group).
    details : extra, measure-specific outputs (canonical correlations, RDMs, per-unit r, ...).
    """

    value: float
    measure: str
    estimator: str
    convention: str
    metric: bool
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        larger_is_more_similar(self.convention)
        if not np.isfinite(self.value):
            raise DegenerateInputError(f"{self.estimator} produced a non-finite value ({self.value})")

    def __float__(self) -> float:
        return float(self.value)

    @property
    def larger_is_more_similar(self) -> bool:
        return larger_is_more_similar(self.convention)

    def __repr__(self) -> str:
        kind = "metric " if self.metric else ""
        return f"Score({self.value:.6g}, {kind}{self.convention}, estimator={self.estimator!r})"
