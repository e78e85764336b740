"""The models the turn engine asks: language, sentiment and intent, with typed results.

`ModelPerception` (in `models`) puts them behind the engine's `Perception` protocol.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # `from assistant.perception import ModelPerception` (its module before this package).
    if name in {"ModelPerception", "SNOWNLP_NEUTRAL_BAND"}:
        from assistant.perception import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
