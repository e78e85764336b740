"""The `shopsight` command line: one module per command group, assembled by `build_app()`.

Front ends only translate: each command turns its options into a call on the components or a
service and the result into a table or JSON.
"""

from __future__ import annotations

from typing import Any

import typer


def build_app() -> typer.Typer:
    """A fresh `shopsight` app with every command group registered, in a fixed order."""
    from assistant.cli import (
        alignment,
        category,
        chat,
        conversations,
        demo,
        explain,
        faq,
        intent,
        kb,
        photo_search,
        review,
        sentiment,
        serve,
    )

    app = typer.Typer(
        help="ShopSight: a multimodal customer-service assistant for online shops.",
        no_args_is_help=True,
    )
    kb.register(app)
    train_app = typer.Typer(
        help="Train heads on the shop's own labelled data.", no_args_is_help=True
    )
    eval_app = typer.Typer(
        help="Measure quality on labelled data; writes Markdown + JSON reports.",
        no_args_is_help=True,
    )
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    for module in (category, photo_search, alignment, faq, intent, sentiment):
        module.register(train_app, eval_app)
    conversations.register(eval_app)
    for group in (demo, chat, explain, serve, review):
        group.register(app)
    return app


def main() -> None:
    """The `shopsight` console script."""
    from assistant.cli.common import passive_openmp

    passive_openmp()
    build_app()()


def __getattr__(name: str) -> Any:
    # `from assistant.cli import app` (the module-level app of earlier releases) still works.
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build_app", "main"]
