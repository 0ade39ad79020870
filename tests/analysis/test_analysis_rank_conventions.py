"""Rank conventions for K and P, and the KPFlow collapse they do (or do not) show."""
import numpy as np
import pytest
import torch

from neurokpflow import models, training
from neurokpflow.analysis import rank_conventions as rc
from neurokpflow.kpflow import block_average


def _model(activation="tanh", g=2.0, H=6):
    return models.make("rnn", 3, H, 3, seed=0, activation=activation, init="torch", g=g, dtype="float64")


def test_rank_from_spectrum_hand_values():
    v = [0.9, 0.08, 0.02]
    assert rc.rank_from_spectrum(v, rc.PACKAGE_RANK, "P") == pytest.approx(1.625)
    # squared: p = (0.81, 0.0064, 0.0004)/0.8168 → C1 = 0.99167 > 0.95 → 0.95 / 0.99167
    assert rc.rank_from_spectrum(v, rc.PACKAGE_RANK.replace(name="sq", squared=True), "P") == \
        pytest.approx(0.95 / (0.81 / 0.8168))
    # top-k normalises over the kept values only: a flat spectrum of 100 values restricted to 60 gives 0.95·60
    flat = np.ones(100)
    assert rc.rank_from_spectrum(flat, rc.PACKAGE_RANK, "P") == pytest.approx(95.0)
    assert rc.rank_from_spectrum(flat, rc.PAPER_FIGURE_RANK, "P") == pytest.approx(57.0)
    assert rc.rank_from_spectrum(flat, rc.PAPER_FIGURE_RANK, "K") == pytest.approx(19.0)
    with pytest.raises(ValueError, match="operator"):
        rc.rank_from_spectrum(v, rc.PACKAGE_RANK, "NTK")


def test_convention_validation_and_one_factor_variants():
    with pytest.raises(ValueError, match="time_index"):
        rc.RankConvention("x", time_index="z(t)")
    with pytest.raises(ValueError, match="keep"):
        rc.RankConvention("x", keep=("unit",))
    with pytest.raises(ValueError, match="top_k"):
        rc.RankConvention("x", top_k=(20,))
    with pytest.raises(ValueError, match="threshold"):
        rc.RankConvention("x", threshold=1.0)
    variants = rc.one_factor_variants(rc.PAPER_FIGURE_RANK, rc.PACKAGE_RANK)
    changed = {v.name.split(", ")[1].split("=")[0] for v in variants}
    assert changed == {"time_index", "K_form", "squared", "top_k"}
    for v in variants:  # exactly one field differs from the base
        diff = [f for f in ("time_index", "K_form", "reduction", "keep", "squared", "top_k", "threshold")
                if getattr(v, f) != getattr(rc.PAPER_FIGURE_RANK, f)]
        assert len(diff) == 1


def test_paper_era_operators_linearise_at_z_t():
    m = _model()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    ops = rc.paper_era_operators(m, x)
    states = m(x)[1].detach()
    torch.testing.assert_close(ops.z_prev, states)                 # J(t) at z(t), not z(t-1)
    pkg = rc._package_operators(m, x, torch.float64)
    torch.testing.assert_close(pkg.z_prev[:, 1:], states[:, :-1])  # the package: z(t-1)
    # P by hand with J(t) = diag(1 - tanh²(W_in x(t) + b_ih + b_hh + W z(t))) W at z(t)
    c = m.cell
    q = torch.randn(2, 5, 6, dtype=torch.float64)
    d, out = torch.zeros(2, 6, dtype=torch.float64), []
    for t in range(5):
        a = x[:, t] @ c.weight_ih.T + c.bias + c.bias_hh + states[:, t] @ c.weight_hh.T
        J = (1 - torch.tanh(a) ** 2)[:, :, None] * c.weight_hh
        d = q[:, t] + (J @ d[:, :, None])[:, :, 0]
        out.append(d)
    torch.testing.assert_close(ops.P @ q, torch.stack(out, 1).detach())
    # a linear RNN has J = W everywhere: both conventions give the same P
    lin = _model("identity")
    a, b = rc.paper_era_operators(lin, x), rc._package_operators(lin, x, torch.float64)
    torch.testing.assert_close(a.P @ q, b.P @ q)


