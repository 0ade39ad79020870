"""Registered datasets: where their files live, how to fetch them, and how to load them in the shared layout.

A dataset's file is looked up, in order, in ``data_dir`` (argument), ``$NEUROKPFLOW_DATA``, the download
cache (``$NEUROKPFLOW_CACHE`` or the user cache folder), ``./../shared/data`` (relative to the working
directory) and ``<repository>/../shared/data``.  If it is in none of them it is downloaded into the
cache (needs ``neurokpflow[download]``): from ``base_url`` / ``$NEUROKPFLOW_DATA_URL`` when set (a
mirror holding the files under their names), otherwise from its public source (the DANDI Archive, or
the original publication's file, converted to NWB on first use).  Every download is checked against a
SHA-256: pinned here, or for DANDI assets the archive's own digest.
The dataset cards in the repository's ``datasets/`` folder describe each entry in full.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from . import download
from .._io import atomic_write
from .errors import BinningError, DatasetNotFoundError
from .reading import read_nwb
from .sources import ChecksumError, DandiAsset
from .synthetic import synthetic_nwbfile
from .._registry import Entry, Registry
from ..errors import UnknownNameError

ENV_VAR = "NEUROKPFLOW_DATA"


@dataclass(frozen=True)
class PublicFile:
    """A file published by the data's authors, pinned by URL (at a commit) and SHA-256."""

    url: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class PublicSource:
    """The published files of a dataset and ``to_nwb(paths, out)``, which writes the registered NWB file."""

    files: tuple[PublicFile, ...]
    to_nwb: Callable[[list[Path], Path], None]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(Entry):
    """One entry of :data:`DATASETS` (``filename`` is None for generated data).

    ``sha256``/``size`` describe ``filename`` itself (used for mirrors); ``dandi`` or ``public`` say
    where it is published.  As a registry entry, calling it loads the dataset
    (``DATASETS["synthetic"]()`` is ``load_dataset("synthetic")``) and its capabilities say where the
    file comes from: ``origin`` ("dandi", "public", "generated" or "local") and ``checksum`` (whether a
    SHA-256 is pinned).
    """

    factory: Callable[..., Any] = None  # type: ignore[assignment]  # set to the loader in __post_init__
    title: str
    filename: str | None
    source: str
    licence: str
    contents: str
    dandi: DandiAsset | None = None
    public: PublicSource | None = None
    sha256: str | None = None
    size: int | None = None
    defaults: dict = field(default_factory=dict)

    def __post_init__(self):
        origin = ("dandi" if self.dandi is not None else "public" if self.public is not None
                  else "generated" if self.filename is None else "local")
        object.__setattr__(self, "factory", _Loader(self.name))
        object.__setattr__(self, "capabilities", MappingProxyType({"origin": origin,
                                                                   "checksum": self.sha256 is not None}))
        object.__setattr__(self, "description", self.title)


