"""Geometry measures on matched samples: Procrustes / generalized shape metric, CCA / SVCCA, CKA.

All inputs are samples x units after alignment (rows = condition x time); unit counts may differ.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ._inputs import Representation, fold_means
from ._measure import Measure, angle_between, centred, check_option, measure_options, nonzero_norm, pad_columns, safe_arccos
from ._result import DegenerateInputError, InSampleBiasWarning, Score
from ..errors import InputError

_ALL = dict(rotation=True, permutation=True, isotropic_scale=True, translation=True,
            invertible_linear=True, anisotropic_scale=True)


def whitening_matrix(x: torch.Tensor, alpha: float, preserve_variance: bool = True,
                     eig_floor: float = 1e-7) -> torch.Tensor:
    """Partial whitening Z_alpha = V diag(alpha + (1 - alpha) lambda^-1/2) V^T of centred ``x``.

    lambda are the eigenvalues of the scatter matrix x^T x (not divided by n_samples, the netrep
    convention; this sets the balance between alpha and lambda^-1/2), clipped below at ``eig_floor``;
    with ``preserve_variance`` Z is rescaled so that ||x Z|| = ||x|| (the netrep convention).
    alpha = 1 is the identity (Procrustes), alpha = 0 full whitening (CCA).
    """
    cov = x.T @ x
    eigval, eigvec = torch.linalg.eigh(cov)
    scale = alpha + (1.0 - alpha) * eigval.clamp_min(eig_floor).rsqrt()
    z = (eigvec * scale) @ eigvec.T
    if preserve_variance:
        new_var = torch.trace(z @ cov @ z)
        z = z * torch.sqrt(torch.trace(cov) / new_var)
    return z


class Procrustes(Measure):
    """Orthogonal Procrustes shape distance and the generalized shape metric (partial whitening).

    angular: arccos( <Xw, Yw Q> / (||Xw|| ||Yw Q||) ), in-sample equal to arccos(||Xw^T Yw||_* /
    (||Xw|| ||Yw||)); euclidean: min_Q ||Xw - Yw Q|| (not scale invariant; no 1/sqrt(n) factor).
    Xw = (X - mean) Z_alpha (see :func:`whitening_matrix`), narrower input zero-padded; Q orthogonal.
    Both are metrics for every alpha. alpha = 1 is plain Procrustes, alpha = 0 is CCA. For
    0 < alpha < 1 the angular form is not invariant to isotropic scaling (see ``whitening_matrix``).
    The angle is computed as 2 atan2(|x^ - y^|, |x^ + y^|) of the unit-norm aligned arrays, so the
    distance of an input to itself is 0 to machine precision.

    ``cross_validated=True`` (alpha = 1 only; recommended for recordings with repeated trials)
    estimates the distance between the *noise-free* condition means. Each input's trials are split
    into ``n_folds`` interleaved folds, and the sample-space Gram matrix K = mean over folds a != b of
    X_a X_b^T is unbiased for the noise-free one (as crossnobis is for RDM entries). Its trace gives
    the squared norm; the nuclear norm ||X^T Y||_* is the sum of square roots of the eigenvalues of
    K_y^1/2 K_x K_y^1/2 (K_y projected on the PSD cone; negative eigenvalues count as 0). This
    assumes the two inputs' trial noise is independent (different systems or different trials).
    Trial noise no longer inflates the norms, but the square roots of noisy small eigenvalues (and
    the clipping of negative ones) still bias the nuclear norm, so the angle keeps a bias: on simulated
    populations with 8 conditions x 10 bins x 16 trials (``neurokpflow.compare.simulate`` defaults)
    about -0.012 rad, 1.1 SD; with only 3 bins (fewer samples than units) +0.06 rad. Its default
    bootstrap interval is therefore ``"bias_corrected"``: the estimate reported with the interval is
    the bootstrap bias-corrected value and the interval the basic one around it. The bias is measured
    against the plug-in target (:meth:`plug_in_target`, the plain Procrustes distance of the
    resampled population's condition means), with every trial drawn from all of its condition's
    trials (see :class:`neurokpflow.compare.BootstrapResult` for the reason). On 200 populations with
    the defaults this interval covers the noise-free angle 93 % of the time at a nominal 95 % and
    always contains its estimate (``python -m benchmarks.bench_compare coverage``); the corrected
    angle's mean error is -0.004 rad. The correction is first order: with stronger noise it removes
    about half of the bias and the coverage falls (noise SD 2.5 instead of 1.5: 76 % of 100
    populations; 8 instead of 16 trials: 91 %), so use enough trials. ``metric`` is False.
    An input without trials (a deterministic model) enters with its means in every fold.
    """

    measure = "procrustes"
    fitted = True
    metric = True

    def __init__(self, kind: str = "angular", alpha: float = 1.0, center: bool = True,
                 preserve_variance: bool = True, *, cross_validated: bool = False, n_folds: int = 4):
        check_option("kind", kind, ("angular", "euclidean"))
        if not 0.0 <= float(alpha) <= 1.0:
            raise InputError(f"alpha must lie in [0, 1], got {alpha}")
        if cross_validated and (float(alpha) != 1.0 or not center):
            raise InputError("cross_validated=True is defined for centred Procrustes (alpha=1, center=True)")
        if cross_validated and n_folds < 2:
            raise InputError(f"cross_validated=True needs n_folds >= 2 (independent folds), got {n_folds}")
        self.kind, self.alpha, self.center, self.preserve_variance = kind, float(alpha), bool(center), preserve_variance
        self.cross_validated, self.n_folds = bool(cross_validated), int(n_folds)
        if self.cross_validated:
            self.fitted, self.metric, self.trial_folds = False, False, self.n_folds
            self.interval = "bias_corrected"
        self.convention = "angle" if kind == "angular" else "distance"
        # netrep's whitening uses the unnormalised scatter x^T x, so for 0 < alpha < 1 the balance
        # between alpha and lambda^-1/2 moves with the data's scale: only alpha in {0, 1} is scale invariant.
        self.invariances = dict(_ALL, isotropic_scale=kind == "angular" and self.alpha in (0.0, 1.0),
                                translation=self.center,
                                invertible_linear=self.alpha == 0.0 and kind == "angular",
                                anisotropic_scale=self.alpha == 0.0 and kind == "angular")

    def params(self):
        p = dict(kind=self.kind, alpha=f"{self.alpha:g}", center=self.center)
        if self.alpha < 1:
            p["preserve_variance"] = self.preserve_variance
        if self.cross_validated:
            p["noise"] = f"cv{self.n_folds}"
        return p

    def plug_in_target(self) -> Measure | None:
        return Procrustes(self.kind) if self.cross_validated else None

    def _transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mean = x.mean(0, keepdim=True) if self.center else torch.zeros_like(x[:1])
        xc = x - mean
        z = None if self.alpha == 1.0 else whitening_matrix(xc, self.alpha, self.preserve_variance)
        return mean, z

    @staticmethod
    def _apply(x, mean, z, width):
        xc = x - mean
        return pad_columns(xc if z is None else xc @ z, width)

    def fit(self, a: Representation, b: Representation) -> dict[str, Any] | None:
        if self.cross_validated:
            return None
        x, y = a.matrix(), b.matrix()
        width = max(x.shape[1], y.shape[1])
        (mx, zx), (my, zy) = self._transform(x), self._transform(y)
        xw, yw = self._apply(x, mx, zx, width), self._apply(y, my, zy, width)
        nonzero_norm(xw, "first input"), nonzero_norm(yw, "second input")
        u, _, vh = torch.linalg.svd(xw.T @ yw)
        return dict(mx=mx, zx=zx, my=my, zy=zy, width=width, rotation=vh.T @ u.T)

    def evaluate(self, a, b, state):
        if self.cross_validated:
            return self._noise_corrected(a, b)
        xw = self._apply(a.matrix(), state["mx"], state["zx"], state["width"])
        yw = self._apply(b.matrix(), state["my"], state["zy"], state["width"]) @ state["rotation"]
        if self.kind == "euclidean":
            return float(torch.linalg.norm(xw - yw)), {}
        nonzero_norm(xw, "first input"), nonzero_norm(yw, "second input")
        cosine = torch.sum(xw * yw) / (torch.linalg.norm(xw) * torch.linalg.norm(yw))
        return angle_between(xw, yw), {"cosine": float(cosine)}

    def _nuclear(self, a, b):
        """(||X^T Y||_*, ||X||^2, ||Y||^2) from the cross-fold Gram matrices."""
        x, y = noise_split(a, b, self.n_folds, self.estimator)
        kx, ky = _cross_fold_gram(x), _cross_fold_gram(y)
        eig_y, vec_y = torch.linalg.eigh(ky)
        root_y = (vec_y * eig_y.clamp_min(0.0).sqrt()) @ vec_y.T
        eig = torch.linalg.eigvalsh(root_y @ kx @ root_y)   # eig(K_x K_y) = squared singular values of X^T Y
        # eigenvalues at round-off level (1e-12 of the largest) are zeros: their square roots (1e-7 relative)
        # would otherwise dominate the error of exact, noise-free inputs
        eig = torch.where(eig > 1e-12 * eig.abs().max(), eig, torch.zeros_like(eig))
        return torch.sqrt(eig).sum(), torch.trace(kx), torch.trace(ky)

    def _noise_corrected(self, a, b):
        nuclear, sq_x, sq_y = self._nuclear(a, b)
        if float(sq_x) <= 0 or float(sq_y) <= 0:
            raise DegenerateInputError(f"{self.estimator}: the noise-corrected squared norm of an input is <= 0 "
                                       "(no reliable signal across conditions); use more trials")
        details = {"squared_norms": (float(sq_x), float(sq_y)), "nuclear_norm": float(nuclear)}
        if self.kind == "euclidean":
            return float(torch.sqrt(torch.clamp(sq_x + sq_y - 2 * nuclear, min=0.0))), details
        cosine = nuclear / torch.sqrt(sq_x * sq_y)
        details["cosine"] = float(cosine)
        return safe_arccos(cosine), details

    def warn_in_sample(self, a, b):
        if self.alpha < 1:
            warn_if_overfit(self.estimator, "the in-sample whitened distance is biased towards 0",
                            max(a.n_units, b.n_units), a.n_conditions * a.n_times)


class CCA(Measure):
    """Canonical correlation analysis via SVD (not NIPALS); SVCCA when ``truncate`` is given.

    Canonical correlations rho_i are the singular values of U_x^T U_y, U the left singular vectors of
    the centred data restricted to its numerical rank (or to the SVCCA truncation: a float in (0, 1)
    keeps the leading principal components explaining that fraction of variance, an int keeps that
    many). The value is the plain mean of all min(k_x, k_y) correlations (``output="similarity"``)
    or its arccos (``output="angular"``). The angular form equals the alpha = 0 shape metric, and is
    a metric, only on inputs of equal rank k_x = k_y (the shape metric divides the sum of the
    correlations by sqrt(k_x k_y), not by min(k_x, k_y)); with unequal ranks it breaks the triangle
    inequality, so ``metric`` is False. ``Score.details["equals_shape_metric"]`` says which case holds.
    Held-out: canonical weights are fitted on one split and test-split Pearson correlations of
    the projections are averaged.
    """

    measure = "cca"
    fitted = True

    def __init__(self, truncate: float | int | None = None, output: str = "similarity", rank_tol: float = 1e-10):
        check_option("output", output, ("similarity", "angular"))
        if truncate is not None:
            if isinstance(truncate, (bool, np.bool_)) or not (
                    (isinstance(truncate, (int, np.integer)) and truncate >= 1)
                    or (isinstance(truncate, float) and 0 < truncate < 1)):
                raise InputError(f"truncate must be None, a variance fraction in (0, 1) or a number of dims >= 1, "
                                 f"got {truncate!r}")
        self.truncate, self.output, self.rank_tol = truncate, output, rank_tol
        self.measure = "cca" if truncate is None else "svcca"
        self.convention = "similarity" if output == "similarity" else "angle"
        self.metric = False  # arccos(mean rho) is the alpha = 0 shape metric only when both ranks agree
        self.invariances = dict(_ALL) if truncate is None else dict(
            _ALL, invertible_linear=False, anisotropic_scale=False)

    def params(self):
        p = {"output": self.output}
        if isinstance(self.truncate, float):
            p["variance"] = f"{self.truncate:g}"
        elif self.truncate is not None:
            p["dims"] = int(self.truncate)
        return p

    def _basis(self, xc: torch.Tensor, what: str) -> torch.Tensor:
        nonzero_norm(xc, what)
        _, s, vh = torch.linalg.svd(xc, full_matrices=False)
        k = int((s > self.rank_tol * s[0] * max(xc.shape)).sum())
        if isinstance(self.truncate, float):
            explained = torch.cumsum(s ** 2, 0) / torch.sum(s ** 2)
            k = min(k, int(torch.searchsorted(explained, torch.tensor(self.truncate, dtype=s.dtype))) + 1)
        elif self.truncate is not None:
            k = min(k, int(self.truncate))
        return vh[:k].T / s[:k]

    def fit(self, a, b):
        x, y = a.matrix(), b.matrix()
        mx, my = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
        wx, wy = self._basis(x - mx, "first input"), self._basis(y - my, "second input")
        u, _, vh = torch.linalg.svd(((x - mx) @ wx).T @ ((y - my) @ wy), full_matrices=False)
        return dict(wx=wx @ u, wy=wy @ vh.T, ranks=(wx.shape[1], wy.shape[1]))

    def evaluate(self, a, b, state):
        px, py = centred(a.matrix()) @ state["wx"], centred(b.matrix()) @ state["wy"]
        norms = torch.linalg.norm(px, dim=0) * torch.linalg.norm(py, dim=0)
        if bool((norms <= 1e-300).any()):
            raise DegenerateInputError("a canonical component has zero variance on the evaluated samples")
        rho = torch.clamp(torch.sum(px * py, 0) / norms, -1.0, 1.0)
        mean = float(rho.mean())
        value = mean if self.output == "similarity" else safe_arccos(mean)
        ranks = state["ranks"]
        return value, {"canonical_correlations": rho.numpy(), "ranks": ranks,
                       "equals_shape_metric": ranks[0] == ranks[1] and self.truncate is None}

    def warn_in_sample(self, a, b):
        dims = max(a.n_units, b.n_units)
        if isinstance(self.truncate, (int, np.integer)):
            dims = min(dims, int(self.truncate))
        warn_if_overfit(self.estimator, "in-sample canonical correlations are inflated", dims,
                        a.n_conditions * a.n_times)


#: in-sample fitted measures warn when dims > samples / OVERFIT_RATIO. Under independence the squared
#: canonical correlations sum to about p q / n, so their mean is about max(p, q) / n: above 0.1 at this ratio
#: (a mean correlation of about 0.3 from noise alone); at dims >= samples - 1 all correlations are 1.
OVERFIT_RATIO = 10


def warn_if_overfit(estimator: str, what: str, dims: int, samples: int) -> None:
    if dims * OVERFIT_RATIO > samples:
        extreme = " (all 1 regardless of the data)" if dims >= samples - 1 else ""
        warnings.warn(f"{estimator}: {dims} units for {samples} samples (> samples/{OVERFIT_RATIO}): {what}{extreme}; "
                      "use cross_validated(...)", InSampleBiasWarning, stacklevel=4)


def noise_split(a: Representation, b: Representation, n_folds: int, estimator: str):
    """Centred fold means of both inputs, each ``(fold, sample, unit)`` (see :func:`fold_means`)."""
    if a.trials is None and b.trials is None:
        raise DegenerateInputError(f"{estimator} corrects for trial noise and needs trial-level data (a 'trial' "
                                   "dim with repeated trials per condition) on at least one side")
    x, y = fold_means(a, n_folds, estimator), fold_means(b, n_folds, estimator)
    return x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)


def _cross_fold_gram(x: torch.Tensor) -> torch.Tensor:
    """Mean over ordered fold pairs a != b of X_a X_b^T (symmetric; unbiased for the noise-free Gram)."""
    k = x.shape[0]
    total = x.sum(0)
    gram = total @ total.T - torch.einsum("aip,ajp->ij", x, x)
    return gram / (k * (k - 1))


def _gram_inner_products(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """T[a, b, c, d] = <X_a X_b^T, Y_c Y_d^T> for fold stacks x (k, m, p) and y (k, m, q).

    Computed in sample space (the k^2 Gram matrices, m x m) or, when that is larger, in feature space
    through the identity <X_a X_b^T, Y_c Y_d^T> = <X_a^T Y_c, X_b^T Y_d> (the k^2 cross products, p x q).
    """
    k, m, p = x.shape
    q = y.shape[2]
    if m * m <= p * q:
        gx = (x.reshape(k * m, p) @ x.reshape(k * m, p).T).reshape(k, m, k, m).permute(0, 2, 1, 3).reshape(k * k, -1)
        gy = (y.reshape(k * m, q) @ y.reshape(k * m, q).T).reshape(k, m, k, m).permute(0, 2, 1, 3).reshape(k * k, -1)
        return (gx @ gy.T).reshape(k, k, k, k)
    cross = torch.einsum("aip,ciq->acpq", x, y).reshape(k * k, p * q)        # rows (a, c): X_a^T Y_c
    return (cross @ cross.T).reshape(k, k, k, k).permute(0, 2, 1, 3)          # [a, c, b, d] -> [a, b, c, d]


def _distinct_quadruples(k: int, dtype: torch.dtype) -> torch.Tensor:
    """Weights over (a, b, c, d): equal on tuples of four different folds, summing to 1."""
    idx = torch.arange(k)
    a, b, c, d = torch.meshgrid(idx, idx, idx, idx, indexing="ij")
    distinct = (a != b) & (a != c) & (a != d) & (b != c) & (b != d) & (c != d)
    return distinct.to(dtype) / distinct.sum()


def _rbf_gram(x: torch.Tensor, sigma: float | None, sigma_scale: float) -> tuple[torch.Tensor, float]:
    sq = torch.cdist(x, x).pow(2)
    if sigma is None:
        off = torch.sqrt(sq[~torch.eye(len(x), dtype=torch.bool)])
        median = float(off.median())
        if median <= 0:
            raise DegenerateInputError("median pairwise distance is 0; the median-scaled RBF bandwidth is undefined")
        sigma = sigma_scale * median
    return torch.exp(-sq / (2 * sigma ** 2)), float(sigma)


def _double_centre(k: torch.Tensor) -> torch.Tensor:
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Song et al. (2012) unbiased HSIC estimator (needs n >= 4); the scale cancels in CKA."""
    n = k.shape[0]
    kt, lt = k - torch.diag(torch.diag(k)), l - torch.diag(torch.diag(l))
    ones_k, ones_l = kt.sum(), lt.sum()
    return (torch.sum(kt * lt) + ones_k * ones_l / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * torch.sum(kt.sum(0) * lt.sum(0))) / (n * (n - 3))


class CKA(Measure):
    """Centred kernel alignment.

    biased (default): HSIC with centred Gram matrices (Gretton), CKA = <HKH, HLH> / (||HKH|| ||HLH||);
    for the linear kernel this is ||Y^T X||^2 / (||X^T X|| ||Y^T Y||) on centred data.
    debiased: ``hsic="song"`` (Song et al. 2012 unbiased HSIC, Kornblith's debiased CKA) or
    ``hsic="lange"`` (zero-diagonal centred Gram matrices, then cosine); both can be negative.
    Debiasing removes the bias of finite samples (conditions x times), not that of trial noise.

    ``cross_validated=True`` (linear kernel; recommended for recordings with repeated trials)
    estimates the CKA of the *noise-free* condition means: each input's trials are split into
    ``n_folds`` interleaved folds, and every Gram inner product <K, L> is averaged over products of
    four different folds, <X_a X_b^T, Y_c Y_d^T>, which is unbiased for its noise-free value (as
    crossnobis is for RDM entries). The ratio is consistent, not exactly unbiased, and can leave
    [0, 1] on noisy data. An input without trials (a deterministic model) enters with its means in
    every fold.
    kernel: ``"linear"`` or ``"rbf"`` with a fixed ``sigma`` or ``sigma = sigma_scale * median``
    pairwise distance. ``output="angular"`` returns arccos(CKA), a metric for biased CKA.
    """

    measure = "cka"

    def __init__(self, debiased: bool = False, hsic: str = "song", kernel: str = "linear",
                 sigma: float | None = None, sigma_scale: float = 1.0, output: str = "similarity", *,
                 cross_validated: bool = False, n_folds: int = 4):
        check_option("hsic", hsic, ("song", "lange"))
        check_option("kernel", kernel, ("linear", "rbf"))
        check_option("output", output, ("similarity", "angular"))
        if cross_validated and (kernel != "linear" or debiased):
            raise InputError("cross_validated=True is defined for the linear kernel without debiased=True "
                             "(it removes trial noise; pick one correction)")
        if cross_validated and n_folds < 4:
            raise InputError(f"cross_validated=True needs n_folds >= 4 (four independent folds), got {n_folds}")
        self.cross_validated, self.n_folds = bool(cross_validated), int(n_folds)
        self.trial_folds = self.n_folds if self.cross_validated else 1
        self.debiased, self.hsic, self.kernel = bool(debiased), hsic, kernel
        self.sigma, self.sigma_scale, self.output = sigma, float(sigma_scale), output
        self.convention = "similarity" if output == "similarity" else "angle"
        self.metric = output == "angular" and not self.debiased and not self.cross_validated
        fixed = kernel == "rbf" and sigma is not None
        self.invariances = dict(_ALL, isotropic_scale=not fixed, invertible_linear=False, anisotropic_scale=False)

    def params(self):
        p = dict(kernel=self.kernel)
        if self.kernel == "rbf":
            p["sigma"] = f"{self.sigma:g}" if self.sigma is not None else f"{self.sigma_scale:g}*median"
        p["hsic"] = self.hsic if self.debiased else "gretton"
        if self.cross_validated:
            p["noise"] = f"cv{self.n_folds}"
        p["output"] = self.output
        return p

    def check(self, a, b):
        super().check(a, b)
        if self.debiased and self.hsic == "song" and a.n_conditions * a.n_times < 4:
            raise DegenerateInputError("debiased CKA (hsic='song') needs at least 4 samples")

    def _gram(self, x):
        if self.kernel == "linear":
            return x @ x.T, None
        return _rbf_gram(x, self.sigma, self.sigma_scale)

    def evaluate(self, a, b, state):
        if self.cross_validated:
            return self._noise_corrected(a, b)
        x, y = centred(a.matrix()), centred(b.matrix())
        nonzero_norm(x, "first input"), nonzero_norm(y, "second input")
        details = {}
        if self.kernel == "linear" and not self.debiased and x.shape[0] > max(x.shape[1], y.shape[1]):
            num = torch.linalg.norm(y.T @ x) ** 2
            den = torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)
        else:
            (k, sx), (l, sy) = self._gram(x), self._gram(y)
            if sx is not None:
                details["sigma"] = (sx, sy)
            if self.debiased and self.hsic == "song":
                num, kk, ll = unbiased_hsic(k, l), unbiased_hsic(k, k), unbiased_hsic(l, l)
                if float(kk) <= 0 or float(ll) <= 0:
                    raise DegenerateInputError("unbiased HSIC of an input with itself is <= 0; too few samples")
                den = torch.sqrt(kk * ll)
            else:
                kc, lc = _double_centre(k), _double_centre(l)
                if self.debiased:
                    kc, lc = kc - torch.diag(torch.diag(kc)), lc - torch.diag(torch.diag(lc))
                num, den = torch.sum(kc * lc), torch.linalg.norm(kc) * torch.linalg.norm(lc)
                if float(den) <= 0:
                    raise DegenerateInputError("a centred Gram matrix is zero; CKA is undefined")
        value = float(num / den)
        details["cka"] = value
        return (value if self.output == "similarity" else safe_arccos(value)), details

    def _noise_corrected(self, a, b):
        x, y = noise_split(a, b, self.n_folds, self.estimator)
        weights = _distinct_quadruples(self.n_folds, x.dtype)
        xy, xx, yy = (torch.sum(weights * _gram_inner_products(g, h)) for g, h in ((x, y), (x, x), (y, y)))
        if float(xx) <= 0 or float(yy) <= 0:
            raise DegenerateInputError(f"{self.estimator}: the noise-corrected Gram norm of an input is <= 0 "
                                       "(no reliable signal across conditions); use more trials")
        value = float(xy / torch.sqrt(xx * yy))
        return (value if self.output == "similarity" else safe_arccos(value)), {"cka": value}


