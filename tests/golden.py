"""Golden parity with a reference task generator (arrays made by ``tests/data/goldens/<suite>/make_goldens.py``)."""
from pathlib import Path

import numpy as np

from neurokpflow import tasks

DATA = Path(__file__).parent / "data" / "goldens"


def golden_cases(suite, rule):
    """``(case, dt, get, params)`` for every stored case of one task of ``suite``."""
    data = np.load(DATA / suite / f"{rule}.npz")
    for case in sorted({k.split(".")[0] for k in data.files}):
        get = lambda k, case=case: data[f"{case}.{k}"]
        params = dict(zip(get("param_names").tolist(), get("params").T))
        yield case, float(get("dt")), get, params


def assert_matches_reference(suite, rule):
    """Inputs (with the suite's rule units), targets, cost mask and response direction of
    ``task.trials(params)`` equal the reference's to 1e-6 on every stored case, the stored test-grid
    trials are those of ``task.test_grid()`` at the same indices; returns the number of trials."""
    rules = [name.split(".", 1)[1] for name in tasks.mix(tasks.suite(suite)).task_names]
    n_sets = 0
    for case, dt, get, params in golden_cases(suite, rule):
        task = tasks.make(f"{suite}.{rule}", dt=dt)
        batch = task.trials(params)
        full = tasks.mix(tasks.suite(suite, dt=dt))._with_rule(rules.index(rule), batch)
        x, y, m, yloc = get("x"), get("y"), get("c_mask"), get("y_loc")
        assert full.inputs.shape == x.shape, case
        np.testing.assert_allclose(full.inputs.numpy(), x, atol=1e-6, err_msg=f"{rule} {case} inputs")
        np.testing.assert_allclose(batch.targets.numpy(), y, atol=1e-6, err_msg=f"{rule} {case} targets")
        np.testing.assert_allclose(batch.mask.numpy(), m, atol=1e-6, err_msg=f"{rule} {case} mask")
        last = yloc[:, -1]
        np.testing.assert_allclose(batch.meta["response_angle"], np.where(last < 0, np.nan, last), atol=1e-6)
        assert np.array_equal((batch.epochs == "go1") & (yloc >= 0), yloc >= 0), "the response is due from go on"
        if case == "test":  # the deterministic grid holds the same trials at the same indices
            grid = task.test_grid()[get("index")]
            np.testing.assert_allclose(grid.inputs.numpy(), x[:, :, :task.n_inputs], atol=1e-6)
            np.testing.assert_allclose(grid.targets.numpy(), y, atol=1e-6)
            np.testing.assert_allclose(grid.mask.numpy(), m, atol=1e-6)
        n_sets += len(x)
    return n_sets
