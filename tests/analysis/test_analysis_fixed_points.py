"""Fixed and slow points: closed forms (linear RNN, line attractor, flip-flop), every cell type, plot."""
import numpy as np
import pytest
import torch
import xarray as xr

from neurokpflow import models, tasks
from neurokpflow.analysis import fixed_points as fp
from neurokpflow.viz import plot_fixed_points

F64 = torch.float64


def _linear_rnn(H, n_in, alpha, W, seed=0):
    m = models.make("rnn", n_in, H, 2, activation="identity", alpha=alpha, dtype="float64", seed=seed)
    with torch.no_grad():
        m.cell.weight_hh.copy_(torch.as_tensor(W, dtype=F64))
        m.cell.bias.copy_(torch.randn(H, generator=torch.Generator().manual_seed(seed + 1), dtype=F64))
    return m


def test_linear_rnn_has_exactly_the_closed_form_fixed_point():
    """h <- (1-α) h + α (W h + W_in u + b) has the one fixed point (I - W)^-1 (W_in u + b)."""
    H = 12
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(H, H, generator=gen, dtype=F64) * 0.6 / np.sqrt(H)
    m = _linear_rnn(H, 3, 0.4, W)
    u = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    exact = torch.linalg.solve(torch.eye(H, dtype=F64) - W, m.cell.weight_ih.detach() @ u + m.cell.bias.detach())
    init = torch.randn(300, H, generator=gen, dtype=F64) * 5
    ds = fp.find_fixed_points(m, u, init, fp.FixedPointOptions(tol_q=1e-26, unique_tol=1e-6))
    assert isinstance(ds, xr.Dataset) and ds.sizes["point"] == 1
    assert ds.attrs["n_converged"] == 300
    np.testing.assert_allclose(ds["state"].values[0], exact.numpy(), atol=1e-8, rtol=0)
    # Jacobian (1-α) I + α W, its eigenvalues, and the label that follows from them
    J = 0.6 * np.eye(H) + 0.4 * W.numpy()
    np.testing.assert_allclose(ds["jacobian"].values[0], J, atol=1e-12)
    np.testing.assert_allclose(np.sort_complex(ds["eigenvalues"].values[0]), np.sort_complex(np.linalg.eigvals(J)),
                               atol=1e-10)
    assert ds["stability"].values[0] == ("stable" if np.abs(np.linalg.eigvals(J)).max() < 1 else "saddle")
    np.testing.assert_allclose(ds["u"].values, u.numpy())
    np.testing.assert_allclose(ds["output"].values[0], m.readout(exact).detach().numpy(), atol=1e-8)


def test_line_attractor_gives_a_line_of_slow_points():
    """W = V diag(1, 0.3) V^-1: every point of span(v) is fixed (marginal), nothing else is."""
    V = np.array([[1.0, 1.0], [0.5, -1.0]])
    W = V @ np.diag([1.0, 0.3]) @ np.linalg.inv(V)
    m = _linear_rnn(2, 1, 1.0, W)
    with torch.no_grad():
        m.cell.bias.zero_()
    init = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    ds = fp.find_fixed_points(m, [0.0], init, fp.FixedPointOptions(tol_q=1e-24, unique_tol=0.05))
    z = ds["state"].values
    v = V[:, 0] / np.linalg.norm(V[:, 0])
    off_line = z - np.outer(z @ v, v)
    assert np.abs(off_line).max() < 1e-8
    assert ds.sizes["point"] > 20 and np.ptp(z @ v) > 4          # a line, not a point
    assert set(ds["stability"].values) == {"marginal"}
    np.testing.assert_allclose(np.abs(ds["eigenvalues"].values), np.tile([1.0, 0.3], (len(z), 1)), atol=1e-10)


def test_slow_points_follow_the_input_interpolation():
    H = 6
    W = torch.randn(H, H, generator=torch.Generator().manual_seed(5), dtype=F64) * 0.5 / np.sqrt(H)
    m = _linear_rnn(H, 2, 0.5, W)
    u1, u2 = torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([-1.0, 2.0], dtype=F64)
    traj = torch.randn(3, 10, H, generator=torch.Generator().manual_seed(6), dtype=F64)
    ds = fp.slow_points(m, u1, u2, traj, n_steps=5,
                        options=fp.FixedPointOptions(n_initial=32, tol_q=1e-26, unique_tol=1e-6))
    assert ds.sizes["point"] == 5 and np.allclose(ds["alpha"].values, np.linspace(0, 1, 5))
    for k in range(5):
        u = ds["u"].values[k]
        np.testing.assert_allclose(u, ((1 - k / 4) * u1 + k / 4 * u2).numpy(), atol=1e-15)
        exact = np.linalg.solve(np.eye(H) - W.numpy(), m.cell.weight_ih.detach().numpy() @ u
                                + m.cell.bias.detach().numpy())
        np.testing.assert_allclose(ds["state"].values[k], exact, atol=1e-8)


