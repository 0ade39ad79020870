"""Regenerate the driscoll24 golden arrays from the reference generator (see README.md next to this file).

    python make_goldens.py /path/to/flexible_multitask/stepnet/task.py  [output folder, default: this folder]

The reference file is imported from the given path (it is not part of this repository).  It imports
TensorFlow, python-dotenv and reads ``$HOME_DIR`` at import time for its training code only; this
script puts empty stand-ins for ``tensorflow`` / ``tensorflow.compat.v1`` (and ``dotenv`` when it is
not installed) into ``sys.modules`` and sets ``HOME_DIR`` before the import, and restores the
``np.load`` that the reference replaces on import.  The task code runs unchanged.  Recording the
per-trial parameters reuses ``load`` / ``params_of`` of ``../yang19/make_goldens.py`` (the two
generators share ``Trial.add`` and the rule ids).
"""
import os
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "yang19"))
from make_goldens import load, params_of  # noqa: E402  (the yang19 golden script)

RULES = ["fdgo", "reactgo", "delaygo", "fdanti", "reactanti", "delayanti", "delaydm1", "delaydm2",
         "contextdelaydm1", "contextdelaydm2", "multidelaydm", "dmsgo", "dmsnogo", "dmcgo", "dmcnogo"]
#: (case name, mode, dt in ms, batch size, seed); test-grid cases keep 8 evenly spread trials
CASES = [(f"random{s}", "random", 100, 2, s) for s in range(4)] + [("random_dt20", "random", 20, 2, 7),
                                                                    ("test", "test", 100, None, 0)]


def stand_ins():
    """Empty modules for what the reference imports for its training code only."""
    tf = types.ModuleType("tensorflow")
    compat = types.ModuleType("tensorflow.compat")
    v1 = types.ModuleType("tensorflow.compat.v1")
    v1.disable_v2_behavior = lambda: None
    tf.compat, compat.v1 = compat, v1
    sys.modules.update({"tensorflow": tf, "tensorflow.compat": compat, "tensorflow.compat.v1": v1})
    try:
        import dotenv  # noqa: F401
    except ImportError:
        dotenv = types.ModuleType("dotenv")
        dotenv.load_dotenv = lambda *a, **k: None
        sys.modules["dotenv"] = dotenv
    os.environ.setdefault("HOME_DIR", "/tmp")


def main(ref_path, out):
    stand_ins()
    np_load = np.load
    mod = load(ref_path)
    np.load = np_load
    out.mkdir(parents=True, exist_ok=True)
    for rule in RULES:
        arrays = {}
        for case, mode, dt, batch_size, seed in CASES:
            np.random.seed(seed)  # coherences and the multisensory split draw from the global numpy generator
            hp = {"dt": dt, "alpha": dt / 100, "sigma_x": 0.1, "n_eachring": 2, "num_ring": 2, "n_rule": 15,
                  "rule_start": 5, "n_input": 20, "n_output": 3, "loss_type": "lsq", "ruleset": "all",
                  "rng": np.random.RandomState(seed)}
            kwargs = {"batch_size": batch_size} if mode == "random" else {}
            trial = mod.generate_trials(rule, hp, mode, noise_on=False, **kwargs)
            B, T = trial.batch_size, trial.tdim
            keep = np.arange(B) if mode == "random" else np.linspace(0, B - 1, 8).round().astype(int)
            p = params_of(rule, trial, dt)
            arrays[f"{case}.dt"] = np.array(dt / 1000)
            arrays[f"{case}.index"] = keep
            arrays[f"{case}.x"] = trial.x.transpose(1, 0, 2)[keep]
            arrays[f"{case}.y"] = trial.y.transpose(1, 0, 2)[keep]
            arrays[f"{case}.c_mask"] = trial.c_mask.reshape(T, B, -1).transpose(1, 0, 2)[keep]
            arrays[f"{case}.y_loc"] = trial.y_loc.T[keep]
            arrays[f"{case}.param_names"] = np.array(sorted(p))
            arrays[f"{case}.params"] = np.stack([p[k][keep] for k in sorted(p)], axis=1)
        np.savez_compressed(out / f"{rule}.npz", **arrays)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent)
