"""`shopsight kb ...`: ingest, inspect, search and edit the knowledge base."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from assistant.cli.common import (
    JsonOption,
    build_components,
    console,
    emit,
    err_console,
    error_line,
    stdout_to_stderr,
    user_errors,
)
from assistant.components import Components
from assistant.services.kb import DEFAULT_IMAGE_WEIGHT
from retrieval.search.hybrid import SearchFilters

EXIT_REJECTED = 3


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

    with user_errors(), stdout_to_stderr():
        components = build_components()
        with components.writing():
            report = components.kb.ingest(load_paths(paths))

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
        if report.autotagged:
            console.print(
                f"{report.autotagged} product(s) auto-tagged from their photos "
                f"({report.categories_predicted} given a predicted category, "
                f"{report.categories_unsure} left without one: not sure enough)."
            )
        for rejection in report.rejections:
            error_line(str(rejection), label="rejected", style="yellow")
        if report.rejections:
            err_console.print(
                f"{len(report.rejections)} input(s) rejected; everything else was ingested."
            )

    emit(report, as_json, render)
    if report.rejections:
        raise typer.Exit(EXIT_REJECTED)


def kb_stats_command(as_json: JsonOption = False) -> None:
    """Show how many products, images and articles the knowledge base holds."""
    with user_errors(), stdout_to_stderr():
        stats = build_components().kb.stats()

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

    emit(stats, as_json, render)


def _filters(**fields: Any) -> SearchFilters:
    """The search filters, or a one-line usage error (exit 2) when they contradict each other."""
    from pydantic import ValidationError

    try:
        return SearchFilters(**fields)
    except ValidationError as exc:
        error_line("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()))
        raise typer.Exit(2) from exc


def _search_text(
    components: Components, text: str, k: int, filters: SearchFilters, image_weight: float
) -> dict[str, Any]:
    """Products by text fused with photo evidence, and article passages (none when a product
    filter is given: then only products are wanted, and articles carry a language only)."""
    found = components.kb.search_text(
        text,
        k,
        filters,
        None if filters.product_fields() else SearchFilters(language=filters.language),
        image_weight=image_weight,
    )
    evidence = found.image_evidence
    if image_weight == 0:
        evidence.reason = "turned off with --image-weight 0"
    return {
        "query": {"text": text},
        "filters": filters.model_dump(exclude_none=True),
        "image_evidence": evidence.model_dump(mode="json", exclude_none=True),
        "products": [p.model_dump(mode="json") for p in found.products],
        "articles": [a.model_dump(mode="json") for a in found.articles],
    }


def _search_photo(
    components: Components, image: Path, k: int, filters: SearchFilters
) -> dict[str, Any]:
    """Products by the photo matcher: multi-view query, category agreement, calibrated
    confidence and whether it is sure enough to name the product."""
    from knowledge_base.images import load_image

    settings = components.settings
    photo = load_image(image, settings.max_image_pixels, settings.max_image_side)
    result = components.kb.search_photo(photo, k, filters)
    return {
        "query": {"image": str(image)},
        "filters": filters.model_dump(exclude_none=True),
        "match": result.model_dump(mode="json", exclude={"matches"}),
        "products": [m.model_dump(mode="json") for m in result.matches],
        "articles": [],
    }


def _render_text_results(result: dict[str, Any]) -> None:
    products, articles = result["products"], result["articles"]
    if products:
        table = Table(
            "#", "score", "text", "photo", "product", "category", "price", "stock", title="Products"
        )
        for rank, hit in enumerate(products, start=1):
            table.add_row(
                str(rank),
                f"{hit['score']:.4f}",
                _evidence_cell(hit["text_rank"], hit["dense_score"], hit["bm25_score"]),
                _evidence_cell(hit["image_rank"], hit["image_score"]),
                f"{escape(hit['title'])} [dim]({escape(hit['product_id'])})[/]",
                escape(hit["category"]),
                _price(hit),
                "-" if hit["stock"] is None else str(hit["stock"]),
            )
        console.print(table)
        console.print(
            "[dim]text: rank in hybrid text search (dense cosine / BM25); "
            "photo: rank of the product's best photo for the words (cosine)[/]"
        )
    if articles:
        table = Table("#", "score", "article", "passage", title="Articles")
        for rank, article in enumerate(articles, start=1):
            table.add_row(
                str(rank),
                f"{article['score']:.4f}",
                f"{escape(article['title'])} [dim]({escape(article['article_id'])})[/]",
                escape(article["text"][:160].replace("\n", " ")),
            )
        console.print(table)
    evidence = result["image_evidence"]
    if evidence["used"]:
        console.print(
            f"Photo evidence: {escape(evidence['space'])}, weight {evidence['image_weight']} "
            "against 1 for text."
        )
    else:
        console.print(f"Photo evidence: off ({escape(evidence['reason'])}).", soft_wrap=True)
    if not products and not articles:
        console.print("No results: is the knowledge base empty? Try `shopsight kb stats`.")


def _render_photo_results(result: dict[str, Any]) -> None:
    products, match = result["products"], result["match"]
    if not products:
        console.print("No results: is the knowledge base empty? Try `shopsight kb stats`.")
        return
    table = Table(
        "#",
        "score",
        "confidence",
        "product",
        "category",
        "agrees",
        "price",
        "stock",
        "matched image",
        title="Products",
    )
    for rank, hit in enumerate(products, start=1):
        agrees = hit["category_agrees"]
        table.add_row(
            str(rank),
            f"{hit['score']:.3f}",
            f"{hit['confidence']:.2f}",
            f"{escape(hit['title'])} [dim]({escape(hit['product_id'])})[/]",
            escape(hit["category"]),
            "-" if agrees is None else ("yes" if agrees else "no"),
            _price(hit),
            "-" if hit["stock"] is None else str(hit["stock"]),
            escape(Path(hit["matched_image"]).name if hit["matched_image"] else "-"),
        )
    console.print(table)
    verdict = (
        "[green]sure[/]: it is the first product"
        if match["confident"]
        else "[yellow]not sure[/]: ask which of these it is"
    )
    console.print(
        f"Photo match {verdict} (confidence {match['confidence']:.2f}, "
        f"threshold {match['threshold']:.2f}, margin {match['margin']:.3f}); "
        f"photo category {escape(str(match['predicted_category']))} "
        f"({match['category_confidence']:.2f}, by {match['category_source']})."
    )


def _evidence_cell(rank: int | None, *scores: float | None) -> str:
    if rank is None:
        return "-"
    shown = " / ".join("-" if s is None else f"{s:.3f}" for s in scores)
    return f"#{rank} ({shown})"


def _price(hit: dict[str, Any]) -> str:
    return f"{hit['price']:.2f} {hit['currency']}" if hit["price"] is not None else "-"


def kb_search(
    text: Annotated[str | None, typer.Argument(help="What to look for.")] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Find products that look like this photo.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="How many results.")] = 5,
    category: Annotated[str | None, typer.Option(help="Only this product category.")] = None,
    min_price: Annotated[
        float | None, typer.Option(min=0, help="Only products from this price.")
    ] = None,
    max_price: Annotated[
        float | None, typer.Option(min=0, help="Only products up to this price.")
    ] = None,
    in_stock: Annotated[bool, typer.Option("--in-stock", help="Only products in stock.")] = False,
    lang: Annotated[
        Literal["en", "zh"] | None,
        typer.Option(help="Only products and articles in this language."),
    ] = None,
    product_id: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    image_weight: Annotated[
        float,
        typer.Option(
            min=0,
            help="Weight of photo evidence in text search, against 1 for text; 0 turns it off. "
            "Photos count only when `shopsight train align` has trained an alignment head.",
        ),
    ] = DEFAULT_IMAGE_WEIGHT,
    as_json: JsonOption = False,
) -> None:
    """Search articles and products by text, or products by photo.

    Text finds products by hybrid text search (dense + BM25), fused with their photos when an
    alignment head exists; each product shows its rank and score in each. A photo finds products
    with a calibrated confidence, says whether it is sure, and whether the category agrees.
    """
    if (text is None) == (image is None):
        error_line("give a search TEXT or --image PHOTO (exactly one)")
        raise typer.Exit(2)
    filters = _filters(
        category=category,
        min_price=min_price,
        max_price=max_price,
        in_stock=True if in_stock else None,
        language=lang,
        product_id=product_id,
    )
    with user_errors(), stdout_to_stderr():
        components = build_components()
        if image is not None:
            result = _search_photo(components, image, k, filters)
        else:
            assert text is not None
            result = _search_text(components, text, k, filters, image_weight)

    def render() -> None:
        if image is not None:
            _render_photo_results(result)
        else:
            _render_text_results(result)

    emit(result, as_json, render)


def kb_delete(
    record_id: Annotated[str, typer.Argument(help="Product or article id.")],
    as_json: JsonOption = False,
) -> None:
    """Delete a product (with its images) or an article (with its chunks)."""
    from knowledge_base.admin import delete_record

    with user_errors(), stdout_to_stderr():
        components = build_components()
        with components.writing():
            deletion = delete_record(components.store, record_id)

    def render() -> None:
        if deletion.found:
            console.print(
                f"Deleted {record_id}: {deletion.products} product, {deletion.images} images, "
                f"{deletion.article_chunks} article chunks"
            )
        else:
            error_line(f"no product or article with id {record_id!r}")

    emit(deletion, as_json, render)
    if not deletion.found:
        raise typer.Exit(1)


def kb_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every product, image and article from the knowledge base."""
    with user_errors(), stdout_to_stderr():
        components = build_components()
        with components.writing():
            if not yes:
                typer.confirm(f"Delete everything in {components.store.location}?", abort=True)
            components.store.reset()
    location = components.store.location
    emit(
        {"reset": True, "location": location},
        as_json,
        lambda: console.print(f"Knowledge base emptied ({location})."),
    )


