"""Dynamical similarity: a linear operator per system from delay-embedded trajectories, then a
comparison of the operators (Procrustes over vector fields, or eigenvalue-spectrum distance)."""
from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any

import numpy as np
import torch

from ._inputs import Representation
from ._measure import Measure, check_option, measure_options, safe_arccos
from ._result import DegenerateInputError, Score
from ..errors import InputError
from .._validation import numpy_rng


def delay_embed(trajectories: torch.Tensor, n_delays: int = 1, delay_interval: int = 1) -> torch.Tensor:
    """Hankel embedding of (trajectory, time, unit) -> (trajectory, time', unit * n_delays).

    Row t holds [x_{t+(d-1)tau}, x_{t+(d-2)tau}, ..., x_t] (newest first), time' = time - (d-1) tau.
    """
    if n_delays < 1 or delay_interval < 1:
        raise InputError(f"n_delays and delay_interval must be >= 1, got {n_delays}, {delay_interval}")
    span = (n_delays - 1) * delay_interval
    n_time = trajectories.shape[1] - span
    if n_time < 2:
        raise DegenerateInputError(f"{trajectories.shape[1]} time bins are too few for {n_delays} delays of "
                                   f"{delay_interval} bins (need at least {span + 2})")
    parts = [trajectories[:, span - k * delay_interval: span - k * delay_interval + n_time] for k in range(n_delays)]
    return torch.cat(parts, dim=-1)


def _numerical_rank(s: torch.Tensor, shape) -> int:
    numerical = int((s > 1e-10 * s[0] * max(shape)).sum()) if float(s[0]) > 0 else 0
    if numerical == 0:
        raise DegenerateInputError("trajectories are all zero; no dynamics to fit")
    return numerical


def _embedding_basis(embedded: torch.Tensor, rank: int | None) -> tuple[torch.Tensor, int]:
    flat = embedded.reshape(-1, embedded.shape[-1])
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    return vh, _numerical_rank(s, flat.shape)


def fit_operator(trajectories: Any, n_delays: int = 1, delay_interval: int = 1, rank: int | None = None,
                 ridge: float = 0.0) -> torch.Tensor:
    """Least-squares (optionally ridge) linear operator A with z_{t+1} = A z_t (DMD / HAVOK style).

    ``trajectories`` is (trajectory, time, unit), or (time, unit) for one trajectory. z is the delay
    embedding; with ``rank`` it is first projected on its ``rank`` leading right singular vectors
    (the operator is then r x r in that basis), without it A acts on the full embedding.
    """
    x = torch.tensor(np.array(trajectories.detach().cpu().numpy() if isinstance(trajectories, torch.Tensor)
                              else trajectories, dtype=np.float64))
    if x.ndim == 2:
        x = x[None]
    if not bool(torch.isfinite(x).all()):
        raise DegenerateInputError("trajectories contain NaN or inf")
    z = delay_embed(x, n_delays, delay_interval)
    if rank is not None:
        vh, numerical = _embedding_basis(z, rank)
        if rank > numerical:
            raise DegenerateInputError(f"rank={rank} exceeds the numerical rank {numerical} of the delay embedding")
        z = z @ vh[:rank].T
    prev, nxt = z[:, :-1].reshape(-1, z.shape[-1]), z[:, 1:].reshape(-1, z.shape[-1])
    if prev.shape[0] < prev.shape[1] and ridge == 0:
        raise DegenerateInputError(f"{prev.shape[0]} transitions cannot determine a {prev.shape[1]}-dim operator; "
                                   "lower rank, add ridge, or add conditions / time bins")
    if ridge > 0:
        gram = prev.T @ prev + ridge * torch.eye(prev.shape[1], dtype=prev.dtype)
        return torch.linalg.solve(gram, prev.T @ nxt).T
    return torch.linalg.lstsq(prev, nxt).solution.T


