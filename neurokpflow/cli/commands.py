"""The sub-commands: argument definitions and the thin functions that run them."""
from __future__ import annotations

import argparse
from pathlib import Path

from .console import Console
from .errors import EXIT_MISSING, CLIError

FORMATTER = argparse.RawDescriptionHelpFormatter
#: names of neurokpflow.compare.MEASURES offered on the command line
MEASURES = ("procrustes", "procrustes_euclidean", "shape_metric", "cca", "svcca", "cka", "cka_debiased", "rsa", "dsa",
            "predictivity")
#: statistics of neurokpflow.compare.compare
STATS = ("bootstrap", "permutation", "noise_ceiling", "cross_validated")


def register(sub, common):
    """Add every sub-command to the ``add_subparsers`` object ``sub``."""
    for add in (_add_info, _add_train, _add_analyze, _add_compare, _add_demo, _add_sweep, _add_report):
        add(sub, common)


def _doc(*paragraphs, examples=()):
    """A --help description: paragraphs wrapped to the terminal width, example lines kept as they are."""
    import shutil
    import textwrap

    width = min(100, shutil.get_terminal_size((100, 20)).columns) - 2
    text = "\n\n".join(textwrap.fill(p, width) if not p.startswith("  ") else p for p in paragraphs)
    if examples:
        text += "\n\nexamples:\n" + "\n".join(f"  {e}" for e in examples)
    return text


def _existing_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"no such file: {p}", EXIT_MISSING)
    if p.is_dir():
        raise CLIError(f"{p} is a folder; expected an .nwb file", EXIT_MISSING)
    return p


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


# ----------------------------------------------------------------------------------------- info
def _add_info(sub, common):
    p = sub.add_parser("info", parents=[common], formatter_class=FORMATTER,
                       help="say what an NWB file holds (units, series, trial and interval tables)",
                       description=_doc("List what an NWB file holds, so that you can choose what to load: spike-sorted "
                                        "units, time series with their shapes and rates, and the trial / interval "
                                        "tables with their columns.", examples=["neurokpflow info recording.nwb"]))
    p.add_argument("file", metavar="FILE.nwb", help="the NWB file to describe")
    p.set_defaults(handler=run_info)


def run_info(args):
    path = _existing_file(args.file)
    from ..data import describe_nwb

    description = describe_nwb(path)
    Console(args.quiet).say(str(description))
    return 0


