"""The reference training protocol: fixed-set batching, stopping rule, torch-style initialisation, options."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from neurokpflow import models, training

TINY = dict(progress=False, device="cpu")


def _tiny(proto, H=8):
    task = proto.task()
    return models.make("rnn", task.n_inputs, H, task.n_outputs, seed=0, **proto.model_options(1.0)), task


@pytest.mark.parametrize("n, b", [(12, 4), (10, 4), (5, 5), (7, 1)])
def test_fixed_set_batches_are_deterministic_and_cover_the_set_each_epoch(n, b):
    per_epoch = -(-n // b)
    for epoch in range(3):
        batches = [training.batch_indices(epoch * per_epoch + k, n, b, seed=3) for k in range(per_epoch)]
        assert all(len(x) == b for x in batches[:-1]) and 1 <= len(batches[-1]) <= b
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))      # every trial exactly once
    again = [training.batch_indices(s, n, b, seed=3) for s in range(2 * per_epoch)]
    assert all(np.array_equal(x, training.batch_indices(s, n, b, seed=3)) for s, x in enumerate(again))
    if n > b:  # epochs are shuffled differently, and the seed matters
        assert not all(np.array_equal(training.batch_indices(k, n, b, 3), training.batch_indices(k + per_epoch, n, b, 3))
                       for k in range(per_epoch))
        assert not np.array_equal(training.batch_indices(0, n, b, 3), training.batch_indices(0, n, b, 4))


def test_step_draw_takes_distinct_uniform_trials_afresh_every_step():
    n, b, steps = 10, 4, 4000
    draws = [training.batch_indices(s, n, b, seed=5, draw="step") for s in range(steps)]
    assert all(len(d) == b and len(set(d.tolist())) == b for d in draws)           # distinct trials in a batch
    assert all(np.array_equal(d, training.batch_indices(s, n, b, 5, "step")) for s, d in enumerate(draws[:50]))
    # independent of the epoch structure: consecutive steps may repeat a trial (an epoch walk never does
    # within ceil(n / b) steps), and every trial is drawn with probability b / n per step
    per_epoch = -(-n // b)
    assert any(set(draws[s].tolist()) & set(draws[s + 1].tolist()) for s in range(0, 40, per_epoch))
    counts = np.bincount(np.concatenate(draws), minlength=n)
    expected = steps * b / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9                                                              # chi-square(9) at p = 0.001
    # all pairs of trials appear together (a fresh permutation, not a fixed partition of the set)
    together = {tuple(sorted(p)) for d in draws[:400] for p in zip(d[:-1], d[1:])}
    assert len(together) == n * (n - 1) // 2
    assert not np.array_equal(training.batch_indices(0, n, b, 5, "step"), training.batch_indices(0, n, b, 6, "step"))
    with pytest.raises(ValueError, match="draw must be one of"):
        training.batch_indices(0, n, b, 5, "bootstrap")


def test_fixed_set_training_sees_only_the_set_and_resumes_bit_identically(tmp_path):
    proto = training.REFERENCE.replace(dataset_size=6, batch_size=4, period=3, max_steps=6, checkpoint_every=3,
                                       target_loss=None, log_every=3)
    model, task = _tiny(proto)
    seen = []
    data = training.fixed_dataset(task, proto.train_options())
    full = training.train(model, task, 6, tmp_path / "full", **proto.train_options(), **TINY,
                          callback=lambda step, loss, m: seen.append(float(loss)) and False)
    # the same data again: the fixed set depends only on the seed
    again = training.fixed_dataset(task, proto.train_options())
    assert torch.equal(data.inputs, again.inputs)
    assert data.inputs.std() > 0 and not torch.equal(data.inputs[0], task.test_grid(1).inputs[0])  # noisy trials
    # interrupted after 3 steps (mid-epoch: 2 batches per epoch) and resumed: bit-identical
    model2, _ = _tiny(proto)
    training.train(model2, task, 3, tmp_path / "part", **proto.train_options(), **TINY)
    resumed = training.resume(tmp_path / "part", steps=6, progress=False)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # the loss of step 1 is the loss on the batch of the fixed set that the indices name
    model3, _ = _tiny(proto)
    with torch.no_grad():
        b = data[training.batch_indices(0, 6, 4, proto.seed, proto.batch_draw)]
        out, _ = model3(b.inputs, full_state=False)
        assert float(((out - b.targets) ** 2).mean()) == pytest.approx(seen[0], rel=1e-6)


def test_stopping_rule_two_point_mean_on_the_log_grid(tmp_path):
    proto = training.REFERENCE.replace(dataset_size=8, batch_size=8, period=3, target_loss=1e6, log_every=5,
                                       checkpoint_every=100)
    model, task = _tiny(proto)
    r = training.train(model, task, 50, tmp_path, **proto.train_options(), **TINY)
    # the first logged loss (step 5) has no predecessor; step 10 averages steps 5 and 10
    assert r.step == 10 and r.stop_reason == "target_loss"
    model, _ = _tiny(proto)
    never = training.train(model, task, 12, tmp_path / "never", **proto.replace(target_loss=1e-12).train_options(), **TINY)
    assert never.step == 12 and never.stop_reason == "steps"


def test_torch_init_is_nn_rnn_with_scaled_recurrent_weight():
    H, I, g = 256, 3, 2.5
    m = models.make("rnn", I, H, 3, seed=1, init="torch", g=g)
    c = m.cell
    bound = 1 / math.sqrt(H)
    assert c.weight_ih.abs().max() <= bound and c.weight_hh.abs().max() <= g * bound
    assert c.weight_hh.std().item() == pytest.approx(g * bound / math.sqrt(3), rel=0.02)   # uniform, times g
    assert c.bias.abs().max() <= bound and c.bias_hh.abs().max() <= bound                   # b_ih, b_hh
    # torch's nn.RNN with exactly these parameters: the same function and the same parameters
    rnn = nn.RNN(I, H, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(c.weight_ih)
        rnn.weight_hh_l0.copy_(c.weight_hh)
        rnn.bias_ih_l0.copy_(c.bias)
        rnn.bias_hh_l0.copy_(c.bias_hh)
    x = torch.randn(2, 7, I)
    with torch.no_grad():
        ours = m(x)[1]
        theirs = rnn(x)[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert sorted(n for n, _ in c.named_parameters()) == ["bias", "bias_hh", "weight_hh", "weight_ih"]
    # ... and the same gradients, so an optimiser moves each bias vector as it moves nn.RNN's
    out_ours, out_theirs = m(x)[1], rnn(x)[0]
    (out_ours ** 2).sum().backward()
    (out_theirs ** 2).sum().backward()
    for ours_p, theirs_p in ((c.bias, rnn.bias_ih_l0), (c.bias_hh, rnn.bias_hh_l0), (c.weight_hh, rnn.weight_hh_l0)):
        torch.testing.assert_close(ours_p.grad, theirs_p.grad, rtol=1e-4, atol=1e-5)
    # a state dict saved before the second bias existed (one bias = b_ih + b_hh) loads with b_hh = 0
    old = {k: v for k, v in m.state_dict().items() if k != "cell.bias_hh"}
    old["cell.bias"] = c.bias.detach() + c.bias_hh.detach()
    again = models.make("rnn", I, H, 3, seed=2, init="torch", g=g)
    again.load_state_dict(old)
    assert torch.equal(again.cell.bias_hh, torch.zeros(H)) and "cell.bias_hh" not in old
    with torch.no_grad():
        torch.testing.assert_close(again(x)[1], ours, rtol=1e-5, atol=1e-5)
    # g = 1 gives a recurrent spectral radius near 1/sqrt(3) (the normal init gives ~1)
    radius = torch.linalg.eigvals(models.make("rnn", I, H, 3, seed=1, init="torch").cell.weight_hh.detach()).abs().max()
    assert float(radius) == pytest.approx(1 / math.sqrt(3), rel=0.1)
    with pytest.raises(ValueError, match="init must be one of"):
        models.make("rnn", I, 8, 3, init="xavier")


def test_reference_protocol_values_and_validation(tmp_path):
    ref = training.REFERENCE
    assert (ref.dataset_size, ref.batch_size, ref.batch_draw, ref.optimizer, ref.lr, ref.clip_grad_norm,
            ref.target_loss) == (5000, 200, "step", "adam", 1e-3, 1e-4, 1e-3)
    assert ref.task().n_steps == 90 and ref.init == "torch" and ref.alpha == 1.0
    opts = ref.train_options()
    assert opts["noise"] is False and opts["dataset_size"] == 5000 and opts["log_every"] == 20
    assert set(opts) <= set(training.DEFAULTS)
    assert ref.model_options(0.5)["g"] == 0.5 and ref.model_options()["init"] == "torch"
    with pytest.raises(ValueError, match="batch_size=300 exceeds dataset_size=200"):
        ref.replace(dataset_size=200, batch_size=300)
    with pytest.raises(ValueError, match="optimizer"):
        ref.replace(optimizer="lbfgs")
    with pytest.raises(ValueError, match="batch_draw"):
        ref.replace(batch_draw="replace")
    with pytest.raises(ValueError, match="batch_draw=.x.: expected one of .epoch., .step."):
        training.train(*_tiny(ref.replace(period=3)), 2, tmp_path, dataset_size=8, batch_draw="x", **TINY)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        ref.replace(clip_grad_norm=0)
    with pytest.raises(ValueError, match="init"):
        ref.replace(init="he")
    with pytest.raises(ValueError, match="alpha"):
        ref.replace(alpha=1.5)
    with pytest.raises(TypeError, match="no field"):
        ref.replace(learning_rate=0.1)
    with pytest.raises(ValueError, match="g must be"):
        ref.model_options(-1.0)
    with pytest.raises(ValueError, match="dataset_size"):
        training.train(*_tiny(ref.replace(period=3)), 2, tmp_path, dataset_size=0, **TINY)
    with pytest.raises(ValueError, match="exceeds dataset_size"):
        training.train(*_tiny(ref.replace(period=3)), 2, tmp_path, dataset_size=4, batch_size=8, **TINY)