def test_reduced_spectra_are_those_of_the_block_averaged_grams():
    m = _model(H=4)
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    ops = rc._package_operators(m, x, torch.float64)
    spec = rc.reduced_spectra(ops, rc.PAPER_FIGURE_RANK.replace(name="p", time_index="package"))
    K = (ops.K @ ops.K).to_dense(force=True).reshape(3, 4, 4, 3, 4, 4)
    dense = K.sum(dim=(0, 2, 3, 5)) / 12                          # (1/|S|) Σ_{s,s'} over trial × unit
    np.testing.assert_allclose(spec["K"], torch.linalg.eigvalsh(dense).flip(0).numpy(), rtol=1e-9, atol=1e-12)
    PPt = block_average(ops.P @ ops.P.T, ("trial", "unit")).to_dense(force=True)
    np.testing.assert_allclose(spec["P"], torch.linalg.eigvalsh(PPt).flip(0).numpy(), rtol=1e-9, atol=1e-12)


def test_reference_protocol_training_collapses_P_under_the_reference_figures_rank(tmp_path):
    """The study's result at reduced size (T = 30, H = 32, 200 steps of the reference protocol with a
    256-trial full batch and lr 3e-3): once training leaves the loss plateau, P's rank under the
    reference figure's definition (σ(P)⁴ thresholded) falls more than 3× while K's stays ≤ 3; the
    package's ER1 (σ(P)², all eigenvalues) of the same operators falls by less than 2×."""
    proto = training.REFERENCE.replace(dataset_size=256, batch_size=256, lr=3e-3, period=10, target_loss=None,
                                       checkpoint_every=200)
    task = proto.task()
    build = lambda: models.make("rnn", task.n_inputs, 32, task.n_outputs, seed=0, **proto.model_options(1.0))  # noqa: E731
    run = training.train(build(), task, 200, tmp_path, progress=False, device="cpu", **proto.train_options())
    assert run.log.loss.values[-1] < 0.1     # left the "output the fixation only" plateau (≈ 0.11); 0.076 / 0.084 with 1 / 2 threads
    ds = rc.convention_ranks([(0, build()), (200, run.model)], task.test_grid(n_angles=4),
                             [rc.PAPER_FIGURE_RANK, rc.PACKAGE_RANK])
    fig = rc.collapse_summary(ds, rc.PAPER_FIGURE_RANK.name)
    assert fig["P_first"] > 20 and fig["P_last"] * 3 <= fig["P_first"] and fig["K_max"] <= 3 and fig["collapsed"]
    pkg = rc.collapse_summary(ds, rc.PACKAGE_RANK.name)
    assert pkg["P_last"] * 2 > pkg["P_first"] and not pkg["collapsed"]


def test_deciding_factors_from_recorded_curves():
    variants = rc.one_factor_variants(rc.PAPER_FIGURE_RANK, rc.PACKAGE_RANK)
    flat, fall = [57.0, 56.0, 50.0, 48.0, 47.0], [57.0, 56.0, 3.0, 2.0, 3.0]
    curves = {rc.PAPER_FIGURE_RANK.name: {"P": fall, "K": [0.95] * 5}}
    for v in variants:
        curves[v.name] = {"P": flat if "squared" in v.name else fall, "K": [0.95] * 5}
    ds = rc.ranks_dataset([0, 100, 200, 300, 400], curves)
    assert rc.collapse_summary(ds, rc.PAPER_FIGURE_RANK.name)["collapsed"]
    assert rc.collapse_summary(ds, rc.PAPER_FIGURE_RANK.name)["half_step"] == 200
    assert rc.deciding_factors(ds, rc.PAPER_FIGURE_RANK, rc.PACKAGE_RANK) == {"squared": False}
    # a one-checkpoint dip is not a sustained collapse; nor is one with K above the factor
    dip = rc.ranks_dataset([0, 1, 2, 3, 4], {"x": {"P": [57.0, 56, 55, 56, 2], "K": [1.0] * 5},
                                             "y": {"P": fall, "K": [1.0, 1, 4, 1, 1]}})
    assert not rc.collapse_summary(dip, "x")["collapsed"] and not rc.collapse_summary(dip, "y")["collapsed"]
    with pytest.raises(KeyError, match="not in the result"):
        rc.collapse_summary(ds, "nope")
