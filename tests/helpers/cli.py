"""The `train` and `eval` command groups of the command line, for one module's commands."""

from __future__ import annotations

from collections.abc import Callable

import typer

Register = Callable[[typer.Typer, typer.Typer], None]


def train_eval_app(register: Register) -> typer.Typer:
    """An app with `train` and `eval` groups holding the commands that `register` adds."""
    app, train_app, eval_app = typer.Typer(), typer.Typer(), typer.Typer()
    register(train_app, eval_app)
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    return app
