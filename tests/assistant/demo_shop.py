"""The demo shop's folder, simulated customer photos of its products, and demo stores.

Ingesting the demo shop with the real E5 embedder takes about a minute, so a test session does
it once (`demo_store` in tests/conftest.py) and every package that needs a store of its own
starts from a copy of it (`demo_components`). SHOPSIGHT_TEST_DEMO_STORE may name a data folder
ingested before, to skip even that first ingestion.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from assistant.components import Components
from assistant.settings import Settings
from knowledge_base.demo import DEMO_SHOP
from knowledge_base.loaders import load_paths
from retrieval.simulate import simulate_customer_photo

DEMO = DEMO_SHOP


def customer_photo(product_id: str) -> bytes:
    """A simulated customer photo of a demo product (crop, rotation, light, blur, JPEG)."""
    image = Image.open(DEMO / "images" / f"{product_id}.png").convert("RGB")
    buffer = io.BytesIO()
    simulate_customer_photo(image).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def ingest_demo_shop(components: Components) -> None:
    """Ingest the demo shop (finds everything unchanged in a copied store)."""
    report = components.ingestor.ingest(load_paths([DEMO / "products.json", DEMO / "articles"]))
    assert report.ok, report.rejections


def demo_components(template: Path, data_dir: Path, **settings: Any) -> Components:
    """Components over a copy of the ingested demo store in `template`, in `data_dir`."""
    shutil.copytree(template / "chroma", data_dir / "chroma")
    values: dict[str, Any] = {"data_dir": data_dir, "text_embedder": "e5"} | settings
    components = Components(Settings(**values), progress=False)
    ingest_demo_shop(components)
    return components
