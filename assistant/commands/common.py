"""What every train/eval command shares: the `--json` flag, JSON output and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from retrieval.offline import MissingDependency

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ArtifactsOutOption = Annotated[
    Path | None, typer.Option(help="Artefacts folder (default: SHOPSIGHT_DATA_DIR/artifacts).")
]
ReportsOutOption = Annotated[
    Path | None, typer.Option(help="Report folder (default: SHOPSIGHT_DATA_DIR/reports).")
]
err_console = Console(stderr=True, soft_wrap=True)
USER_ERRORS: tuple[type[Exception], ...] = (FileNotFoundError, ValueError, MissingDependency)


@contextmanager
def user_errors(*extra: type[Exception]) -> Iterator[None]:
    """Bad input becomes one line on stderr and exit status 1, not a traceback."""
    try:
        yield
    except (*USER_ERRORS, *extra) as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
