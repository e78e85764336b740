"""The complete `shopsight` command: knowledge base, training, evaluation, chat and review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from assistant.cli import _components, _emit, _user_errors, app
from assistant.commands import (
    alignment,
    category,
    chat,
    explain,
    faq,
    intent,
    photo_search,
    sentiment,
    serve,
)
from assistant.engine import Engine

train_app = typer.Typer(help="Train heads on the shop's own labelled data.", no_args_is_help=True)
eval_app = typer.Typer(
    help="Measure quality on labelled data; writes Markdown + JSON reports.", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
for module in (category, photo_search, alignment, faq, intent, sentiment):
    module.register(train_app, eval_app)
chat.register(app)
explain.register(app)
serve.register(app)

user_errors = _user_errors


def build_engine() -> Engine:
    """The engine on the configured store, models and conversation memory.

    A terminal session keeps each turn's photo but explains turns only when asked
    (`shopsight explain`), so quitting never waits for explanations still being computed.
    """
    components = _components()
    if components.settings.evidence_mode == "background":
        components.settings.evidence_mode = "on_demand"
    return components.engine


@app.command("review")
def review(
    product_id: Annotated[str, typer.Argument(help="The reviewed product's id.")],
    photo: Annotated[Path, typer.Option("--photo", help="The photo attached to the review.")],
    text: Annotated[str, typer.Option("--text", help="The review text.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Check that a review's photo shows the reviewed product; flag it for a moderator if not."""
    from assistant.review import UnknownProduct, check_review
    from knowledge_base.images import load_image

    with user_errors():
        components = _components()
        settings = components.settings
        image = load_image(photo, settings.max_image_pixels, settings.max_image_side)
        mood = components.sentiment.analyze(text) if text else None
        try:
            result = check_review(
                product_id,
                (mood.score, mood.label) if mood else (0.0, "neutral"),
                image,
                components.store,
                components.image_encoder,
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

    _emit(result, as_json, render)
    if result.flag_for_moderator:
        raise typer.Exit(4)


if __name__ == "__main__":
    app()
