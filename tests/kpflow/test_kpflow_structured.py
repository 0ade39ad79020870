"""Closed-form K of unit-separable cells against brute-force autograd."""
import pytest
import torch
from torch.func import functional_call, jacrev

from neurokpflow.kpflow import operators, partial_trace, trace, unit_separable_K
from neurokpflow.models.cells import GRUCell, LSTMCell, LeakyRNNCell, unroll

F64 = torch.float64
B, T, I = 2, 5, 2


def _brute_K(cell, x, hid):
    S = hid.shape[-1]
    zp = torch.cat([torch.zeros(B, 1, S, dtype=F64), hid[:, :-1]], 1)
    params = {k: v.detach() for k, v in cell.named_parameters() if v.requires_grad}

    def f(p):
        return functional_call(cell, p, (x.reshape(B * T, -1), zp.reshape(B * T, S))).reshape(-1)

    J = torch.cat([j.reshape(B * T * S, -1) for j in jacrev(f)(params).values()], 1)
    return J @ J.T


CELLS = {
    "rate": lambda: LeakyRNNCell(I, 4, dtype=F64),
    "state": lambda: LeakyRNNCell(I, 4, form="state", alpha=0.3, dtype=F64),
    "dale": lambda: LeakyRNNCell(I, 4, dale=0.5, alpha=0.5, dtype=F64),
    "torch_init": lambda: LeakyRNNCell(I, 4, init="torch", dtype=F64),                  # b_ih and b_hh
    "torch_init_state": lambda: LeakyRNNCell(I, 4, form="state", alpha=0.5, init="torch", dtype=F64),
    "gru": lambda: GRUCell(I, 4, dtype=F64),
    "lstm": lambda: LSTMCell(I, 3, dtype=F64),
}


@pytest.mark.parametrize("name", list(CELLS))
def test_exact_K_matches_brute_force(name):
    torch.manual_seed(0)
    cell = CELLS[name]()
    x = torch.randn(B, T, I, dtype=F64)
    hid = unroll(cell, x).detach()
    Kb = _brute_K(cell, x, hid)
    K = unit_separable_K(cell, x, hid)
    S = hid.shape[-1]
    T4 = Kb.reshape(B, T, S, B, T, S)
    assert torch.allclose(K.to_dense(), Kb, atol=1e-12)
    assert torch.allclose(K.diagonal().reshape(-1), Kb.diagonal(), atol=1e-12)
    tr = K.trace()
    assert tr.stderr == 0 and float(tr) == pytest.approx(float(torch.trace(Kb)), rel=1e-12)
    assert torch.allclose(partial_trace(K, "unit").to_dense(),
                          torch.einsum("abiCDi->abCD", T4).reshape(B * T, B * T), atol=1e-12)
    assert torch.allclose(partial_trace(K, ("trial", "time")).to_dense(), torch.einsum("abiabj->ij", T4), atol=1e-12)
    assert partial_trace(K, "unit").dims == ("trial", "time")
    assert torch.allclose(partial_trace(K, "time").to_dense(),  # generic fallback on the fast operator
                          torch.einsum("aibcid->abcd", T4).reshape(B * S, B * S), atol=1e-12)


def test_agrees_with_kpflow_operators_and_inner_mean():
    torch.manual_seed(1)
    cell = GRUCell(I, 5, dtype=F64)
    cell.bias_hh.requires_grad_(False)
    x = torch.randn(B, T, I, dtype=F64)
    h0 = torch.randn(5, dtype=F64)
    hid = unroll(cell, x, h0).detach()
    for inner in ("sum", "mean"):
        ops = operators(cell, x, hid, h0=h0, inner=inner)
        K = unit_separable_K(cell, x, hid, h0=h0, inner=inner)
        assert torch.allclose(K.to_dense(), ops.K.to_dense(), atol=1e-12)
        assert float(K.trace()) == pytest.approx(float(trace(ops.K, method="exact")), rel=1e-12)


def test_bad_input():
    cell = GRUCell(I, 4, dtype=F64)
    x = torch.randn(B, T, I, dtype=F64)
    with pytest.raises(ValueError, match="state_size"):
        unit_separable_K(cell, x, torch.zeros(B, T, 3, dtype=F64))
    with pytest.raises(TypeError, match="needs a cell with unit_separable_terms"):
        unit_separable_K(torch.nn.Linear(2, 2), x, torch.zeros(B, T, 4, dtype=F64))
    with pytest.raises(ValueError, match="inner"):
        unit_separable_K(cell, x, torch.zeros(B, T, 4, dtype=F64), inner="avg")


@pytest.mark.parametrize("module", [torch.nn.GRU(I, 3), torch.nn.LSTM(I, 3), torch.nn.GRUCell(I, 3)],
                         ids=["nn.GRU", "nn.LSTM", "nn.GRUCell"])
def test_torch_gated_modules_get_the_exact_K_through_their_adapter(module):
    from neurokpflow.kpflow.cells import as_state_cell

    torch.manual_seed(2)
    cell = as_state_cell(module.double())
    x = torch.randn(B, T, I, dtype=F64)
    with torch.no_grad():
        hid = cell.run_sequence(x, cell.initial_state(B))
    torch.testing.assert_close(unit_separable_K(cell, x, hid).to_dense(), _brute_K(cell, x, hid), rtol=1e-10, atol=1e-12)
