"""`shopsight kb ...`: ingest, inspect, search and edit the knowledge base."""

from __future__ import annotations

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
from knowledge_base.store import EmbedderMismatch
from retrieval.search.hybrid import SearchFilters
from retrieval.search.types import ProductMatch

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
    from knowledge_base.admin import kb_stats

    with user_errors(), stdout_to_stderr():
        stats = kb_stats(build_components().store)

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


# Weight of the photo ranking in `kb search TEXT`, against 1.0 for the text ranking (weighted
# reciprocal-rank fusion, k=60). On held-out demo products fused recall@1 stayed equal to
# text-only up to 0.05 and fell from 0.1 on (2 folds: 0.93 text-only, 0.90 at 0.1, 0.61 at 0.25;
# 5 folds: 0.97, then 0.90 at 0.25, 0.64 at 1.0). At 0.05 being found by its photos at all is
# worth about three text ranks near the top, and a better photo rank far less: photos lift
# products that both sources find over those only text finds, and add products only photos find
# after every text match, but never override a clear text match.
_IMAGE_WEIGHT = 0.05


class _ProductHit(ProductMatch):
    """A product found by `kb search TEXT`, with its place in each ranking that found it.

    `score` is what ranked it: the text + photo fusion score when photos counted, else the hybrid
    text score. `text_*`: hybrid text search (fused dense + BM25; `dense_score` is a cosine,
    `bm25_score` a BM25 score). `image_*`: search of product photos projected into the text space
    (`image_score` is a cosine there; `matched_image` is that photo).
    """

    text_rank: int | None = None
    text_score: float | None = None
    dense_score: float | None = None
    bm25_score: float | None = None
    image_rank: int | None = None
    image_score: float | None = None


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
    """Products by hybrid text search fused with photo evidence (when an alignment head was
    trained), and article passages by hybrid search."""
    from retrieval.heads.alignment import AlignmentMismatch
    from retrieval.search.cross_modal import build_cross_modal_searcher
    from retrieval.search.hybrid import HybridProductMatch

    hybrid = components.hybrid_searcher
    found_by_text: dict[str, tuple[int, HybridProductMatch]] = {}

    def text_ranking(query: str, depth: int, where: object) -> list[HybridProductMatch]:
        # `where` is `filters.to_where()`; the hybrid searcher takes the filters themselves.
        matches = hybrid.products(query, depth, filters)
        found_by_text.update((m.product_id, (r, m)) for r, m in enumerate(matches, start=1))
        return matches

    evidence: dict[str, Any] = {"used": False, "image_weight": image_weight}
    fused = None
    if image_weight > 0:
        try:
            fused = build_cross_modal_searcher(
                components.store,
                components.text_embedder,
                components.settings.artifacts_dir,
                clip_path=components.settings.clip_model_path,
                image_weight=image_weight,
                text_search=text_ranking,
            )
        except (AlignmentMismatch, EmbedderMismatch) as exc:
            evidence["reason"] = str(exc)
        else:
            if fused is None:
                evidence["reason"] = (
                    f"no alignment head in {components.settings.artifacts_dir / 'align-v1'}: "
                    "train one with `shopsight train align --data CATALOGUE`"
                )
    else:
        evidence["reason"] = "turned off with --image-weight 0"

    products: list[_ProductHit] = []
    if fused is None:
        for rank, text_match in enumerate(text_ranking(text, k, None), start=1):
            products.append(
                _ProductHit(**text_match.model_dump(), text_rank=rank, text_score=text_match.score)
            )
    else:
        evidence.update(used=True, space=fused.space.name)
        for match in fused.search(text, k, filters.to_where()):
            ranked = found_by_text.get(match.product_id)
            image = next((e for e in match.evidence if e.source == "image"), None)
            products.append(
                _ProductHit(
                    **match.model_dump(exclude={"evidence"}),
                    text_rank=ranked[0] if ranked else None,
                    text_score=ranked[1].score if ranked else None,
                    dense_score=ranked[1].dense_score if ranked else None,
                    bm25_score=ranked[1].bm25_score if ranked else None,
                    image_rank=image.rank if image else None,
                    image_score=image.score if image else None,
                )
            )
    # Articles carry a language only: a product filter means only products are wanted.
    articles = (
        []
        if filters.product_fields()
        else hybrid.articles(text, k, SearchFilters(language=filters.language))
    )
    return {
        "query": {"text": text},
        "filters": filters.model_dump(exclude_none=True),
        "image_evidence": evidence,
        "products": [p.model_dump(mode="json") for p in products],
        "articles": [a.model_dump(mode="json") for a in articles],
    }


def _search_photo(
    components: Components, image: Path, k: int, filters: SearchFilters
) -> dict[str, Any]:
    """Products by the photo matcher: multi-view query, category agreement, calibrated
    confidence and whether it is sure enough to name the product."""
    from knowledge_base.images import load_image

    settings = components.settings
    photo = load_image(image, settings.max_image_pixels, settings.max_image_side)
    result = components.search_photo(photo, k, filters)
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
    ] = _IMAGE_WEIGHT,
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
        deletion = delete_record(build_components().store, record_id)

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
        if not yes:
            typer.confirm(f"Delete everything in {components.store.location}?", abort=True)
        components.store.reset()
    location = components.store.location
    emit(
        {"reset": True, "location": location},
        as_json,
        lambda: console.print(f"Knowledge base emptied ({location})."),
    )


def register(app: typer.Typer) -> None:
    kb_app = typer.Typer(help="Build, inspect and search the knowledge base.", no_args_is_help=True)
    kb_app.command("ingest")(kb_ingest)
    kb_app.command("stats")(kb_stats_command)
    kb_app.command("search")(kb_search)
    kb_app.command("delete")(kb_delete)
    kb_app.command("reset")(kb_reset)
    app.add_typer(kb_app, name="kb")
