"""The real models behind the engine's `Perception` protocol, loaded lazily and once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from assistant.turn.engine import PhotoCandidate, PhotoEvidence, ProductHit
from retrieval.search.hybrid import HybridSearcher, SearchFilters
from retrieval.search.types import ArticleMatch

if TYPE_CHECKING:
    from assistant.perception.intent import IntentClassifier, IntentResult
    from assistant.perception.sentiment import SentimentAnalyzer, SentimentResult
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

    def sentiment(self, text: str, language: str) -> SentimentResult:
        result = self._sentiment.analyze(text)
        if result.model == "snownlp" and abs(result.score) < SNOWNLP_NEUTRAL_BAND:
            return result.model_copy(update={"label": "neutral"})
        return result

    def intent(self, text: str, language: str) -> IntentResult:
        return self._intent.classify(text)

    def photo(self, image: Image.Image, k: int) -> PhotoEvidence:
        """The ranked matches; the first carries the calibrated confidence that decides whether
        the engine names the product, the others their similarity."""
        result = self._photo.search(image, k=k)
        candidates = tuple(
            PhotoCandidate(m.product_id, result.confidence if i == 0 else m.score, m.matched_image)
            for i, m in enumerate(result.matches)
        )
        return PhotoEvidence(candidates=candidates, confident=result.confident)

    def articles(self, query: str, k: int, language: str | None) -> list[ArticleMatch]:
        filters = SearchFilters(language=language) if language else None
        return list(self._hybrid.articles(query, k=k, filters=filters))

    def products(self, query: str, k: int) -> list[ProductHit]:
        return [
            ProductHit(m.product_id, float(m.dense_score or 0.0))
            for m in self._hybrid.products(query, k=k)
        ]
