"""Rank K and P of checkpoints saved by the KPFlow reference code, with this package's operators.

The reference's training script saves ``checkpoint_<iteration>.pt`` files holding ``{"model": state_dict}``
of a one-layer torch ``nn.RNN`` (keys ``rnn.weight_ih_l0``, ``rnn.weight_hh_l0``, ``rnn.bias_ih_l0``,
``rnn.bias_hh_l0``) with an ``nn.Linear`` readout (``Wout.weight``, ``Wout.bias``).  This loads each into the
package's tanh RNN (``init="torch"``, which has torch's two bias vectors b_ih and b_hh), evaluates the
Memory-Pro test trials and prints the effective ranks of K and P under the package's ER1, the reference
figure's definition and the one-factor changes between them, so that the package's numbers on the
reference's own trained networks can be set beside the reference's.

Usage:
    python benchmarks/rank_torch_checkpoints.py CHECKPOINT_DIR [--every 5] [--trials 4] [--out ranks.nc]
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch

from neurokpflow import models, training
from neurokpflow.analysis import rank_conventions as rc


def load_reference_rnn(path, task):
    """A package RNN with the parameters of a reference ``nn.RNN`` checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    sd = state["model"] if "model" in state else state
    H = sd["rnn.weight_hh_l0"].shape[0]
    model = models.make("rnn", task.n_inputs, H, task.n_outputs, **training.REFERENCE.model_options(1.0))
    with torch.no_grad():
        model.cell.weight_ih.copy_(sd["rnn.weight_ih_l0"])
        model.cell.weight_hh.copy_(sd["rnn.weight_hh_l0"])
        model.cell.bias.copy_(sd["rnn.bias_ih_l0"])
        model.cell.bias_hh.copy_(sd["rnn.bias_hh_l0"])
        model.readout.weight.copy_(sd["Wout.weight"])
        model.readout.bias.copy_(sd["Wout.bias"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", help="folder of checkpoint_<iteration>.pt files")
    parser.add_argument("--every", type=int, default=1, help="use every n-th checkpoint (sorted by iteration)")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--period", type=int, default=30)
    parser.add_argument("--out", default=None, help="netCDF file for the ranks")
    parser.add_argument("--json", default=None,
                        help="add the curves to this JSON file (key package_ranks_on_reference_checkpoints), "
                             "the format reproduce_paper.py --reference-numbers reads")
    args = parser.parse_args()
    torch.set_num_threads(1)
    files = sorted(Path(args.checkpoints).glob("checkpoint_*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not files:
        raise SystemExit(f"no checkpoint_*.pt files in {args.checkpoints}")
    files = files[::args.every] if files[-1] in files[::args.every] else files[::args.every] + [files[-1]]
    task = training.REFERENCE.replace(period=args.period).task()
    cks = [(int(re.findall(r"\d+", f.stem)[-1]), load_reference_rnn(f, task)) for f in files]
    conv = ([rc.PACKAGE_RANK, rc.PAPER_FIGURE_RANK] + rc.one_factor_variants(rc.PAPER_FIGURE_RANK, rc.PACKAGE_RANK))
    ds = rc.convention_ranks(cks, task.test_grid(n_angles=args.trials), conv, task=task)
    np.set_printoptions(precision=2, suppress=True, linewidth=200)
    print("iteration", ds.step.values)
    print("loss     ", ds.loss.values.round(4))
    print("accuracy ", ds.accuracy.values)
    for c in ds.convention.values:
        print(f"{c}:\n  P {ds.effective_rank.sel(convention=c, operator='P').values}"
              f"\n  K {ds.effective_rank.sel(convention=c, operator='K').values}")
    if args.out:
        ds.to_netcdf(args.out)
    if args.json:
        import json
        path = Path(args.json)
        data = json.loads(path.read_text()) if path.exists() else {}
        data["package_ranks_on_reference_checkpoints"] = {
            "steps": ds.step.values.tolist(), "loss": ds.loss.values.tolist(),
            "conventions": {str(c): {op: ds.effective_rank.sel(convention=c, operator=op).values.tolist()
                                     for op in ("P", "K")} for c in ds.convention.values}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)


if __name__ == "__main__":
    main()
