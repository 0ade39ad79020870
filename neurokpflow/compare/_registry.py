"""Measures by short name, for ``compare(..., measures=[...])`` and the statistics helpers.

:data:`MEASURES` is a :class:`~neurokpflow._registry.Registry`: each entry builds a :class:`Measure`
and declares, from it, the capabilities the rest of the package asks for (``convention``, ``metric``,
``fitted``, ``default_permutation``, ``per_time_bin``).  The invariance and contract tests run over
every entry, so a measure registered here is tested automatically.
"""
from __future__ import annotations

from typing import Any, Callable

from .._registry import Registry
from ._measure import Measure
from .dynamics import DSA
from .geometry import CCA, CKA, Procrustes
from .predictivity import Predictivity
from .rsa import RSA
from ..errors import InputTypeError

#: the capabilities of a measure entry (defaults: those of the base :class:`Measure`)
MEASURE_CAPABILITIES = {"convention": "similarity", "metric": False, "fitted": False,
                        "default_permutation": "conditions", "per_time_bin": True}

MEASURES = Registry("measure", MEASURE_CAPABILITIES)


def register_measure(name: str, factory: Callable[[], Measure], *, description: str = "", replace: bool = False):
    """Register a measure factory; its capabilities are read from the measure it builds."""
    m = factory()
    if not isinstance(m, Measure):
        raise InputTypeError(f"the factory of measure {name!r} must build a Measure, got {type(m).__name__}")
    return MEASURES.register(name, factory, description=description or m.label, replace=replace,
                             **{key: getattr(m, key) for key in MEASURE_CAPABILITIES})


for _name, _factory in {
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
}.items():
    register_measure(_name, _factory)


def get_measure(measure: Any) -> Measure:
    """A :class:`Measure` from an instance or a short name in :data:`MEASURES`."""
    if isinstance(measure, Measure):
        return measure
    if isinstance(measure, str) and measure in MEASURES:
        return MEASURES[measure]()
    from ..errors import UnknownNameError

    raise UnknownNameError(f"unknown measure {measure!r}; use a Measure instance (e.g. Procrustes(kind='euclidean')) "
                           f"or one of {sorted(MEASURES)}")
