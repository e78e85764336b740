"""The explanations of one turn: SHAP for its text decisions, Grad-CAM for its photo.

Plain score functions and images come in, typed views and PNG files come out; which models
score what, and the escalation policy that turns their scores into the escalation score, are
decided by the caller (the assistant's evidence service), so this module stays testable with toy
scorers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from explain.render import overlay, side_by_side, to_png
from explain.text_shap import (
    ScoreFn,
    SessionTerms,
    TextExplanation,
    escalation_text_score,
    explain_text,
)
from explain.types import EscalationPolicy, HeatmapView, TextAttribution

if TYPE_CHECKING:
    from explain.gradcam import GradCam
    from explain.matcher_cam import MatcherCam
    from retrieval.heads.category import CategoryClassifier

SIMILARITY_FILE = "similarity.png"
CATEGORY_FILE = "category.png"


@dataclass
class TextScorers:
    """The batched scores behind a turn's text decisions, for the message's language, and the
    escalation policy of the turn (with its thresholds) that combines them."""

    sentiment: ScoreFn
    sentiment_model: str
    escalation: EscalationPolicy
    intent: ScoreFn | None = None
    intent_classes: Sequence[str] = ()
    intent_model: str = ""
    intent_target: str | None = None
    session: SessionTerms = field(default_factory=SessionTerms)


def memoised(score_fn: ScoreFn) -> ScoreFn:
    """`score_fn` that scores each distinct text once: the intent and escalation explanations of
    one message ask for the same masked variants, and the intent model is the slow one."""
    cache: dict[str, np.ndarray] = {}

    def score(texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            for text, row in zip(missing, np.asarray(score_fn(missing)), strict=True):
                cache[text] = row
        return np.stack([cache[t] for t in texts]) if texts else np.zeros(0)

    return score


def text_attributions(
    text: str, language: str, scorers: TextScorers, max_evals: int
) -> list[TextAttribution]:
    """SHAP word attributions of the sentiment score, the intent and the escalation score of
    `text`, which the caller has redacted."""
    if not text.strip():
        return []
    intent_fn = memoised(scorers.intent) if scorers.intent is not None else None
    out = [
        _view(
            "sentiment",
            scorers.sentiment_model,
            explain_text(scorers.sentiment, text, language, max_evals, ["sentiment"]),
        )
    ]
    if intent_fn is not None:
        classes = list(scorers.intent_classes)
        target = scorers.intent_target if scorers.intent_target in classes else None
        explanation = explain_text(
            intent_fn, text, language, max_evals, output_names=classes, target=target
        )
        out.append(_view("intent", scorers.intent_model, explanation))
    escalation = escalation_text_score(
        scorers.sentiment,
        intent_fn,
        scorers.intent_classes,
        scorers.session,
        policy=scorers.escalation,
    )
    out.append(
        _view(
            "escalation",
            "policy.escalation_score",
            explain_text(escalation, text, language, max_evals, ["escalation score"]),
        )
    )
    return out


def _view(target: str, model: str, explanation: TextExplanation) -> TextAttribution:
    return TextAttribution.model_validate(
        {
            "target": target,
            "model": model,
            "output_name": explanation.output_name,
            "output": round(explanation.output, 6),
            "base_value": round(explanation.base_value, 6),
            "tokens": explanation.tokens,
            "values": [round(v, 6) for v in explanation.values],
            "html": explanation.to_html(),
        }
    )


def photo_heatmaps(
    gradcam: GradCam,
    photo: Image.Image,
    folder: Path,
    catalogue: Image.Image | None = None,
    catalogue_title: str = "",
    classifier: CategoryClassifier | None = None,
    similarity: GradCam | MatcherCam | None = None,
) -> list[HeatmapView]:
    """Grad-CAM overlays written into `folder`: the photo against the matched catalogue image
    (both sides), by `similarity` (the model photo search ranked with; default `gradcam`'s
    frozen encoder), and the photo's predicted category when a trained head exists."""
    folder.mkdir(parents=True, exist_ok=True)
    views: list[HeatmapView] = []
    if catalogue is not None:
        photo_cam, catalogue_cam = (similarity or gradcam).similarity_pair(photo, catalogue)
        picture = side_by_side(
            photo, photo_cam.heatmap, catalogue, catalogue_cam.heatmap, ("your photo", "catalogue")
        )
        (folder / SIMILARITY_FILE).write_bytes(to_png(picture))
        views.append(
            HeatmapView(
                kind="similarity",
                title=f"why the photo matches {catalogue_title}".strip(),
                score=round(photo_cam.score, 4),
                file=SIMILARITY_FILE,
            )
        )
    if classifier is not None:
        cam = gradcam.classifier(photo, classifier)
        (folder / CATEGORY_FILE).write_bytes(to_png(overlay(photo, cam.heatmap)))
        label = cam.target.removeprefix("category:")
        views.append(
            HeatmapView(
                kind="category",
                title=f"where the photo looks like {label}",
                score=round(cam.score, 4),
                file=CATEGORY_FILE,
            )
        )
    return views
