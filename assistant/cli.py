"""The `shopsight` command line: knowledge-base administration and search (more commands follow)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from assistant.components import Components
from assistant.logging import configure_logging
from assistant.settings import Settings
from knowledge_base.images import ImageRejected
from knowledge_base.store import EmbedderMismatch, StoreUnavailable
from retrieval.offline import MissingDependency

app = typer.Typer(
    help="ShopSight: a multimodal customer-service assistant for online shops.",
    no_args_is_help=True,
)
kb_app = typer.Typer(help="Build, inspect and search the knowledge base.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")

console = Console()
err_console = Console(stderr=True)

EXIT_REJECTED = 3
DEMO_SHOP = Path(__file__).resolve().parent.parent / "knowledge_base" / "demo_shop"

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _components() -> Components:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return Components(settings)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Known failures become one clear line on stderr and exit status 1, not a traceback."""
    try:
        yield
    except (
        StoreUnavailable,
        EmbedderMismatch,
        ImageRejected,
        MissingDependency,
        OSError,
    ) as exc:
        _error_line(str(exc))
        raise typer.Exit(1) from exc


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Keep stdout for results: libraries that chat on stdout while loading models (EfficientNet
    prints "Loaded pretrained weights ...") would otherwise corrupt `--json` output."""
    with redirect_stdout(sys.stderr):
        yield


def _error_line(message: str, label: str = "error:", style: str = "bold red") -> None:
    """One unwrapped line on stderr; the message is plain text, never parsed as markup."""
    line = Text.assemble((label, style), " ", " ".join(message.split()))
    err_console.print(line, soft_wrap=True, highlight=False)


def _emit(
    data: BaseModel | list[Any] | dict[str, Any], as_json: bool, render: Callable[[], None]
) -> None:
    if as_json:
        payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        render()


@kb_app.command("ingest")
def kb_ingest(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Catalogue files (JSON, JSONL, CSV), Markdown folders or image folders."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Ingest catalogues and articles; unchanged records are skipped.

    Exit status 3 if any input was rejected (each rejection names its file, line and reason).
    """
    from knowledge_base.loaders import load_paths

    with _user_errors(), _stdout_to_stderr():
        components = _components()
        loaded = load_paths(paths)
        report = components.ingestor.ingest(loaded)

    def render() -> None:
        table = Table(
            "what", "embedded", "updated", "unchanged", title=f"Ingested in {report.seconds:.1f} s"
        )
        for label, kind in (("products", "products"), ("product images", "images")):
            table.add_row(
                label,
                *(
                    str(getattr(report, f"{kind}_{n}"))
                    for n in ("embedded", "updated", "unchanged")
                ),
            )
        table.add_row(
            "articles", str(report.articles_embedded), "-", str(report.articles_unchanged)
        )
        table.add_row(
            "article chunks",
            str(report.chunks_embedded),
            str(report.chunks_updated),
            str(report.chunks_unchanged),
        )
        console.print(table)
        if report.stale_removed:
            console.print(f"{report.stale_removed} stale record(s) removed.")
        for rejection in report.rejections:
            _error_line(str(rejection), label="rejected", style="yellow")
        if report.rejections:
            err_console.print(
                f"{len(report.rejections)} input(s) rejected; everything else was ingested."
            )

    _emit(report, as_json, render)
    if report.rejections:
        raise typer.Exit(EXIT_REJECTED)


@kb_app.command("stats")
def kb_stats_command(as_json: JsonOption = False) -> None:
    """Show how many products, images and articles the knowledge base holds."""
    from knowledge_base.admin import kb_stats

    with _user_errors(), _stdout_to_stderr():
        stats = kb_stats(_components().store)

    def render() -> None:
        console.print(f"Store: {stats.location}")
        console.print(
            f"{stats.products} products, {stats.images} product images, "
            f"{stats.articles} articles in {stats.article_chunks} chunks"
        )
        if stats.categories:
            console.print(
                "Categories: " + ", ".join(f"{k} ({v})" for k, v in stats.categories.items())
            )
        if stats.languages:
            console.print(
                "Article languages: " + ", ".join(f"{k} ({v})" for k, v in stats.languages.items())
            )

    _emit(stats, as_json, render)


