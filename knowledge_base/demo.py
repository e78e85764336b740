"""Where the bundled demo shop and its evaluation questions live (installed with the package)."""

from pathlib import Path

DEMO_SHOP = Path(__file__).resolve().parent / "demo_shop"
DEMO_EVAL = Path(__file__).resolve().parent / "demo_eval"
