"""SHAP word attributions: tokenisation, JSON/HTML output, redacted text, the escalation score
of the assistant's own policy, and real explanations of the lexicon sentiment models (English
VADER, Chinese SnowNLP)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.components import escalation_policy
from assistant.perception.sentiment import snownlp, vader
from assistant.turn.policy import PolicyThresholds
from assistant.turn.safety import redact
from explain.text_shap import (
    SessionTerms,
    TextExplanation,
    WordTokenizer,
    escalation_text_score,
    explain_text,
    word_spans,
)


def words(text: str) -> list[str]:
    return [text[start:end] for start, end in word_spans(text)]


def english_sentiment(texts: list[str]) -> np.ndarray:
    return vader().score_batch(texts)


def chinese_sentiment(texts: list[str]) -> np.ndarray:
    return snownlp().score_batch(texts)


def keyword_intents(texts: list[str]) -> np.ndarray:
    """Three toy intents: probability mass follows the keywords present."""
    rows = []
    for text in texts:
        lowered = text.lower()
        logits = np.array(
            [
                2.0 * ("refund" in lowered),
                2.0 * ("where" in lowered) + 1.0 * ("parcel" in lowered),
                4.0 * ("human" in lowered),
            ]
        )
        rows.append(np.exp(logits) / np.exp(logits).sum())
    return np.array(rows)


INTENTS = ["return_refund", "order_status", "human_agent"]
POLICY = escalation_policy(PolicyThresholds())


def sample_explanation() -> TextExplanation:
    return TextExplanation(
        tokens=["great", "<b>shoes</b>", "broke"],
        values=[0.5, 0.0, -0.25],
        base_value=0.1,
        output=0.35,
        output_name="sentiment",
        segments=["great ", "<b>shoes</b> ", "broke!"],
        language="en",
        max_evals=50,
    )


@pytest.mark.unit
def test_english_is_split_into_words_and_free_standing_punctuation() -> None:
    assert words('"Great" shoes, don\'t they? :)') == ["Great", "shoes", "don't", "they", ":)"]


@pytest.mark.unit
def test_chinese_is_split_into_jieba_words_not_characters_or_clauses() -> None:
    tokens = words("拉链两天就坏了，我要退款")
    assert "拉链" in tokens and "退款" in tokens
    assert "".join(tokens) == "拉链两天就坏了我要退款"


@pytest.mark.unit
def test_mixed_text_and_redaction_placeholders_are_single_words() -> None:
    assert words("订单 A123 的拉链坏了 [email] [phone]") == [
        "订单",
        "A123",
        "的",
        "拉链",
        "坏",
        "了",
        "[email]",
        "[phone]",
    ]


@pytest.mark.unit
def test_tokenizer_offsets_cover_the_whole_text_so_no_punctuation_is_lost() -> None:
    text = '"Refund me now!"'
    out = WordTokenizer()(text)
    assert out["input_ids"] == ["Refund", "me", "now"]
    assert out["offset_mapping"][0][0] == 0
    assert out["offset_mapping"][-1][1] == len(text)
    assert WordTokenizer()("")["input_ids"] == []


@pytest.mark.unit
def test_top_orders_by_strength_or_by_sign() -> None:
    explanation = sample_explanation()
    assert explanation.top(1) == [0]
    assert explanation.top(1, sign=-1) == [2]
    assert explanation.top(2, sign=1) == [0, 1]


@pytest.mark.unit
def test_json_round_trips_with_tokens_values_base_and_output() -> None:
    explanation = sample_explanation()
    data = json.loads(explanation.to_json())
    assert data["tokens"] == explanation.tokens
    assert data["values"] == explanation.values
    assert data["base_value"] == 0.1 and data["output"] == 0.35
    assert TextExplanation.from_json(explanation.to_json()) == explanation


@pytest.mark.unit
def test_html_escapes_the_text_and_colours_by_sign() -> None:
    page = sample_explanation().to_html()
    assert "<b>" not in page and "&lt;b&gt;shoes&lt;/b&gt;" in page
    assert 'title="+0.5000" style="background-color:rgba(255,13,87,0.85)' in page
    assert 'title="-0.2500" style="background-color:rgba(30,136,229,0.42)' in page
    assert "broke</span>!" in page


@pytest.mark.unit
def test_escalation_score_reacts_to_risk_words_and_explicit_asks() -> None:
    score = escalation_text_score(english_sentiment, policy=POLICY)
    calm, risky, asks = score(["thanks, all good", "this is a scam", "let me talk to a human"])
    assert calm == 0.0
    assert risky >= 0.7
    assert asks >= 0.65


@pytest.mark.unit
def test_escalation_score_holds_the_session_terms_fixed() -> None:
    texts = ["thanks, all good", "where is my parcel"]
    base = escalation_text_score(english_sentiment, policy=POLICY)(texts)
    tense = escalation_text_score(
        english_sentiment, session=SessionTerms(trend=-0.4, unresolved=1), policy=POLICY
    )
    np.testing.assert_allclose(tense(texts), np.minimum(1.0, base + 0.5 * 0.4 + 0.2))


@pytest.mark.unit
def test_escalation_score_uses_the_intent_probabilities() -> None:
    score = escalation_text_score(english_sentiment, keyword_intents, INTENTS, policy=POLICY)
    plain, human = score(["where is my parcel", "human please"])
    assert plain < 0.6 <= human
    with pytest.raises(ValueError, match="intent_classes"):
        escalation_text_score(english_sentiment, keyword_intents, policy=POLICY)


@pytest.mark.slow
def test_english_complaint_puts_the_most_negative_weight_on_broke_or_refund() -> None:
    explanation = explain_text(
        english_sentiment, "the zipper broke after two days, I want a refund", "en"
    )
    most_negative = explanation.tokens[explanation.top(1, sign=-1)[0]]
    assert most_negative in {"broke", "refund"}
    assert explanation.output < 0
    assert explanation.base_value + sum(explanation.values) == pytest.approx(explanation.output)


@pytest.mark.slow
def test_chinese_complaint_puts_the_most_negative_weight_on_broken_or_refund() -> None:
    explanation = explain_text(chinese_sentiment, "拉链两天就坏了，我要退款", "zh")
    assert "拉链" in explanation.tokens
    most_negative = explanation.tokens[explanation.top(1, sign=-1)[0]]
    assert most_negative in {"坏", "坏了", "退款"}
    assert explanation.base_value + sum(explanation.values) == pytest.approx(explanation.output)


@pytest.mark.slow
def test_redacted_text_is_explained_without_the_personal_data() -> None:
    seen: list[str] = []

    def recording(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return english_sentiment(texts)

    text = "awful service, write to jane.doe@example.com or call +1 415 555 0100"
    explanation = explain_text(recording, redact(text), "en")
    stored = explanation.to_json() + explanation.to_html() + " ".join(seen)
    assert "jane.doe" not in stored and "415 555" not in stored
    assert "[email]" in explanation.tokens and "[phone]" in explanation.tokens
    assert explanation.text == "awful service, write to [email] or call [phone]"


@pytest.mark.slow
def test_multi_output_explains_the_predicted_class_or_the_named_one() -> None:
    text = "where is my parcel, I want a human"
    predicted = explain_text(keyword_intents, text, "en", output_names=INTENTS)
    assert predicted.output_name == "human_agent"
    assert predicted.tokens[predicted.top(1, sign=1)[0]] == "human"
    chosen = explain_text(keyword_intents, text, "en", output_names=INTENTS, target="order_status")
    assert chosen.output_name == "order_status"
    assert chosen.tokens[chosen.top(1, sign=1)[0]] == "where"
    with pytest.raises(ValueError, match="unknown output"):
        explain_text(keyword_intents, text, "en", output_names=INTENTS, target="refund")


@pytest.mark.slow
def test_escalation_explanation_points_at_the_risk_word() -> None:
    score = escalation_text_score(english_sentiment, keyword_intents, INTENTS, policy=POLICY)
    explanation = explain_text(score, "the parcel is late and this shop is a scam", "en")
    assert explanation.tokens[explanation.top(1, sign=1)[0]] == "scam"


@pytest.mark.unit
def test_a_text_without_words_has_an_empty_explanation() -> None:
    explanation = explain_text(english_sentiment, "   ", "en")
    assert explanation.tokens == [] and explanation.values == []
    assert explanation.output == explanation.base_value == 0.0
