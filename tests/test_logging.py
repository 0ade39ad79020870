"""Module loggers under ``neurokpflow``, silent by default, shown by the command line's -v / -q."""
import io
import logging

import neurokpflow
from neurokpflow import _logging, data, training, tasks, models


def test_the_library_logs_through_module_loggers_and_configures_nothing(tmp_path, caplog):
    root = logging.getLogger("neurokpflow")
    assert any(isinstance(h, logging.NullHandler) for h in root.handlers)
    with caplog.at_level(logging.INFO, logger="neurokpflow"):
        path = data.synthetic_nwb(tmp_path / "s.nwb", n_units=3, n_trials=4, seed=0)
        data.read_nwb(path, bin_size=0.05)
        task = tasks.make("memory_pro", dt=0.1)
        training.train(models.make("gru", task.n_inputs, 8, task.n_outputs, seed=0), task, 2, tmp_path / "run",
                       checkpoint_every=2, progress=False)
    names = {r.name for r in caplog.records}
    assert {"neurokpflow.data.reading", "neurokpflow.training.trainer"} <= names
    assert any("training stopped at step 2" in r.getMessage() for r in caplog.records)


def test_cli_verbosity_sets_the_package_level_and_one_handler():
    stream = io.StringIO()
    try:
        _logging.configure(1, stream)
        _logging.configure(2, stream)  # a second call replaces the first handler
        root = logging.getLogger("neurokpflow")
        assert root.level == logging.DEBUG
        assert sum(getattr(h, "_neurokpflow_cli", False) for h in root.handlers) == 1
        logging.getLogger("neurokpflow.data.reading").debug("hello")
        assert "neurokpflow: DEBUG neurokpflow.data.reading: hello" in stream.getvalue()
        _logging.configure(-1, stream)
        assert root.level == logging.ERROR
    finally:
        for h in list(logging.getLogger("neurokpflow").handlers):
            if getattr(h, "_neurokpflow_cli", False):
                logging.getLogger("neurokpflow").removeHandler(h)
        logging.getLogger("neurokpflow").setLevel(logging.NOTSET)
    assert neurokpflow.__version__
