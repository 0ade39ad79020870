"""Declarative parameter checks, one message format, one seed convention, one dtype resolver.

Constraints say what a valid value is; :func:`check_params` tests named values against a table of
:class:`Rule` s and raises the rule's error (an :class:`~neurokpflow.errors.InputError` unless the
rule names a subclass) with one line::

    <name>=<value>: expected <what the constraints accept>; <how to fix it>

A value satisfies a rule when it satisfies *any* of its constraints (``[None, Interval(...)]``
accepts ``None`` or a number in the interval), as in scikit-learn's ``_param_validation``.

Seeds (everywhere in the package): ``None`` draws fresh OS entropy, so two calls differ; an int
(or a numpy ``SeedSequence``) makes a call reproducible; a numpy ``Generator`` or a
``torch.Generator`` is used as given.  :func:`numpy_rng` and :func:`torch_generator` implement it.

Dtypes: :func:`resolve_dtype` turns ``"float32"``, ``"float64"`` or the torch dtypes into a torch
dtype; :func:`dtype_name` goes back.

This module imports only :mod:`neurokpflow.errors` from the package (torch lazily).
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union, cast

import numpy as np

from .errors import InputError, InputTypeError

__all__ = ["Constraint", "Interval", "Options", "InstanceOf", "Flag", "Satisfies", "Rule", "check_params",
           "shown", "OptionsMixin", "split_fields", "DTYPES", "resolve_dtype", "dtype_name", "numpy_rng", "torch_generator", "new_seed"]


class Constraint(ABC):
    """One way a value can be valid: :meth:`accepts` tests it, :meth:`describe` says it in words."""

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """Whether ``value`` satisfies the constraint."""

    @abstractmethod
    def describe(self) -> str:
        """The constraint in words, completing "expected ..."."""

    def type_ok(self, value: Any) -> bool:
        """Whether ``value`` has a type this constraint could accept (else the error is a ``TypeError``)."""
        return True


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Interval(Constraint):
    """A real (``kind=numbers.Real``) or integer (``numbers.Integral``) number in an interval.

    ``closed``: ``"both"``, ``"left"``, ``"right"`` or ``"neither"`` (which ends are included);
    ``None`` ends are unbounded.  Booleans and non-finite numbers are refused.
    """

    kind: type = numbers.Real
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def accepts(self, value) -> bool:
        if not self.type_ok(value):
            return False
        if not math.isfinite(float(value)):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def type_ok(self, value) -> bool:
        return isinstance(value, self.kind) and not _is_bool(value)

    def describe(self) -> str:
        what = "an integer" if self.kind is numbers.Integral else "a finite number"
        if self.low is None and self.high is None:
            return what
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{what} in {left}{low}, {high}{right}"


@dataclass(frozen=True, init=False)
class Options(Constraint):
    """One of a fixed set of values (compared with ``==``; booleans only match booleans)."""

    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    def accepts(self, value) -> bool:
        try:
            return any(value == v and _is_bool(value) == _is_bool(v) for v in self.values)
        except Exception:  # arrays and other values without a truth value
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def type_ok(self, value) -> bool:
        return any(isinstance(value, type(v)) or (isinstance(v, numbers.Number) and isinstance(value, numbers.Number))
                   for v in self.values if v is not None)


@dataclass(frozen=True, init=False)
class InstanceOf(Constraint):
    """An instance of one of ``types`` (``name`` replaces the type names in messages)."""

    types: tuple
    name: str | None = None

    def __init__(self, *types, name: str | None = None):
        object.__setattr__(self, "types", tuple(types))
        object.__setattr__(self, "name", name)

    def accepts(self, value) -> bool:
        return isinstance(value, self.types)

    def describe(self) -> str:
        return self.name or "an instance of " + " or ".join(t.__name__ for t in self.types)

    def type_ok(self, value) -> bool:
        return isinstance(value, self.types)


@dataclass(frozen=True)
class Flag(Constraint):
    """``True`` or ``False``."""

    def accepts(self, value) -> bool:
        return _is_bool(value)

    def describe(self) -> str:
        return "True or False"

    def type_ok(self, value) -> bool:
        return _is_bool(value)


@dataclass(frozen=True)
class Satisfies(Constraint):
    """Any value for which ``test(value)`` is true (a test that raises counts as false)."""

    test: Callable[[Any], bool]
    description: str

    def accepts(self, value) -> bool:
        try:
            return bool(self.test(value))
        except Exception:
            return False

    def describe(self) -> str:
        return self.description


ConstraintLike = Union[Constraint, None]


@dataclass(frozen=True)
class Rule:
    """What a parameter accepts (any of ``constraints``), how to fix a bad value and the error to raise.

    ``None`` in ``constraints`` accepts ``None``.  ``expect`` overrides the generated description.
    Without ``error``, a value whose type no constraint can accept raises
    :class:`~neurokpflow.errors.InputTypeError` (a ``TypeError``), any other refused value
    :class:`~neurokpflow.errors.InputError` (a ``ValueError``; the type error is one too).
    """

    constraints: Union[Sequence[ConstraintLike], ConstraintLike]
    fix: str = ""
    expect: str = ""
    error: type | None = None

    def __post_init__(self):
        if isinstance(self.constraints, Constraint) or self.constraints is None:
            object.__setattr__(self, "constraints", (self.constraints,))

    @property
    def _alternatives(self) -> Sequence[ConstraintLike]:
        # ``__post_init__`` has wrapped a single constraint (or None) in a tuple
        return cast(Sequence[ConstraintLike], self.constraints)

    def accepts(self, value) -> bool:
        return any(value is None if c is None else c.accepts(value) for c in self._alternatives)

    def describe(self) -> str:
        if self.expect:
            return self.expect
        words = ["None" if c is None else c.describe() for c in self._alternatives]
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]

    def error_class(self, value=None) -> type:
        if self.error is not None:
            return self.error
        if value is not None and not any(c is not None and c.type_ok(value) for c in self._alternatives):
            return InputTypeError
        return InputError


def shown(value) -> str:
    """``repr(value)``, shortened to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_params(rules: Mapping[str, Rule], **values) -> None:
    """Raise the rule's error for the first named value that its rule refuses.

    >>> check_params({"lr": Rule(Interval(low=0, closed="neither"), "e.g. lr=1e-3")}, lr=0.01)
    >>> check_params({"lr": Rule(Interval(low=0, closed="neither"), "e.g. lr=1e-3")}, lr=-1)
    Traceback (most recent call last):
    ...
    neurokpflow.errors.InputError: lr=-1: expected a finite number in (0, inf); e.g. lr=1e-3
    """
    for name, value in values.items():
        rule = rules[name]
        if not rule.accepts(value):
            message = f"{name}={shown(value)}: expected {rule.describe()}"
            raise rule.error_class(value)(message + (f"; {rule.fix}" if rule.fix else ""))


