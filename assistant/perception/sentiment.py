"""Sentiment per message (a score in [-1, 1] and a label) and its trend over a session.

Defaults are the lexicon models shipped with their packages: VADER for English (compound score)
and SnowNLP for Chinese (P(positive) mapped to 2p - 1). When `train sentiment` has saved a
`sentiment-vN` artefact, the newest one's heads take over for the languages they were trained on. A trained
head's score is P(positive) - P(negative), so every model speaks the same [-1, 1] scale and
`score_batch` can serve SHAP, which calls it with hundreds of masked variants per message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from assistant.perception.char_ngrams import CharNgramModel
from assistant.perception.language import LANGUAGES, Language, detect_language
from knowledge_base.offline import enforce_offline, require
from retrieval import artifacts
from retrieval.calibration import softmax

Label = Literal["negative", "neutral", "positive"]
LABELS: tuple[Label, ...] = ("negative", "neutral", "positive")
ARTIFACT = "sentiment"
FORMAT_VERSION = 1
META_FILE = artifacts.META_FILE
HEAD_FILE = "head.npz"
NGRAM_FILE = "ngrams.npz"
ENCODER_DIR = "encoder"
NEUTRAL_BAND = 0.05
LEXICON_FEATURES = ("compound", "pos", "neg")


class SentimentResult(BaseModel):
    """One message's sentiment and which model produced it."""

    score: float = Field(ge=-1.0, le=1.0, description="-1 very negative … +1 very positive.")
    label: Label
    language: Language
    model: str


def label_of(score: float, neutral_band: float = NEUTRAL_BAND) -> Label:
    """VADER's convention: beyond ±`neutral_band` a score is positive or negative."""
    if score > neutral_band:
        return "positive"
    if score < -neutral_band:
        return "negative"
    return "neutral"


class Scorer(Protocol):
    """Anything that scores a batch of texts of one language in [-1, 1]."""

    name: str

    def score_batch(self, texts: Sequence[str]) -> np.ndarray: ...


class VaderScorer:
    """English lexicon model: VADER's compound score (every Chinese text gets 0.0)."""

    name = "vader"

    def __init__(self) -> None:
        module = require("vaderSentiment.vaderSentiment", "vaderSentiment")
        self._analyzer = module.SentimentIntensityAnalyzer()

    def polarity(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 3) compound, positive and negative shares: extra features for a trained head."""
        rows = [self._analyzer.polarity_scores(text) for text in texts]
        return np.array([[row[key] for key in LEXICON_FEATURES] for row in rows], dtype=np.float32)

    def score_batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [self._analyzer.polarity_scores(text)["compound"] for text in texts], dtype=np.float64
        )


class SnowNLPScorer:
    """Chinese lexicon model: SnowNLP's naive Bayes P(positive) as 2p - 1."""

    name = "snownlp"

    def __init__(self) -> None:
        self._snownlp = require("snownlp", "snownlp").SnowNLP

    def score_batch(self, texts: Sequence[str]) -> np.ndarray:
        # SnowNLP has no opinion about an empty text (it would say 0.5 anyway); skip the call.
        probabilities = [self._snownlp(text).sentiments if text.strip() else 0.5 for text in texts]
        return np.clip(2.0 * np.asarray(probabilities, dtype=np.float64) - 1.0, -1.0, 1.0)