class _Loader:
    """``load_dataset(name, **options)`` as a picklable callable."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **options):
        return load_dataset(self.name, *args, **options)

    def __eq__(self, other):
        return isinstance(other, _Loader) and other.name == self.name

    def __hash__(self):
        return hash(("_Loader", self.name))


def _write(nwbfile, path: Path) -> None:
    import pynwb

    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def _grasshopper_to_nwb(paths: list[Path], nwb_path: Path) -> None:
    """Convert nitime's ``grasshopper_spike_times{1,2}.txt`` and ``grasshopper_stimulus{1,2}.txt`` (times in
    µs; stimulus sampled every 50 µs) into ``grasshopper_auditory_receptor.nwb``: recording 2 starts at 12 s,
    20 one-second pseudo-trials, one unit observed over both recordings."""
    import datetime as dt

    import pynwb
    from pynwb.file import Subject

    spikes1, spikes2, stimulus1, stimulus2 = (np.loadtxt(p) for p in paths)
    starts, cutoffs = (0.0, 12.0), (200, 800)
    nwbfile = pynwb.NWBFile(
        session_description="Locusta migratoria auditory receptor, AM white-noise stimuli (nitime sample data)",
        identifier="nitime-grasshopper",
        session_start_time=dt.datetime(2006, 1, 1, tzinfo=dt.timezone.utc),
        experiment_description="two 10-s recordings of one receptor cell; stimulus cut-off 200 Hz vs 800 Hz",
        related_publications=["Rokem et al. 2006 J Neurophysiol 95:2541-52"],
        subject=Subject(subject_id="grasshopper-1", species="Locusta migratoria", sex="U", age="P0D/",
                        description="from nitime sample data"),
    )
    for number, (stimulus, start, cutoff) in enumerate(zip((stimulus1, stimulus2), starts, cutoffs), 1):
        nwbfile.add_stimulus(pynwb.TimeSeries(
            name=f"sound_pressure_{number}", data=stimulus[:, 1].astype(np.float32), unit="Pa", rate=20000.0,
            starting_time=start, description=f"AM white-noise envelope, cut-off {cutoff} Hz"))
    nwbfile.units = pynwb.misc.Units(name="units", description="intracellularly recorded spikes of one receptor",
                                     resolution=1e-4)
    nwbfile.add_unit(spike_times=np.concatenate([spikes1 * 1e-6, spikes2 * 1e-6 + starts[1]]),
                     obs_intervals=[[start, start + 10.0] for start in starts])
    nwbfile.add_trial_column("condition", "stimulus AM cut-off frequency")
    nwbfile.add_trial_column("cutoff_hz", "AM cut-off (Hz)")
    for start, cutoff in zip(starts, cutoffs):
        for second in range(10):
            nwbfile.add_trial(start_time=start + second, stop_time=start + second + 1.0,
                              condition=f"co{cutoff}", cutoff_hz=float(cutoff))
    _write(nwbfile, nwb_path)


def _chewie_to_nwb(paths: list[Path], nwb_path: Path) -> None:
    """Convert KordingLab/DAD ``data/demo/chewie_demo.mat`` into ``m1_center_out_chewie.nwb``.

    ``Ytr``/``Xtr``/``Ttr`` (1200 bins) are the ``train`` part, then ``Yte``/``Xte``/``Tte`` (1818 bins)
    the ``test`` part, at 50 ms per bin; a trial is a run of bins with one target label inside one part.
    """
    import datetime as dt

    import pynwb
    from pynwb.file import Subject
    from scipy.io import loadmat

    mat = loadmat(paths[0])
    counts = np.concatenate([mat["Ytr"], mat["Yte"]]).astype(np.uint8)
    velocity = np.concatenate([mat["Xtr"], mat["Xte"]]).astype(np.float64)
    target = np.concatenate([mat["Ttr"].ravel(), mat["Tte"].ravel()]).astype(np.int64)
    part = np.repeat(["train", "test"], [len(mat["Ttr"]), len(mat["Tte"])])
    nwbfile = pynwb.NWBFile(
        session_description="Monkey C primary motor cortex during center-out reaching; binned population "
        "activity with reach-target labels and hand velocity.",
        identifier="dad-demo-chewie",
        session_start_time=dt.datetime(2017, 1, 1, tzinfo=dt.timezone.utc),
        related_publications=["doi:10.1038/s41551-017-0169-7"],
        experiment_description="Published with Dyer et al. 2017, 'A cryptography-based approach for movement "
        "decoding', Nature Biomedical Engineering 1:967 (repository KordingLab/DAD, data/demo). Trials were "
        "reconstructed as runs of constant target label; inter-trial intervals are not in the source.",
        subject=Subject(subject_id="chewie", species="Macaca mulatta"),
    )
    nwbfile.create_processing_module("ecephys", "Binned population activity").add(pynwb.TimeSeries(
        name="binned_spike_counts", data=counts, unit="spikes", rate=20.0, starting_time=0.0,
        description="spike counts per 50 ms bin; columns are units",
        comments="bin width 50 ms as stated in the source repository's analysis code"))
    nwbfile.create_processing_module("behavior", "Hand kinematics").add(pynwb.TimeSeries(
        name="hand_velocity", data=velocity, unit="a.u.", rate=20.0, starting_time=0.0,
        description="2-D hand velocity (x, y) per bin, units as in source"))
    nwbfile.add_trial_column("target", "reach target index (as labelled in the source)")
    nwbfile.add_trial_column("split", "train/test split of the source file")
    change = np.flatnonzero((np.diff(target) != 0) | (part[1:] != part[:-1])) + 1
    for first, stop in zip(np.r_[0, change], np.r_[change, len(target)]):
        nwbfile.add_trial(start_time=first * 0.05, stop_time=stop * 0.05, target=int(target[first]),
                          split=str(part[first]))
    _write(nwbfile, nwb_path)


_NITIME = "https://raw.githubusercontent.com/nipy/nitime/7f117d6171e00755130fd2772e298477498eca87/nitime/data/"

#: the registered datasets: a Registry of :class:`DatasetInfo` entries (capabilities ``origin``, ``checksum``)
DATASETS = Registry("dataset", {"origin": "local", "checksum": False})
for _info_entry in (
        DatasetInfo(
            name="m1_center_out",
            title="Monkey C (Chewie) primary motor cortex, center-out reaching to 4 targets",
            filename="m1_center_out_chewie.nwb",
            source="demo data of Dyer et al. 2017, Nat. Biomed. Eng. 1:967 (KordingLab/DAD, converted to NWB)",
            licence="as published with the source paper's demo code (no licence file); research and teaching",
            contents="71 units as 50 ms binned counts (no spike times), 93 trials with `target` (0-3) and `split`, 2-D hand velocity",
            public=PublicSource(
                files=(PublicFile(
                    url="https://raw.githubusercontent.com/KordingLab/DAD/2f2059798cf599df5839a704682a18958811e13b/"
                    "data/demo/chewie_demo.mat",
                    filename="chewie_demo.mat",
                    sha256="170c7db01cfa790de9e8700dfbdf3050b23c5f907131fdcfa3ae99e1c3ed3d32",
                ),),
                to_nwb=_chewie_to_nwb,
            ),
            sha256="0e865b543f68b3ae1013e04b4c94267757e13934061c0c30ab6f24ca4e2fe1a3",
            size=464262,
            defaults={"bin_size": 0.05},
        ),
        DatasetInfo(
            name="grasshopper_auditory_receptor",
            title="Locusta migratoria auditory receptor neuron under amplitude-modulated noise",
            filename="grasshopper_auditory_receptor.nwb",
            source="Rokem et al. 2006, J Neurophysiol 95:2541; sample data shipped with nitime",
            licence="BSD-3-Clause (nitime)",
            contents="1 unit, 1797 spike times in two 10 s recordings (200 Hz / 800 Hz cut-off), 20 one-second pseudo-trials",
            public=PublicSource(
                files=tuple(
                    PublicFile(url=_NITIME + name, filename=name, sha256=sha)
                    for name, sha in (
                        ("grasshopper_spike_times1.txt", "840014ad9a8f591d02ab108bcbd46715badb3459e0ef7eac95fdd661ff134e3d"),
                        ("grasshopper_spike_times2.txt", "389e5dccb709fbe0552589ff2e0b64e15d46665e4d2d4172071f2175c8641541"),
                        ("grasshopper_stimulus1.txt", "4b47a4cbca8c5f694f87dd510db608a868dffbaba96845199c8afa545a4c37fa"),
                        ("grasshopper_stimulus2.txt", "69f257a8e7a5019897111b07f9cd317b136357d256e99682d40c09d5add18e6a"),
                    )
                ),
                to_nwb=_grasshopper_to_nwb,
            ),
            sha256="a21eda77f6063cfd570b3e3cb169e47dced61ece3e805489ee842253566c65ae",
            size=1838968,
            defaults={"bin_size": 0.01, "window": (0.0, 1.0)},
        ),
        DatasetInfo(
            name="mouse_postsubiculum",
            title="Mouse postsubiculum session A8604-211122 (3 units), written by pynapple",
            filename="mouse_postsubiculum_A8604-211122.nwb",
            source="pynapple's NWB writer from a phy sort",
            licence="see the dataset card",
            contents="3 units with spike times and electrode metadata, one 'wake' epoch; no trials table",
            sha256="6c9913f1a36c43dc627a541f4e521eb17e305879eb4d9bce949f77970994ac22",
            size=442304,
            defaults={"bin_size": 0.1},
        ),
        DatasetInfo(
            name="mc_maze_small",
            title="MC_Maze_Small (Neural Latents Benchmark): macaque M1 + PMd, delayed reaching through a maze",
            filename="sub-Jenkins_ses-small_desc-train_behavior+ecephys.nwb",
            source="Churchland & Kaufman, DANDI:000140 version 0.220113.0408 (Pei et al. 2021, NLB'21)",
            licence="CC-BY-4.0",
            contents="142 sorted units (spike times), 100 successful delayed-reach trials with target_on_time / "
            "go_cue_time / move_onset_time, maze conditions (trial_type, trial_version, maze_id), hand/cursor/eye "
            "position and hand velocity at 1 kHz",
            dandi=DandiAsset("000140", "sub-Jenkins/sub-Jenkins_ses-small_desc-train_behavior+ecephys.nwb",
                             version="0.220113.0408"),
            defaults={"bin_size": 0.01, "align_to": "move_onset_time", "window": (-0.25, 0.45)},
        ),
        DatasetInfo(
            name="dmfc_rsg",
            title="DMFC_RSG (Neural Latents Benchmark): macaque dorsomedial frontal cortex, ready-set-go "
            "interval reproduction",
            filename="sub-Haydn_desc-train_ecephys.nwb",
            source="Sohn & Jazayeri, DANDI:000130 version 0.220113.0407 (Sohn et al. 2019, Neuron 103:934; "
            "Pei et al. 2021, NLB'21)",
            licence="CC-BY-4.0 (not verified for this dandiset here: check its DANDI page)",
            contents="54 sorted units (spike times), 1160 trials with ready_time / set_time / go_time, sample "
            "interval ts, produced interval tp, prior (is_short), effector (is_eye), target side (theta)",
            dandi=DandiAsset("000130", "sub-Haydn/sub-Haydn_desc-train_ecephys.nwb", version="0.220113.0407"),
            defaults={"bin_size": 0.02, "align_to": "set_time", "window": (-1.0, 1.2)},
        ),
        DatasetInfo(
            name="synthetic",
            title="Synthetic cosine-tuned Poisson population in a delayed center-out task",
            filename=None,
            source="generated by neurokpflow.data.synthetic_nwbfile",
            licence="BSD-3-Clause (generated)",
            contents="Poisson units with ground-truth tuning, ragged trials with condition / target_angle / go_cue_time, go_cue events, hand velocity",
            defaults={"bin_size": 0.02, "window": (-1.0, 0.8), "align_to": "go_cue_time"},
        ),
):
    DATASETS.add(_info_entry)



def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return list(DATASETS)


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; registered: {list(DATASETS)}")
    info = DATASETS[name]
    assert isinstance(info, DatasetInfo)  # DATASETS holds DatasetInfo entries only
    return info


def _shared_dirs() -> list[Path]:
    """The development checkout's ``../shared/data`` (relative to the working directory and the repository)."""
    return [Path.cwd() / ".." / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]


