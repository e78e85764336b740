"""`ModelPerception` turns the models' results into what the engine reads, with doubles for the
models themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pytest
from PIL import Image

from assistant.perception.intent import IntentResult
from assistant.perception.intents import Intent
from assistant.perception.models import SNOWNLP_NEUTRAL_BAND, ModelPerception
from assistant.perception.sentiment import SentimentResult
from assistant.turn.engine import PhotoCandidate, PhotoEvidence, ProductHit
from retrieval.search.hybrid import HybridProductMatch
from retrieval.search.photo import PhotoMatch, PhotoSearchResult

if TYPE_CHECKING:
    from assistant.perception.intent import IntentClassifier
    from assistant.perception.sentiment import SentimentAnalyzer
    from retrieval.search.hybrid import HybridSearcher
    from retrieval.search.photo import PhotoMatcher

pytestmark = pytest.mark.unit


class Analyzer:
    def __init__(self, result: SentimentResult) -> None:
        self.result = result

    def analyze(self, text: str) -> SentimentResult:
        return self.result


class Classifier:
    def classify(self, text: str) -> IntentResult:
        return IntentResult(
            intent=Intent.HUMAN_AGENT,
            confidence=0.8,
            alternatives=[("human_agent", 0.8), ("complaint", 0.15)],
            model="fewshot",
            label="human_agent",
        )


def match(product_id: str, score: float, image: str | None = None) -> PhotoMatch:
    return PhotoMatch(
        product_id=product_id,
        title=product_id,
        score=score,
        matched_image=image,
        confidence=score,
        similarity=score,
    )


class Matcher:
    def search(self, image: Image.Image, k: int = 5, where: Any = None) -> PhotoSearchResult:
        matches = [match("a", 0.81, "images/a-2.png"), match("b", 0.74), match("c", 0.7)][:k]
        return PhotoSearchResult(matches=matches, confident=True, confidence=0.97, threshold=0.9)


class Hybrid:
    def products(self, query: str, k: int = 5) -> list[HybridProductMatch]:
        return [
            HybridProductMatch(product_id="a", title="A", score=0.03, dense_score=0.88),
            HybridProductMatch(product_id="b", title="B", score=0.02, dense_score=None),
        ][:k]


def perception(sentiment: SentimentResult | None = None) -> ModelPerception:
    result = sentiment or SentimentResult(score=0.0, label="neutral", language="en", model="vader")
    return ModelPerception(
        cast("SentimentAnalyzer", Analyzer(result)),
        cast("IntentClassifier", Classifier()),
        cast("PhotoMatcher", Matcher()),
        cast("HybridSearcher", Hybrid()),
    )


def test_weak_snownlp_scores_count_as_neutral() -> None:
    weak = SentimentResult(score=-0.71, label="negative", language="zh", model="snownlp")
    result = perception(weak).sentiment("退货政策是什么？", "zh")
    assert (result.score, result.label, result.model) == (-0.71, "neutral", "snownlp")
    assert SNOWNLP_NEUTRAL_BAND == 0.75


def test_strong_snownlp_and_other_models_keep_their_label() -> None:
    strong = SentimentResult(score=-0.9, label="negative", language="zh", model="snownlp")
    assert perception(strong).sentiment("太差了", "zh").label == "negative"
    vader = SentimentResult(score=-0.3, label="negative", language="en", model="vader")
    assert perception(vader).sentiment("meh", "en").label == "negative"


def test_the_intent_result_is_passed_through_typed() -> None:
    result = perception().intent("let me talk to someone", "en")
    assert result.intent is Intent.HUMAN_AGENT
    assert dict(result.alternatives)["complaint"] == 0.15


def test_the_top_photo_match_carries_the_calibrated_confidence() -> None:
    evidence = perception().photo(Image.new("RGB", (16, 16)), 2)
    assert evidence == PhotoEvidence(
        (PhotoCandidate("a", 0.97, "images/a-2.png"), PhotoCandidate("b", 0.74)), confident=True
    )


def test_product_text_hits_carry_the_dense_score() -> None:
    assert perception().products("black backpack", 2) == [
        ProductHit("a", 0.88),
        ProductHit("b", 0.0),
    ]