def score_from_probabilities(probabilities: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """P(positive) - P(negative): 2p - 1 for a two-class head, and neutral mass pulls to 0."""
    columns = list(classes)
    positive = probabilities[:, columns.index("positive")] if "positive" in columns else 0.0
    negative = probabilities[:, columns.index("negative")] if "negative" in columns else 0.0
    return np.clip(np.asarray(positive - negative, dtype=np.float64), -1.0, 1.0)


class LinearHead:
    """Softmax layer stored as numpy arrays (weights `w` (d, k), bias `b` (k,))."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, classes: Sequence[str]) -> None:
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.classes = tuple(classes)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(features, dtype=np.float32) @ self.weights + self.bias)

    def save(self, path: Path) -> None:
        np.savez(path, w=self.weights, b=self.bias, classes=np.array(self.classes))

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        with np.load(path) as arrays:
            return cls(arrays["w"], arrays["b"], [str(c) for c in arrays["classes"]])


class EmbeddingHeadScorer:
    """A linear head over frozen text embeddings (E5 or MiniLM), optionally plus VADER features.

    Texts are embedded as passages: E5's engine embeds a passage batch in one call but queries
    one by one, and SHAP sends hundreds of variants at once. `embed` replaces the registry's
    embedder (training passes its cache).
    """

    def __init__(
        self,
        name: str,
        embedder: str,
        head: LinearHead,
        lexicon: bool,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.embedder = embedder
        self.head = head
        self.lexicon = lexicon
        self._embed = embed

    def features(self, texts: Sequence[str]) -> np.ndarray:
        from retrieval.encoders.registry import get_text_embedder

        if self._embed is not None:
            rows = self._embed(texts)
        else:
            rows = get_text_embedder(self.embedder).embed_texts(list(texts), kind="passage")
        if self.lexicon:
            rows = np.hstack([rows, vader().polarity(texts)])
        return rows

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.head.probabilities(self.features(texts))

    def score_batch(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float64)
        return score_from_probabilities(self.probabilities(texts), self.head.classes)


class NgramEmbeddingScorer(EmbeddingHeadScorer):
    """The embedding head's features plus one more, a character n-gram model's logit
    (`assistant.perception.char_ngrams`): stacked, so the head weighs what the embedding blurs
    (short sentiment phrases) against what n-grams miss (meaning, negation far away)."""

    def __init__(
        self,
        name: str,
        embedder: str,
        head: LinearHead,
        lexicon: bool,
        ngrams: CharNgramModel,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    ) -> None:
        super().__init__(name, embedder, head, lexicon, embed)
        self.ngrams = ngrams

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return np.hstack([super().features(texts), self.ngrams.logit(texts)[:, None]])


class FineTunedScorer:
    """A fine-tuned transformer encoder (mean pooling) with a linear head on top."""

    def __init__(
        self,
        name: str,
        tokenizer: Any,
        encoder: Any,
        head: LinearHead,
        lexicon: bool,
        max_seq_len: int,
        batch_size: int = 64,
    ) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.encoder = encoder.eval()
        self.head = head
        self.lexicon = lexicon
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, name: str, folder: Path, head: LinearHead, lexicon: bool, max_seq_len: int
    ) -> FineTunedScorer:
        """Tokenizer and encoder from a `save_pretrained` folder, offline."""
        enforce_offline()
        transformers = require("transformers", "transformers")
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        encoder = transformers.AutoModel.from_pretrained(str(folder))
        return cls(name, tokenizer, encoder, head, lexicon, max_seq_len)

    def pooled(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled last hidden states, the features the head was trained on."""
        import torch

        chunks = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_len,
                    return_tensors="pt",
                )
                hidden = self.encoder(**batch).last_hidden_state
                chunks.append(mean_pool(hidden, batch["attention_mask"]).numpy())
        return np.concatenate(chunks).astype(np.float32)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        features = self.pooled(texts)
        if self.lexicon:
            features = np.hstack([features, vader().polarity(texts)])
        return self.head.probabilities(features)

    def score_batch(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float64)
        return score_from_probabilities(self.probabilities(texts), self.head.classes)


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Average of the token states that are not padding (sentence-transformers' pooling)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


@lru_cache(maxsize=1)
def vader() -> VaderScorer:
    """The process-wide VADER scorer (its lexicon takes a moment to load)."""
    return VaderScorer()


@lru_cache(maxsize=1)
def snownlp() -> SnowNLPScorer:
    """The process-wide SnowNLP scorer."""
    return SnowNLPScorer()


def lexicon_model(language: Language) -> Scorer:
    """The lexicon scorer of a language: VADER for English, SnowNLP for Chinese."""
    return vader() if language == "en" else snownlp()


def latest_model_dir(artifacts_dir: Path | None = None) -> Path | None:
    """The newest complete `sentiment-vN/` under `artifacts_dir` (default:
    SHOPSIGHT_DATA_DIR/artifacts), or None when none was trained."""
    if artifacts_dir is None:
        from assistant.settings import get_settings

        artifacts_dir = get_settings().artifacts_dir
    return artifacts.latest(artifacts_dir, ARTIFACT)


def read_meta(folder: Path) -> dict[str, Any]:
    """The artefact's meta.json; a clear error when the folder is not a sentiment artefact."""
    path = folder / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: not a sentiment model (no {META_FILE}); "
            "train one with `shopsight train sentiment --data CSV`"
        )
    meta = artifacts.read_meta(folder)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{folder}: sentiment model format {meta.get('format_version')!r}, "
            f"this version reads {FORMAT_VERSION}; retrain it"
        )
    return meta


