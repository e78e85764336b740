"""`shopsight demo`: ingest the bundled demo shop, show example searches, serve the app."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from assistant.cli.common import (
    JsonOption,
    build_components,
    console,
    emit,
    error_line,
    stdout_to_stderr,
    user_errors,
)
from knowledge_base.demo import DEMO_SHOP


def demo(
    as_json: JsonOption = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Then serve the web app and API (default); --no-serve only ingests and shows "
            "example searches.",
        ),
    ] = True,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the web app.")] = 7860,
) -> None:
    """Ingest the bundled demo shop (if needed), show example searches, and serve the web app
    on http://127.0.0.1:7860 (chat, agent console, knowledge base; REST API under /v1)."""
    from knowledge_base.loaders import load_paths
    from retrieval.search.hybrid import SearchFilters

    with user_errors(), stdout_to_stderr():
        components = build_components()
        report = components.kb.ingest(
            load_paths([DEMO_SHOP / "products.json", DEMO_SHOP / "articles"])
        )
        examples = ["how long does delivery take?", "退货政策是什么？", "waterproof hiking boots"]
        results: list[dict[str, Any]] = []
        for query in examples:
            found = components.kb.search_text(query, 2, SearchFilters(), SearchFilters())
            results.append(
                {
                    "query": query,
                    "articles": [a.model_dump(mode="json") for a in found.articles],
                    "products": [p.model_dump(mode="json") for p in found.products],
                }
            )

    def render() -> None:
        console.print(
            f"Demo shop ready in {components.store.location}: "
            f"{report.products_embedded} products and {report.chunks_embedded} article chunks "
            f"embedded now ({report.products_unchanged} products unchanged)."
        )
        for entry in results:
            console.print(f"\n[bold]> {entry['query']}[/]")
            for article in entry["articles"]:
                console.print(
                    f"  article {article['score']:.3f}  {article['title']} "
                    f"({article['article_id']})"
                )
            for product in entry["products"]:
                console.print(
                    f"  product {product['score']:.3f}  {product['title']} "
                    f"({product['product_id']})"
                )
        console.print(
            '\nTry your own: shopsight kb search "..."  or  shopsight kb search --image PHOTO'
        )

    emit({"ingest": report.model_dump(mode="json"), "examples": results}, as_json, render)
    if not serve:
        return

    import uvicorn

    from assistant.api import create_app
    from assistant.api.server import AnnouncingServer

    def announce(_line: str) -> None:
        # With --json, stdout holds only the JSON document.
        out = sys.stderr if as_json else sys.stdout
        out.write(f"\nShopSight demo is running at {server.url} — press Ctrl+C to stop\n")
        out.flush()

    with user_errors():
        config = uvicorn.Config(
            create_app(components.settings, components),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
        server = AnnouncingServer(config, announce)
        try:
            server.run()
        except SystemExit as exc:  # uvicorn exits when it cannot listen
            if exc.code:
                error_line(f"cannot serve on 127.0.0.1:{port}; is it in use? Try --port N")
                raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
