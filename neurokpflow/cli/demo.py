"""``neurokpflow demo``: the whole pipeline on an embedded "virtual animal", with an HTML report.

Output folder layout::

    virtual_animal.nwb        the synthetic recording (absent with --nwb)
    teacher/                  the ground-truth network's training run
    run/                      the demo model's run (checkpoints/, log.nc, run.json)
    analysis/collapse.nc      KPFlow collapse over the checkpoints
    compare.nc                model vs recording over training (scores, CIs, permutation null)
    similarity_flow.nc        first-order change of the similarity per gradient step, per checkpoint
    figures/*.png             every figure of the report
    summary.json              the headline numbers
    report.html               the report (self-contained)
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..viz import plot_training_curves
from .analysis_steps import HEADLINE_DEFINITION, analyze_run
from .comparison_steps import compare_run, load_recording
from .console import Console
from .flow_steps import flow_run, flow_summary
from .._io import atomic_write
from ..viz.report import Report
from ..errors import InputTypeError
from ..training.runs import RunSpec, start_run
from .. import tasks
from ..models.virtual_animal import AnimalSettings, simulate_spikes, write_nwb

__all__ = ["run", "DemoSettings", "FULL", "QUICK"]



#: the demo task: MemoryPro (Driscoll 2024 I/O) at 50 ms steps with short epochs (test-grid trial 1.9 s)
DEMO_TASK = {"name": "memory_pro", "dt": 0.05,
             "durations": {"fixation": (0.3, 0.5), "stimulus": (0.3, 0.5), "delay": (0.4, 1.0),
                           "response": (0.3, 0.5)}}


def demo_task():
    """The task both the virtual animal's teacher and the demo model are trained on."""
    return tasks.make(DEMO_TASK["name"], dt=DEMO_TASK["dt"], durations=DEMO_TASK["durations"])


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run."""

    animal: AnimalSettings = field(default_factory=AnimalSettings)
    hidden: int = 64
    steps: int = 600
    checkpoint_every: int = 25
    lr: float = 1e-3
    analyse_every: int = 3        # collapse on every k-th checkpoint
    compare_every: int = 2        # comparison on every k-th checkpoint
    n_boot: int = 100
    n_perm: int = 100
    collapse_options: dict = field(default_factory=dict)


FULL = DemoSettings()
QUICK = DemoSettings(
    animal=AnimalSettings(n_neurons=40, trials_per_condition=6, teacher_hidden=32, teacher_steps=120),
    hidden=32, steps=150, checkpoint_every=25, lr=3e-3, analyse_every=3, compare_every=1, n_boot=50, n_perm=50,
    collapse_options={"definitions": ("ER1", "ER2"), "n_bootstrap": 10})

def _demo_measures():
    """The recording has repeated trials: the noise-corrected estimators (similarity of the noise-free
    condition means), with their default intervals over trials (BCa for CKA; for the Procrustes angle the
    bootstrap bias-corrected estimate with the basic interval around it)."""
    from ..compare import CKA, Procrustes

    return (Procrustes(cross_validated=True), CKA(cross_validated=True))


DEMO_MEASURES = _demo_measures()

TAU = 0.1  # s; leaky RNN alpha = dt / tau = 0.5 at the demo's dt


def _train(task_options, out_dir, hidden, steps, checkpoint_every, lr, seed, device, console):
    spec = RunSpec(tasks=(DEMO_TASK["name"],), model="rnn", hidden=hidden, tau=TAU, dt=DEMO_TASK["dt"], steps=steps,
                   lr=lr, checkpoint_every=checkpoint_every, seed=seed, task_options=task_options,
                   eval_grid={"n_angles": 8, "modalities": (1,)})
    return start_run(spec, out_dir, device=device, progress=console.progress)


def _fresh(folder: Path):
    """Remove a previous demo's run folder so that the trainer starts from scratch."""
    import shutil

    if folder.exists():
        shutil.rmtree(folder)


#: how the demo reads a recording given with ``nwb=`` (keywords of :func:`run`)
RECORDING_DEFAULTS = {"condition": "condition", "align_to": "start_time", "smooth_sigma": 0.05}


