"""Measures by short name, for ``compare(..., measures=[...])`` and the statistics helpers."""
from __future__ import annotations

from typing import Any, Callable

from ._measure import Measure
from .dynamics import DSA
from .geometry import CCA, CKA, Procrustes
from .predictivity import Predictivity
from .rsa import RSA
from ..errors import InputError

MEASURES: dict[str, Callable[[], Measure]] = {
    "procrustes": lambda: Procrustes("angular"),
    "procrustes_euclidean": lambda: Procrustes("euclidean"),
    "shape_metric": lambda: Procrustes("angular", alpha=0.5),
    "cca": lambda: CCA(),
    "svcca": lambda: CCA(truncate=0.99),
    "cka": lambda: CKA(),
    "cka_debiased": lambda: CKA(debiased=True),
    "cka_rbf": lambda: CKA(kernel="rbf"),
    "rsa": lambda: RSA(),
    "dsa": lambda: DSA(),
    "dsa_eigenvalues": lambda: DSA(comparison="eigenvalues"),
    "predictivity": lambda: Predictivity(),
}


def get_measure(measure: Any) -> Measure:
    """A :class:`Measure` from an instance or a short name in :data:`MEASURES`."""
    if isinstance(measure, Measure):
        return measure
    if isinstance(measure, str) and measure in MEASURES:
        return MEASURES[measure]()
    raise InputError(f"unknown measure {measure!r}; use a Measure instance (e.g. Procrustes(kind='euclidean')) "
                     f"or one of {sorted(MEASURES)}")