# ---------------------------------------------------------------------------------------- train
def _add_train(sub, common):
    p = sub.add_parser(
        "train", parents=[common], formatter_class=FORMATTER,
        help="train an RNN on one or several cognitive tasks, with checkpoints",
        description=_doc(
            "Train a recurrent network on a task (or a mix of tasks, one rule input per task) and write a run folder: "
            "checkpoints/step_*.pt every --checkpoint-every steps, log.nc (loss and test-grid accuracy) and run.json "
            "(these settings).  The folder is what 'analyze' and 'compare' read.",
            examples=["neurokpflow train --task memory_pro --steps 500 --out runs/mp",
                      "neurokpflow train --task memory_pro memory_anti delay_pro delay_anti --model gru --out runs/mix",
                      "neurokpflow train --out runs/mp --resume --steps 1000     # continue a run",
                      "neurokpflow train --task list                            # the task names"]))
    p.add_argument("--task", nargs="+", metavar="NAME",
                   help="task name(s), e.g. memory_pro; several names train a mix (run 'neurokpflow train --task "
                        "list' to see all names)")
    p.add_argument("--model", default="rnn", help="model kind: rnn (leaky tanh RNN), gru or lstm (default: rnn)")
    p.add_argument("--hidden", type=_positive_int, default=64, help="number of hidden units (default: 64)")
    p.add_argument("--tau", type=_positive_float, default=0.1,
                   help="time constant in seconds of the leaky RNN; its leak is alpha = dt/tau (default: 0.1)")
    p.add_argument("--dt", type=_positive_float, default=None, help="time step in seconds (default: the task's)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="total optimiser steps (default: 1000; with --resume: the run's original total)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="trials per step (default: 64)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=50, help="steps between checkpoints (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial parameters and of the batches (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--out", metavar="DIR", help="run folder to create (or to continue with --resume); required")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (up to --steps if given)")
    p.set_defaults(handler=run_train)


def run_train(args):
    from ..training import RunSpec, resume_run, start_run

    console = Console(args.quiet)
    if args.task == ["list"]:
        from .. import tasks

        console.say("\n".join(tasks.known_tasks()))
        return 0
    if not args.out:
        raise CLIError("train needs --out DIR, the run folder to write (or to continue with --resume)")
    if args.resume:
        result = resume_run(args.out, steps=args.steps, device=args.device, progress=console.progress)
    else:
        if not args.task:
            raise CLIError("train needs --task NAME (or --resume to continue a run)")
        spec = RunSpec(tasks=tuple(args.task), model=args.model, hidden=args.hidden, tau=args.tau, dt=args.dt,
                       steps=args.steps or 1000, batch_size=args.batch_size, lr=args.lr,
                       checkpoint_every=args.checkpoint_every, seed=args.seed)
        result = start_run(spec, args.out, device=args.device, progress=console.progress)
    accuracy = result.log["accuracy"].isel(eval_step=-1)
    summary = ", ".join(f"{t}: {100 * float(a):.1f} %" for t, a in zip(accuracy["task"].values, accuracy.values))
    console.say(f"trained to step {result.step} ({result.stop_reason}); test-grid accuracy {summary}; "
                f"run folder {result.out_dir}")
    return 0


# -------------------------------------------------------------------------------------- analyze
def _add_analyze(sub, common):
    p = sub.add_parser(
        "analyze", parents=[common], formatter_class=FORMATTER,
        help="KPFlow analyses over a run's checkpoints (collapse; sub-task alignment for task mixes)",
        description=_doc(
            "Run the KPFlow analyses on the checkpoints of a run folder: dynamic collapse (effective ranks of K, P, "
            "P K P* and of the hidden activity, misdirection alignment, loss and accuracy per step) and, for a run "
            "trained on several tasks, the sub-task alignment (task x task interference from the K blocks, next to "
            "the hidden-state alignment).",
            "Writes collapse.nc (and alignment.nc), figures/*.png and report.html into --out (default RUN/analysis).",
            examples=["neurokpflow analyze runs/mp --every 2"]))
    p.add_argument("run", metavar="RUN", help="run folder written by 'neurokpflow train'")
    p.add_argument("--every", type=_positive_int, default=1,
                   help="analyse every k-th checkpoint (the first and last always; default: 1)")
    p.add_argument("--n-angles", type=_positive_int, default=8,
                   help="stimulus angles of the evaluation test grid (default: 8)")
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default: RUN/analysis)")
    p.set_defaults(handler=run_analyze)


def run_analyze(args):
    from .analysis_steps import analyze_run
    from ..viz.report import Report

    console = Console(args.quiet)
    out = Path(args.out) if args.out else Path(args.run) / "analysis"
    report = Report(f"KPFlow analysis of {args.run}", figures_dir=out / "figures")
    analyze_run(args.run, out, report, every=args.every, n_angles=args.n_angles, progress=console.progress)
    path = report.write(out / "report.html")
    console.say(f"wrote {out / 'collapse.nc'} and the report {path}")
    return 0


# -------------------------------------------------------------------------------------- compare
def _recording_options(p):
    p.add_argument("--condition", default="condition", metavar="COLUMN",
                   help="trials-table column that labels the conditions (default: condition; the M1 center-out "
                        "file uses 'target')")
    p.add_argument("--align-to", default="start_time", metavar="COLUMN",
                   help="trials-table column (or event) that defines time 0 (default: start_time)")
    p.add_argument("--smooth", type=_positive_float, default=0.05, metavar="SECONDS",
                   help="SD of the Gaussian smoothing of the recording in time (default: 0.05)")


def _add_compare(sub, common):
    p = sub.add_parser(
        "compare", parents=[common], formatter_class=FORMATTER,
        help="compare a run's dynamics with an NWB recording, checkpoint by checkpoint",
        description=_doc(
            "Compare the hidden activity of a run's checkpoints with a recording.  Both are averaged by condition: "
            "the recording by --condition, the model on its task's test grid with one angle per recorded condition "
            "(angle 2*pi*k/n for the k-th condition label in sorted order).  Time bins covered by every trial are "
            "kept, and the model is resampled onto them (its step t is the bin [t dt, (t+1) dt] from trial "
            "start).  Each measure comes with the chosen statistics (bootstrap CIs over conditions, permutation "
            "null over condition labels, split-half noise ceiling, cross-validated score).",
            "Writes compare.nc, figures/*.png and report.html into --out (default RUN/compare).",
            examples=["neurokpflow compare runs/mp m1_center_out_chewie.nwb --condition target"]))
    p.add_argument("run", metavar="RUN", help="run folder written by 'neurokpflow train'")
    p.add_argument("file", metavar="FILE.nwb", help="NWB recording with a trials table and a condition column")
    _recording_options(p)
    p.add_argument("--window", type=float, nargs=2, default=None, metavar=("START", "STOP"),
                   help="time window in seconds around the alignment event (default: the model trial's length)")
    p.add_argument("--measures", nargs="+", default=["procrustes", "cka"], choices=MEASURES, metavar="MEASURE",
                   help=f"similarity measures, any of {', '.join(MEASURES)} (default: procrustes cka)")
    p.add_argument("--stats", nargs="+", default=["bootstrap", "permutation"], choices=STATS, metavar="STAT",
                   help=f"statistics, any of {', '.join(STATS)} (default: bootstrap permutation)")
    p.add_argument("--every", type=_positive_int, default=1, help="use every k-th checkpoint (default: 1)")
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default: RUN/compare)")
    p.set_defaults(handler=run_compare)


