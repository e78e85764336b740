"""`shopsight eval faq`: recall@k and MRR of article search on a CSV of questions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import ReportsOutOption, user_errors
from assistant.settings import Settings
from knowledge_base.store import EmbedderMismatch, KnowledgeStore, StoreUnavailable
from retrieval.search.hybrid import SEARCH_MODES, SearchMode

console = Console()

ModeChoice = Literal["all", "hybrid", "dense", "bm25"]
SplitChoice = Literal["all", "tune", "heldout"]


def register(train_app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add `eval faq` to the CLI (FAQ search has nothing to train)."""
    eval_app.command("faq")(eval_faq_command)


def eval_faq_command(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="CSV of questions and the id of the article that answers each (repeatable).",
        ),
    ],
    question_col: Annotated[str, typer.Option(help="Column holding the question.")] = "question",
    article_col: Annotated[
        str, typer.Option(help="Column holding the answering article's id.")
    ] = "article_id",
    language_col: Annotated[
        str, typer.Option(help="Optional column with the language, for per-language figures.")
    ] = "language",
    mode: Annotated[
        ModeChoice, typer.Option(help="Search mode to evaluate; `all` compares the three.")
    ] = "all",
    split: Annotated[
        SplitChoice,
        typer.Option(help="Evaluate on all questions or on the tuning / held-out part only."),
    ] = "all",
    seed: Annotated[int, typer.Option(help="Seed of the tuning/held-out split.")] = 13,
    heldout_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Share of questions held out.")
    ] = 0.5,
    articles: Annotated[
        list[Path] | None,
        typer.Option(
            "--articles",
            help="Build a throw-away knowledge base from these Markdown articles (files or "
            "folders) instead of searching the configured one (repeatable).",
        ),
    ] = None,
    depth: Annotated[
        int, typer.Option("--k", min=1, max=100, help="Results looked at per question.")
    ] = 10,
    rrf_k: Annotated[
        int | None, typer.Option(min=1, help="RRF constant of the hybrid fusion (default: tuned).")
    ] = None,
    out: ReportsOutOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Evaluate FAQ search: does the answering article come first? Reports per search mode."""
    from retrieval.evaluation.faq import evaluate_faq, load_faq_questions, select_split

    with user_errors(OSError, StoreUnavailable, EmbedderMismatch):
        settings = Settings()
        questions = load_faq_questions(data, question_col, article_col, language_col)
        chosen = select_split(questions, split, seed, heldout_fraction)
        if not chosen:
            raise ValueError(f"the {split} part of {len(questions)} questions is empty")
        modes: tuple[SearchMode, ...] = SEARCH_MODES if mode == "all" else (mode,)
        store = _knowledge_base(settings, articles or [])
        _check_answers(store, [q.article_id for q in chosen])
        searcher = _searcher(settings, store, rrf_k)
        report = evaluate_faq(
            searcher,
            chosen,
            modes,
            ", ".join(str(p) for p in data),
            task="faq" if split == "all" else f"faq-{split}",
            depth=depth,
            settings={
                "split": split,
                "seed": seed,
                "heldout_fraction": heldout_fraction,
                "questions_in_files": len(questions),
                "knowledge_base": ", ".join(map(str, articles)) if articles else store.location,
                "text_embedder": settings.text_embedder,
                "hybrid": repr(searcher.options),
            },
        )
        report.write(out or settings.data_dir / "reports")
    if as_json:
        sys.stdout.write(json.dumps(report.model_dump(mode="json"), ensure_ascii=False) + "\n")
        return
    _render(report.metrics, modes, report.files)


def _knowledge_base(settings: Settings, articles: list[Path]) -> KnowledgeStore:
    """The configured store, or an evaluation store holding exactly the given articles.

    The evaluation store lives in the cache folder, one per text embedder: ingestion skips
    unchanged articles, so only the first run pays for embedding them.
    """
    if not articles:
        from assistant.components import Components

        return Components(settings).store
    from knowledge_base.ingest import IngestOptions, Ingestor
    from knowledge_base.loaders import LoadResult, load_paths
    from retrieval.encoders.image import ImageEncoder
    from retrieval.encoders.registry import get_image_encoder, get_text_embedder

    loaded = load_paths(articles)
    if not loaded.articles:
        reasons = "; ".join(str(r) for r in loaded.rejections[:3])
        raise ValueError(f"no articles found in {', '.join(map(str, articles))} {reasons}".strip())
    embedder = get_text_embedder(settings.text_embedder, settings.cache_dir)
    store = KnowledgeStore(
        path=settings.data_dir / "cache" / "faq-eval", prefix=f"faqeval_{embedder.name}"
    )
    options = IngestOptions(
        batch_size=settings.ingest_batch_size,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
    )
    Ingestor(store, embedder, get_image_encoder, ImageEncoder.name, options).ingest(
        LoadResult(articles=loaded.articles)
    )
    wanted = {article.id for article in loaded.articles}
    stale = {str(hit.metadata.get("article_id")) for hit in store.get("articles")} - wanted
    if stale:
        store.delete("articles", where={"article_id": {"$in": sorted(stale)}})
    return store


def _searcher(settings: Settings, store: KnowledgeStore, rrf_k: int | None) -> Any:
    from retrieval.encoders.registry import get_text_embedder
    from retrieval.search.hybrid import HybridOptions, HybridSearcher

    options = HybridOptions() if rrf_k is None else HybridOptions(rrf_k=rrf_k)
    return HybridSearcher(
        store, get_text_embedder(settings.text_embedder, settings.cache_dir), options
    )


def _check_answers(store: KnowledgeStore, article_ids: list[str]) -> None:
    from retrieval.evaluation.faq import unknown_articles

    unknown = unknown_articles(store, article_ids)
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ValueError(
            f"{len(unknown)} expected article id(s) are not in the knowledge base ({shown}): "
            "ingest the articles first or pass them with --articles"
        )


def _render(metrics: dict[str, float], modes: tuple[SearchMode, ...], files: list[str]) -> None:
    names = [n.split("/", 1)[1] for n in metrics if n.startswith(f"{modes[0]}/")]
    table = Table("mode", *names, title="FAQ retrieval")
    for mode in modes:
        cells = [(name, metrics[f"{mode}/{name}"]) for name in names]
        table.add_row(mode, *(f"{v:.0f}" if n == "queries" else f"{v:.3f}" for n, v in cells))
    console.print(table)
    for path in files:
        console.print(f"report: {path}")