# ----------------------------------------------------------------------------------------- dtypes
#: names accepted for the floating dtypes of models and analyses
DTYPES = ("float32", "float64")


def resolve_dtype(dtype, name: str = "dtype"):
    """``torch.float32`` / ``torch.float64`` from a name (``"float32"``, ``"float64"``) or the dtype itself."""
    import torch

    table = {"float32": torch.float32, "float64": torch.float64}
    if isinstance(dtype, str) and dtype in table:
        return table[dtype]
    if dtype in (torch.float32, torch.float64):
        return dtype
    raise InputError(f"{name}={shown(dtype)}: expected 'float32', 'float64', torch.float32 or torch.float64; "
                     "e.g. dtype='float64' for analyses")


def dtype_name(dtype) -> str:
    """``"float32"`` for ``torch.float32`` (and any name :func:`resolve_dtype` accepts)."""
    return str(resolve_dtype(dtype)).replace("torch.", "")


# ------------------------------------------------------------------------------------------ seeds
_SEED_RULE = Rule((None, Interval(numbers.Integral, 0, None),
                   InstanceOf(np.random.SeedSequence, np.random.Generator, name="a numpy SeedSequence or Generator")),
                  "pass None (fresh entropy), a non-negative int or a numpy Generator")


def new_seed() -> int:
    """A fresh 63-bit seed from OS entropy."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] & np.uint64(2**63 - 1))


def numpy_rng(seed, name: str = "seed") -> np.random.Generator:
    """A numpy ``Generator`` under the package's seed convention (``None``: fresh OS entropy).

    A ``Generator`` is returned as is (so draws continue from it).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    check_params({name: _SEED_RULE}, **{name: seed})
    return np.random.default_rng(seed)


def torch_generator(seed, device="cpu", name: str = "seed"):
    """A ``torch.Generator`` on ``device`` under the package's seed convention (``None``: fresh OS entropy).

    A ``torch.Generator`` is returned as is.
    """
    import torch

    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        seed = new_seed()
    check_params({name: Rule(Interval(numbers.Integral, 0, None),
                             "pass None (fresh entropy), a non-negative int or a torch.Generator")}, **{name: seed})
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


# ---------------------------------------------------------------------------------------- options
def _plain(value):
    """A JSON-friendly copy of an option value (torch dtypes by name, tuples as lists)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return str(value).replace("torch.", "")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return repr(value)


class OptionsMixin:
    """Behaviour shared by the package's options objects (frozen dataclasses).

    * ``RULES``: a class-level ``{field: Rule}`` table checked once, at construction;
    * :meth:`to_dict` / :meth:`to_json`: the options as plain values (they go into provenance attrs);
    * :meth:`replace`: a copy with some fields changed (validated again);
    * :meth:`resolve`: what a function does with ``options=`` plus ``**fields`` forwarded from its
      keyword arguments (the fields override the object; an unknown name is refused).
    """

    RULES: ClassVar[Mapping[str, Rule]] = {}

    def __post_init__(self):
        check_params(self.RULES, **{name: getattr(self, name) for name in self.RULES})

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def resolve(cls, options=None, fields: Mapping | None = None, where: str = ""):
        """``options`` (an instance, a mapping of fields or ``None``) with ``fields`` applied on top."""
        fields = dict(fields or {})
        unknown = sorted(set(fields) - set(cls.field_names()))
        if unknown:
            raise InputTypeError(f"{where or cls.__name__}() got unexpected keyword argument(s) {unknown}; "
                                 f"{cls.__name__} has {', '.join(cls.field_names())}")
        if options is None:
            return cls(**fields)
        if isinstance(options, Mapping):
            return cls.resolve(None, {**options, **fields}, where)
        if not isinstance(options, cls):
            raise InputTypeError(f"{where or cls.__name__}: options must be a {cls.__name__}, a mapping of its "
                                 f"fields or None, not {type(options).__name__}")
        return dataclasses.replace(options, **fields) if fields else options  # type: ignore[type-var]


def split_fields(fields: Mapping, where: str, *classes) -> list:
    """Share keyword ``fields`` among options classes by field name (each name must belong to one)."""
    parts: list[dict] = [{} for _ in classes]
    for name, value in fields.items():
        owner = [i for i, c in enumerate(classes) if name in c.field_names()]
        if not owner:
            known = ", ".join(n for c in classes for n in c.field_names())
            raise InputTypeError(f"{where}() got an unexpected keyword argument {name!r}; options are: {known}")
        parts[owner[0]][name] = value
    return parts
