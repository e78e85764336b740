"""`shopsight eval conversations`: play scripted conversations and score what each turn did."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import JsonOption, ReportsOutOption, build_components, user_errors
from assistant.settings import Settings

console = Console(stderr=True)

DEFAULT_DATA_ROOT = Path("../shared/data")


def register(eval_app: typer.Typer) -> None:
    eval_app.command("conversations")(eval_conversations_command)


def eval_conversations_command(
    scripts: Annotated[
        Path,
        typer.Option("--scripts", help="Folder of YAML conversation scripts (searched deeply)."),
    ],
    url: Annotated[
        str | None,
        typer.Option(
            help="Play the scripts against this running server over REST (default: in process)."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="SHOPSIGHT_API_KEY", help="X-API-Key sent with --url.")
    ] = None,
    data_root: Annotated[
        Path, typer.Option(help="Folder the scripts' `photo:` paths are under.")
    ] = DEFAULT_DATA_ROOT,
    out: ReportsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score scripted conversations: task success per kind, photo, ticket and search figures."""
    from assistant.evaluation.conversations import (
        PhotoMaker,
        ScriptError,
        ServerRefused,
        conversation_report,
        load_scripts,
        rest_sender,
        run_scripts,
    )

    with user_errors(ScriptError, ServerRefused):
        loaded = load_scripts(scripts)
        if url:
            send, target = rest_sender(url, api_key), f"REST {url}"
        else:
            components = build_components()
            components.settings.evidence_mode = "on_demand"
            send, target = components.engine.handle_turn, f"in process, {components.store.location}"
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("conversations", total=len(loaded))
            outcomes = run_scripts(
                loaded, send, PhotoMaker(data_root), lambda _: progress.advance(task)
            )
        report = conversation_report(loaded, outcomes, str(scripts), target)
        report.write(out or Settings().data_dir / "reports")
    if as_json:
        sys.stdout.write(json.dumps(report.model_dump(mode="json"), ensure_ascii=False) + "\n")
        return
    table = Table("metric", "value", title=f"Conversations: {len(outcomes)} scripts, {target}")
    for name, value in report.metrics.items():
        table.add_row(name, f"{value:g}")
    Console().print(table)
    for failure in report.details["failures"][:20]:
        Console().print(
            f"[red]✗[/] {failure['script']} turn {failure['turn']}: {'; '.join(failure['failures'])}"
        )
    Console().print(f"Reports: {', '.join(report.files)}")