def kb_reembed(as_json: JsonOption = False) -> None:
    """Embed the stored images with the newest trained photo matcher (`train photo-match` does
    this itself; run it again after a killed run, it resumes). Photo search uses the trained
    matcher once every image is done."""
    with user_errors(), stdout_to_stderr():
        components = build_components()
        with components.writing():
            report = components.sync_photo_vectors(progress=not as_json)
    if report is None:
        error_line(
            "no trained photo matcher yet: run `shopsight train photo-match --data CATALOGUE`"
        )
        raise typer.Exit(1)

    def render() -> None:
        console.print(
            f"Trained vectors ({report.space}): {report.embedded} images embedded, "
            f"{report.updated} updated, {report.unchanged} unchanged, {report.removed} removed "
            f"in {report.seconds:.1f} s; photo search now uses {components.photo_model_in_use()}"
        )
        for problem in report.unreadable[:10]:
            error_line(f"not embedded: {problem}")

    emit({**asdict(report), "in_use": components.photo_model_in_use()}, as_json, render)


def kb_backup(
    folder: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")],
    as_json: JsonOption = False,
) -> None:
    """Copy the knowledge base, its uploads, the trained models and the conversations into
    FOLDER, consistently: no write can land mid-copy (the store is locked meanwhile)."""
    from knowledge_base.backup import BackupError, make_backup
    from knowledge_base.lock import StoreLocked

    with user_errors(BackupError), stdout_to_stderr():
        components = build_components()
        try:
            with components.writing():
                manifest = make_backup(components.backup_sources(), folder)
        except StoreLocked as exc:
            raise BackupError(_busy("back up", exc)) from exc
    notes = _not_copied(components)

    def render() -> None:
        console.print(f"Backup written to {escape(str(folder))} ({len(manifest.files)} files).")
        _render_contents(manifest.store, manifest.databases, manifest.folders)
        for note in notes:
            error_line(note, label="note:", style="yellow")

    emit({**manifest.model_dump(mode="json", exclude={"files"}), "notes": notes}, as_json, render)


