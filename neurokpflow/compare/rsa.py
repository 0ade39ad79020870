"""Representational similarity analysis: RDMs per system, then a comparison of their upper triangles."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._inputs import Representation, as_representation, fold_means
from ._measure import Measure, check_option
from ._result import DegenerateInputError, Score
from ..errors import InputError

RDM_METHODS = ("euclidean", "sqeuclidean", "correlation", "crossnobis")
COMPARATORS = ("spearman", "kendall_tau_a", "pearson", "cosine")


def _upper(square: torch.Tensor) -> np.ndarray:
    i, j = np.triu_indices(square.shape[0], k=1)
    return square[i, j].numpy()


def _crossnobis_folds(rep: Representation, n_folds: int) -> torch.Tensor:
    """Per-fold condition means, shape (fold, condition * time, unit); trial k of a condition -> fold k % n."""
    if rep.trials is None:
        raise DegenerateInputError("the crossnobis RDM needs trial-level data (an xarray input with a 'trial' dim "
                                   "and repeated trials per condition)")
    return fold_means(rep, n_folds, "crossnobis")


def _noise_whitener(rep: Representation, noise: str) -> torch.Tensor | None:
    if noise == "identity":
        return None
    from sklearn.covariance import LedoitWolf

    assert rep.trials is not None  # rdm_vector checked it (_crossnobis_folds) before calling
    residuals = rep.trials - rep.means[torch.as_tensor(rep.trial_condition)]
    residuals = residuals.reshape(-1, rep.n_units)
    complete = residuals[~torch.isnan(residuals).any(1)].numpy()
    cov = torch.as_tensor(LedoitWolf().fit(complete).covariance_)
    eigval, eigvec = torch.linalg.eigh(cov)
    return (eigvec * eigval.clamp_min(1e-12 * float(eigval.max())).rsqrt()) @ eigvec.T


def rdm_vector(rep: Representation, method: str = "euclidean", *, noise: str = "identity",
               n_folds: int = 2) -> np.ndarray:
    """Upper triangle (row-major, k=1) of the RDM over the samples (conditions x times).

    euclidean: ||x_i - x_j||; sqeuclidean: ||x_i - x_j||^2 / n_units (rsatoolbox's "euclidean");
    correlation: 1 - Pearson r between patterns; crossnobis: (1/n_units) mean over ordered fold pairs
    A != B of (x_i^A - x_j^A)^T S^-1 (x_i^B - x_j^B), unbiased and possibly negative, with S the identity
    (``noise="identity"``) or the Ledoit-Wolf shrunk covariance of trial residuals (``"shrinkage"``).
    """
    check_option("method", method, RDM_METHODS)
    check_option("noise", noise, ("identity", "shrinkage"))
    x = rep.matrix()
    if x.shape[0] < 3:
        raise DegenerateInputError(f"an RDM comparison needs at least 3 samples, got {x.shape[0]}")
    if method == "euclidean":
        return _upper(torch.cdist(x, x))
    if method == "sqeuclidean":
        return _upper(torch.cdist(x, x).pow(2) / x.shape[1])
    if method == "correlation":
        xc = x - x.mean(1, keepdim=True)
        norms = torch.linalg.norm(xc, dim=1)
        if bool((norms == 0).any()):
            raise DegenerateInputError("a pattern is constant across units; the correlation RDM is undefined")
        xn = xc / norms[:, None]
        return _upper(1.0 - xn @ xn.T)
    if n_folds < 2:
        raise InputError(f"crossnobis needs n_folds >= 2, got {n_folds}")
    folds = _crossnobis_folds(rep, n_folds)
    whitener = _noise_whitener(rep, noise)
    if whitener is not None:
        folds = folds @ whitener
    i, j = np.triu_indices(x.shape[0], k=1)
    diffs = folds[:, i] - folds[:, j]                      # (fold, pair, unit)
    total = diffs.sum(0)
    cross = torch.sum(total * total, -1) - torch.sum(diffs * diffs, -1).sum(0)  # sum over A != B of <d_A, d_B>
    return (cross / (n_folds * (n_folds - 1)) / x.shape[1]).numpy()


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    uc, vc = u - u.mean(), v - v.mean()
    den = np.linalg.norm(uc) * np.linalg.norm(vc)
    if den == 0:
        raise DegenerateInputError("an RDM is constant; its correlation with another RDM is undefined")
    return float(uc @ vc / den)


def _kendall_tau_a(u: np.ndarray, v: np.ndarray) -> float:
    """(concordant - discordant) / (n (n - 1) / 2), ties counted as neither."""
    n0 = len(u) * (len(u) - 1) / 2
    ties = [np.sum(c * (c - 1) / 2) for c in (np.unique(u, return_counts=True)[1], np.unique(v, return_counts=True)[1])]
    if ties[0] == n0 or ties[1] == n0:
        raise DegenerateInputError("an RDM is constant; Kendall's tau is undefined")
    import scipy.stats  # only here: scipy.stats takes ~0.5 s to import

    tau_b = scipy.stats.kendalltau(u, v, variant="b").statistic
    return float(tau_b * np.sqrt((n0 - ties[0]) * (n0 - ties[1])) / n0)


def compare_rdms(u: np.ndarray, v: np.ndarray, method: str = "spearman") -> float:
    """Similarity of two RDM vectors: Spearman rho, Kendall tau-a, Pearson r or cosine."""
    check_option("compare", method, COMPARATORS)
    if method == "pearson":
        return _pearson(u, v)
    if method == "spearman":
        from scipy.stats import rankdata  # only here: scipy.stats takes ~0.5 s to import

        return _pearson(rankdata(u), rankdata(v))
    if method == "kendall_tau_a":
        return _kendall_tau_a(u, v)
    den = np.linalg.norm(u) * np.linalg.norm(v)
    if den == 0:
        raise DegenerateInputError("an RDM is all zeros; cosine similarity is undefined")
    return float(u @ v / den)


class RSA(Measure):
    """RSA similarity: an RDM per system (see :func:`rdm_vector`) compared with ``compare``.

    Spearman and Kendall tau-a only see the ranks of dissimilarities (invariant to monotone RDM
    transforms); Pearson and cosine see their values. Not a metric.

    With ``rdm="crossnobis"`` every RDM entry is unbiased for its noise-free value, but the RDMs still
    carry noise, which attenuates their correlation: on simulated populations (8 conditions x 16
    trials, ``neurokpflow.compare.simulate``) the Spearman rho is 3-4 SE below that of the noise-free
    RDMs. This attenuation is a smooth function of the RDM noise, which resampling trials reproduces
    (measured: bootstrap bias -0.056 for a true bias of -0.062), so the bootstrap's default interval
    for crossnobis RSA is ``"bias_corrected"``: it reports the bootstrap bias-corrected estimate and
    the basic interval around it (see :class:`neurokpflow.compare.BootstrapResult`).
    """

    measure = "rsa"

    def __init__(self, rdm: str = "euclidean", compare: str = "spearman", noise: str = "identity", n_folds: int = 2):
        check_option("rdm", rdm, RDM_METHODS)
        check_option("compare", compare, COMPARATORS)
        self.rdm, self.compare, self.noise, self.n_folds = rdm, compare, noise, n_folds
        self.trial_folds = n_folds if rdm == "crossnobis" else 1
        self.interval = "bias_corrected" if rdm == "crossnobis" else "bca"
        euclid = rdm != "correlation"
        self.invariances = dict(rotation=euclid, permutation=True, isotropic_scale=True, translation=euclid,
                                invertible_linear=False, anisotropic_scale=False)
        if rdm == "crossnobis" and noise == "shrinkage":
            self.invariances["rotation"] = False

    def params(self):
        p = dict(rdm=self.rdm, compare=self.compare)
        if self.rdm == "crossnobis":
            p.update(noise=self.noise, folds=self.n_folds)
        return p

    def evaluate(self, a, b, state):
        u = rdm_vector(a, self.rdm, noise=self.noise, n_folds=self.n_folds)
        v = rdm_vector(b, self.rdm, noise=self.noise, n_folds=self.n_folds)
        return compare_rdms(u, v, self.compare), {"rdm_first": u, "rdm_second": v}


def rdm(X: Any, method: str = "euclidean", *, noise: str = "identity", n_folds: int = 2,
        condition: Any = None, var: str | None = None) -> np.ndarray:
    """Square RDM of one input (samples ordered condition-major); see :func:`rdm_vector`."""
    rep = as_representation(X, condition=condition, var=var)
    vec = rdm_vector(rep, method, noise=noise, n_folds=n_folds)
    m = rep.n_conditions * rep.n_times
    square = np.zeros((m, m))
    square[np.triu_indices(m, 1)] = vec
    return square + square.T


def rsa(X: Any, Y: Any, rdm: str = "euclidean", compare: str = "spearman", *, noise: str = "identity",
        n_folds: int = 2, **align_options: Any) -> Score:
    """RSA similarity between two inputs; see :class:`RSA`."""
    return RSA(rdm, compare, noise, n_folds)(X, Y, **align_options)
