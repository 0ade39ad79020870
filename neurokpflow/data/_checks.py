"""Declarative option checks for the readers, on the package's validation module.

Each :func:`Rule` says what a valid value is and how to fix a bad one; :func:`check_options`
raises the rule's error class (a subclass of :class:`InvalidOptionError`, itself a ``ValueError``
and a ``TypeError``) with one line ``"<option>=<value>: expected <what>; <fix>"``.  Checks run
before anything is computed from the options.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from .._validation import Rule as _Rule
from .._validation import Satisfies, check_params, shown
from .errors import BinningError, InvalidOptionError


def Rule(test: Callable[[Any], bool], expect: str, fix: str, error: type = InvalidOptionError) -> _Rule:
    """A reader option's rule: values for which ``test`` holds, described by ``expect``."""
    return _Rule((Satisfies(test, expect),), fix, error=error)


def _real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def positive_seconds(x) -> bool:
    return _real(x) and math.isfinite(x) and x > 0


def window_pair(x) -> bool:
    if x is None:
        return True
    if isinstance(x, (str, bytes)) or len(x) != 2 or not all(_real(v) for v in x):
        return False
    return math.isfinite(x[0]) and math.isfinite(x[1]) and x[0] < x[1]


def flag(x) -> bool:
    return isinstance(x, (bool, np.bool_))


def positive_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not flag(x) and int(x) >= 1


def id_list(x) -> bool:
    if x is None:
        return True
    if isinstance(x, (str, bytes, Mapping)):
        return False
    arr = np.asarray(list(x))
    return arr.ndim == 1 and (arr.size == 0 or arr.dtype.kind in "iu")


def name_list(x) -> bool:
    if x is None or isinstance(x, str):
        return True
    if isinstance(x, Mapping):
        return all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in x.items())
    try:
        return all(isinstance(v, str) for v in x)
    except TypeError:
        return False


def alignment(x) -> bool:
    if isinstance(x, str):
        return True
    try:
        arr = np.asarray(x)
    except Exception:
        return False
    return arr.ndim == 1 and arr.dtype.kind in "iuf"


def one_of(*choices) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, (str, bool)) and x in choices


#: raise the rule's error for the first option whose value fails its rule (the package's one format)
check_options = check_params


#: the options of :func:`neurokpflow.data.read_nwb` (and the time grid).
READ_RULES: dict[str, _Rule] = {
    "bin_size": Rule(positive_seconds, "a positive, finite number of seconds", "e.g. bin_size=0.01", BinningError),
    "window": Rule(window_pair, "None or (start, stop) in seconds with start < stop, both finite",
                   "e.g. window=(-0.5, 1.0)", BinningError),
    "resample": Rule(one_of("mean", "sum", "linear"), "one of 'mean', 'sum', 'linear'", "e.g. resample='mean'"),
    "units": Rule(lambda x: flag(x) or isinstance(x, str), "'auto', True, False, or a Units table's name or path",
                  "see describe_nwb(path) for the Units tables"),
    "intervals": Rule(lambda x: x is None or isinstance(x, str),
                      "None (trials if present, else the whole session), 'session', or an interval table's name or path",
                      "see describe_nwb(path) for the interval tables"),
    "series": Rule(name_list, "None, 'all', a name or path, a list of them, or a mapping name -> feature dim",
                   "see describe_nwb(path) for the series"),
    "align_to": Rule(alignment, "a column or event-table name, or one absolute time per trial",
                     "e.g. align_to='start_time'"),
    "trial_ids": Rule(id_list, "None or a list of integer trial ids", "e.g. trial_ids=[0, 1, 2]"),
    "unit_ids": Rule(id_list, "None or a list of integer unit ids", "e.g. unit_ids=[0, 1, 2]"),
    "clip_to_trial": Rule(flag, "True or False", "e.g. clip_to_trial=True"),
    "non_overlapping": Rule(flag, "True or False", "e.g. non_overlapping=False"),
    "lazy": Rule(flag, "True or False", "e.g. lazy=False"),
    "units_per_chunk": Rule(positive_int, "a positive integer", "e.g. units_per_chunk=64"),
}