def run_compare(args):
    from .comparison_steps import compare_run, load_recording
    from ..viz.report import Report

    console = Console(args.quiet)
    nwb = _existing_file(args.file)
    out = Path(args.out) if args.out else Path(args.run) / "compare"
    recording = load_recording(nwb, condition=args.condition, align_to=args.align_to, window=args.window,
                               smooth_sigma=args.smooth)
    report = Report(f"{args.run} compared with {nwb.name}", figures_dir=out / "figures")
    compare_run(args.run, recording, out, report, measures=args.measures, stats=args.stats, every=args.every,
                progress=console.progress)
    path = report.write(out / "report.html")
    console.say(f"wrote {out / 'compare.nc'} and the report {path}")
    return 0


# ----------------------------------------------------------------------------------------- demo
def _add_demo(sub, common):
    p = sub.add_parser(
        "demo", parents=[common], formatter_class=FORMATTER,
        help="the whole pipeline on a synthetic 'virtual animal' (or your NWB file), with an HTML report",
        description=_doc(
            "End-to-end demo, no download, CPU only:",
            "  1. a 'virtual animal': a ground-truth RNN trained on a MemoryPro (delayed-reach) task drives a\n"
            "     Poisson spiking population, written as NWB;\n"
            "  2. a small RNN trained on the same task, with checkpoints;\n"
            "  3. the KPFlow collapse analysis over its checkpoints;\n"
            "  4. model vs recording over training (bootstrap CIs, permutation null);\n"
            "  5. report.html with the figures and the numbers; results as netCDF.",
            "A few minutes on 2 CPU cores; --quick runs a reduced version in well under a minute.  With --nwb the "
            "comparison uses your recording (a trials table with a condition column) instead of the virtual animal.",
            examples=["neurokpflow demo", "neurokpflow demo --quick --out /tmp/demo",
                      "neurokpflow demo --nwb m1_center_out_chewie.nwb --condition target"]))
    p.add_argument("--out", metavar="DIR", default="neurokpflow-demo", help="output folder (default: neurokpflow-demo)")
    p.add_argument("--quick", action="store_true", help="reduced sizes (smaller networks, fewer steps and trials)")
    p.add_argument("--nwb", metavar="FILE.nwb", default=None,
                   help="compare with this recording instead of the virtual animal (needs a trials table with a "
                        "condition column)")
    _recording_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of everything random in the demo (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.set_defaults(handler=run_demo, threads_default=1)


def run_demo(args):
    from .demo import run as demo_run

    console = Console(args.quiet)
    nwb = _existing_file(args.nwb) if args.nwb else None
    paths = demo_run(args.out, quick=args.quick, nwb=nwb, condition=args.condition, align_to=args.align_to,
                     smooth_sigma=args.smooth, seed=args.seed, device=args.device, console=console)
    console.say(f"report: {paths['report']}")
    return 0


# ---------------------------------------------------------------------------------------- sweep
def _add_sweep(sub, common):
    p = sub.add_parser(
        "sweep", parents=[common], formatter_class=FORMATTER,
        help="run a grid of training runs (and their analyses) on dask into one Zarr store",
        description=_doc("Validate the TOML sweep specification, then train or resume every unfinished run "
                         "and compute what the specification asks, on a dask LocalCluster (one single-threaded "
                         "worker process per core) or an existing scheduler. Results: OUT/sweep.zarr, read "
                         "with neurokpflow.sweep.open_sweep(OUT).",
                         examples=["neurokpflow sweep spec.toml --out results/",
                                   "neurokpflow sweep spec.toml --out results/ --scheduler tcp://10.0.0.1:8786",
                                   "neurokpflow sweep spec.toml --out results/ --cluster slurm --workers 16 "
                                   "--cluster-option queue=short --cluster-option walltime=02:00:00"]))
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep specification")
    p.add_argument("--out", required=True, metavar="DIR", help="results folder (run folders and sweep.zarr)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing dask scheduler (default: start a LocalCluster); 'inline' runs "
                        "serially in this process")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="LocalCluster workers (default: one per core), or batch jobs with --cluster (default 1)")
    p.add_argument("--cluster", choices=("slurm", "pbs"), default=None,
                   help="submit the workers as SLURM or PBS jobs through dask-jobqueue (extra neurokpflow[jobqueue])")
    p.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="a keyword of the dask-jobqueue cluster (queue, account, memory, walltime, ...); VALUE is "
                        "read as TOML when it parses (numbers, [\"lists\"]), else as text; repeatable")
    p.set_defaults(handler=run_sweep)