def run(out, *, quick=False, nwb=None, seed=0, device="auto", console=None, **recording):
    """Run the demo into ``out``; returns ``{name: path}`` of the files written.

    ``recording``: how to read ``nwb`` (``condition``, ``align_to``, ``smooth_sigma``; defaults in
    :data:`RECORDING_DEFAULTS`).
    """
    unknown = sorted(set(recording) - set(RECORDING_DEFAULTS))
    if unknown:
        raise InputTypeError(f"demo run() got unexpected keyword argument(s) {unknown}; the recording options are "
                             f"{sorted(RECORDING_DEFAULTS)}")
    recording = {**RECORDING_DEFAULTS, **recording}
    condition, align_to, smooth_sigma = recording["condition"], recording["align_to"], recording["smooth_sigma"]
    console = console or Console()
    settings = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = demo_task()
    task_options = {"durations": DEMO_TASK["durations"]}
    started = time.perf_counter()
    report = Report("neurokpflow demo: a small RNN, its gradient flow, and a (virtual) animal",
                    figures_dir=out / "figures")
    paths = {}

    if nwb is None:
        with console.stage("virtual animal: training the ground-truth network"):
            _fresh(out / "teacher")
            teacher = _train(task_options, out / "teacher", settings.animal.teacher_hidden,
                             settings.animal.teacher_steps, settings.animal.teacher_steps, settings.animal.teacher_lr,
                             seed + 1000, device, console)
        with console.stage("virtual animal: Poisson spikes written as NWB"):
            spikes = simulate_spikes(teacher.model.cpu(), task, settings.animal, seed)
            nwb = write_nwb(spikes, out / "virtual_animal.nwb", seed)
            paths["virtual_animal"] = nwb
        teacher_accuracy = float(teacher.log["accuracy"].isel(eval_step=-1).mean())
        source_text = (
            f"The recording is synthetic: a ground-truth leaky tanh RNN ({settings.animal.teacher_hidden} units, "
            f"seed {seed + 1000}) trained on MemoryPro for {settings.animal.teacher_steps} steps "
            f"(test-grid accuracy {100 * teacher_accuracy:.1f} %) drives {settings.animal.n_neurons} Poisson "
            f"neurons, rate = min({settings.animal.max_rate:g} Hz, r0 · exp({settings.animal.gain:g} w·h)), "
            f"over {settings.animal.trials_per_condition} noisy trials of each of {settings.animal.n_conditions} "
            f"reach directions; spikes were written to `{nwb.name}` (Units + trials table) and read back with "
            "`neurokpflow.data.read_nwb`.")
    else:
        source_text = f"The recording is `{Path(nwb).name}`, given with --nwb."
    with console.stage(f"reading the recording {Path(nwb).name}"):
        recording = load_recording(nwb, condition=condition, align_to=align_to, bin_size=DEMO_TASK["dt"],
                                   smooth_sigma=smooth_sigma)

    with console.stage(f"training the demo model ({settings.steps} steps)"):
        _fresh(out / "run")
        trained = _train(task_options, out / "run", settings.hidden, settings.steps, settings.checkpoint_every,
                         settings.lr, seed, device, console)
    log = trained.log

    with console.stage("KPFlow collapse over the checkpoints"):
        # sections are collected in parts and assembled after the summary, which needs their numbers
        collapse_part = Report("collapse", figures_dir=out / "figures")
        analysis = analyze_run(out / "run", out / "analysis", collapse_part, every=settings.analyse_every,
                               n_angles=8, progress=console.progress, collapse_options=settings.collapse_options)
    with console.stage("comparing the model with the recording over training"):
        compare_part = Report("comparison", figures_dir=out / "figures")
        comparison = compare_run(out / "run", recording, out, compare_part,
                                 measures=DEMO_MEASURES, stats=("bootstrap", "permutation"),
                                 every=settings.compare_every, n_boot=settings.n_boot, n_perm=settings.n_perm,
                                 seed=seed, progress=console.progress)

    with console.stage("similarity flow: which gradient moves the model toward the recording"):
        flow_part = Report("similarity flow", figures_dir=out / "figures")
        flow = flow_run(out / "run", recording, out, flow_part, lr=settings.lr, every=settings.compare_every,
                        progress=console.progress)

    summary = _summary(log, analysis["collapse"], comparison, settings, quick, seed, time.perf_counter() - started)
    summary["similarity_flow"] = flow_summary(flow)
    paths["summary"] = atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    command = ["neurokpflow", "demo", "--out", str(out), *(["--quick"] if quick else []), "--seed", str(seed),
               *(["--nwb", str(nwb), "--condition", condition] if paths.get("virtual_animal") is None else [])]
    _write_report(report, summary, source_text, recording, log, collapse_part, compare_part, out, settings, command,
                  flow_part)
    paths.update(report=report.write(out / "report.html"), collapse=out / "analysis" / "collapse.nc",
                 compare=out / "compare.nc", similarity_flow=out / "similarity_flow.nc", run=out / "run")
    console.say(_headline(summary))
    console.say(_flow_headline(summary["similarity_flow"]))
    return paths


