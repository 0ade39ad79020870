"""Model-vs-recording comparison measures with statistics.

Every measure returns a :class:`Score` that converts with ``float()`` and states its convention
(similarity, distance, angle or score), whether it is a metric, and its full estimator name.
Inputs are xarray objects matched by coordinate values (see :func:`align`) or plain arrays.

Measures: :func:`procrustes`, :func:`cca`, :func:`cka`, :func:`rsa`, :func:`dsa`, :func:`predictivity`
(classes :class:`Procrustes`, :class:`CCA`, :class:`CKA`, :class:`RSA`, :class:`DSA`, :class:`Predictivity`).
Statistics: :func:`bootstrap`, :func:`permutation_test`, :func:`cross_validated`,
:func:`split_half_reliability`, :func:`noise_ceiling`, :func:`spearman_brown`.
Over time and training: :func:`time_resolved`, :func:`cross_temporal`, :func:`along_training`.
Many representations: :func:`pairwise`. Everything at once: :func:`compare` (options in :class:`AlignOptions` and :class:`StatsOptions`)
(its plot: :func:`neurokpflow.viz.plot_comparison`; figures and reports name measures with
:func:`measure_label`). Several sessions: :mod:`neurokpflow.compare.sessions`.
"""
from ._inputs import Representation, align, as_representation
from ._measure import TRANSFORMS, Measure, measure_label
from ._registry import MEASURES, get_measure, register_measure
from ._result import AlignmentError, BootstrapBiasWarning, DegenerateInputError, InSampleBiasWarning, Score
from .api import AlignOptions, StatsOptions, compare
from .dynamics import DSA, compare_operators, delay_embed, dsa, eigenvalue_wasserstein, fit_operator
from .geometry import CCA, CKA, Procrustes, cca, cka, procrustes, whitening_matrix
from .pairwise import pairwise
from .predictivity import Predictivity, predictivity, spearman_brown
from .rsa import RSA, compare_rdms, rdm, rdm_vector, rsa
from .stats import (BootstrapResult, NoiseCeiling, PermutationResult, bootstrap, cross_validated, noise_ceiling,
                    permutation_test, split_half_reliability)
from .temporal import along_training, cross_temporal, time_resolved

__all__ = [
    "procrustes", "cca", "cka", "rsa", "dsa", "predictivity", "compare", "StatsOptions", "AlignOptions", "pairwise",
    "measure_label",
    "Procrustes", "CCA", "CKA", "RSA", "DSA", "Predictivity", "Measure", "MEASURES", "TRANSFORMS", "get_measure", "register_measure",
    "Score", "AlignmentError", "DegenerateInputError", "InSampleBiasWarning", "BootstrapBiasWarning",
    "Representation", "align", "as_representation",
    "bootstrap", "permutation_test", "cross_validated", "split_half_reliability", "noise_ceiling",
    "spearman_brown", "BootstrapResult", "PermutationResult", "NoiseCeiling",
    "time_resolved", "cross_temporal", "along_training",
    "rdm", "rdm_vector", "compare_rdms", "whitening_matrix",
    "fit_operator", "delay_embed", "compare_operators", "eigenvalue_wasserstein",
]


def __getattr__(name):
    # deprecated: the plot moved to neurokpflow.viz (plots live in the viz layer, above compare)
    if name == "plot_comparison":
        import warnings

        warnings.warn("neurokpflow.compare.plot_comparison moved to neurokpflow.viz.plot_comparison; the old name "
                      "will be removed", DeprecationWarning, stacklevel=2)
        from ..viz.comparison import plot_comparison

        return plot_comparison
    raise AttributeError(f"module 'neurokpflow.compare' has no attribute {name!r}")