def kb_restore(
    folder: Annotated[Path, typer.Argument(help="A folder written by `shopsight kb backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Put a backup back: checks its manifest and checksums first, swaps the store in whole
    and keeps what it replaced. Refused while `shopsight serve` holds the store."""
    from knowledge_base.backup import BackupError, restore_backup
    from knowledge_base.lock import StoreLocked

    with user_errors(BackupError), stdout_to_stderr():
        components = build_components()
        try:
            with components.writing():
                if not yes:
                    typer.confirm(
                        f"Replace the knowledge base and conversations of "
                        f"{components.settings.data_dir} with the backup in {folder}?",
                        abort=True,
                    )
                report = restore_backup(folder, components.backup_sources())
        except StoreLocked as exc:
            raise BackupError(_busy("restore into", exc)) from exc
    manifest = report.manifest

    def render() -> None:
        console.print(
            f"Restored the backup of {manifest.created} from {escape(str(folder))} into "
            f"{escape(str(components.settings.data_dir))}."
        )
        _render_contents(report.store, manifest.databases, manifest.folders)
        for kept in report.kept:
            console.print(f"Kept what it replaced: {escape(kept)}")

    emit(report.model_dump(mode="json", exclude={"manifest": {"files"}}), as_json, render)


def _busy(doing: str, locked: Exception) -> str:
    holder = getattr(locked, "holder", None)
    who = holder.describe() if holder else "another process"
    return f"cannot {doing} the knowledge base while {who} holds it: stop it, then run this again"


def _not_copied(components: Components) -> list[str]:
    """What a backup of these settings leaves to other tools, said plainly."""
    settings = components.settings
    sources = components.backup_sources()
    notes = []
    if sources.chroma is None:
        notes.append(
            f"the store is on the Chroma server {settings.chroma_url} and was not copied: back "
            "up that server's --path folder while it is stopped"
        )
    if not sources.databases:
        notes.append(
            "the conversations are in a database server (SHOPSIGHT_DATABASE_URL) and were not "
            "copied: back them up with its own tool (PostgreSQL: pg_dump)"
        )
    return notes


def _render_contents(
    store: dict[str, int] | None, databases: dict[str, dict[str, int]], folders: list[str]
) -> None:
    if store is not None:
        console.print(
            "Store: " + ", ".join(f"{escape(name)} {count}" for name, count in store.items())
        )
    for name, tables in databases.items():
        rows = ", ".join(f"{table} {count}" for table, count in tables.items() if count)
        console.print(f"{escape(name)}: {rows or 'empty'}")
    if folders:
        console.print("Folders: " + ", ".join(folders))


def register(app: typer.Typer) -> None:
    kb_app = typer.Typer(help="Build, inspect and search the knowledge base.", no_args_is_help=True)
    kb_app.command("ingest")(kb_ingest)
    kb_app.command("stats")(kb_stats_command)
    kb_app.command("search")(kb_search)
    kb_app.command("delete")(kb_delete)
    kb_app.command("reset")(kb_reset)
    kb_app.command("reembed")(kb_reembed)
    kb_app.command("backup")(kb_backup)
    kb_app.command("restore")(kb_restore)
    app.add_typer(kb_app, name="kb")
