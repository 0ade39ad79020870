"""Bad input anywhere in the public API raises a NeurokpflowError (the root of neurokpflow.errors).

Each case calls a public function with one malformed input (wrong type, NaN, empty, wrong dims,
unknown name, out-of-range value); the error must belong to the package's hierarchy, also be the
matching builtin family, and carry a one-line message.
"""
import importlib
import math

import numpy as np
import pytest
import torch
import xarray as xr

import neurokpflow
from neurokpflow import analysis, compare, data, errors, kpflow, models, tasks, training


def _activity(n_trials=6, n_times=5, n_units=4, seed=0):
    rng = np.random.default_rng(seed)
    return xr.DataArray(rng.normal(size=(n_trials, n_times, n_units)), dims=("trial", "time", "unit"),
                        coords={"condition": ("trial", np.arange(n_trials) % 3), "time": np.arange(n_times) * 0.1})


def _model():
    return models.make("gru", 3, 8, 3, seed=0)


def _nan_activity():
    a = _activity()
    return a.where(a.unit != 0)  # one unit NaN everywhere (a single NaN trial is a ragged trial, and allowed)


CASES = {
    # tasks
    "unknown task": lambda: tasks.make("no_such_task"),
    "negative dt": lambda: tasks.make("memory_pro", dt=-0.1),
    "string seed": lambda: tasks.make("memory_pro").sample(4, seed="zero"),
    # models
    "unknown model kind": lambda: models.make("transformer", 3, 8, 3),
    "bad dtype": lambda: models.make("gru", 3, 8, 3, dtype="int8"),
    # training
    "bad optimizer": lambda: training.TrainConfig(optimizer="lbfgs"),
    "negative lr": lambda: training.TrainConfig(lr=-1.0),
    "unknown training option": lambda: training.train(_model(), tasks.make("memory_pro"), 1, "/tmp/x", lr_decay=0.5),
    "zero steps": lambda: training.train(_model(), tasks.make("memory_pro"), 0, "/tmp/x"),
    # data
    "NaN bin size": lambda: data.TrialGrid(bin_size=math.nan),
    "reversed window": lambda: data.TrialGrid(window=(1.0, 0.0)),
    "missing NWB file": lambda: data.read_nwb("/no/such/file.nwb"),
    "smooth along a missing dim": lambda: data.smooth(_activity(), 0.1, dim="frequency"),
    "negative smoothing": lambda: data.smooth(_activity(), -1.0),
    "unknown dataset": lambda: data.load_dataset("no_such_dataset"),
    # compare
    "unknown measure": lambda: compare.compare(_activity(), _activity(seed=1), measures=["no_such_measure"], stats=()),
    "NaN activity": lambda: compare.cka(_nan_activity(), _activity(seed=1)),
    "no shared condition": lambda: compare.cka(_activity(), _activity(seed=1).assign_coords(condition=("trial", np.arange(6) + 10))),
    "wrong dims": lambda: compare.cka(xr.DataArray(np.zeros((3, 4)), dims=("a", "b")), _activity()),
    "constant activity": lambda: compare.cka(_activity() * 0, _activity(seed=1)),
    "bad confidence level": lambda: compare.StatsOptions(ci=1.5),
    "no ridge penalties": lambda: compare.Predictivity(alphas=()),
    "non-finite ridge fit": lambda: importlib.import_module("neurokpflow.compare.predictivity").ridge_fit(
        torch.ones(6, 2), torch.full((6, 1), float("nan")), (1.0,)),
    "bad resolution": lambda: compare.AlignOptions(resolution="per_trial"),
    "unknown compare keyword": lambda: compare.compare(_activity(), _activity(seed=1), stats=(), n_bootstraps=10),
    # kpflow
    "eigsh k too large": lambda: kpflow.eigsh(kpflow.DenseOperator(torch.eye(4, dtype=torch.float64)), 4),
    "eigsh non-int k": lambda: kpflow.eigsh(kpflow.DenseOperator(torch.eye(4, dtype=torch.float64)), 1.5),
    "not an operator": lambda: kpflow.trace(np.eye(3), budget=4),
    "unknown rank definition": lambda: kpflow.effective_rank(torch.ones(5), definition="ER9"),
    "bad seed": lambda: kpflow.trace(kpflow.DenseOperator(torch.eye(40, dtype=torch.float64)), budget=4, method="hutchinson",
                                     seed=-3),
    # analysis
    "bad collapse reduction": lambda: analysis.CollapseOptions(reduction="max"),
    "bad collapse budget": lambda: analysis.CollapseOptions(budget=0),
    "unknown collapse option": lambda: analysis.CollapseOptions.resolve(None, {"n_mode": 3}, "collapse"),
    # results
    "missing result": lambda: neurokpflow.open_result("/no/such/result.nc"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_the_packages_error(case):
    with pytest.raises(errors.NeurokpflowError) as info:
        CASES[case]()
    message = str(info.value)
    assert message and "\n" not in message.strip(), f"{case}: {message!r}"
    family = (ValueError, TypeError, LookupError, OSError, RuntimeError, ImportError)
    assert isinstance(info.value, family), f"{case}: {type(info.value).__mro__}"


def test_every_error_family_is_also_its_builtin():
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.InputTypeError, TypeError)
    assert issubclass(errors.UnknownNameError, KeyError)
    assert issubclass(errors.AlignmentError, LookupError) and issubclass(errors.AlignmentError, ValueError)
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.NWBLoadError, errors.NWBError) and not issubclass(errors.NWBWriteError, errors.NWBLoadError)
    assert issubclass(errors.ConvergenceError, RuntimeError)
    assert issubclass(errors.MissingExtraError, ImportError)
    # the subpackages re-export the one class, not copies
    assert compare.AlignmentError is data.AlignmentError is errors.AlignmentError
    assert compare.DegenerateInputError is errors.DegenerateInputError
    assert training.CheckpointError is errors.CheckpointError and kpflow.ConvergenceError is errors.ConvergenceError


def test_an_unknown_name_prints_without_keyerror_quotes():
    with pytest.raises(KeyError) as info:
        data.load_dataset("no_such_dataset")
    assert not str(info.value).startswith("'")