def procrustes(X: Any, Y: Any, kind: str = "angular", alpha: float = 1.0, *, center: bool = True,
               preserve_variance: bool = True, cross_validated: bool = False, n_folds: int = 4,
               **align_options: Any) -> Score:
    """Procrustes shape distance (``alpha=1``) or generalized shape metric (0 <= alpha < 1).

    ``kind="angular"`` returns an angle in radians, ``"euclidean"`` a distance; both metrics.
    ``cross_validated=True``: the trial-noise-corrected estimate for recordings (see :class:`Procrustes`);
    ``align_options`` go to :func:`neurokpflow.compare.align`.
    """
    return Procrustes(kind, alpha, center, preserve_variance, cross_validated=cross_validated,
                      n_folds=n_folds)(X, Y, **align_options)


def cca(X: Any, Y: Any, *, truncate: float | int | None = None, output: str = "similarity",
        **align_options: Any) -> Score:
    """Mean canonical correlation (CCA) or SVCCA (``truncate=0.99`` variance / ``truncate=10`` dims)."""
    return CCA(truncate, output)(X, Y, **align_options)


def cka(X: Any, Y: Any, debiased: bool = False, **options: Any) -> Score:
    """Linear / RBF CKA, biased (Gretton) or debiased (``hsic="song"`` or ``"lange"``), or the
    trial-noise-corrected linear CKA (``cross_validated=True``).  ``options``: :class:`CKA`'s
    (``hsic``, ``kernel``, ``sigma``, ``sigma_scale``, ``output``, ``cross_validated``, ``n_folds``)
    and :func:`align`'s keywords."""
    own, align_options = measure_options(CKA, options)
    return CKA(debiased, **own)(X, Y, **align_options)