def load_head(folder: Path, language: str, spec: dict[str, Any]) -> Scorer:
    """Build the scorer one `heads` entry of meta.json describes."""
    head_dir = folder / spec["path"]
    head = LinearHead.load(head_dir / HEAD_FILE)
    name = f"{folder.name}/{language}:{spec['method']}"
    if spec["kind"] == "embedding":
        return EmbeddingHeadScorer(name, spec["embedder"], head, spec["lexicon"])
    if spec["kind"] == "ngram-embedding":
        ngrams = CharNgramModel.load(head_dir / NGRAM_FILE)
        return NgramEmbeddingScorer(name, spec["embedder"], head, spec["lexicon"], ngrams)
    if spec["kind"] == "finetuned":
        return FineTunedScorer.load(
            name, head_dir / ENCODER_DIR, head, spec["lexicon"], spec["max_seq_len"]
        )
    raise ValueError(f"{folder}: unknown head kind {spec['kind']!r} for {language}")


class SentimentAnalyzer:
    """Scores messages with the trained heads where an artefact has them, else the lexicons.

    `model_dir=None` looks for the newest `sentiment-vN` under the artefacts folder and uses the
    lexicon models when there is none; an explicit `model_dir` must exist. `use_trained=False`
    forces the lexicon models (the baseline the evaluation reports beside the trained heads).
    Heads load on first use, so building an analyzer is cheap.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        use_trained: bool = True,
        neutral_band: float = NEUTRAL_BAND,
    ) -> None:
        self.neutral_band = neutral_band
        self.model_dir: Path | None = None
        self.meta: dict[str, Any] = {}
        if use_trained:
            folder = model_dir or latest_model_dir()
            if folder is not None:
                self.meta = read_meta(folder)
                self.model_dir = folder
        self._scorers: dict[Language, Scorer] = {}
        self._lock = threading.Lock()

    @property
    def trained_languages(self) -> list[str]:
        return sorted(self.meta.get("heads", {}))

    def scorer(self, language: Language) -> Scorer:
        """The trained head of `language` when the artefact has one, else its lexicon model."""
        with self._lock:
            if language not in self._scorers:
                spec = self.meta.get("heads", {}).get(language)
                if spec is not None and self.model_dir is not None:
                    self._scorers[language] = load_head(self.model_dir, language, spec)
                else:
                    self._scorers[language] = lexicon_model(language)
            return self._scorers[language]

    def model_name(self, language: Language) -> str:
        spec = self.meta.get("heads", {}).get(language)
        if spec is not None and self.model_dir is not None:
            return f"{self.model_dir.name}/{language}:{spec['method']}"
        return "vader" if language == "en" else "snownlp"

    def score_batch(self, texts: Sequence[str], language: Language | None = None) -> np.ndarray:
        """Scores in [-1, 1], one per text, routed per text by language.

        Pass `language` to score every text with one language's model: SHAP's masked variants
        of a message should all go to the model that scored the message itself.
        """
        languages = [language or detect_language(t).language for t in texts]
        return self._scores(list(texts), languages)

    def analyze_batch(
        self, texts: Sequence[str], language: Language | None = None
    ) -> list[SentimentResult]:
        """Score, label, language and model per text (`language` forces one language)."""
        languages = [language or detect_language(text).language for text in texts]
        scores = self._scores(list(texts), languages)
        return [
            SentimentResult(
                score=float(score),
                label=label_of(float(score), self.neutral_band),
                language=lang,
                model=self.model_name(lang),
            )
            for score, lang in zip(scores, languages, strict=True)
        ]

    def analyze(self, text: str, language: Language | None = None) -> SentimentResult:
        return self.analyze_batch([text], language)[0]

    def _scores(self, texts: list[str], languages: list[Language]) -> np.ndarray:
        scores = np.zeros(len(texts), dtype=np.float64)
        for language in LANGUAGES:
            index = [i for i, chosen in enumerate(languages) if chosen == language]
            if index:
                scores[index] = self.scorer(language).score_batch([texts[i] for i in index])
        return np.clip(scores, -1.0, 1.0)


class SessionTrend(BaseModel):
    """Exponentially weighted sentiment of a session, plus the run of negative turns.

    A session starts neutral (0.0), so one angry message moves the trend only part of the way
    (by `alpha`); several in a row drive it down. The policy reads `value` and
    `consecutive_negative` to decide when to hand over to a human. Stored as a plain dict in the
    conversation memory (`to_dict` / `from_dict`).
    """

    alpha: float = Field(0.5, gt=0.0, le=1.0, description="Weight of the newest message.")
    value: float = Field(0.0, ge=-1.0, le=1.0)
    turns: int = Field(0, ge=0)
    consecutive_negative: int = Field(0, ge=0)
    last_score: float | None = None

    def update(self, result: SentimentResult) -> float:
        """Add one message's result; returns the new trend value."""
        self.value = (1.0 - self.alpha) * self.value + self.alpha * result.score
        self.turns += 1
        self.consecutive_negative = (
            self.consecutive_negative + 1 if result.label == "negative" else 0
        )
        self.last_score = result.score
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionTrend:
        return cls.model_validate(data)