class _ValleyCell(torch.nn.Module):
    """F(z) = z + (z₂ − z₁², ε (1 − z₁)): the one fixed point (1, 1) is reached through the curved
    valley z₂ = z₁² of q, along which A = J − I is nearly singular (det A = ε)."""

    state_size, input_size = 2, 1

    def __init__(self, eps):
        super().__init__()
        self.eps = torch.nn.Parameter(torch.tensor(eps, dtype=F64), requires_grad=False)

    def forward(self, u, z):
        return z + torch.stack([z[..., 1] - z[..., 0] ** 2, self.eps * (1 - z[..., 0])], -1) + 0 * u[..., :1]


def test_geodesic_acceleration_follows_a_curved_valley_to_the_fixed_point():
    cell = _ValleyCell(1e-3)
    z1 = torch.linspace(-3, -0.5, 16, dtype=F64)
    init = torch.stack([z1, z1 ** 2], 1)                           # on the valley floor, far from (1, 1)
    opts = fp.FixedPointOptions(tol_q=1e-24, max_iter=400)
    z, q, iters = fp.minimize_q(cell, [0.0], init, opts)
    assert (q < 1e-24).all() and (z - 1).abs().max() < 1e-9
    # the plain Levenberg-Marquardt step overshoots the bend and crawls: most states do not get there
    z0, q0, _ = fp.minimize_q(cell, [0.0], init, fp.FixedPointOptions(tol_q=1e-24, max_iter=400, acceleration=0))
    assert (q0 < 1e-24).sum() <= 8
    # on a linear map (no curvature) the acceleration vanishes: the same single Newton step either way
    m = _linear_rnn(4, 1, 1.0, 0.5 * torch.eye(4, dtype=F64))
    start = torch.randn(8, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    with_acc = fp.minimize_q(m, [0.3], start, fp.FixedPointOptions(tol_q=1e-26, damping=1e-12))
    without = fp.minimize_q(m, [0.3], start, fp.FixedPointOptions(tol_q=1e-26, damping=1e-12, acceleration=0))
    torch.testing.assert_close(with_acc[0], without[0], atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="acceleration"):
        fp.FixedPointOptions(acceleration=-1)


def _flip_flop_network():
    """A 3-bit flip-flop built by hand (no training): h <- tanh(2 h + 3 x) per bit.  Each bit is
    bistable at ±h*, h* = tanh(2 h*) ≈ 0.9575; a pulse of ±1 drives it to the matching state; the
    readout is h / h*."""
    m = models.make("rnn", 3, 3, 3, activation="tanh", alpha=1.0, dtype="float64", seed=0)
    h_star = 1.0
    for _ in range(200):
        h_star = np.tanh(2 * h_star)
    with torch.no_grad():
        m.cell.weight_hh.copy_(2 * torch.eye(3, dtype=F64))
        m.cell.weight_ih.copy_(3 * torch.eye(3, dtype=F64))
        m.cell.bias.zero_()
        m.readout.weight.copy_(torch.eye(3, dtype=F64) / h_star)
        m.readout.bias.zero_()
    return m


def test_flip_flop_network_has_eight_stable_points_at_the_cube_vertices():
    m = _flip_flop_network()
    task = tasks.make("flip_flop")
    batch = task.test_grid(n_trials=32)
    out, states = m(batch.inputs)
    assert task.score(out, batch).all()                           # it is a flip-flop network
    ds = fp.find_fixed_points(m, torch.zeros(3), states,
                              fp.FixedPointOptions(n_initial=2000, noise=0.5, tol_q=1e-24, unique_tol=1e-4))
    labels = ds["stability"].values
    stable = ds["output"].values[labels == "stable"]
    assert len(stable) == 8
    vertices = {tuple(v) for v in np.sign(stable).astype(int)}
    assert len(vertices) == 8 and np.abs(np.abs(stable) - 1).max() < 1e-8
    # the other fixed points: 3^3 - 8 = 19, the origin fully unstable, 18 saddles
    assert (labels == "saddle").sum() == 18 and (labels == "unstable").sum() == 1
    assert ds.sizes["point"] == 27


def test_trained_flip_flop_has_eight_stable_points_near_the_cube_vertices(tmp_path):
    """A GRU trained on the 3-bit flip-flop (every bit ±1 from t = 0) stores each of the 8 memories in
    a stable fixed point of the zero-input map whose readout is near its vertex of {−1, +1}³; the
    basins are separated by saddles.  The search starts from states visited on test trials plus noise
    (SD 0.1; without noise nearly every start falls into an attractor and saddles are often missed).
    (benchmarks/bench_fixed_points_flipflop.py runs the same recipe for several seeds.)"""
    from neurokpflow.training import train

    task = tasks.make("flip_flop", initial_pulse=True)
    model = models.make("gru", 3, 32, 3, seed=0)
    train(model, task, 600, tmp_path, lr=1e-2, batch_size=64, seed=0, checkpoint_every=600, progress=False)
    model = model.double().eval()
    grid = task.test_grid(n_trials=256)
    with torch.no_grad():
        out, states = model(grid.inputs.double())
    assert task.score(out, grid).all()                            # it has learnt the task
    ds = fp.find_fixed_points(model, torch.zeros(3), states, fp.FixedPointOptions(n_initial=512, noise=0.1))
    assert ds.attrs["n_converged"] >= 480 and (ds["q"].values < 1e-20).all()
    labels = ds["stability"].values
    moduli = np.abs(ds["eigenvalues"].values)
    np.testing.assert_array_equal(labels == "stable", moduli.max(1) < 1)   # discrete map: stable iff |λ| < 1
    stable = ds["output"].values[labels == "stable"]
    assert len(stable) == 8
    assert len({tuple(v) for v in np.sign(stable).astype(int)}) == 8        # one per vertex
    assert np.linalg.norm(stable - np.sign(stable), axis=1).max() < 0.3
    saddles = labels == "saddle"
    assert saddles.sum() >= 1 and (moduli[saddles] > 1).sum(1).min() >= 1
    # each stable point is where the network rests: iterating the map from the end of every test trial
    # (its memory held) approaches the point of the trial's target pattern
    points = torch.as_tensor(ds["state"].values[labels == "stable"])
    h = states[:, -1]
    before = torch.cdist(h, points)
    with torch.no_grad():
        for _ in range(2000):
            h = model.cell(torch.zeros(len(h), 3, dtype=F64), h)
    after = torch.cdist(h, points)
    nearest = after.argmin(1)
    np.testing.assert_array_equal(np.sign(stable)[nearest.numpy()], grid.targets[:, -1].numpy())
    own_before, own_after = before.gather(1, nearest[:, None]), after.gather(1, nearest[:, None])
    assert (own_after < 0.5 * own_before).all() and (after.sort(1).values[:, 1] > 5 * own_after[:, 0]).all()


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
def test_every_cell_type_finds_its_attracting_state(kind):
    """Iterating the map from rest converges to a stable fixed point; the search finds it (the LSTM's
    whole [h, c] state) with F(z) = z on every component."""
    opts = {"rnn": dict(activation="tanh", g=0.8)}.get(kind, dict(g=0.8))
    m = models.make(kind, 2, 16, 2, dtype="float64", seed=2, **opts)
    u = torch.tensor([0.7, -0.4], dtype=F64)
    z = torch.zeros(1, m.cell.state_size, dtype=F64)
    with torch.no_grad():
        for _ in range(3000):
            z = m.cell(u[None], z)
    _, traj = m(torch.randn(4, 30, 2, generator=torch.Generator().manual_seed(0), dtype=F64))
    ds = fp.find_fixed_points(m, u, traj, fp.FixedPointOptions(n_initial=64, tol_q=1e-24))
    assert ds.sizes["unit"] == m.cell.state_size
    residual = m.cell(u.expand(ds.sizes["point"], -1), torch.as_tensor(ds["state"].values)) - \
        torch.as_tensor(ds["state"].values)
    assert residual.abs().max() < 1e-11
    dist = np.linalg.norm(ds["state"].values - z.numpy(), axis=1)
    assert dist.min() < 1e-8 and ds["stability"].values[dist.argmin()] == "stable"
    # the Jacobian matches finite differences of the map
    z0 = torch.as_tensor(ds["state"].values[:1])
    eps = 1e-6
    fd = torch.stack([(m.cell(u[None], z0 + eps * e) - m.cell(u[None], z0 - eps * e))[0] / (2 * eps)
                      for e in torch.eye(m.cell.state_size, dtype=F64)], dim=1)
    np.testing.assert_allclose(ds["jacobian"].values[0], fd.detach().numpy(), atol=1e-7)


def test_plot_in_pca_space_of_trajectories():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = _flip_flop_network()
    _, states = m(tasks.make("flip_flop").test_grid(n_trials=8).inputs)
    ds = fp.find_fixed_points(m, torch.zeros(3), states,
                              fp.FixedPointOptions(n_initial=500, noise=0.5, tol_q=1e-24, unique_tol=1e-4))
    fig = plot_fixed_points(ds, states)
    ax = fig.axes[0]
    assert "stable (8)" in [t.get_text() for t in ax.get_legend().get_texts()]
    own = Figure()
    FigureCanvasAgg(own)
    target = own.add_subplot()
    assert plot_fixed_points(ds, states, ax=target) is own and len(target.collections) >= 3
    with pytest.raises(ValueError, match="state units"):
        plot_fixed_points(ds, states[..., :2])


def test_bad_arguments_raise_clear_errors():
    m = _flip_flop_network()
    with pytest.raises(ValueError, match="3 entries"):
        fp.find_fixed_points(m, torch.zeros(2), torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="max_iter"):
        fp.FixedPointOptions(max_iter=0)
    with pytest.raises(TypeError, match="neurokpflow model"):
        fp.find_fixed_points(object(), torch.zeros(3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\[N, S\]"):
        fp.find_fixed_points(m, torch.zeros(3), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="n_steps"):
        fp.slow_points(m, torch.zeros(3), torch.ones(3), torch.zeros(4, 3, dtype=F64), n_steps=1)
