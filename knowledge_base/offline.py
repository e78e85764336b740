"""Keep every model offline: a hidden hub download must fail loudly, never hang or succeed."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

OFFLINE_VARIABLES = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class MissingDependency(ImportError):
    """An optional package is not installed; the message names the pip command."""


def enforce_offline() -> None:
    """Set the hub's offline switches; must run before transformers is first imported."""
    for name, value in OFFLINE_VARIABLES.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def require(module: str, package: str) -> ModuleType:
    """Import `module` or fail with the one line that fixes it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is not installed: run `pip install {package}` (or `make install`)"
        ) from exc
