"""Named extension points: executors, load backends, script templates.

An extension is one file: a class that registers itself by name when its module is imported
(``class MyExecutor(Executor, name="mine")``). There is no enum and no if-chain to edit
elsewhere. A registry finds its extensions in two places, once, on first lookup:

- every module of the package that holds the built-ins (so a new built-in is a new file);
- the ``aifactory.<kind>`` entry-point group of every installed distribution, so a site can
  ship its own executor or backend as a package without touching this one.

A class defined anywhere else (a test file, a notebook) registers the moment it is defined.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
import re
import threading
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Extension names appear in settings, recipes and command lines: keep them boring.
NAME_RE = re.compile(r"^[a-z][a-z0-9_+-]{0,31}$")


class ExtensionError(LookupError, ValueError):
    """An extension name that is malformed, unknown, or registered twice.

    A ``ValueError`` too, so pydantic reports it at the field that named the extension.
    """


class Registry(Generic[T]):
    """Extensions of one kind, by name."""

    def __init__(self, kind: str, builtin_package: str) -> None:
        self.kind = kind
        self.builtin_package = builtin_package
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False
        self._lock = threading.RLock()

    @property
    def entry_point_group(self) -> str:
        return f"aifactory.{self.kind}"

    def register(self, name: str, obj: T, *, origin: str) -> T:
        """Add ``obj`` under ``name``; ``origin`` is the defining module (for the error)."""
        if not NAME_RE.fullmatch(name):
            raise ExtensionError(
                f"{self.kind} name {name!r} is not allowed: 1-32 of a-z 0-9 _ + -, "
                "starting with a letter"
            )
        with self._lock:
            previous = self._origins.get(name)
            if previous is not None and previous != origin:
                raise ExtensionError(
                    f"{self.kind} {name!r} is registered twice: by {previous} and by {origin}"
                )
            self._entries[name] = obj
            self._origins[name] = origin
        return obj

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise ExtensionError(
                f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} "
                f"{name!r}; known: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def modules(self) -> list[str]:
        """The modules that registered something: a spawned child imports them to match."""
        self._load()
        return sorted(set(self._origins.values()))

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True  # set first: the imports below re-enter through register()
            package = importlib.import_module(self.builtin_package)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.builtin_package}.{info.name}")
            for entry in importlib.metadata.entry_points(group=self.entry_point_group):
                try:
                    entry.load()
                except Exception:  # a broken third-party plugin must not break the rest
                    log.exception("cannot load %s plugin %s (%s)", self.kind, entry.name, entry)
