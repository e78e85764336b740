"""The demo shop's folder and simulated customer photos of its products."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from retrieval.simulate import simulate_customer_photo

DEMO = Path(__file__).resolve().parents[2] / "knowledge_base" / "demo_shop"


def customer_photo(product_id: str) -> bytes:
    """A simulated customer photo of a demo product (crop, rotation, light, blur, JPEG)."""
    image = Image.open(DEMO / "images" / f"{product_id}.png").convert("RGB")
    buffer = io.BytesIO()
    simulate_customer_photo(image).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
