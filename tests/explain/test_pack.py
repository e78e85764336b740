"""The explained escalation score is the score of the policy that decides the turn: the
assistant passes its policy in, with the thresholds it decides with."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.components import escalation_policy
from assistant.perception.intents import Intent
from assistant.turn.policy import PolicyInput, PolicyThresholds, decide
from explain.pack import TextScorers, text_attributions
from explain.text_shap import SessionTerms, escalation_text_score

INTENTS = ["order_status", "complaint", "human_agent"]
# "transfer" is not one of the words by which the policy recognises an ask for a person, so only
# the intent model's probability (0.7) can make this message an explicit ask.
MODEL_ASKS = "please transfer me now"
MESSAGES = [MODEL_ASKS, "where is my parcel", "this is a scam", "the zipper broke, I am angry"]


def toy_sentiment(texts: list[str]) -> np.ndarray:
    return np.array([-0.8 if ("angry" in t or "broke" in t) else 0.0 for t in texts])


def toy_intents(texts: list[str]) -> np.ndarray:
    rows = []
    for text in texts:
        if "transfer" in text:
            rows.append([0.1, 0.2, 0.7])
        elif "broke" in text or "scam" in text:
            rows.append([0.1, 0.8, 0.1])
        else:
            rows.append([0.9, 0.05, 0.05])
    return np.array(rows)


def policy_score(text: str, thresholds: PolicyThresholds, session: SessionTerms) -> float:
    """The escalation score `decide` gives the message, from the inputs the engine passes it."""
    probabilities = dict(zip(INTENTS, toy_intents([text])[0], strict=True))
    intent = max(probabilities, key=lambda name: probabilities[name])
    data = PolicyInput(
        text=text,
        intent=Intent(intent),
        intent_confidence=probabilities[intent],
        sentiment_score=float(toy_sentiment([text])[0]),
        sentiment_trend=session.trend,
        consecutive_negative=0,
        unresolved_count=session.unresolved,
        photo_given=False,
        photo_confident=False,
        has_answer=True,
        ambiguous=False,
        p_human=probabilities["human_agent"],
        p_complaint=probabilities["complaint"],
    )
    return decide(data, thresholds).escalation_score


@pytest.mark.unit
@pytest.mark.parametrize("confidence", [0.5, 0.8])
@pytest.mark.parametrize("session", [SessionTerms(), SessionTerms(trend=-0.3, unresolved=1)])
def test_explained_escalation_score_is_the_policys_own_score(
    confidence: float, session: SessionTerms
) -> None:
    thresholds = PolicyThresholds(human_intent_confidence=confidence)
    score = escalation_text_score(
        toy_sentiment, toy_intents, INTENTS, session, policy=escalation_policy(thresholds)
    )
    expected = [policy_score(text, thresholds, session) for text in MESSAGES]
    np.testing.assert_allclose(score(MESSAGES), expected)


@pytest.mark.unit
def test_raising_the_human_intent_threshold_lowers_the_explained_score() -> None:
    def explained(confidence: float) -> float:
        policy = escalation_policy(PolicyThresholds(human_intent_confidence=confidence))
        return float(
            escalation_text_score(toy_sentiment, toy_intents, INTENTS, policy=policy)([MODEL_ASKS])[
                0
            ]
        )

    # At 0.5 the model's 0.7 is an explicit ask for a person (counted as P(human) = 1); at 0.8
    # it is only its probability. P(complaint) = 0.2 adds 0.25 * 0.2 either way.
    assert explained(0.5) == pytest.approx(0.65 + 0.25 * 0.2)
    assert explained(0.8) == pytest.approx(0.65 * 0.7 + 0.25 * 0.2, abs=1e-3)


@pytest.mark.slow
def test_turn_attributions_explain_the_score_of_the_policy_passed_in() -> None:
    thresholds = PolicyThresholds(human_intent_confidence=0.8)
    scorers = TextScorers(
        sentiment=toy_sentiment,
        sentiment_model="toy",
        escalation=escalation_policy(thresholds),
        intent=toy_intents,
        intent_classes=INTENTS,
        intent_model="toy",
    )
    by_target = {a.target: a for a in text_attributions(MODEL_ASKS, "en", scorers, 50)}
    escalation = by_target["escalation"]
    assert escalation.output == pytest.approx(policy_score(MODEL_ASKS, thresholds, SessionTerms()))
    assert escalation.base_value + sum(escalation.values) == pytest.approx(escalation.output)