def _pick(comparison, measure_prefix, step):
    names = [str(m) for m in comparison["measure"].values if str(m).startswith(measure_prefix)]
    r = comparison.sel(measure=names[0], step=step)
    return {"estimator": names[0], "convention": str(r["convention"].values), "score": float(r["score"]),
            "ci": [float(r["ci_low"]), float(r["ci_high"])], "ci_method": str(r["ci_method"].values),
            "ci_estimate": float(r["ci_estimate"]),
            "bias": float(r["bias"]), "se": float(r["se"]), "null_mean": float(r["null_mean"]),
            "p_value": float(r["p_value"])}


def _summary(log, collapse, comparison, settings, quick, seed, seconds):
    first, last = int(collapse["step"].values[0]), int(collapse["step"].values[-1])
    definition = HEADLINE_DEFINITION if HEADLINE_DEFINITION in collapse["definition"].values \
        else str(collapse["definition"].values[0])
    ranks = {op: {"definition": definition,
                  "untrained": float(collapse["effective_rank"].sel(step=first, operator=op, definition=definition)),
                  "trained": float(collapse["effective_rank"].sel(step=last, operator=op, definition=definition))}
             for op in ("K", "P", "PKP*")}
    ranks["activity"] = {"definition": "ER4 (participation ratio, centred)",
                         **{k: float(collapse["activity_effective_rank"].sel(step=s, centering="centred"))
                            for k, s in (("untrained", first), ("trained", last))}}
    steps = comparison["step"].values
    return {
        "quick": bool(quick), "seed": int(seed), "wall_time_s": round(seconds, 1),
        "settings": asdict(settings),
        "accuracy": {str(t): float(a) for t, a in zip(log["task"].values, log["accuracy"].isel(eval_step=-1).values)},
        "accuracy_untrained": float(collapse["accuracy"].sel(step=first).mean()),
        "final_step": int(log["eval_step"].values[-1]),
        "effective_ranks": ranks,
        "misdirection": {"untrained": float(collapse["misdirection"].sel(step=first)),
                         "trained": float(collapse["misdirection"].sel(step=last))},
        "comparison": {m: {"untrained": _pick(comparison, m, steps[0]), "trained": _pick(comparison, m, steps[-1])}
                       for m in ("procrustes", "cka")},
    }


def _headline(summary):
    acc = 100 * np.mean(list(summary["accuracy"].values()))
    p = summary["comparison"]["procrustes"]
    return (f"accuracy {acc:.1f} %; Procrustes angle to the recording {p['untrained']['score']:.3f} (untrained) -> "
            f"{p['trained']['score']:.3f} (trained), null {p['trained']['null_mean']:.3f}; "
            f"{summary['wall_time_s']:.0f} s")


def _flow_headline(flow):
    first, last = flow["first"], flow["last"]

    def part(entry):
        tasks = ", ".join(f"{name}: GD {t['predicted_gd']:+.3g} (cos {t['cosine_gd']:+.3f}), direct P P* "
                          f"{t['predicted_direct']:+.3g} (cos {t['cosine_direct']:+.3f})"
                          for name, t in entry["per_task"].items())
        return (f"step {entry['step']}: {tasks}; Adam's next step predicted {entry['predicted_adam_step']:+.3g} "
                f"(momentum {entry['predicted_adam_momentum']:+.3g}) vs measured {entry['measured_adam']:+.3g}")

    return (f"similarity flow (gain in -Procrustes angle per step at lr {flow['lr']:g}; + = toward the recording): "
            f"{part(first)}; {part(last)}")


