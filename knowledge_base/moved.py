"""Old import paths of moved modules keep working for one release, with a DeprecationWarning.

A package lists its moves once (old dotted name → new one); importing an old name returns the
module at its new home, the same object, so there is never a second copy of a module's state.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, moves: Mapping[str, str]) -> None:
        self.moves = dict(moves)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.moves:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = self.moves[spec.name]
        warnings.warn(
            f"{spec.name} has moved to {new}; import it from there", DeprecationWarning, 2
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module was executed at its new home."""


def alias_moved_modules(moves: Mapping[str, str]) -> None:
    """Serve each old module name from its new module (first on the import path, so an old
    package name that is now another package's alias never loads a module twice)."""
    sys.meta_path.insert(0, _MovedModules(moves))
