"""`shopsight review`: does a review's photo show the reviewed product?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from assistant.cli.common import JsonOption, build_components, emit, user_errors


def review(
    product_id: Annotated[str, typer.Argument(help="The reviewed product's id.")],
    photo: Annotated[Path, typer.Option("--photo", help="The photo attached to the review.")],
    text: Annotated[str, typer.Option("--text", help="The review text.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Check that a review's photo shows the reviewed product; flag it for a moderator if not."""
    from assistant.services.review import UnknownProduct, check_review
    from knowledge_base.images import load_image

    with user_errors():
        components = build_components()
        settings = components.settings
        image = load_image(photo, settings.max_image_pixels, settings.max_image_side)
        mood = components.sentiment.analyze(text) if text else None
        try:
            result = check_review(
                product_id,
                (mood.score, mood.label) if mood else (0.0, "neutral"),
                image,
                components.photo_matcher,
            )
        except UnknownProduct as exc:
            raise FileNotFoundError(str(exc)) from exc

    def render() -> None:
        verdict = "FLAG for moderator" if result.flag_for_moderator else "OK"
        typer.echo(
            f"{verdict}: photo similarity {result.match_score:.2f} (threshold {result.threshold:.2f})"
        )
        for reason in result.reasons:
            typer.echo(f"  - {reason}")
        typer.echo(f"  review sentiment: {result.sentiment_label} ({result.sentiment_score:+.2f})")

    emit(result, as_json, render)
    if result.flag_for_moderator:
        raise typer.Exit(4)


def register(app: typer.Typer) -> None:
    app.command("review")(review)
