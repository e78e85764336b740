"""Metadata fields as numpy columns, so a filter is one vectorised test over every record.

Calling a Python predicate per record cost ~40 ms per query at 100,000 products (a BM25 query
for "men" has tens of thousands of candidates); a comparison over a column costs a few.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class MetadataColumns:
    """Columns of a fixed list of metadata dicts, built on first use and then kept."""

    def __init__(self, metadatas: Sequence[Mapping[str, Any]]) -> None:
        self.size = len(metadatas)
        self._metadatas = metadatas
        self._columns: dict[str, np.ndarray] = {}
        self._vocabularies: dict[str, dict[Any, int]] = {}
        self._lock = threading.RLock()

    def values(self, name: str) -> np.ndarray:
        """The field's values as an object array (None where a record lacks it)."""
        return self._column(name, lambda: _objects([m.get(name) for m in self._metadatas]))

    def numbers(self, name: str) -> np.ndarray:
        """The field as floats; NaN where it is missing or not a number (booleans included),
        so every comparison with it is False, as for a record that lacks the field."""
        return self._column(
            f"{name}#number",
            lambda: np.asarray([_number(m.get(name)) for m in self._metadatas], dtype=np.float64),
        )

    def one_of(self, name: str, allowed: frozenset[str]) -> np.ndarray:
        """Whether each record's field is one of `allowed`: a lookup of integer codes."""
        codes = self._column(f"{name}#codes", lambda: self._codes(name))
        vocabulary = self._vocabularies[name]
        return np.isin(codes, [vocabulary[v] for v in allowed if v in vocabulary])

    def _codes(self, name: str) -> np.ndarray:
        vocabulary: dict[Any, int] = {}
        codes = [vocabulary.setdefault(v, len(vocabulary)) for v in self.values(name).tolist()]
        self._vocabularies[name] = vocabulary
        return np.asarray(codes, dtype=np.int64)

    def _column(self, key: str, build: Any) -> np.ndarray:
        with self._lock:
            if key not in self._columns:
                self._columns[key] = build()
            return self._columns[key]


def _objects(values: list[Any]) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value)