def _key_value(text):
    import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    if not isinstance(parsed, (int, float, str, list, dict)):  # e.g. TOML times: walltime=02:00:00 stays text
        parsed = value
    return key.strip(), parsed


def run_sweep(args):
    from .. import sweep

    spec = sweep.load(_existing_file(args.spec))
    if args.cluster_option and args.cluster is None:
        raise CLIError("--cluster-option needs --cluster slurm|pbs")
    ds = sweep.run_sweep(spec, args.out, scheduler=args.scheduler, n_workers=args.workers,
                         progress=not args.quiet, cluster=args.cluster, cluster_options=dict(args.cluster_option))
    done = int((ds["status"].values == "done").sum())
    Console(args.quiet).say(f"{done} of {ds.sizes['run']} run(s) done; results in {Path(args.out) / sweep.STORE}")
    return 0


# --------------------------------------------------------------------------------------- report
def _add_report(sub, common):
    p = sub.add_parser(
        "report", parents=[common], formatter_class=FORMATTER,
        help="HTML report across a sweep's results (effective ranks, similarity, sub-task alignment)",
        description=_doc("Write RESULTS/report.html for the sweep in RESULTS (the --out folder of "
                         "'neurokpflow sweep'): the runs and their failures, effective ranks over training per "
                         "group of runs, similarity to each recording over training with the spread over seeds, "
                         "and the sub-task alignment matrix averaged over seeds, each when the sweep computed it.",
                         examples=["neurokpflow report results/"]))
    p.add_argument("results", metavar="RESULTS", help="the sweep's results folder (holding sweep.zarr)")
    p.add_argument("--out", default=None, metavar="FILE.html", help="report path (default: RESULTS/report.html)")
    p.set_defaults(handler=run_report)


def run_report(args):
    from .. import sweep
    from .sweep_report import write_sweep_report

    results = Path(args.results)
    if not (results / sweep.STORE).exists():
        raise CLIError(f"{results} holds no {sweep.STORE}; pass the --out folder of 'neurokpflow sweep'", EXIT_MISSING)
    path = write_sweep_report(results, args.out)
    Console(args.quiet).say(f"report: {path}")
    return 0
