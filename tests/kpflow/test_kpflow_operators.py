"""Validation of the KPFlow operators (kpflow-math.md §13, checks 1–10 and 16).

float64, tiny sizes; every cell family: leaky RNN (both forms, Dale), GRU, LSTM, torch's
cells and a custom cell on the generic ``torch.func`` path.
"""
import importlib

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp

from neurokpflow.kpflow import DenseOperator, as_state_cell, identity, operators, operators_from_model
from neurokpflow.models import GRUCell, LeakyRNNCell, LSTMCell, unroll

operators_module = importlib.import_module("neurokpflow.kpflow.operators")

DT = torch.float64
B, T, I, H = 3, 6, 2, 5


class CustomCell(nn.Module):
    """A cell the package knows nothing about: takes the torch.func path."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(H, H) * 0.5)
        self.U = nn.Parameter(torch.randn(H, I))
        self.b = nn.Parameter(torch.randn(H) * 0.1)

    def forward(self, x, h):
        return 0.7 * h + 0.3 * torch.tanh(h @ self.W.T + x @ self.U.T + self.b)


CELLS = {
    "rnn_rate": lambda: LeakyRNNCell(I, H, alpha=0.4, activation="tanh", form="rate", g=1.5),
    "rnn_state_softplus": lambda: LeakyRNNCell(I, H, alpha=0.6, activation="softplus", form="state"),
    "rnn_dale": lambda: LeakyRNNCell(I, H, alpha=0.3, form="rate", dale=0.6),
    "rnn_torch_init": lambda: LeakyRNNCell(I, H, init="torch", g=1.2),          # two bias vectors, as nn.RNN
    "gru": lambda: GRUCell(I, H, g=1.3),
    "lstm": lambda: LSTMCell(I, H),
    "torch_rnn_relu": lambda: nn.RNNCell(I, H, nonlinearity="relu"),
    "torch_gru": lambda: nn.GRUCell(I, H),
    "torch_lstm": lambda: nn.LSTMCell(I, H),
    "torch_gru_seq": lambda: nn.GRU(I, H, batch_first=True),
    "custom": CustomCell,
}


def make_case(name, seed=0, dtype=DT, h0_scale=0.5):
    torch.manual_seed(seed)
    cell = CELLS[name]().to(dtype)
    sc = as_state_cell(cell, I, H)
    x = torch.randn(B, T, I, dtype=dtype)
    h0 = h0_scale * torch.randn(B, sc.state_size, dtype=dtype)
    with torch.no_grad():
        hidden = unroll(sc, x, h0)
    readout = torch.randn(3, H, dtype=dtype)
    return cell, sc, x, hidden, h0, readout


def rel_adjoint_error(A, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(A.shape_in, generator=g, dtype=A.dtype).to(A.device)
    y = torch.randn(A.shape_out, generator=g, dtype=A.dtype).to(A.device)
    a, b = A.inner_out(A(x), y), A.inner_in(x, A.T(y))
    return float((a - b).abs() / (a.abs() + b.abs()))


def unrolled_states(sc, x, h0, params=None, forcing=None):
    """Differentiable reference: states of the unrolled model, optionally forced and with new params."""
    z, out = h0, []
    for t in range(x.shape[1]):
        z = functional_call(sc, params, (x[:, t], z)) if params is not None else sc(x[:, t], z)
        if forcing is not None:
            z = z + forcing[:, t]
        out.append(z)
    return torch.stack(out, 1)


def quadratic_loss(target):
    return lambda z: 0.5 * ((z - target) ** 2).mean()


@pytest.mark.parametrize("inner", ["sum", "mean"])
@pytest.mark.parametrize("name", list(CELLS))
def test_adjoint_identity_every_operator(name, inner):
    cell, sc, x, hidden, h0, R = make_case(name)
    ops = operators(cell, x, hidden, h0=h0, readout=R, inner=inner)
    for op in ("J_theta", "K", "P", "P_inv", "NTK", "readout", "NTK_output"):
        assert rel_adjoint_error(getattr(ops, op)) < 1e-12, op


@pytest.mark.parametrize("name", list(CELLS))
def test_inverse_pair(name):
    cell, sc, x, hidden, h0, _ = make_case(name)
    ops = operators(cell, x, hidden, h0=h0)
    q = torch.randn(ops.shape, dtype=DT)
    for lhs in (ops.P(ops.P_inv(q)), ops.P_inv(ops.P(q)), ops.P_inv.T(ops.P.T(q)), ops.P.T(ops.P_inv.T(q))):
        torch.testing.assert_close(lhs, q, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", list(CELLS))
def test_P_is_the_linearised_forcing_response(name):
    cell, sc, x, hidden, h0, _ = make_case(name)
    ops = operators(cell, x, hidden, h0=h0)
    q = torch.randn(ops.shape, dtype=DT)
    zero = torch.zeros_like(q)
    _, tangent = jvp(lambda f: unrolled_states(sc, x, h0, forcing=f), (zero,), (q,))
    torch.testing.assert_close(ops.P(q), tangent, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", list(CELLS))
def test_P_adjoint_is_backprop_through_time_and_gradient(name):
    cell, sc, x, hidden, h0, _ = make_case(name)
    ops = operators(cell, x, hidden, h0=h0)
    target = torch.randn(ops.shape, dtype=DT)
    loss = quadratic_loss(target)
    err = ops.error(loss)
    # total derivative dL/dz(t): gradient w.r.t. a zero forcing added after every step
    forcing = torch.zeros(ops.shape, dtype=DT, requires_grad=True)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in sc.named_parameters()}
    L = loss(unrolled_states(sc, x, h0, params=params, forcing=forcing))
    g_forcing, *g_params = torch.autograd.grad(L, [forcing, *[params[n] for n in ops.param_names]])
    torch.testing.assert_close(ops.P.T(err), g_forcing, rtol=1e-10, atol=1e-13)
    grad = ops.gradient(err)
    for n, g in zip(ops.param_names, g_params):
        torch.testing.assert_close(grad[n], g, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["rnn_rate", "rnn_dale", "gru", "lstm", "torch_rnn_relu", "custom"])
def test_ntk_equals_dense_jacobian_gram(name):
    cell, sc, x, hidden, h0, _ = make_case(name)
    ops = operators(cell, x, hidden, h0=h0)
    params = {n: p.detach() for n, p in sc.named_parameters()}
    names = ops.param_names

    def states_of(*vals):
        return unrolled_states(sc, x, h0, params=dict(zip(names, vals))).reshape(-1)

    jac = jacrev(states_of, argnums=tuple(range(len(names))))(*[params[n] for n in names])
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
    torch.testing.assert_close(ops.NTK.to_dense(), J @ J.T, rtol=1e-10, atol=1e-12)
    # and the factorisation dz/dθ = P J_θ
    torch.testing.assert_close((ops.P @ ops.J_theta).to_dense(), J, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["rnn_rate", "gru", "lstm"])
def test_first_order_prediction_matches_one_sgd_step(name):
    cell, sc, x, hidden, h0, _ = make_case(name)
    ops = operators(cell, x, hidden, h0=h0)
    target = torch.randn(ops.shape, dtype=DT)
    err = ops.error(quadratic_loss(target))
    grad = ops.gradient(err)
    errors = []
    for lr in (1e-2, 1e-3):
        stepped = {n: p.detach() - (lr * grad[n] if n in grad else 0) for n, p in sc.named_parameters()}
        with torch.no_grad():
            actual = unrolled_states(sc, x, h0, params=stepped) - hidden
        predicted = ops.first_order_update(err, lr)
        errors.append(float((actual - predicted).norm() / actual.norm()))
    assert errors[1] < 1e-2
    assert 5 < errors[0] / errors[1] < 20  # O(η²) remainder: relative error shrinks ∝ η


def test_linear_rnn_closed_forms():
    torch.manual_seed(3)
    cell = LeakyRNNCell(I, H, activation="identity", form="rate", alpha=1.0, bias=False).double()
    x = torch.randn(B, T, I, dtype=DT)
    hidden = unroll(cell, x)
    ops = operators(cell, x, hidden)
    W = cell.weight_hh.detach()
    L_T = torch.diag(torch.ones(T - 1, dtype=DT), -1)
    P_inv = torch.eye(B * T * H, dtype=DT) - torch.kron(torch.eye(B, dtype=DT), torch.kron(L_T, W))
    torch.testing.assert_close(ops.P_inv.to_dense(), P_inv, rtol=1e-12, atol=1e-12)
    P = sum(torch.kron(torch.linalg.matrix_power(L_T, k), torch.linalg.matrix_power(W, k)) for k in range(T))
    torch.testing.assert_close(ops.P.to_dense(), torch.kron(torch.eye(B, dtype=DT), P), rtol=1e-12, atol=1e-12)
    # P (W_in x) reproduces the trajectory from h0 = 0
    torch.testing.assert_close(ops.P(x @ cell.weight_ih.detach().T), hidden, rtol=1e-12, atol=1e-12)


def test_scalar_gain_toy_closed_forms():
    g, n, T_ = 0.9, 4, 7
    cell = LeakyRNNCell(1, n, activation="identity", alpha=1.0, bias=False).double()
    with torch.no_grad():
        cell.weight_hh.copy_(g * torch.eye(n, dtype=DT))
    h0 = torch.randn(1, n, dtype=DT)
    x = torch.zeros(1, T_, 1, dtype=DT)
    hidden = unroll(cell, x, h0)
    ops = operators(cell, x, hidden, h0=h0, params=["weight_hh"])
    t = torch.arange(1, T_ + 1, dtype=DT)
    Tg = torch.tril(g ** (t[:, None] - t[None, :]))
    v = h0.norm() * g ** (t - 1)
    w = Tg @ v
    In = torch.eye(n, dtype=DT)
    torch.testing.assert_close(ops.P.to_dense(), torch.kron(Tg, In), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.K.to_dense(), torch.kron(torch.outer(v, v), In), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.NTK.to_dense(), torch.kron(torch.outer(w, w), In), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w, h0.norm() * t * g ** (t - 1))


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_kronecker_K_for_activation_inside_rnn(alpha):
    torch.manual_seed(4)
    cell = LeakyRNNCell(I, H, form="state", activation="tanh", alpha=alpha, bias=False).double()
    x = torch.randn(B, T, I, dtype=DT)
    h0 = torch.randn(B, H, dtype=DT)
    hidden = unroll(cell, x, h0)
    ops = operators(cell, x, hidden, h0=h0)
    V = torch.cat([torch.tanh(ops.z_prev), x], dim=-1).reshape(B * T, H + I)
    expected = alpha**2 * torch.kron(V @ V.T, torch.eye(H, dtype=DT))
    torch.testing.assert_close(ops.K.to_dense(), expected, rtol=1e-12, atol=1e-12)
    # the off-by-one detector: rows built from z(t) instead of z(t-1) do not match
    V_wrong = torch.cat([torch.tanh(hidden), x], dim=-1).reshape(B * T, H + I)
    wrong = alpha**2 * torch.kron(V_wrong @ V_wrong.T, torch.eye(H, dtype=DT))
    assert (ops.K.to_dense() - wrong).norm() / wrong.norm() > 0.05


def test_block_structure_of_P_and_coupling_of_K():
    cell, sc, x, hidden, h0, _ = make_case("gru")
    ops = operators(cell, x, hidden, h0=h0)
    P = ops.P.to_dense().reshape(B, T, H, B, T, H)
    K = ops.K.to_dense().reshape(B, T, H, B, T, H)
    for b in range(B):
        for b2 in range(B):
            if b != b2:
                assert P[b, :, :, b2].abs().max() == 0
                assert K[b, :, :, b2].abs().max() > 1e-6  # shared parameters couple trials
        for t in range(T):
            torch.testing.assert_close(P[b, t, :, b, t], torch.eye(H, dtype=DT))
            assert P[b, t, :, b, t + 1:].abs().max() == 0 if t + 1 < T else True


def test_mean_convention_scales_K_but_not_P_or_the_update():
    cell, sc, x, hidden, h0, _ = make_case("gru")
    s = operators(cell, x, hidden, h0=h0, inner="sum")
    m = operators(cell, x, hidden, h0=h0, inner="mean")
    torch.testing.assert_close(m.K.to_dense(), s.K.to_dense() / (B * T))
    torch.testing.assert_close(m.P.to_dense(), s.P.to_dense())
    loss = quadratic_loss(torch.randn(s.shape, dtype=DT))
    es, em = s.error(loss), m.error(loss)
    torch.testing.assert_close(em, es * (B * T))
    torch.testing.assert_close(m.first_order_update(em, 1e-3), s.first_order_update(es, 1e-3))
    gs, gm = s.gradient(es), m.gradient(em)
    for n in gs:
        torch.testing.assert_close(gs[n], gm[n])


@pytest.mark.parametrize("name", ["gru", "lstm", "custom"])
def test_cached_jacobians_match_matrix_free(name):
    cell, sc, x, hidden, h0, _ = make_case(name)
    a = operators(cell, x, hidden, h0=h0)
    b = operators(cell, x, hidden, h0=h0, jacobians="cached")
    q = torch.randn(a.shape, dtype=DT)
    for op in ("P", "P_inv"):
        torch.testing.assert_close(getattr(a, op)(q), getattr(b, op)(q))
        torch.testing.assert_close(getattr(a, op).T(q), getattr(b, op).T(q))


def test_generic_path_agrees_with_hand_derived_path():
    cell, sc, x, hidden, h0, _ = make_case("gru")

    class Wrapped(nn.Module):  # hides the GRU from the hand-derived path
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, h):
            return self.inner(x, h)

    a = operators(cell, x, hidden, h0=h0)
    b = operators(Wrapped(cell), x, hidden, h0=h0)
    assert type(b.cell).__name__ == "GenericCell"
    for op in ("P", "K", "P_inv", "NTK"):
        torch.testing.assert_close(getattr(a, op).to_dense(), getattr(b, op).to_dense(), rtol=1e-12, atol=1e-12)
    # a trajectory the cell does not reproduce (e.g. recorded with noise): NTK is the composition P K P*
    noisy = hidden + 0.01 * torch.randn_like(hidden)
    c = operators(Wrapped(cell), x, noisy, h0=h0)
    torch.testing.assert_close(c.NTK.to_dense(), (c.P @ c.K @ c.P.T).to_dense(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c.NTK.to_dense(), operators(cell, x, noisy, h0=h0).NTK.to_dense(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("params", [None, ["weight_hh", "bias_hh"], ["weight_ih", "weight_hh"],
                                    ["bias_ih", "weight_hh"], ["weight_ih", "bias_hh"]])
def test_gru_sites_sharing_coefficients_equal_separate_sites(params, monkeypatch):
    # the GRU's recurrent site declares its coefficients as the input site's times the reset gate on
    # the candidate gate; J_theta and J_theta* then share elementwise work, and must equal the plain sites
    cell, sc, x, hidden, h0, _ = make_case("gru")
    shared = operators(cell, x, hidden, h0=h0, params=params)
    sites = cell.linearize_all(x, torch.cat([h0.expand(B, -1)[:, None], hidden[:, :-1]], 1))[1]
    assert sites[1].base is sites[0] and set(sites[1].gate_factor) == {2}
    torch.testing.assert_close(sites[1].coeff[:, 0, 2], sites[0].coeff[:, 0, 2] * sites[1].gate_factor[2],
                               rtol=1e-14, atol=0)
    torch.testing.assert_close(sites[1].coeff[:, 0, :2], sites[0].coeff[:, 0, :2], rtol=0, atol=0)
    original = type(cell).linearize_all

    def plain_sites(self, inputs, z_prev):
        lin, sts = original(self, inputs, z_prev)
        for st in sts:
            st.base, st.gate_factor = None, {}
        return lin, sts

    monkeypatch.setattr(type(cell), "linearize_all", plain_sites)
    plain = operators(cell, x, hidden, h0=h0, params=params)
    for op in ("J_theta", "K", "NTK"):
        torch.testing.assert_close(getattr(shared, op).to_dense(), getattr(plain, op).to_dense(), rtol=1e-13,
                                   atol=1e-13)
    q = torch.randn(4, *hidden.shape, dtype=DT)
    torch.testing.assert_close(shared.J_theta.T(q), plain.J_theta.T(q), rtol=1e-13, atol=1e-13)


def test_torch_cells_match_package_cells():
    torch.manual_seed(5)
    tcell = nn.GRUCell(I, H).double()
    cell = GRUCell(I, H).double()
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(tcell, n))
    x = torch.randn(B, T, I, dtype=DT)
    hidden = unroll(cell, x)
    a, b = operators(cell, x, hidden), operators(tcell, x, hidden)
    torch.testing.assert_close(a.NTK.to_dense(), b.NTK.to_dense(), rtol=1e-12, atol=1e-12)
    assert b.param_names == ["cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh"]


def test_lstm_hidden_only_trajectory_rebuilds_the_cell_state():
    cell, sc, x, hidden, h0, _ = make_case("lstm")
    full = operators(cell, x, hidden, h0=h0)
    h_only = operators(cell, x, hidden[..., :H], h0=h0)
    torch.testing.assert_close(full.states, h_only.states)
    with pytest.raises(ValueError, match="does not reproduce hidden"):
        operators(cell, x, hidden[..., :H] + 0.1, h0=h0)


@pytest.mark.parametrize("name", ["gru", "lstm", "rnn_dale"])
def test_batched_probes_equal_single_applications_and_chunking(name, monkeypatch):
    cell, sc, x, hidden, h0, _ = make_case(name)
    Q = torch.randn(5, B, T, sc.state_size, dtype=DT)
    reference = operators(cell, x, hidden, h0=h0)
    K_ref, J_ref = reference.K(Q), reference.J_theta.to_dense()  # B·T rows in one block
    # tiny row blocks: the J_θ products now walk the B·T rows in several blocks
    monkeypatch.setattr(operators_module, "_ROW_BLOCK_BYTES", 200)
    ops = operators(cell, x, hidden, h0=h0, chunk_size=2)
    assert len(operators_module._row_blocks(sc.parameter_sites(x, ops.z_prev), 5, 8)) > 1
    for op in (ops.P, ops.P.T, ops.K, ops.NTK, ops.P_inv.T):
        batched = op(Q)
        single = torch.stack([op(q) for q in Q])
        torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.K(Q), K_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.J_theta.to_dense(), J_ref, rtol=1e-12, atol=1e-12)


def test_float32_operators_agree_with_float64():
    cell, sc, x, hidden, h0, _ = make_case("gru", dtype=torch.float32)
    ops32 = operators(cell, x, hidden, h0=h0)
    ops64 = operators(cell.double(), x.double(), hidden.double(), h0=h0.double())
    assert ops32.K.dtype == torch.float32
    assert rel_adjoint_error(ops32.NTK) < 1e-5
    q = torch.randn(ops32.shape)
    torch.testing.assert_close(ops32.NTK(q).double(), ops64.NTK(q.double()), rtol=1e-4, atol=1e-4)


def test_operators_from_model_runs_the_cell_noise_free():
    torch.manual_seed(6)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = GRUCell(I, H)
            self.readout = nn.Linear(H, 2)

    model = Model()
    x = torch.randn(B, T, I)
    ops = operators_from_model(model, x, dtype=torch.float64)
    assert ops.K.dtype == torch.float64 and ops.NTK_output.shape_out == (B, T, 2)
    assert model.cell.weight_hh.dtype == torch.float32  # the model itself is untouched
    torch.testing.assert_close(ops.states.float(), unroll(model.cell, x).detach(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ bad input
def test_bad_inputs_raise_clear_errors():
    cell, sc, x, hidden, h0, _ = make_case("gru")
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        operators(cell, x[:2], hidden, h0=h0)
    with pytest.raises(ValueError, match="state size"):
        operators(cell, x, hidden[..., :3])
    with pytest.raises(ValueError, match="input_size"):
        operators(cell, torch.randn(B, T, I + 1, dtype=DT), hidden)
    bad = hidden.clone()
    bad[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        operators(cell, x, bad)
    with pytest.raises(TypeError, match="dtype|float"):
        operators(cell, x.float(), hidden)
    with pytest.raises(TypeError, match="cell's parameters"):
        operators(cell, x.float(), hidden.float())
    with pytest.raises(ValueError, match="inner"):
        operators(cell, x, hidden, inner="avg")
    with pytest.raises(ValueError, match="h0"):
        operators(cell, x, hidden, h0=torch.zeros(B, H + 1, dtype=DT))

    class WrongShape(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = nn.Parameter(torch.randn(H + 1, H))

        def forward(self, x, h):
            return h @ self.W.T

    with pytest.raises(ValueError, match="state shape"):
        operators(WrongShape().double(), x, hidden)
    with pytest.raises(ValueError, match="num_layers"):
        operators(nn.GRU(I, H, num_layers=2).double(), x, hidden)


def test_operator_algebra_guards():
    cell, sc, x, hidden, h0, _ = make_case("gru")
    ops = operators(cell, x, hidden, h0=h0)
    with pytest.raises(ValueError, match="cannot compose"):
        ops.J_theta @ ops.K  # J_theta takes parameter vectors, K outputs trajectories
    with pytest.raises(TypeError, match="scalar"):
        ops.K + 1.0
    with pytest.raises(TypeError, match="elementwise"):
        ops.K * ops.P
    with pytest.raises(ValueError, match="shape"):
        ops.P(torch.randn(B, T, H + 1, dtype=DT))
    with pytest.raises(TypeError, match="dtype"):
        ops.P(torch.randn(B, T, H))
    A = ops.K + 2.0 * identity(ops.K)
    q = torch.randn(ops.shape, dtype=DT)
    torch.testing.assert_close(A(q), ops.K(q) + 2 * q)
    torch.testing.assert_close((ops.P - ops.P)(q), torch.zeros_like(q))
    big = DenseOperator(torch.zeros(1, 1, dtype=DT))
    big.shape_in, big.shape_out = (2**14,), (2**14,)
    with pytest.raises(ValueError, match="dense view"):
        big.to_dense()


@pytest.mark.parametrize("name", list(CELLS))
def test_operators_are_a_snapshot_of_the_cell(name):
    """Later changes to the module (an optimizer step in place) do not reach built operators."""
    cell, sc, x, hidden, h0, R = make_case(name)
    ops = operators(cell, x, hidden, h0=h0, readout=R)
    probes = {op: torch.randn(getattr(ops, op).shape_in, dtype=DT) for op in ("P", "K", "NTK", "J_theta", "NTK_output")}
    before = {op: getattr(ops, op)(u) for op, u in probes.items()}
    with torch.no_grad():
        for p in cell.parameters():
            p.mul_(1.5).add_(0.1)
        R.mul_(2.0)                                    # the readout too
    for op, want in before.items():
        torch.testing.assert_close(getattr(ops, op)(probes[op]), want, rtol=0, atol=0)


def test_cells_holding_computed_tensors_can_be_snapshotted():
    # a cell that keeps its last output: a non-leaf tensor on the module after a forward with grad
    class CachingCell(CustomCell):
        def forward(self, x, h):
            self.last = super().forward(x, h)
            return self.last

    torch.manual_seed(0)
    cell = CachingCell().to(DT)
    x = torch.randn(B, T, I, dtype=DT)
    h0 = torch.zeros(B, H, dtype=DT)
    with torch.no_grad():
        hidden = unroll(as_state_cell(cell, I, H), x, h0)
    cell(x[:, 0], h0)                                  # with grad, as mid-training
    assert not cell.last.is_leaf
    ops = operators(cell, x, hidden)
    assert rel_adjoint_error(ops.NTK) < 1e-12


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["gru", "lstm", "rnn_rate", "custom"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_operators_match_cpu(name, dtype):
    cell, sc, x, hidden, h0, R = make_case(name, dtype=dtype)
    cpu = operators(cell, x, hidden, h0=h0, readout=R)
    dev = torch.device("cuda")
    gpu = operators(cell.to(dev), x.to(dev), hidden.to(dev), h0=h0.to(dev), readout=R.to(dev))
    q = torch.randn(cpu.shape, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for op in ("P", "K", "NTK", "NTK_output"):
        A_cpu, A_gpu = getattr(cpu, op), getattr(gpu, op)
        v = q if A_cpu.shape_in == q.shape else torch.randn(A_cpu.shape_in, dtype=dtype)
        torch.testing.assert_close(A_gpu(v.to(dev)).cpu(), A_cpu(v), rtol=tol, atol=tol)
        assert rel_adjoint_error(A_gpu) < (1e-5 if dtype == torch.float32 else 1e-12)
