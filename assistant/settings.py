"""One settings object for the whole application, read from SHOPSIGHT_* variables and `.env`."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TextEmbedderName = Literal["e5", "minilm", "minilm-static", "hash"]


class Settings(BaseSettings):
    """Every tunable of ShopSight; lower layers receive plain values from here, never this object."""

    model_config = SettingsConfigDict(env_prefix="SHOPSIGHT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of everything the app writes.")
    chroma_path: Path | None = Field(
        None, description="Embedded Chroma folder; default DATA_DIR/chroma."
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL, e.g. http://127.0.0.1:8000."
    )
    collection_prefix: str = Field(
        "shopsight", description="Prefix of the three Chroma collections."
    )

    text_embedder: TextEmbedderName = Field(
        "e5",
        description="e5 = multilingual (zh+en); minilm = English only; minilm-static = English, "
        "distilled static embeddings (hundreds of times faster, less exact); hash = test double.",
    )
    ingest_batch_size: int = Field(32, ge=1, le=1024)
    chunk_size: int = Field(600, ge=100, description="Characters per article chunk.")
    chunk_overlap: int = Field(80, ge=0)

    max_image_pixels: int = Field(40_000_000, description="Larger images are refused (bomb guard).")
    max_image_side: int = Field(
        1024, description="Images are downscaled to this side before encoding."
    )
    max_upload_mb: float = Field(10.0, gt=0)

    hnsw_m: int = Field(32, ge=4)
    hnsw_construction_ef: int = Field(200, ge=10)
    hnsw_search_ef: int = Field(200, ge=10)
    text_index: Literal["hnsw", "exact"] = Field(
        "exact",
        description="Dense text search over an exact in-memory copy of the product and article "
        "vectors (recall 1.0; ~1.6 GB per million records at 384-d), or Chroma's HNSW graph.",
    )
    photo_index: Literal["hnsw", "exact"] = Field(
        "exact",
        description="Photo search over an exact in-memory copy of the image vectors (recall "
        "1.0; ~0.5 GB per 100k images at 1280-d, 0.7 GB with a trained matcher), or Chroma's "
        "HNSW graph (for millions of images; recall@10 0.44 at 100k in bench/search.py).",
    )

    database_url: str | None = Field(
        None,
        description="Conversation store (SQLAlchemy URL); default sqlite:///DATA_DIR/sessions.db.",
    )
    max_text_chars: int = Field(4000, ge=1, description="Longest accepted chat message.")
    article_min_score: float = Field(
        0.85, description="Dense similarity under which an article is not cited as an answer."
    )
    product_text_min_score: float = Field(
        0.86, description="Dense similarity for a product named in text to become the context."
    )
    escalation_trend: float = Field(-0.35, description="Sentiment trend at which to escalate.")
    escalation_streak: int = Field(2, ge=1, description="Consecutive negative turns to escalate.")
    unresolved_repeats: int = Field(
        2, ge=1, description="Unresolved repeats of one request to escalate."
    )
    shap_max_evals: int = Field(300, ge=10, description="Budget of one SHAP text explanation.")
    evidence_mode: Literal["background", "on_demand", "off"] = Field(
        "background",
        description="Explanations of each turn: computed after the reply (background), when "
        "first asked for (on_demand), or never (off).",
    )
    clip_model_path: Path | None = Field(
        None,
        description="A CLIP-style checkpoint folder (save_pretrained output) for text→image "
        "search; unset: the alignment head trained by `shopsight train align`.",
    )
    drafter: Literal["none", "smollm2", "openai"] = Field(
        "none",
        description="A chat model that rewrites grounded answers (checked against the sources): "
        "none, the bundled SmolLM2, or an OpenAI-compatible endpoint.",
    )
    drafter_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 (Ollama)."
    )
    drafter_model: str | None = Field(None, description="Model name at that endpoint.")
    drafter_api_key: SecretStr | None = Field(None, description="API key of that endpoint.")
    drafter_timeout_s: float = Field(20.0, gt=0, description="Longest wait for a draft.")
    drafter_max_tokens: int = Field(160, ge=16, description="Longest draft, in tokens.")

    log_json: bool = Field(False, description="Emit JSON log lines instead of console lines.")
    log_level: str = Field("INFO")

    # --- the web service (`shopsight serve`, `python app.py`) ---------------------------------
    host: str = Field("127.0.0.1", description="Address the web service listens on.")
    port: int = Field(
        7860, ge=0, le=65535, description="Port of the web service (0: any free one)."
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SHA-256 hex digests of the agent API keys (comma-separated or a JSON list); "
        "make one with: python -c \"import hashlib;print(hashlib.sha256(b'KEY').hexdigest())\"",
    )
    admin_api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SHA-256 hex digests of the admin API keys (knowledge-base ingestion); an "
        "admin key is also accepted wherever an agent key is.",
    )
    rate_limit_session_per_minute: int = Field(
        20, ge=0, description="Chat turns per session per minute (0 = unlimited)."
    )
    rate_limit_client_per_minute: int = Field(
        60,
        ge=0,
        description="Public requests (chat, search, deleting one's session) per client address "
        "per minute (0 = unlimited). Requests with a valid API key are not limited.",
    )
    turn_concurrency: int = Field(
        3,
        ge=1,
        description="Chat turns the service computes at once; more requests wait. On 2 cores, "
        "20 busy sessions got a client p95 (median of runs) of 2.3 s with 1, 1.5 s with 2, "
        "1.3 s with 3 and 1.3 s with 4 (bench/load.py): a turn waits on I/O and locks part "
        "of the time.",
    )
    max_ingest_mb: float = Field(
        100.0, gt=0, description="Largest catalogue file or zip accepted by POST /v1/kb/ingest."
    )
    max_ingest_unzipped_mb: float = Field(
        1000.0, gt=0, description="Largest total size of the files extracted from one zip."
    )
    warm_up: bool = Field(
        True, description="Load the models when the service starts, before the first chat."
    )

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _key_digests(cls, value: Any) -> Any:
        """Accept "a,b", a JSON list or a list; each entry must be a SHA-256 hex digest."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [part for part in re.split(r"[\s,]+", text) if part]
        if not isinstance(value, list):
            return value
        digests = [str(item).strip().lower() for item in value]
        for digest in digests:
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(
                    "API keys are configured as SHA-256 hex digests (64 hex characters), never "
                    'as the keys themselves: python -c "import hashlib;'
                    "print(hashlib.sha256(b'KEY').hexdigest())\""
                )
        return digests

    @model_validator(mode="after")
    def _default_chroma_path(self) -> Settings:
        if self.chroma_path is None:
            self.chroma_path = self.data_dir / "chroma"
        return self

    @property
    def artifacts_dir(self) -> Path:
        """Trained heads and their metrics live here."""
        return self.data_dir / "artifacts"

    @property
    def cache_dir(self) -> Path:
        """Derived data that can be rebuilt: image features, distilled models, eval stores."""
        return self.data_dir / "cache"

    @property
    def evidence_dir(self) -> Path:
        """Evidence packs (explanations and heatmaps), one folder per turn."""
        return self.data_dir / "evidence"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'sessions.db').resolve()}"

    @property
    def resolved_chroma_path(self) -> Path:
        assert self.chroma_path is not None
        return self.chroma_path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process; tests build their own `Settings(...)` instead."""
    return Settings()
