"""`shopsight chat`: talk to the assistant in a terminal, or replay a scripted conversation."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from assistant.cli.common import build_components, user_errors
from assistant.turn.engine import Engine
from assistant.turn.safety import InputRejected
from assistant.turn.schemas import TurnRequest, TurnResult

console = Console()


class ScriptError(ValueError):
    """The conversation script is malformed; the message names the turn and the problem."""


def load_script(path: Path) -> tuple[str, list[TurnRequest]]:
    """Read a YAML script: `session`, optional `lang`, and `turns` of text/image/choose."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScriptError(f"{path}: cannot read the script: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
        raise ScriptError(f"{path}: expected a mapping with a `turns` list")
    session = str(data.get("session") or f"script-{uuid.uuid4().hex[:8]}")
    requests = []
    for number, turn in enumerate(data["turns"], start=1):
        if not isinstance(turn, dict) or not ({"text", "image", "choose"} & turn.keys()):
            raise ScriptError(f"{path}: turn {number} needs `text`, `image` or `choose`")
        image = None
        if turn.get("image"):
            image_path = (path.parent / str(turn["image"])).resolve()
            if not image_path.exists():
                raise ScriptError(f"{path}: turn {number}: image {image_path} does not exist")
            image = image_path.read_bytes()
        requests.append(
            TurnRequest(
                session_id=session,
                text=str(turn.get("text") or ""),
                image=image,
                lang=turn.get("lang") or data.get("lang"),
                chosen_product_id=turn.get("choose"),
            )
        )
    return session, requests


def _print_turn(result: TurnResult) -> None:
    console.print(f"[bold green]ShopSight:[/] {result.reply}")
    for card in result.products:
        price = f"{card.price:.2f} {card.currency}" if card.price is not None else "-"
        console.print(f"  [cyan]▸ {card.title}[/] ({card.product_id}) {price}, stock {card.stock}")
    for citation in result.citations:
        console.print(f"  [dim][{citation.number}] {citation.title} ({citation.source_id})[/]")
    console.print(
        f"  [dim]intent {result.intent.intent} ({result.intent.confidence:.2f}), sentiment "
        f"{result.sentiment.score:+.2f} trend {result.sentiment.trend:+.2f}, decision "
        f"{result.decision.action}: {'; '.join(result.decision.reasons)}[/]"
    )


def build_engine() -> Engine:
    """The engine on the configured store, models and conversation memory.

    A terminal session keeps each turn's photo but explains turns only when asked
    (`shopsight explain`), so quitting never waits for explanations still being computed.
    """
    components = build_components()
    if components.settings.evidence_mode == "background":
        components.settings.evidence_mode = "on_demand"
    return components.engine


def register(app: typer.Typer) -> None:
    @app.command("chat")
    def chat(
        script: Annotated[
            Path | None,
            typer.Option(
                "--script", help="Replay a YAML conversation and print each turn as JSON."
            ),
        ] = None,
        session: Annotated[str | None, typer.Option(help="Session id to continue.")] = None,
    ) -> None:
        """Chat with the assistant (`/image PATH` attaches a photo, `/pick ID` picks a product, `/quit`)."""
        with user_errors():
            engine = build_engine()
            if script is not None:
                try:
                    _, requests = load_script(script)
                    for request in requests:
                        result = engine.handle_turn(request)
                        sys.stdout.write(result.model_dump_json() + "\n")
                except (ScriptError, InputRejected) as exc:
                    Console(stderr=True).print(f"[bold red]error:[/] {exc}")
                    raise typer.Exit(1) from exc
                return
            session_id = session or f"cli-{uuid.uuid4().hex[:8]}"
            console.print(f"Session {session_id}. Type a message; /image PATH, /pick ID, /quit.")
            pending_image: bytes | None = None
            while True:
                try:
                    line = input("you> ").strip()
                except EOFError:
                    break
                if line in {"/quit", "/exit"}:
                    break
                chosen = None
                if line.startswith("/image "):
                    target = Path(line.removeprefix("/image ").strip()).expanduser()
                    if not target.exists():
                        console.print(f"[red]no such file: {target}[/]")
                        continue
                    pending_image = target.read_bytes()
                    console.print(
                        "(photo attached: type your message, or press Enter to send it alone)"
                    )
                    continue
                if line.startswith("/pick "):
                    chosen, line = line.removeprefix("/pick ").strip(), ""
                try:
                    result = engine.handle_turn(
                        TurnRequest(
                            session_id=session_id,
                            text=line,
                            image=pending_image,
                            chosen_product_id=chosen,
                        )
                    )
                except InputRejected as exc:
                    console.print(f"[red]{exc}[/]")
                    continue
                pending_image = None
                _print_turn(result)
            console.print(json.dumps({"session": session_id}))
