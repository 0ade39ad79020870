"""The contract every registered cell keeps (generated from ``models.CELLS``: a new cell is tested automatically).

* its fast sequence (:meth:`run_sequence`) equals one :meth:`forward` per step;
* its linearisation is a Jacobian and its transpose (adjoint identity, and a finite-difference check);
* a cell declaring ``unit_separable`` gives the exact K of brute-force autograd through ``unit_separable_K``;
* ``models.make`` builds it with the kind's declared options and rejects unknown ones.
"""
import pytest
import torch
from torch.func import functional_call, jacrev

from neurokpflow import models
from neurokpflow.kpflow import unit_separable_K
from neurokpflow.models.cells import RecurrentCell

F64 = torch.float64
B, T, I, H = 2, 5, 3, 4


def _model(kind):
    return models.make(kind, I, H, 2, seed=0, dtype="float64")


@pytest.mark.parametrize("kind", list(models.CELLS))
def test_fast_sequence_equals_the_step_by_step_forward(kind):
    cell = _model(kind).cell
    x = torch.randn(B, T, I, dtype=F64, generator=torch.Generator().manual_seed(1))
    z0 = 0.1 * torch.randn(B, cell.state_size, dtype=F64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fast = cell.run_sequence(x, z0)
        slow = RecurrentCell.run_sequence(cell, x, z0)
    assert fast.shape == (B, T, cell.state_size)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", list(models.CELLS))
def test_linearisation_is_the_jacobian_and_its_adjoint(kind):
    cell = _model(kind).cell
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, T, I, dtype=F64, generator=g)
    z_prev = 0.3 * torch.randn(B, T, cell.state_size, dtype=F64, generator=g)
    lin = cell.linearize(x, z_prev)
    dz = torch.randn(B, T, cell.state_size, dtype=F64, generator=g)
    e = torch.randn(B, T, cell.state_size, dtype=F64, generator=g)
    assert float((lin.jvp(dz) * e).sum()) == pytest.approx(float((dz * lin.vjp(e)).sum()), rel=1e-10)
    eps = 1e-6
    with torch.no_grad():
        step = lambda z: cell(x.reshape(B * T, I), z.reshape(B * T, -1)).reshape(B, T, -1)
        fd = (step(z_prev + eps * dz) - step(z_prev - eps * dz)) / (2 * eps)
    torch.testing.assert_close(lin.jvp(dz), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", models.CELLS.names(unit_separable=True))
def test_declared_unit_separable_cells_give_the_exact_K(kind):
    cell = _model(kind).cell
    x = torch.randn(B, T, I, dtype=F64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        hid = cell.run_sequence(x, cell.initial_state(B))
    S = hid.shape[-1]
    zp = torch.cat([torch.zeros(B, 1, S, dtype=F64), hid[:, :-1]], 1)
    params = {k: v.detach() for k, v in cell.named_parameters() if v.requires_grad}
    f = lambda p: functional_call(cell, p, (x.reshape(B * T, -1), zp.reshape(B * T, S))).reshape(-1)
    J = torch.cat([j.reshape(B * T * S, -1) for j in jacrev(f)(params).values()], 1)
    torch.testing.assert_close(unit_separable_K(cell, x, hid).to_dense(), J @ J.T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", list(models.CELLS))
def test_make_accepts_the_declared_options_and_refuses_others(kind):
    options = models.CELLS[kind].capabilities["options"]
    model = models.make(kind, I, H, 2, seed=0, **options)
    assert model.kind == kind and model.config["n_hidden"] == H
    assert models.from_config(model.config).config == model.config
    with pytest.raises(TypeError, match="unknown option"):
        models.make(kind, I, H, 2, no_such_option=1)
