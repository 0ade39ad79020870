"""Fixed and slow points of a recurrent cell, batched over thousands of initial states.

For a constant input ``u`` the cell map is ``F(z) = cell(u, z)`` on its flat state ``z`` (``h`` for
the leaky RNN and the GRU, ``[h, c]`` for the LSTM, so both halves of an LSTM state must be fixed).
We minimise ``q(z) = ½‖F(z) − z‖²`` from every initial state at once with a batched
Levenberg–Marquardt method: each state gets its own Jacobian ``J = ∂F/∂z`` (``torch.func``,
``vmap(jacrev)``), its own damping ``λ`` and the step ``δ = −(AᵀA + λI)⁻¹ Aᵀ G`` with
``G = F(z) − z`` and ``A = J − I``; a step is kept only when it lowers ``q`` (then ``λ ← λ/10``,
otherwise ``λ ← 10 λ``).  One Cholesky factorisation of ``AᵀA + λI`` serves up to ``chord_steps``
steps (chord method) while they keep lowering ``q``, which saves most factorisations near a root.  Near a fixed point this is Newton's method (quadratic convergence); far from
one it is damped gradient descent on ``q``.  The first step of each factorisation carries geodesic
acceleration (Transtrum & Sethna 2012; ``acceleration``), a second-order correction along the step that
follows curved valleys of ``q``: trained memory networks have fixed points with an eigenvalue of ``J``
close to 1, reached through such valleys, where plain steps overshoot and crawl.  A state stops when ``q < tol_q``, when its damping
exceeds 1e12 (a local minimum of ``q`` with ``q > 0``: a slow point) or after ``max_iter`` steps.
Everything runs on the device and in the dtype of the cell's parameters (use ``model.double()`` for
``q`` near 1e-20).  A point is located only to within about ``‖(J − I)⁻¹ (F(z) − z)‖``, which is large
when an eigenvalue of ``J`` is close to 1: in float32 (``q < 1e-10``) a trained 3-bit flip-flop GRU,
whose memories have ``|λ|`` up to 0.9997, gives its 8 memories as 46 "distinct" stable points
(position errors estimated by that Newton step up to 0.06, above ``unique_tol``); in float64
(``q < 1e-20``) exactly 8.

>>> from neurokpflow.analysis import fixed_points as fp
>>> pts = fp.find_fixed_points(model, u, states)        # states [B, T, S] of trajectories
>>> pts.state, pts.q, pts.eigenvalues, pts.stability   # an xarray.Dataset over "point"
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import xarray as xr
from ..errors import InputError, InputTypeError

__all__ = ["FixedPointOptions", "find_fixed_points", "slow_points", "minimize_q", "state_jacobians",
           "initial_states", "unique_points"]

_MAX_DAMPING = 1e12


@dataclass(frozen=True)
class FixedPointOptions:
    """Options of :func:`find_fixed_points` / :func:`slow_points`.

    n_initial : states drawn from the trajectories (when ``states`` is ``[B, T, S]``)
    noise : SD of the Gaussian noise added to the drawn states
    tol_q : a state has converged when ``q < tol_q``; default 1e-20 for float64 cells, 1e-10 otherwise
    max_iter : Levenberg–Marquardt steps at most (chord steps count); states that converge stop early
    q_threshold : points with ``q <= q_threshold`` are returned (default ``tol_q``); raise it to keep
        slow points
    unique_tol : two points closer than this (Euclidean) are one; the one with the lower ``q`` is kept
    stability_tol : an eigenvalue of ``J`` with ``| |λ| − 1 | <= stability_tol`` is marginal
    damping : initial Levenberg–Marquardt ``λ``
    chord_steps : steps taken with one Jacobian factorisation while they keep lowering ``q``
    acceleration : the first step of each factorisation adds geodesic acceleration (Transtrum &
        Sethna 2012) when its norm is at most ``acceleration / 2`` times the plain step's; 0 turns
        it off.  It speeds up convergence to nearly marginal points (an eigenvalue of ``J`` near
        1, as in trained memory networks) by a factor of several.
    chunk_size : states whose Jacobians are held at once (memory ``chunk_size · S² ·`` 3 numbers)
    seed : seeds the draw of initial states and their noise
    """

    n_initial: int = 1024
    noise: float = 0.05
    tol_q: float | None = None
    max_iter: int = 300
    q_threshold: float | None = None
    unique_tol: float = 1e-3
    stability_tol: float = 1e-6
    damping: float = 1e-3
    chord_steps: int = 4
    acceleration: float = 0.75
    chunk_size: int = 512
    seed: int = 0

    def __post_init__(self):
        for name in ("n_initial", "max_iter", "chunk_size", "chord_steps"):
            if not isinstance(getattr(self, name), (int, np.integer)) or getattr(self, name) < 1:
                raise InputError(f"FixedPointOptions.{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("noise", "tol_q", "unique_tol", "stability_tol", "damping", "acceleration"):
            if getattr(self, name) is not None and not getattr(self, name) >= 0:
                raise InputError(f"FixedPointOptions.{name} must be >= 0, got {getattr(self, name)!r}")


def _cell(model):
    cell = getattr(model, "cell", model)
    if not (isinstance(cell, torch.nn.Module) and hasattr(cell, "state_size") and hasattr(cell, "input_size")):
        raise InputTypeError("fixed points need a neurokpflow model (models.make) or one of its recurrent cells, "
                        f"got {type(model).__name__}")
    return cell


def _param(cell):
    return next(cell.parameters())


def _as_input(cell, inputs):
    p = _param(cell)
    u = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    u = u.to(dtype=p.dtype, device=p.device).reshape(-1)
    if u.numel() != cell.input_size:
        raise InputError(f"the constant input must have {cell.input_size} entries (the cell's inputs), "
                         f"got {u.numel()}")
    return u


def _step(cell, u):
    def f(z):
        return cell(u[None], z[None])[0]
    return f


def state_jacobians(model, inputs, states) -> torch.Tensor:
    """``J = ∂F/∂z`` at every state ``[N, S]`` for the constant input: ``[N, S, S]`` (row = output)."""
    cell = _cell(model)
    u = _as_input(cell, inputs)
    z = torch.as_tensor(states).to(dtype=u.dtype, device=u.device)
    with torch.enable_grad():
        return torch.func.vmap(torch.func.jacfwd(_step(cell, u)))(z).detach()


def _residual(cell, u, z):
    with torch.no_grad():
        g = cell(u.expand(z.shape[0], -1), z) - z
    return g, 0.5 * (g * g).sum(-1)


def minimize_q(model, inputs, initial, options: FixedPointOptions | None = None):
    """Batched Levenberg–Marquardt minimisation of ``q`` from every row of ``initial`` ``[N, S]``.

    Returns ``(z [N, S], q [N], n_iter [N])`` as tensors on the cell's device.
    """
    cell = _cell(model)
    u = _as_input(cell, inputs)
    opt = _resolved(options, u.dtype)
    z_all = torch.as_tensor(initial).to(dtype=u.dtype, device=u.device).clone()
    if z_all.dim() != 2 or z_all.shape[1] != cell.state_size:
        raise InputError(f"initial states must have shape [N, {cell.state_size}], got {tuple(z_all.shape)}")
    q_all = torch.empty(len(z_all), dtype=u.dtype, device=u.device)
    it_all = torch.zeros(len(z_all), dtype=torch.long, device=u.device)
    jac = torch.func.vmap(torch.func.jacfwd(_step(cell, u)))
    eye = torch.eye(cell.state_size, dtype=u.dtype, device=u.device)
    for lo in range(0, len(z_all), opt.chunk_size):
        z = z_all[lo:lo + opt.chunk_size]
        g, q = _residual(cell, u, z)
        lam = torch.full_like(q, opt.damping)
        active = torch.arange(len(z), device=u.device)
        iters = torch.zeros(len(z), dtype=torch.long, device=u.device)
        for _ in range(opt.max_iter):
            keep = (q[active] >= opt.tol_q) & (lam[active] <= _MAX_DAMPING) & (iters[active] < opt.max_iter)
            active = active[keep]
            if len(active) == 0:
                break
            with torch.enable_grad():
                A = jac(z[active]).detach() - eye
            At = A.transpose(1, 2)
            L, info = torch.linalg.cholesky_ex(At @ A + lam[active, None, None] * eye)
            ok = info == 0
            # one factorisation serves up to `chord_steps` steps (the first is the Levenberg-Marquardt
            # step at the current state, the others reuse J while they keep lowering q)
            sub = torch.arange(len(active), device=u.device)
            for k in range(opt.chord_steps):
                idx = active[sub]
                delta = torch.zeros_like(z[idx])
                okk = ok[sub]
                if okk.any():
                    rhs = At[sub][okk] @ g[idx][okk][..., None]
                    delta[okk] = -torch.cholesky_solve(rhs, L[sub][okk])[..., 0]
                if k == 0 and opt.acceleration > 0 and okk.any():
                    delta = _accelerated(cell, u, z[idx], g[idx], delta, A[sub], At[sub], L[sub], okk,
                                         opt.acceleration)
                z_new = z[idx] + delta
                g_new, q_new = _residual(cell, u, z_new)
                better = okk & (q_new < q[idx])
                acc = idx[better]
                z[acc], g[acc], q[acc] = z_new[better], g_new[better], q_new[better]
                iters[idx] += 1
                if k == 0:
                    lam[idx] = torch.where(better, lam[idx] / 10, lam[idx] * 10).clamp_min(1e-15)
                sub = sub[better & (q_new >= opt.tol_q)]
                if len(sub) == 0:
                    break
        z_all[lo:lo + opt.chunk_size] = z
        q_all[lo:lo + opt.chunk_size] = q
        it_all[lo:lo + opt.chunk_size] = iters
    return z_all, q_all, it_all


def _accelerated(cell, u, z, g, velocity, A, At, L, ok, ratio):
    """Geodesic acceleration (Transtrum & Sethna 2012): the second-order correction of the
    Levenberg–Marquardt step along its own direction ``v``.  The residual's second directional
    derivative is ``r'' ≈ (2/h) ((G(z + h v) − G(z)) / h − A v)`` (``h = 0.1``), the acceleration
    ``a = −(AᵀA + λI)⁻¹ Aᵀ r''`` and the step ``v + a/2``, used only where ``2‖a‖ <= ratio ‖v‖``
    (else the plain step).  It lets the search follow the curved, nearly flat valleys of ``q``
    that lead to fixed points with an eigenvalue close to 1, where plain steps overshoot."""
    h = 0.1
    g_h, _ = _residual(cell, u, z + h * velocity)
    curvature = (2 / h) * ((g_h - g) / h - (A @ velocity[..., None])[..., 0])
    acc = torch.zeros_like(velocity)
    acc[ok] = -torch.cholesky_solve(At[ok] @ curvature[ok][..., None], L[ok])[..., 0]
    use = ok & (2 * torch.linalg.vector_norm(acc, dim=-1) <= ratio * torch.linalg.vector_norm(velocity, dim=-1))
    return torch.where(use[:, None], velocity + 0.5 * acc, velocity)


def _resolved(options, dtype):
    opt = options or FixedPointOptions()
    if opt.tol_q is None:
        opt = replace(opt, tol_q=1e-20 if dtype == torch.float64 else 1e-10)
    return opt


def initial_states(states, n: int, noise: float, seed=0) -> torch.Tensor:
    """``n`` states drawn uniformly from trajectories ``[B, T, S]`` (tensor, array or DataArray with
    dims trial, time, unit) plus Gaussian noise of SD ``noise``; ``[N, S]`` input is used as is."""
    if isinstance(states, xr.DataArray):
        states = states.transpose(*[d for d in ("trial", "time", "unit") if d in states.dims]).values
    z = torch.as_tensor(np.asarray(states) if not isinstance(states, torch.Tensor) else states)
    if z.dim() == 2:
        return z.clone()
    if z.dim() != 3:
        raise InputError(f"states must be [N, S] initial states or [B, T, S] trajectories, got {tuple(z.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    flat = z.reshape(-1, z.shape[-1])
    pick = torch.randint(len(flat), (int(n),), generator=gen)
    jitter = torch.randn(int(n), z.shape[-1], generator=gen, dtype=torch.float64) * noise
    return flat[pick.to(flat.device)] + jitter.to(dtype=flat.dtype, device=flat.device)


def unique_points(z: torch.Tensor, q: torch.Tensor, tol: float) -> torch.Tensor:
    """Indices of the points kept when points closer than ``tol`` are merged (lowest ``q`` first)."""
    order = torch.argsort(q)
    zs = z[order]
    kept = []
    removed = torch.zeros(len(zs), dtype=torch.bool, device=z.device)
    for i in range(len(zs)):
        if removed[i]:
            continue
        kept.append(i)
        removed |= torch.linalg.vector_norm(zs - zs[i], dim=1) < tol
    return order[torch.as_tensor(kept, dtype=torch.long, device=z.device)]


def _label(moduli, tol):
    unstable = (moduli > 1 + tol).sum(-1)
    marginal = (np.abs(moduli - 1) <= tol).sum(-1)
    S = moduli.shape[-1]
    labels = np.where(unstable == S, "unstable", np.where(unstable > 0, "saddle",
                                                          np.where(marginal > 0, "marginal", "stable")))
    return labels, unstable


def find_fixed_points(model, inputs, states, options: FixedPointOptions | None = None) -> xr.Dataset:
    """Fixed points (or, with a larger ``q_threshold``, slow points) of ``model`` for a constant input.

    Parameters
    ----------
    model : a model from :func:`neurokpflow.models.make` (or its ``cell``)
    inputs : the constant input ``u``, ``[n_in]``
    states : trajectories ``[B, T, S]`` to draw initial states from, or initial states ``[N, S]``
    options : :class:`FixedPointOptions`

    Returns
    -------
    xarray.Dataset over ``point`` (unique points with ``q <= q_threshold``, lowest ``q`` first):
    ``state [point, unit]``, ``q``, ``jacobian [point, unit, source_unit]`` (``∂F_unit/∂z_source``),
    ``eigenvalues [point, eig]`` (complex, by decreasing modulus), ``stability`` ("stable": every
    ``|λ| < 1``; "marginal": none above 1 but some within ``stability_tol`` of 1; "saddle": some above
    1; "unstable": all above 1), ``n_unstable``, ``output [point, output]`` for a model with a readout,
    and ``u [input]``.  Attributes state the tolerances and how many initial states converged.
    """
    cell = _cell(model)
    u = _as_input(cell, inputs)
    opt = _resolved(options, u.dtype)
    init = initial_states(states, opt.n_initial, opt.noise, opt.seed).to(dtype=u.dtype, device=u.device)
    z, q, iters = minimize_q(model, u, init, opt)
    return _dataset(model, cell, u, z, q, iters, opt)


def _dataset(model, cell, u, z, q, iters, opt):
    threshold = opt.tol_q if opt.q_threshold is None else opt.q_threshold
    good = torch.nonzero(q <= threshold).flatten()
    idx = good[unique_points(z[good], q[good], opt.unique_tol)] if len(good) else good
    zs, qs = z[idx], q[idx]
    J = state_jacobians(cell, u, zs) if len(idx) else torch.zeros(0, cell.state_size, cell.state_size)
    eig = torch.linalg.eigvals(J.cpu().double()).numpy() if len(idx) else np.zeros((0, cell.state_size), complex)
    order = np.argsort(-np.abs(eig), axis=-1, kind="stable")
    eig = np.take_along_axis(eig, order, axis=-1)
    labels, n_unstable = _label(np.abs(eig), opt.stability_tol)
    S = cell.state_size
    data = {
        "state": (("point", "unit"), zs.detach().cpu().numpy()),
        "q": (("point",), qs.detach().cpu().numpy()),
        "jacobian": (("point", "unit", "source_unit"), J.detach().cpu().numpy()),
        "eigenvalues": (("point", "eig"), eig),
        "stability": (("point",), labels.astype(str)),
        "n_unstable": (("point",), n_unstable.astype(np.int64)),
        "u": (("input",), u.detach().cpu().numpy()),
    }
    readout = getattr(model, "readout", None)
    if readout is not None and len(idx):
        with torch.no_grad():
            data["output"] = (("point", "output"), readout(zs[:, cell.output_slice]).cpu().numpy())
    attrs = {"tol_q": opt.tol_q, "q_threshold": threshold, "unique_tol": opt.unique_tol,
             "stability_tol": opt.stability_tol, "n_initial": int(len(q)),
             "n_converged": int((q < opt.tol_q).sum()), "max_iterations_used": int(iters.max()) if len(iters) else 0,
             "method": "batched Levenberg-Marquardt on q = 0.5|F(z) - z|^2, Jacobians by torch.func",
             "state": "flat cell state ([h, c] for the LSTM)", "cell": type(cell).__name__}
    coords = {"point": np.arange(len(idx)), "unit": np.arange(S), "source_unit": np.arange(S),
              "eig": np.arange(S), "input": np.arange(cell.input_size)}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def slow_points(model, u1, u2, states, n_steps: int = 11, options: FixedPointOptions | None = None) -> xr.Dataset:
    """Fixed/slow points as the constant input moves linearly from ``u1`` to ``u2`` in ``n_steps`` steps.

    Each step starts from the initial states drawn from ``states`` and from the unique points of the
    previous step (warm start).  Returns the per-step datasets of :func:`find_fixed_points`
    concatenated along ``point``, with coordinates ``alpha [point]`` (0 at ``u1``, 1 at ``u2``) and
    ``step [point]``, and ``u [point, input]``.
    """
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 2:
        raise InputError(f"n_steps must be an int >= 2 (both ends included), got {n_steps!r}")
    cell = _cell(model)
    a, b = _as_input(cell, u1), _as_input(cell, u2)
    opt = _resolved(options, a.dtype)
    init = initial_states(states, opt.n_initial, opt.noise, opt.seed).to(dtype=a.dtype, device=a.device)
    parts, previous = [], init[:0]
    for k, alpha in enumerate(np.linspace(0.0, 1.0, n_steps)):
        u = (1 - alpha) * a + alpha * b
        start = torch.cat([previous, init])
        z, q, iters = minimize_q(cell, u, start, opt)
        ds = _dataset(model, cell, u, z, q, iters, opt)
        previous = torch.as_tensor(ds["state"].values, dtype=a.dtype, device=a.device)
        ds = ds.assign(u=(("point", "input"), np.broadcast_to(ds["u"].values, (ds.sizes["point"], len(u))).copy()))
        parts.append(ds.assign_coords(alpha=("point", np.full(ds.sizes["point"], alpha)),
                                      step=("point", np.full(ds.sizes["point"], k))))
    out = xr.concat(parts, dim="point", data_vars="minimal", coords="minimal", compat="override",
                    combine_attrs="drop_conflicts")
    out = out.assign_coords(point=np.arange(out.sizes["point"]))
    out.attrs.update(n_steps=int(n_steps))
    return out
