"""The base class every measure derives from: naming, conventions, invariances, fit/evaluate split."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping

import numpy as np
import torch

from ._inputs import Representation, align
from ._result import DegenerateInputError, Score
from ..errors import InputTypeError
from .._validation import Options, Rule, check_params

#: Transforms named in the invariance tables. For representation measures they act on the units
#: of one input (translation adds the same vector to every sample); for operator comparisons,
#: "rotation" is conjugation C A C^T and "invertible_linear" is S A S^-1.
TRANSFORMS = ("rotation", "permutation", "isotropic_scale", "translation", "invertible_linear", "anisotropic_scale")


class Measure(ABC):
    """A comparison measure: ``measure(first, second, **align_options) -> Score``.

    Subclasses set ``measure`` (short name), ``convention`` and ``metric`` and implement
    ``evaluate(a, b, state)``; fitted measures (an alignment learnt from data) also implement
    ``fit(a, b)`` and set ``fitted = True``, which enables held-out scoring. ``invariances`` maps
    each name in :data:`TRANSFORMS` to True (the score must not change) or False (it must change);
    transforms absent from the mapping carry no guarantee.
    """

    measure: str = ""
    convention: str = "similarity"
    metric: bool = False
    fitted: bool = False
    symmetric: bool = True
    invariances: Mapping[str, bool] = {}
    #: trials of a condition are used in this many interleaved folds (trial k -> fold k % n); resampling
    #: trials keeps every draw inside its fold so that the folds stay independent
    trial_folds: int = 1
    #: default bootstrap interval (see :func:`neurokpflow.compare.bootstrap`)
    interval: str = "bca"
    #: what a permutation test shuffles by default: ``"conditions"`` or ``"time_blocks"`` (for measures of
    #: dynamics, whose value does not depend on condition labels)
    default_permutation: str = "conditions"
    #: whether the measure is defined on a single time bin (``time_resolved``, ``resolution="time"``)
    per_time_bin: bool = True

    def plug_in_target(self) -> "Measure | None":
        """The measure whose value on a trial population's condition means is this estimator's target, for
        an estimator that is not that value computed on the data (a noise-corrected one). When set, a trial
        bootstrap draws each trial from all of its condition's trials and measures the bias against the
        resampled population's own target value (see :func:`neurokpflow.compare.bootstrap`). None: the
        estimator is its own plug-in value."""
        return None

    @property
    def estimator(self) -> str:
        """Full name with every option that changes the value."""
        params = "-".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.measure}-{params}" if params else self.measure

    def params(self) -> dict[str, Any]:
        return {}

    @property
    def label(self) -> str:
        """A human-readable name for figures and reports, e.g. ``"Procrustes (angular, alpha 1, noise-corrected)"``."""
        return describe_measure(self.measure, self.params())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    def fit(self, a: Representation, b: Representation) -> Any:
        return None

    @abstractmethod
    def evaluate(self, a: Representation, b: Representation, state: Any) -> tuple[float, dict]:
        """Value (and details) on aligned representations, given the output of :meth:`fit`."""

    def check(self, a: Representation, b: Representation) -> None:
        """Validate shapes for this measure; raise DegenerateInputError with a fix otherwise."""
        if a.n_conditions * a.n_times < 2:
            raise DegenerateInputError(f"{self.measure} needs at least 2 samples (conditions x times), got 1")

    def warn_in_sample(self, a: Representation, b: Representation) -> None:
        """Hook for measures whose in-sample value is known to be biased."""

    def score(self, a: Representation, b: Representation, *, in_sample_warning: bool = True) -> Score:
        """In-sample score of two aligned representations."""
        self.check(a, b)
        if in_sample_warning and self.fitted:
            self.warn_in_sample(a, b)
        value, details = self.evaluate(a, b, self.fit(a, b))
        return self.make_score(value, details)

    def held_out_score(self, train: tuple[Representation, Representation],
                       test: tuple[Representation, Representation]) -> float:
        """Fit on ``train``, evaluate on ``test`` (only for fitted measures)."""
        if not self.fitted:
            raise InputTypeError(f"{self.measure} learns nothing from data; held-out scoring does not apply")
        self.check(*train)
        return self.evaluate(*test, self.fit(*train))[0]

    def make_score(self, value: float, details: dict | None = None, suffix: str = "") -> Score:
        return Score(value=float(value), measure=self.measure, estimator=self.estimator + suffix,
                     convention=self.convention, metric=self.metric, details=details or {})

    def __call__(self, first: Any, second: Any, **align_options: Any) -> Score:
        a, b = align(first, second, **align_options)
        return self.score(a, b)


def centred(x: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    return x - (x.mean(0, keepdim=True) if mean is None else mean)


def pad_columns(x: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1])) if x.shape[1] < width else x


def safe_arccos(cosine: float | torch.Tensor) -> float:
    return float(np.arccos(np.clip(float(cosine), -1.0, 1.0)))


def angle_between(x: torch.Tensor, y: torch.Tensor) -> float:
    """Angle between two arrays seen as vectors, 2 atan2(|x^ - y^|, |x^ + y^|) with x^ = x / |x|.

    Unlike arccos of the cosine (whose round-off of 1e-16 becomes an angle of 1e-8), this is
    accurate near 0 and pi: the angle of an array with itself is 0 to machine precision.
    """
    xn, yn = x / torch.linalg.norm(x), y / torch.linalg.norm(y)
    return float(2.0 * torch.atan2(torch.linalg.norm(xn - yn), torch.linalg.norm(xn + yn)))


def nonzero_norm(x: torch.Tensor, what: str) -> torch.Tensor:
    norm = torch.linalg.norm(x)
    if float(norm) <= 1e-12 * max(1.0, float(x.abs().max())) or float(norm) == 0.0:
        raise DegenerateInputError(f"{what} is constant (zero variance after centring); the measure is undefined")
    return norm


def check_option(name: str, value: Any, allowed: tuple) -> None:
    """Refuse a ``value`` of option ``name`` outside ``allowed`` (the package's one message format)."""
    check_params({name: Rule(Options(*allowed))}, **{name: value})


def measure_options(cls: type[Any], options: dict) -> tuple[dict, dict]:
    """Split the keywords of a measure function into ``cls``'s constructor options and :func:`align`'s."""
    import inspect

    own = {name for name in inspect.signature(cls.__init__).parameters if name != "self"}
    return {k: v for k, v in options.items() if k in own}, {k: v for k, v in options.items() if k not in own}


#: display names of the measure families
TITLES = {"procrustes": "Procrustes", "shape_metric": "Shape metric", "cca": "CCA", "svcca": "SVCCA", "cka": "CKA",
          "rsa": "RSA", "dsa": "DSA", "predictivity": "Linear predictivity"}


def describe_measure(measure: str, params: Mapping[str, Any]) -> str:
    """``"CKA (linear, hsic gretton, noise-corrected)"`` from a measure name and its parameters."""
    words = []
    for key, value in params.items():
        if key == "noise":
            words.append("noise-corrected")
        elif key == "center" and value in (True, "True"):
            continue  # centring is the default of every measure that has it
        elif isinstance(value, bool) or value in ("True", "False"):
            words.append(key if value in (True, "True") else f"no {key}")
        elif key in ("kind", "kernel", "output", "comparison", "model"):
            words.append(str(value))
        else:
            words.append(f"{key} {value}")
    title = TITLES.get(measure, measure)
    return f"{title} ({', '.join(words)})" if words else title


def measure_label(ds: Any, estimator: str) -> str:
    """The label of ``estimator`` in a comparison result: its ``label`` coordinate, or one made from the name."""
    import re

    if "label" in getattr(ds, "coords", {}) and "measure" in ds["label"].dims:
        return str(ds["label"].sel(measure=estimator).values)
    name, *rest = re.split(r"-(?=[a-z_]+=)", str(estimator))
    params = dict(part.split("=", 1) for part in rest)
    return describe_measure(name, params)
