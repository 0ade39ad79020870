"""Regenerate the yang19 golden arrays from the reference generator (see README.md next to this file).

    python make_goldens.py /path/to/gyyang-multitask/task.py  [output folder, default: this folder]

The reference file is imported from the given path (it is not part of this repository).  Its
``Trial.add`` is wrapped to record the arguments of every call, from which the per-trial
parameters are read back in neurokpflow's naming; nothing else of the reference is changed.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np

RULES = ["fdgo", "reactgo", "delaygo", "fdanti", "reactanti", "delayanti", "dm1", "dm2", "contextdm1",
         "contextdm2", "multidm", "delaydm1", "delaydm2", "contextdelaydm1", "contextdelaydm2", "multidelaydm",
         "dmsgo", "dmsnogo", "dmcgo", "dmcnogo"]
FAMILY = {"fdgo": "go", "fdanti": "go", "reactgo": "react", "reactanti": "react", "delaygo": "delaygo",
          "delayanti": "delaygo", "dm1": "dm", "dm2": "dm", "contextdm1": "ctxdm", "contextdm2": "ctxdm",
          "multidm": "ctxdm", "delaydm1": "delaydm", "delaydm2": "delaydm", "contextdelaydm1": "ctxdelaydm",
          "contextdelaydm2": "ctxdelaydm", "multidelaydm": "ctxdelaydm", "dmsgo": "dms", "dmsnogo": "dms",
          "dmcgo": "dms", "dmcnogo": "dms"}
#: (case name, mode, dt in ms, batch size, seed); test-grid cases keep 8 evenly spread trials
CASES = [(f"random{s}", "random", 100, 2, s) for s in range(4)] + [("random_dt20", "random", 20, 1, 7),
                                                                    ("test", "test", 100, None, 0)]


def load(path):
    spec = importlib.util.spec_from_file_location("yang_task", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    original_add = mod.Trial.add

    def add(self, loc_type, locs=None, ons=None, offs=None, strengths=1, mods=None):
        n = self.batch_size
        exp = lambda v: list(v) if hasattr(v, "__iter__") else [v] * n
        rec = dict(loc_type=loc_type, locs=None if locs is None else np.asarray(locs, dtype=float),
                   ons=[0 if v is None else int(v) for v in exp(ons)],
                   offs=[self.tdim if v is None else int(v) for v in exp(offs)],
                   strengths=np.asarray(exp(strengths), dtype=float), mods=exp(mods))
        self.__dict__.setdefault("calls", []).append(rec)
        return original_add(self, loc_type, locs, ons, offs, strengths, mods)

    mod.Trial.add = add
    return mod


def params_of(rule, trial, dt):
    stims = [c for c in trial.calls if c["loc_type"] == "stim"]
    B = trial.batch_size
    sec = lambda steps: np.broadcast_to(np.asarray(steps, dtype=float), (B,)) * dt / 1000
    go = trial.epochs["go1"][0]
    fam = FAMILY[rule]
    p = {"end": sec(trial.tdim)}
    s1 = stims[0]
    p["stim1_direction"] = s1["locs"]
    if fam in ("go", "react", "delaygo"):
        p["stim1_modality"] = np.asarray(s1["mods"], dtype=float)
        p["go"] = sec(go)
        if fam != "react":
            p["stim1_on"] = sec(s1["ons"])
        if fam == "delaygo":
            p["stim1_off"] = sec(s1["offs"])
    elif fam in ("dm", "delaydm", "ctxdm", "ctxdelaydm"):
        p["stim2_direction"] = stims[1]["locs"]
        p["go"] = sec(go)
        p["stim1_on"] = sec(s1["ons"])
        if fam in ("dm", "delaydm"):
            p["stim1_strength"], p["stim2_strength"] = s1["strengths"], stims[1]["strengths"]
        else:  # calls: stim1 mod1, stim2 mod1, stim1 mod2, stim2 mod2
            for (i, m), c in zip([(1, 1), (2, 1), (1, 2), (2, 2)], stims):
                p[f"stim{i}_strength_mod{m}"] = c["strengths"]
        if "delay" in fam:
            p["stim1_off"] = sec(s1["offs"])
            p["stim2_on"], p["stim2_off"] = sec(stims[1]["ons"]), sec(stims[1]["offs"])
    else:
        p["stim2_direction"] = stims[1]["locs"]
        p["stim1_modality"] = np.asarray(s1["mods"], dtype=float)
        p["stim2_modality"] = np.asarray(stims[1]["mods"], dtype=float)
        p["stim1_on"], p["stim1_off"] = sec(s1["ons"]), sec(s1["offs"])
        p["stim2_on"] = sec(stims[1]["ons"])
    return {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}


def write_goldens(mod, out, rules, cases, shape):
    """Run the reference module ``mod`` for every rule and case and write ``<rule>.npz`` files to ``out``;
    ``shape``: the hp entries that set the input/output layout and the input noise level."""
    out.mkdir(parents=True, exist_ok=True)
    for rule in rules:
        arrays = {}
        for case, mode, dt, batch_size, seed in cases:
            np.random.seed(seed)  # some generators draw from the global numpy generator
            hp = {"dt": dt, "alpha": dt / 100, **shape, "num_ring": 2, "loss_type": "lsq", "ruleset": "all",
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


def main(ref_path, out):
    # multidm / multidelaydm draw from the global numpy generator (seeded per case)
    write_goldens(load(ref_path), out, RULES, CASES, {"sigma_x": 0.01, "n_eachring": 32, "n_rule": 20,
                                                      "rule_start": 65, "n_input": 85, "n_output": 33})


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent)