def eigenvalue_wasserstein(a: torch.Tensor, b: torch.Tensor) -> float:
    """W2 (not W2^2) between the eigenvalue clouds of A and B in the complex plane, uniform weights."""
    ea, eb = np.linalg.eigvals(a.numpy()), np.linalg.eigvals(b.numpy())
    if len(ea) != len(eb):
        raise InputError(f"operators have {len(ea)} and {len(eb)} eigenvalues; fit them with a common rank")
    cost = np.abs(ea[:, None] - eb[None, :]) ** 2
    from scipy.optimize import linear_sum_assignment  # only here: scipy.optimize takes ~0.3 s to import

    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def _random_orthogonal(r: int, rng: np.random.Generator, det: int) -> torch.Tensor:
    q, _ = np.linalg.qr(rng.standard_normal((r, r)))
    if np.sign(np.linalg.det(q)) != det:
        q[:, 0] = -q[:, 0]
    return torch.as_tensor(q)


def _pavf_starts(a: torch.Tensor, b: torch.Tensor, n_starts: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """Candidate orthogonal C: eigenbases of the symmetric parts matched with the best sign patterns,
    identity and a reflection, plus random rotations of both determinants."""
    r = a.shape[0]
    _, va = torch.linalg.eigh((a + a.T) / 2)
    _, vb = torch.linalg.eigh((b + b.T) / 2)
    patterns = (torch.tensor(list(itertools.product((1.0, -1.0), repeat=r)), dtype=a.dtype) if r <= 10
                else torch.as_tensor(rng.choice((1.0, -1.0), size=(1024, r))))
    cands = (va[None] * patterns[:, None, :]) @ vb.T
    scores = torch.einsum("ij,nij->n", a, cands @ b @ cands.mT)
    best = [cands[i] for i in torch.argsort(scores, descending=True)[: max(1, n_starts // 2)]]
    reflection = torch.eye(r, dtype=a.dtype)
    reflection[0, 0] = -1
    randoms = [_random_orthogonal(r, rng, det) for det in (1, -1) for _ in range(max(1, n_starts // 4))]
    return best + [torch.eye(r, dtype=a.dtype), reflection] + randoms


def _pavf_alignment(a: torch.Tensor, b: torch.Tensor, n_starts: int, seed: int,
                    max_iter: int = 2000, tol: float = 1e-14) -> float:
    """max over C in O(r) of f(C) = <A, C B C^T>, from several starts at once.

    Minorize-maximize: f(C) + s ||C||^2 (constant on O(r)) is convex for s = ||A||_2 ||B||_2, so
    maximizing its linearisation, C <- polar(A C B^T + A^T C B + 2 s C), never decreases f. The polar
    factor may change det(C), so both components of O(r) are reached.
    """
    rng = numpy_rng(seed)
    an, bn = a.numpy(), b.numpy()
    shift = np.linalg.norm(an, 2) * np.linalg.norm(bn, 2)
    c = torch.stack(_pavf_starts(a, b, n_starts, rng)).numpy()
    value = np.einsum("ij,nij->n", an, c @ bn @ c.transpose(0, 2, 1))
    for _ in range(max_iter):
        grad = an @ c @ bn.T + an.T @ c @ bn + 2 * shift * c
        u, _, vh = np.linalg.svd(grad)
        c = u @ vh
        new = np.einsum("ij,nij->n", an, c @ bn @ c.transpose(0, 2, 1))
        done = np.max(new - value) <= tol * max(1.0, np.max(np.abs(new)))
        value = new
        if done:
            break
    return float(value.max())


def compare_operators(a: Any, b: Any, comparison: str = "pavf", kind: str = "angular", *,
                      n_starts: int = 8, seed: int = 0) -> float:
    """Distance between two square operators.

    ``comparison="pavf"``: Procrustes over vector fields, min over orthogonal C (det +1 or -1) of
    ||A - C B C^T|| (``kind="euclidean"``, on the operators as given, no rescaling) or
    arccos(<A, C B C^T> / (||A|| ||B||)) (``kind="angular"``). The fit is non-convex (multi-start
    minorize-maximize), so values are accurate to the optimiser's tolerance and clipped at 0.
    ``comparison="eigenvalues"``: Wasserstein-2 distance between the eigenvalue spectra (W2, a metric).
    """
    check_option("comparison", comparison, ("pavf", "eigenvalues"))
    check_option("kind", kind, ("angular", "euclidean"))
    a, b = (torch.tensor(np.array(m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else m,
                                  dtype=np.float64)) for m in (a, b))
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise InputError(f"operators must be square and of equal size, got {tuple(a.shape)} and {tuple(b.shape)}")
    if comparison == "eigenvalues":
        return eigenvalue_wasserstein(a, b)
    norm_a, norm_b = float(torch.linalg.norm(a)), float(torch.linalg.norm(b))
    if norm_a == 0 or norm_b == 0:
        raise DegenerateInputError("an operator is zero; the vector-field comparison is undefined")
    inner = _pavf_alignment(a, b, n_starts, seed)
    if kind == "angular":
        return safe_arccos(inner / (norm_a * norm_b))
    return float(np.sqrt(max(norm_a ** 2 + norm_b ** 2 - 2 * inner, 0.0)))


_PIN_LOCK = threading.Lock()
_PIN_DEPTH = 0


@contextlib.contextmanager
def single_threaded():
    """Run BLAS/LAPACK (threadpoolctl) and torch on one thread inside the block, then restore.

    Small dense fits are slower with many threads (start-up and contention dominate), and a pool of
    bootstrap workers must not multiply thread counts. Re-entrant and safe across threads.
    """
    global _PIN_DEPTH
    from threadpoolctl import threadpool_limits

    with _PIN_LOCK:
        if _PIN_DEPTH == 0:
            single_threaded.saved = torch.get_num_threads()
            single_threaded.limits = threadpool_limits(1)
            torch.set_num_threads(1)
        _PIN_DEPTH += 1
    try:
        yield
    finally:
        with _PIN_LOCK:
            _PIN_DEPTH -= 1
            if _PIN_DEPTH == 0:
                single_threaded.limits.restore_original_limits()
                torch.set_num_threads(single_threaded.saved)


def choose_rank(embedded: torch.Tensor, rank: int | float | None) -> tuple[int, np.ndarray]:
    """(rank, energy) under DSA's rank rule; ``energy[k - 1]`` is the fraction of the embedding's
    energy that k components keep.

    ``rank`` a float in (0, 1): the fewest leading right singular vectors of the (uncentred) delay
    embedding whose squared singular values reach that fraction of the total; an int: that many
    (at most the numerical rank); ``None``: the numerical rank.
    """
    flat = embedded.reshape(-1, embedded.shape[-1])
    s = torch.linalg.svdvals(flat)
    numerical = _numerical_rank(s, flat.shape)
    s2 = s ** 2
    energy = torch.cumsum(s2, 0) / s2.sum()
    if rank is None:
        r = numerical
    elif isinstance(rank, float):
        r = min(numerical, int(torch.searchsorted(energy, torch.tensor(rank, dtype=energy.dtype))) + 1)
    else:
        r = min(numerical, int(rank))
    return r, energy.numpy()


class DSA(Measure):
    """Dynamical similarity analysis (delay-embedded DMD operators, then :func:`compare_operators`).

    Each system's (condition, time, unit) trajectories are delay-embedded and projected on the
    leading r right singular vectors of the embedding, with one r for both systems (so the operators
    have equal size): the smaller of the two ranks chosen by the rule ``rank`` (see :func:`choose_rank`).
    Default ``rank=0.99``: the fewest components keeping 99 % of each embedding's energy (sum of
    squared values); an int fixes r; ``None`` keeps the numerical rank (slow and overfitted on
    recordings: 71 on the M1 recording). The rank and the energy it keeps are in the score's details.
    Fits run single-threaded (:func:`single_threaded`). A 2-D input is one trajectory (time, unit).
    ``invariances`` refer to transforms of the operators (conjugation C A C^T, S A S^-1, scaling).
    """

    measure = "dsa"
    convention = "distance"
    default_permutation = "time_blocks"   # DSA compares dynamics, so condition labels do not enter it
    per_time_bin = False                  # dynamics need several time bins

    def __init__(self, comparison: str = "pavf", kind: str = "angular", n_delays: int = 1, delay_interval: int = 1,
                 rank: int | float | None = 0.99, ridge: float = 0.0, n_starts: int = 8, seed: int = 0):
        check_option("comparison", comparison, ("pavf", "eigenvalues"))
        if isinstance(rank, float) and not 0 < rank < 1:
            raise InputError(f"rank must be an int >= 1, an energy fraction in (0, 1) or None, got {rank}")
        check_option("kind", kind, ("angular", "euclidean"))
        self.comparison, self.kind = comparison, kind
        self.n_delays, self.delay_interval, self.rank, self.ridge = n_delays, delay_interval, rank, ridge
        self.n_starts, self.seed = n_starts, seed
        self.convention = "angle" if comparison == "pavf" and kind == "angular" else "distance"
        self.metric = comparison == "eigenvalues" or kind == "angular"
        pavf = comparison == "pavf"
        self.invariances = dict(rotation=True, permutation=True,
                                isotropic_scale=(kind == "angular") if pavf else False,
                                invertible_linear=not pavf)

    def params(self):
        p = dict(comparison=self.comparison)
        if self.comparison == "pavf":
            p["kind"] = self.kind
        rank = "numerical" if self.rank is None else (f"energy{self.rank:g}" if isinstance(self.rank, float)
                                                      else self.rank)
        p.update(delays=self.n_delays, interval=self.delay_interval, rank=rank)
        if self.ridge:
            p["ridge"] = f"{self.ridge:g}"
        return p

    @staticmethod
    def trajectories(rep: Representation) -> torch.Tensor:
        return rep.matrix()[None] if rep.from_matrix else rep.means

    def check(self, a, b):
        for rep in (a, b):
            delay_embed(self.trajectories(rep), self.n_delays, self.delay_interval)

    def operators(self, a: Representation, b: Representation) -> tuple[torch.Tensor, torch.Tensor]:
        return self._operators(a, b)[:2]

    def _operators(self, a, b):
        ta, tb = self.trajectories(a), self.trajectories(b)
        chosen = [choose_rank(delay_embed(t, self.n_delays, self.delay_interval), self.rank) for t in (ta, tb)]
        rank = min(r for r, _ in chosen)
        fit = dict(n_delays=self.n_delays, delay_interval=self.delay_interval, rank=rank, ridge=self.ridge)
        energy = tuple(float(curve[rank - 1]) for _, curve in chosen)
        return fit_operator(ta, **fit), fit_operator(tb, **fit), rank, energy

    def evaluate(self, a, b, state):
        with single_threaded():
            op_a, op_b, rank, energy = self._operators(a, b)
            value = compare_operators(op_a, op_b, self.comparison, self.kind, n_starts=self.n_starts, seed=self.seed)
        rule = ("numerical rank" if self.rank is None else f"{self.rank:g} of the embedding energy"
                if isinstance(self.rank, float) else f"fixed rank {self.rank}")
        return value, {"operator_first": op_a.numpy(), "operator_second": op_b.numpy(), "rank": rank,
                       "rank_rule": f"smaller of the two ranks keeping {rule}", "energy_kept": energy}


def dsa(X: Any, Y: Any, comparison: str = "pavf", kind: str = "angular", **options: Any) -> Score:
    """Dynamical similarity between two inputs; see :class:`DSA` and :func:`compare_operators`.

    ``options``: :class:`DSA`'s (``n_delays``, ``delay_interval``, ``rank``, ``ridge``, ``n_starts``,
    ``seed``) and :func:`align`'s keywords."""
    own, align_options = measure_options(DSA, options)
    return DSA(comparison, kind, **own)(X, Y, **align_options)
