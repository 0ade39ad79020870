"""Regenerate the driscoll24 golden arrays from the reference generator (see README.md next to this file).

    python make_goldens.py /path/to/flexible_multitask/stepnet/task.py  [output folder, default: this folder]

The reference file is imported from the given path (it is not part of this repository).  It imports
TensorFlow, python-dotenv and reads ``$HOME_DIR`` at import time for its training code only; this
script puts empty stand-ins for ``tensorflow`` / ``tensorflow.compat.v1`` (and ``dotenv`` when it is
not installed) into ``sys.modules`` and sets ``HOME_DIR`` before the import, and restores the
``np.load`` that the reference replaces on import.  The task code runs unchanged.  Recording the
per-trial parameters and writing the arrays reuse ``load`` / ``write_goldens`` of
``../yang19/make_goldens.py`` (the two generators share ``Trial.add``, ``generate_trials`` and the
rule ids).
"""
import os
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "yang19"))
from make_goldens import load, write_goldens  # noqa: E402  (the yang19 golden script)

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
    # coherences and the multisensory split draw from the global numpy generator (seeded per case)
    write_goldens(mod, out, RULES, CASES, {"sigma_x": 0.1, "n_eachring": 2, "n_rule": 15, "rule_start": 5,
                                           "n_input": 20, "n_output": 3})


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent)