def _write_report(report, summary, source_text, recording, log, collapse_part, compare_part, out, settings,
                  command, flow_part):
    acc = summary["accuracy"]
    ranks = summary["effective_ranks"]
    proc, cka = summary["comparison"]["procrustes"], summary["comparison"]["cka"]

    def fmt(entry):
        lo, hi = entry["ci"]
        raw = "" if entry["ci_estimate"] == entry["score"] else f"bias-corrected; raw {entry['score']:.3f}; "
        return (f"{entry['ci_estimate']:.3f} [{lo:.3f}, {hi:.3f}] ({raw}null {entry['null_mean']:.3f}, "
                f"p = {entry['p_value']:.3f})")

    def label(entry):
        return f"95 % CI: {entry['ci_method'].replace('bca', 'BCa').replace('_', '-')}"

    report.section("Summary")
    report.table(["quantity", "untrained (step 0)", f"trained (step {summary['final_step']})"], [
        ["test-grid accuracy (MemoryPro, 18° criterion)", f"{100 * summary['accuracy_untrained']:.1f} %",
         ", ".join(f"{100 * a:.1f} %" for a in acc.values())],
        *[[f"effective rank of {op} ({r['definition']})", r["untrained"], r["trained"]] for op, r in ranks.items()],
        ["misdirection KA(PKP*, PP*)", summary["misdirection"]["untrained"], summary["misdirection"]["trained"]],
        [f"Procrustes angle to the recording (rad, noise-corrected) [{label(proc['trained'])}]",
         fmt(proc["untrained"]), fmt(proc["trained"])],
        [f"linear CKA with the recording (noise-corrected) [{label(cka['trained'])}]", fmt(cka["untrained"]),
         fmt(cka["trained"])],
    ])
    report.paragraph(
        f"A leaky tanh RNN ({settings.hidden} units, α = dt/τ = 0.5) learned MemoryPro (dt = {DEMO_TASK['dt']} s: "
        "fixate, see a direction, hold it through a delay, report it) in "
        f"{summary['final_step']} Adam steps.  Smaller angles and larger CKA mean more similar; the null is "
        "the same score after shuffling the recording's condition labels.  The whole run took "
        f"{summary['wall_time_s']:.0f} s.")
    report.section("The recording", source_text)
    report.table(["trials", "conditions", "units", "time bins", "bin (s)"],
                 [[recording.sizes["trial"], len(np.unique(recording["condition"].values)), recording.sizes["unit"],
                   recording.sizes["time"], float(recording.attrs.get("bin_size", np.nan))]])
    report.section("Training", "Loss per step and accuracy on the noise-free test grid (8 directions).")
    report.figure(plot_training_curves(log), "training", "Training loss and test-grid accuracy.")
    report.blocks.extend(collapse_part.blocks)
    report.blocks.extend(compare_part.blocks)
    report.blocks.extend(flow_part.blocks)
    report.section("Files")
    synthetic = [["virtual_animal.nwb", "the synthetic recording (NWB: Units + trials)"],
                 ["teacher/", "the ground-truth network's training run"]] if (out / "virtual_animal.nwb").exists() else []
    report.table(["file", "what it holds"], [
        *synthetic,
        ["run/", "the demo model's checkpoints, log.nc (training log), run.json"],
        ["analysis/collapse.nc", "KPFlow collapse per checkpoint (xarray / netCDF)"],
        ["compare.nc", "comparison scores, CIs and permutation nulls per checkpoint (xarray / netCDF)"],
        ["similarity_flow.nc", "predicted and measured similarity change of one gradient step per checkpoint"],
        ["summary.json", "the numbers of the summary table"],
        ["figures/", "the figures of this report as PNG"],
    ])
    report.paragraph("Reproduce with `" + " ".join(shlex.quote(a) for a in command) + "`, "
                     f"or continue with `neurokpflow analyze {out / 'run'}` and "
                     f"`neurokpflow compare {out / 'run'} FILE.nwb`.")
