"""The package's one extension pattern: a registry of named entries that declare their capabilities.

Tasks, model kinds (cells), comparison measures, datasets and NWB series readers are each a
:class:`Registry`.  An entry is a factory plus the capabilities it declares; code asks an entry
what it can do (``MEASURES["dsa"].capabilities["per_time_bin"]``) instead of testing its name, and
the contract tests are generated from the registries, so a new entry is tested automatically.

Adding an entry (here a measure)::

    from neurokpflow.compare import MEASURES, CKA

    MEASURES.register("cka_unbiased", lambda: CKA(debiased=True, hsic="lange"),
                      description="CKA with Lange's unbiased HSIC")

Every registry names its capabilities and their defaults; an entry that declares an unknown one
is refused, so a typo cannot silently fall back to a default.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import InputError, InputTypeError, UnknownNameError

__all__ = ["Entry", "Registry"]


@dataclass(frozen=True)
class Entry:
    """A registered name: ``factory(**options)`` builds it; ``capabilities`` says what it supports."""

    name: str
    factory: Callable[..., Any]
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.factory(*args, **options)

    def supports(self, capability: str) -> bool:
        """Whether the capability is true for this entry."""
        return bool(self.capabilities[capability])


class Registry(Mapping):
    """``name -> Entry`` for one kind of extension, with the capabilities every entry declares.

    ``capabilities``: capability name -> default (used when an entry does not declare it).
    Iterating gives the names in registration order; ``registry[name]`` the :class:`Entry`
    (callable: ``registry[name]()`` builds it).
    """

    def __init__(self, kind: str, capabilities: Mapping[str, Any] | None = None):
        self.kind = kind
        self.capability_defaults = MappingProxyType(dict(capabilities or {}))
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, factory: Callable[..., Any] | None = None, *, description: str = "",
                 replace: bool = False, **capabilities: Any):
        """Register ``factory`` under ``name`` (or, without ``factory``, return a decorator that does).

        ``capabilities`` must be among the registry's; the others take their defaults.  A name
        already registered is refused unless ``replace=True``.
        """
        if factory is None:
            return lambda f: self.register(name, f, description=description, replace=replace, **capabilities) or f
        if not isinstance(name, str) or not name:
            raise InputTypeError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise InputTypeError(f"the factory of {self.kind} {name!r} must be callable, got {type(factory).__name__}")
        unknown = sorted(set(capabilities) - set(self.capability_defaults))
        if unknown:
            raise InputError(f"{self.kind} {name!r} declares unknown capabilities {unknown}; the {self.kind} "
                             f"registry knows {sorted(self.capability_defaults)}")
        if name in self._entries and not replace:
            raise InputError(f"{self.kind} {name!r} is already registered; pass replace=True to replace it")
        entry = Entry(name, factory, MappingProxyType({**self.capability_defaults, **capabilities}), description)
        self._entries[name] = entry
        return entry

    def add(self, entry: Entry, *, replace: bool = False) -> Entry:
        """Register a ready-made entry (a subclass of :class:`Entry` carrying its own fields)."""
        if not isinstance(entry, Entry):
            raise InputTypeError(f"a {self.kind} entry must be an Entry, got {type(entry).__name__}")
        unknown = sorted(set(entry.capabilities) - set(self.capability_defaults))
        if unknown:
            raise InputError(f"{self.kind} {entry.name!r} declares unknown capabilities {unknown}; the {self.kind} "
                             f"registry knows {sorted(self.capability_defaults)}")
        if entry.name in self._entries and not replace:
            raise InputError(f"{self.kind} {entry.name!r} is already registered; pass replace=True to replace it")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self[name]  # an unknown name raises
        del self._entries[name]

    def make(self, name: str, *args: Any, **options: Any) -> Any:
        """Build the entry ``name`` with ``options``."""
        return self[name](*args, **options)

    def names(self, **capabilities: Any) -> list:
        """Names of the entries whose capabilities equal the given values (all names without filters)."""
        unknown = sorted(set(capabilities) - set(self.capability_defaults))
        if unknown:
            raise InputError(f"unknown {self.kind} capabilities {unknown}; known: {sorted(self.capability_defaults)}")
        return [n for n, e in self._entries.items()
                if all(e.capabilities[k] == v for k, v in capabilities.items())]

    def __getitem__(self, name: str) -> Entry:
        """The entry of ``name``; an unknown name raises :class:`~neurokpflow.errors.UnknownNameError` (a
        ``KeyError``) listing the known ones (``registry.get(name)`` gives ``None`` instead)."""
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}")

    def __setitem__(self, name: str, entry: Entry) -> None:
        """``registry[name] = entry`` replaces (or adds) a ready-made entry named ``name``."""
        if not isinstance(entry, Entry) or entry.name != name:
            raise InputError(f"registry[{name!r}] = ... needs an Entry named {name!r}")
        self.add(entry, replace=True)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
