"""Readiness: the models load in a background thread at startup; `/readyz` reports progress.

Loading every model before the first customer arrives keeps the first chat as fast as the
others. Liveness (`/healthz`) never waits for this.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

import structlog
from PIL import Image

from assistant.components import Components
from assistant.services.metrics import Metrics

log = structlog.get_logger(__name__)

ModelState = Literal["loading", "ready", "failed", "on first use"]


class Readiness:
    def __init__(self, components: Components, metrics: Metrics, warm_up: bool) -> None:
        self.components = components
        self.metrics = metrics
        self.warm_up = warm_up
        self.models: ModelState = "loading" if warm_up else "on first use"
        self.error: str | None = None
        self.seconds: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.warm_up and self._thread is None:
            self._thread = threading.Thread(target=self._warm, name="warm-up", daemon=True)
            self._thread.start()

    def _warm(self) -> None:
        started = time.perf_counter()
        try:
            components = self.components
            components.store.count("products")
            perception = components.engine.perception
            for text, language in (("Where is my order?", "en"), ("这个多少钱？", "zh")):
                perception.sentiment(text, language)
                perception.intent(text, language)
            perception.articles("how long does delivery take", 1, None)
            perception.products("black backpack", 1)
            probe = Image.new("RGB", (64, 64), (128, 128, 128))
            if components.store.count("images"):
                perception.photo(probe, 1)
            else:
                components.image_encoder.embed_images([probe])
            self.models = "ready"
        except Exception as exc:  # reported by /readyz; the service stays up to say so
            self.models = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("warm_up_failed")
        self.seconds = round(time.perf_counter() - started, 2)
        log.info("warm_up_done", models=self.models, seconds=self.seconds)

    def check(self) -> tuple[bool, dict[str, object]]:
        """(ready, checks): the store answers and the models are loaded (or load on first use)."""
        checks: dict[str, object] = {"models": self.models}
        if self.error:
            checks["models_error"] = self.error
        if self.seconds is not None:
            checks["warm_up_seconds"] = self.seconds
        store_ok = False
        try:
            store = self.components.store
            checks["store"] = "ok"
            checks["knowledge_base"] = {
                kind: store.count(kind) for kind in ("products", "images", "articles")
            }
            store_ok = True
        except Exception as exc:  # an unreachable Chroma server must read as "not ready"
            checks["store"] = f"unavailable: {exc}"
        ready = store_ok and self.models in ("ready", "on first use")
        self.metrics.ready.set(1 if ready else 0)
        return ready, checks