def data_dirs(data_dir=None) -> list[Path]:
    """Folders searched for dataset files, in order (the download cache included)."""
    dirs = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    try:
        dirs.append(download.cache_dir())
    except ImportError:  # pooch absent and no $NEUROKPFLOW_CACHE: no cache folder
        pass
    return dirs + _shared_dirs()


def dataset_path(name: str, data_dir=None, *, base_url: str | None = None, download_missing: bool = True) -> Path:
    """Path of a registered dataset's file, downloaded into the cache on first use.

    ``base_url`` (or ``$NEUROKPFLOW_DATA_URL``) names a mirror holding the files under their registered
    names; without it the file comes from its public source.  ``download_missing=False`` only looks
    in the folders.  Raises :class:`DatasetNotFoundError` (nothing found, nowhere to download from),
    :class:`DownloadError` (offline, HTTP error) or :class:`ChecksumError`.
    """
    info = _info(name)
    if info.filename is None:
        raise DatasetNotFoundError(f"dataset {name!r} is generated, not stored; use load_dataset({name!r})")
    searched = data_dirs(data_dir)
    for folder in searched:
        candidate = folder / info.filename
        if candidate.is_file():
            return candidate.resolve()
    base_url = base_url or os.environ.get(download.BASE_URL_ENV)
    if not download_missing or not (base_url or info.dandi or info.public):
        raise DatasetNotFoundError(
            f"{info.filename} ({name}) not found in {[str(d) for d in searched]}; put the file in one of these "
            f"folders or set {ENV_VAR} to the folder that holds it"
            + ("" if download_missing else ", or allow the download")
        )
    return _download(info, base_url)


