"""The real models behind the engine's `Perception` protocol, loaded lazily and once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from retrieval.search.hybrid import HybridSearcher, SearchFilters
from retrieval.search.types import ArticleMatch

if TYPE_CHECKING:
    from assistant.perception.intent import IntentClassifier
    from assistant.perception.sentiment import SentimentAnalyzer
    from retrieval.search.photo import PhotoMatcher


# SnowNLP scores plain questions as negative ("退货政策是什么？" → -0.71, "这个多少钱？" → -0.40)
# while real complaints score below -0.85, so only strong scores count as a negative turn.
SNOWNLP_NEUTRAL_BAND = 0.75


class ModelPerception:
    """Sentiment, intent, photo matching and hybrid retrieval for one engine."""

    def __init__(
        self,
        sentiment: SentimentAnalyzer,
        intent: IntentClassifier,
        photo: PhotoMatcher,
        hybrid: HybridSearcher,
    ) -> None:
        self._sentiment = sentiment
        self._intent = intent
        self._photo = photo
        self._hybrid = hybrid

    def sentiment(self, text: str, language: str) -> tuple[float, str, str]:
        result = self._sentiment.analyze(text)
        label = result.label
        if result.model == "snownlp" and abs(result.score) < SNOWNLP_NEUTRAL_BAND:
            label = "neutral"
        return result.score, label, result.model

    def intent(self, text: str, language: str) -> tuple[str, float, str, dict[str, float]]:
        result = self._intent.classify(text)
        return str(result.intent.value), result.confidence, result.model, dict(result.alternatives)

    def photo(self, image: Image.Image, k: int) -> tuple[list[tuple[str, float, str | None]], bool]:
        result = self._photo.search(image, k=k)
        matches = [
            (m.product_id, result.confidence if i == 0 else m.score, m.matched_image)
            for i, m in enumerate(result.matches)
        ]
        return matches, result.confident

    def articles(self, query: str, k: int, language: str | None) -> list[ArticleMatch]:
        filters = SearchFilters(language=language) if language else None
        return list(self._hybrid.articles(query, k=k, filters=filters))

    def products(self, query: str, k: int) -> list[tuple[str, float]]:
        return [
            (m.product_id, float(m.dense_score or 0.0)) for m in self._hybrid.products(query, k=k)
        ]