@kb_app.command("search")
def kb_search(
    text: Annotated[str | None, typer.Argument(help="What to look for.")] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Find products that look like this photo.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="How many results.")] = 5,
    category: Annotated[str | None, typer.Option(help="Only this product category.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Search articles and products by text, or products by photo."""
    if (text is None) == (image is None):
        _error_line("give a search TEXT or --image PHOTO (exactly one)")
        raise typer.Exit(2)
    with _user_errors(), _stdout_to_stderr():
        components = _components()
        where = {"category": category} if category else None
        if image is not None:
            from knowledge_base.images import load_image

            photo = load_image(
                image, components.settings.max_image_pixels, components.settings.max_image_side
            )
            # Refuses a store whose image vectors came from another encoder.
            components.store.collection("images", encoder=components.image_encoder.name)
            products = components.photo_searcher.search(photo, k=k, where=where)
            result: dict[str, Any] = {
                "query": {"image": str(image)},
                "products": products,
                "articles": [],
            }
        else:
            assert text is not None
            searcher = components.text_searcher
            result = {
                "query": {"text": text},
                "products": searcher.products(text, k=k, where=where),
                "articles": [] if category else searcher.articles(text, k=k),
            }

    def render() -> None:
        if result["products"]:
            table = Table("#", "score", "product", "category", "price", "stock", title="Products")
            for rank, match in enumerate(result["products"], start=1):
                price = f"{match.price:.2f} {match.currency}" if match.price is not None else "-"
                table.add_row(
                    str(rank),
                    f"{match.score:.3f}",
                    f"{escape(match.title)} [dim]({escape(match.product_id)})[/]",
                    match.category,
                    price,
                    "-" if match.stock is None else str(match.stock),
                )
            console.print(table)
        if result["articles"]:
            table = Table("#", "score", "article", "passage", title="Articles")
            for rank, article in enumerate(result["articles"], start=1):
                table.add_row(
                    str(rank),
                    f"{article.score:.3f}",
                    f"{escape(article.title)} [dim]({escape(article.article_id)})[/]",
                    article.text[:160].replace("\n", " "),
                )
            console.print(table)
        if not result["products"] and not result["articles"]:
            console.print("No results: is the knowledge base empty? Try `shopsight kb stats`.")

    payload = {
        "query": result["query"],
        "products": [p.model_dump(mode="json") for p in result["products"]],
        "articles": [a.model_dump(mode="json") for a in result["articles"]],
    }
    _emit(payload, as_json, render)


@kb_app.command("delete")
def kb_delete(
    record_id: Annotated[str, typer.Argument(help="Product or article id.")],
    as_json: JsonOption = False,
) -> None:
    """Delete a product (with its images) or an article (with its chunks)."""
    from knowledge_base.admin import delete_record

    with _user_errors(), _stdout_to_stderr():
        deletion = delete_record(_components().store, record_id)

    def render() -> None:
        if deletion.found:
            console.print(
                f"Deleted {record_id}: {deletion.products} product, {deletion.images} images, "
                f"{deletion.article_chunks} article chunks"
            )
        else:
            _error_line(f"no product or article with id {record_id!r}")

    _emit(deletion, as_json, render)
    if not deletion.found:
        raise typer.Exit(1)


@kb_app.command("reset")
def kb_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every product, image and article from the knowledge base."""
    with _user_errors(), _stdout_to_stderr():
        components = _components()
        if not yes:
            typer.confirm(f"Delete everything in {components.store.location}?", abort=True)
        components.store.reset()
    location = components.store.location
    _emit(
        {"reset": True, "location": location},
        as_json,
        lambda: console.print(f"Knowledge base emptied ({location})."),
    )


@app.command("demo")
def demo(as_json: JsonOption = False) -> None:
    """Ingest the bundled demo shop (if needed) and show example searches."""
    from knowledge_base.loaders import load_paths

    with _user_errors(), _stdout_to_stderr():
        components = _components()
        report = components.ingestor.ingest(
            load_paths([DEMO_SHOP / "products.json", DEMO_SHOP / "articles"])
        )
        searcher = components.text_searcher
        examples = ["how long does delivery take?", "退货政策是什么？", "waterproof hiking boots"]
        results: list[dict[str, Any]] = [
            {
                "query": query,
                "articles": [a.model_dump(mode="json") for a in searcher.articles(query, k=2)],
                "products": [p.model_dump(mode="json") for p in searcher.products(query, k=2)],
            }
            for query in examples
        ]

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

    _emit({"ingest": report.model_dump(mode="json"), "examples": results}, as_json, render)


if __name__ == "__main__":
    app()