def _download(info: DatasetInfo, base_url: str | None) -> Path:
    assert info.filename is not None  # the caller refuses generated datasets
    if base_url:
        if info.sha256 is None:
            raise ChecksumError(
                f"{info.name}: no pinned SHA-256 for {info.filename}, so a mirror copy cannot be checked; "
                f"unset {download.BASE_URL_ENV} to download it from its public source"
            )
        return download.fetch(f"{base_url.rstrip('/')}/{info.filename}", info.filename, info.sha256)
    if info.dandi is not None:
        record = info.dandi.resolve()
        if not record["sha256"]:
            raise ChecksumError(
                f"{info.dandi.label}: the archive lists no SHA-256 for this asset, so the download cannot be "
                "checked; download it yourself and pass data_dir="
            )
        return download.fetch(record["url"], info.filename, record["sha256"])
    public = info.public
    assert public is not None  # the caller checked base_url, dandi or public
    raw = [download.fetch(f.url, f.filename, f.sha256) for f in public.files]
    target = raw[0].parent / info.filename
    if not target.is_file():
        atomic_write(target, lambda tmp: public.to_nwb(raw, tmp), overwrite=False)
    return target


def load_dataset(name: str, data_dir=None, *, base_url: str | None = None, **options) -> xr.Dataset:
    """Load a registered dataset as a trial-aligned ``xarray.Dataset`` with ``spike_count`` (trial, time, unit).

    The file is found or downloaded as in :func:`dataset_path` (``data_dir``, ``base_url``).
    ``options`` go to :func:`read_nwb` (``bin_size``, ``window``, ``align_to``, …) after the
    dataset's defaults; for ``"synthetic"``, ``n_units``/``n_trials``/``n_conditions``/``seed`` go
    to the generator.

    * ``m1_center_out``: the stored 50 ms counts summed into ``bin_size`` bins (a multiple of 50 ms)
      as ``spike_count`` (unit = column), hand velocity averaged as ``hand_velocity`` (trial, time,
      axis = x, y); trials aligned to ``start_time``, ragged ends NaN-padded.
    * ``grasshopper_auditory_receptor``: spike times binned in 1 s pseudo-trials (``condition`` co200 / co800).
    * ``mouse_postsubiculum``: no trials table; the ``epochs`` table (one ``wake`` epoch) plays that role.
    * ``mc_maze_small``: 10 ms bins, -250 to +450 ms around ``move_onset_time`` (the NLB window).
    * ``dmfc_rsg``: 20 ms bins, -1.0 to +1.2 s around ``set_time``.
    * ``synthetic``: generated in memory (seeded), aligned to the go cue.
    """
    info = _info(name)
    settings = {**info.defaults, **options}
    if name == "synthetic":
        generator = {k: settings.pop(k) for k in ("n_units", "n_trials", "n_conditions", "seed") if k in settings}
        return read_nwb(synthetic_nwbfile(**generator), **settings)
    path = dataset_path(name, data_dir, base_url=base_url)
    if name == "m1_center_out":
        return _load_m1(path, settings)
    if name == "mouse_postsubiculum":
        settings.setdefault("intervals", "epochs")
    ds = read_nwb(path, **settings)
    ds.attrs["dataset"] = name
    return ds


def _load_m1(path: Path, settings: dict) -> xr.Dataset:
    stored_bin = 0.05
    bin_size = float(settings.pop("bin_size"))
    ratio = bin_size / stored_bin
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise BinningError(f"bin_size={bin_size} s: the M1 file stores 50 ms counts; use a multiple of 0.05 s")
    counts = read_nwb(path, bin_size=bin_size, series={"binned_spike_counts": "unit"}, resample="sum", **settings)
    velocity = read_nwb(path, bin_size=bin_size, series={"hand_velocity": "axis"}, resample="mean", **settings)
    ds = counts.rename({"binned_spike_counts": "spike_count"})
    ds["spike_count"] = ds["spike_count"].astype(np.float32)
    ds["spike_count"].attrs.update(units="1", long_name="binned spike count")
    ds["hand_velocity"] = velocity["hand_velocity"].assign_coords(axis=["x", "y"])
    ds = ds.assign_coords(axis=["x", "y"])
    ds.attrs["history"] += "\nhand_velocity: mean of the 50 ms samples in each bin"
    ds.attrs["dataset"] = "m1_center_out"
    return ds

