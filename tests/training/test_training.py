import numpy as np
import pytest
import torch
import xarray as xr

from neurokpflow import models, tasks, training
from neurokpflow.training import CheckpointError, CheckpointMismatchError

SMALL = dict(batch_size=8, checkpoint_every=4, progress=False, device="cpu", eval_grid={"n_angles": 4})


def _setup(kind="gru", noise_std=0.05):
    task = tasks.make("memory_pro", dt=0.1)
    model = models.make(kind, task.n_inputs, 12, task.n_outputs, seed=0, noise_std=noise_std)
    return model, task


def test_masked_mse_conventions_closed_form():
    out = torch.tensor([[[1.0, 2.0]]])
    target = torch.tensor([[[0.0, 0.0]]])
    mask = torch.tensor([[[2.0, 5.0]]])
    # pre-square: mean(((ŷ-y)·m)²) = (4 + 100)/2; post-square: mean((ŷ-y)²·m) = (2 + 20)/2
    assert training.masked_mse(out, target, mask, "pre_square").item() == pytest.approx(52.0)
    assert training.masked_mse(out, target, mask, "post_square").item() == pytest.approx(11.0)
    with pytest.raises(ValueError, match="mask_mode"):
        training.masked_mse(out, target, mask, "squared")


def test_resume_after_interruption_is_bit_identical(tmp_path):
    model, task = _setup()
    full = training.train(model, task, steps=12, out_dir=tmp_path / "full", **SMALL)

    def crash(step, loss, model):
        if step == 7:
            raise KeyboardInterrupt

    interrupted, _ = _setup()
    with pytest.raises(KeyboardInterrupt):
        training.train(interrupted, task, steps=12, out_dir=tmp_path / "cut", callback=crash, **SMALL)
    assert [p.name for p in training.list_checkpoints(tmp_path / "cut")] == ["step_00000004.pt"]
    # the device is a runtime option (not saved; "auto" picks CUDA where present): bit-identity
    # holds on the device the run started on
    resumed = training.resume(tmp_path / "cut", progress=False, device="cpu")
    assert resumed.step == 12
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    np.testing.assert_array_equal(full.log.loss.values, resumed.log.loss.values)
    np.testing.assert_array_equal(full.log.accuracy.values, resumed.log.accuracy.values)
    assert full.log.sizes["step"] == 12
    # the two runs really trained (parameters moved)
    assert not torch.equal(full.model.cell.weight_hh, _setup()[0].cell.weight_hh)


def test_resume_extends_and_log_file(tmp_path):
    model, task = _setup("rnn")
    training.train(model, task, steps=4, out_dir=tmp_path, **SMALL)
    result = training.resume(tmp_path, steps=8, progress=False)
    assert result.step == 8 and [int(p.stem[5:]) for p in training.list_checkpoints(tmp_path)] == [4, 8]
    with xr.open_dataset(tmp_path / training.LOG_FILE, engine="h5netcdf") as log:
        assert log.sizes["step"] == 8 and list(log.eval_step.values) == [4, 8]
        assert log.attrs["mask_mode"] == "pre_square" and list(log.task.values) == ["memory_pro"]
    assert training.resume(tmp_path, progress=False).step == 8  # already complete: nothing to do


def test_resume_never_starts_from_scratch_and_train_never_overwrites(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        training.resume(tmp_path / "empty")
    model, task = _setup()
    training.train(model, task, steps=4, out_dir=tmp_path, **SMALL)
    with pytest.raises(FileExistsError, match="resume"):
        training.train(model, task, steps=4, out_dir=tmp_path, **SMALL)


def test_corrupted_and_partial_checkpoints(tmp_path):
    model, task = _setup()
    training.train(model, task, steps=8, out_dir=tmp_path, **SMALL)
    last = training.list_checkpoints(tmp_path)[-1]
    (last.parent / f".{last.name}.tmp-123").write_bytes(b"partial")  # a crash mid-write leaves only this
    assert training.list_checkpoints(tmp_path)[-1] == last
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupted or partially written"):
        training.load_checkpoint(last)
    with pytest.raises(CheckpointError, match="corrupted"):
        training.resume(tmp_path)
    other = tmp_path / "checkpoints" / "step_00000099.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a neurokpflow"):
        training.load_checkpoint(other)


def test_load_checkpoint_round_trip_and_architecture_mismatch(tmp_path):
    model, task = _setup("lstm")
    result = training.train(model, task, steps=4, out_dir=tmp_path, **SMALL)
    loaded, info = training.load_checkpoint(training.list_checkpoints(tmp_path)[-1])
    assert info["step"] == 4 and info["model_config"] == model.config
    for a, b in zip(loaded.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)
    assert tasks.from_spec(info["task_spec"]) == task
    wrong = models.make("lstm", task.n_inputs, 20, task.n_outputs)
    with pytest.raises(CheckpointMismatchError, match="n_hidden: checkpoint 12 vs model 20"):
        training.load_checkpoint(info["path"], model=wrong)
    same = models.make("lstm", task.n_inputs, 12, task.n_outputs, seed=5, noise_std=0.05)
    training.load_checkpoint(info["path"], model=same)
    assert torch.equal(same.cell.weight_hh, loaded.cell.weight_hh)


def test_early_stopping(tmp_path):
    model, task = _setup()
    by_accuracy = training.train(model, task, steps=50, out_dir=tmp_path / "acc", target_accuracy=0.0, **SMALL)
    assert by_accuracy.step == 4 and by_accuracy.stop_reason == "target_accuracy"
    assert by_accuracy.log.attrs["stop_reason"] == "target_accuracy"
    model, _ = _setup()
    by_loss = training.train(model, task, steps=50, out_dir=tmp_path / "loss", target_loss=1e9, log_every=2, **SMALL)
    assert by_loss.step == 4 and by_loss.stop_reason == "target_loss"
    assert training.resume(tmp_path / "loss", progress=False).step == 4


def test_sgd_with_zero_lr_leaves_parameters_unchanged(tmp_path):
    model, task = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training.train(model, task, steps=3, out_dir=tmp_path, optimizer="sgd", lr=0.0, clip_grad_value=1.0,
                   clip_grad_norm=1.0, **SMALL)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_training_arguments(tmp_path):
    model, task = _setup()
    with pytest.raises(ValueError, match="5 inputs and 3 outputs"):
        training.train(models.make("gru", 4, 8, 3), task, steps=2, out_dir=tmp_path)
    with pytest.raises(TypeError, match="unknown training option"):
        training.train(model, task, steps=2, out_dir=tmp_path, learning_rate=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        training.train(model, task, steps=2, out_dir=tmp_path, optimizer="lbfgs")
    with pytest.raises(TypeError, match="runtime options"):
        training.resume(tmp_path, lr=0.1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA absent")
def test_training_runs_on_cuda_and_resumes_on_cpu(tmp_path):
    model, task = _setup()
    options = {**SMALL, "device": "auto"}
    result = training.train(model, task, steps=4, out_dir=tmp_path, **options)
    assert result.model.cell.weight_hh.is_cuda
    loaded, _ = training.load_checkpoint(training.list_checkpoints(tmp_path)[-1])
    assert not loaded.cell.weight_hh.is_cuda
    assert training.resume(tmp_path, steps=8, device="cpu", progress=False).step == 8
