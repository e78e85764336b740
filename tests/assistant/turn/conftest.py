"""Components over the 3,000-product evaluation catalogue, for the attribute-search tests.

The store is the session's `shop3000_store` (tests/conftest.py), built once and shared with the
conversation evaluation. SHOPSIGHT_TEST_DEV_STORE may name a data folder holding the same
catalogue, ingested before (for example `data/bench/attribute-search/e5`, the text-only store
`bench/attribute_search.py` builds), to skip that build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.components import Components
from assistant.settings import Settings


@pytest.fixture(scope="session")
def dev_catalogue(request: pytest.FixtureRequest) -> Components:
    """Components (real E5 embedder, real Chroma) over the 3,000-product catalogue; skipped
    where ../shared/data is absent."""
    template = os.environ.get("SHOPSIGHT_TEST_DEV_STORE")
    if template and (Path(template) / "chroma").is_dir():
        data_dir = Path(template)
    else:
        data_dir = request.getfixturevalue("shop3000_store")
    return Components(Settings(data_dir=data_dir, text_embedder="e5"), progress=False)
