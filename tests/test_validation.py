"""The validation module: one message format, declarative rules, options objects, one seed convention, dtypes."""
import json
import numbers

import numpy as np
import pytest
import torch

from neurokpflow import _validation as v
from neurokpflow import analysis, compare, data, models, tasks, training
from neurokpflow.errors import InputError, InputTypeError


def test_one_message_format_and_the_error_follows_the_value():
    rules = {"lr": v.Rule(v.Interval(low=0, closed="neither"), "e.g. lr=1e-3"),
             "mode": v.Rule(v.Options("a", "b")), "flag": v.Rule(v.Flag())}
    with pytest.raises(InputError) as info:
        v.check_params(rules, lr=-1.0)
    assert str(info.value) == "lr=-1.0: expected a finite number in (0, inf); e.g. lr=1e-3"
    assert type(info.value) is InputError                      # a bad value of the right type
    with pytest.raises(InputTypeError, match=r"lr='x': expected"):
        v.check_params(rules, lr="x")                          # a value of a type no constraint takes
    with pytest.raises(InputError, match=r"mode='c': expected one of 'a', 'b'"):
        v.check_params(rules, mode="c")
    with pytest.raises(InputTypeError, match="expected True or False"):
        v.check_params(rules, flag=1)
    v.check_params(rules, lr=0.5, mode="b", flag=False)
    assert not v.Interval(numbers.Integral, 1).accepts(True) and not v.Interval().accepts(float("nan"))
    assert v.Rule((None, v.Interval(numbers.Integral, 1))).accepts(None)


def test_options_objects_are_frozen_validated_once_and_serialisable():
    opts = analysis.CollapseOptions(budget=40, dtype="float32")
    assert opts.dtype is torch.float32 and opts.keep == ("time",)
    with pytest.raises(Exception):
        opts.budget = 50                                        # frozen
    as_dict = json.loads(opts.to_json())
    assert as_dict["budget"] == 40 and as_dict["dtype"] == "float32"
    assert analysis.CollapseOptions.resolve(opts, {"budget": 60}, "collapse").budget == 60
    assert analysis.CollapseOptions.resolve({"budget": 70}, None, "collapse").budget == 70
    with pytest.raises(TypeError, match="unexpected keyword"):
        analysis.CollapseOptions.resolve(None, {"budgte": 1}, "collapse")
    for bad in (dict(budget=1), dict(reduction="max"), dict(threshold=2.0), dict(seed=None)):
        with pytest.raises(ValueError):
            analysis.CollapseOptions(**bad)
    assert training.TrainConfig(lr=0.01).to_dict()["lr"] == 0.01
    with pytest.raises(ValueError, match="exceeds dataset_size"):
        training.TrainConfig(batch_size=64, dataset_size=10)
    assert data.TrialGrid(window=[-1, 1]).window == (-1.0, 1.0)
    a, s = v.split_fields({"condition": "target", "n_boot": 9}, "compare", compare.AlignOptions, compare.StatsOptions)
    assert a == {"condition": "target"} and s == {"n_boot": 9}


def test_none_means_fresh_entropy_everywhere_and_an_int_reproduces():
    torch.manual_seed(0)
    first = models.make("gru", 2, 4, 1, seed=None).cell.weight_hh.detach().clone()
    torch.manual_seed(0)                                        # the global torch seed does not fix a None seed
    second = models.make("gru", 2, 4, 1, seed=None).cell.weight_hh.detach()
    assert not torch.equal(first, second)
    assert torch.equal(models.make("gru", 2, 4, 1, seed=3).cell.weight_hh, models.make("gru", 2, 4, 1, seed=3).cell.weight_hh)
    torch.manual_seed(0)
    g1 = v.torch_generator(None)
    torch.manual_seed(0)
    assert not torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=v.torch_generator(None)))
    assert v.numpy_rng(None).integers(2**62) != v.numpy_rng(None).integers(2**62)
    task = tasks.make("memory_pro")
    assert not torch.equal(task.sample(4, seed=None).inputs, task.sample(4, seed=None).inputs)
    assert torch.equal(task.sample(4, seed=7).inputs, task.sample(4, seed=7).inputs)
    rng = np.random.default_rng(1)
    assert v.numpy_rng(rng) is rng
    with pytest.raises(ValueError):
        v.numpy_rng(-1)


def test_one_dtype_resolver():
    assert v.resolve_dtype("float64") is torch.float64 and v.resolve_dtype(torch.float32) is torch.float32
    assert v.dtype_name(torch.float64) == "float64"
    with pytest.raises(ValueError, match="dtype='int8'"):
        v.resolve_dtype("int8")
    assert models.make("gru", 2, 4, 1, dtype=torch.float64).config["dtype"] == "float64"
