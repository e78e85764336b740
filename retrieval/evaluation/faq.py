"""FAQ retrieval evaluation: does the search put the article that answers a question on top?

Input is a CSV of questions with the id of the answering article (and optionally a language);
output is recall@k and MRR per search mode, overall and per language, plus the misses.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from tqdm import tqdm

from knowledge_base.store import KnowledgeStore
from retrieval.evaluation.classification import DataFormatError, read_labelled_csv
from retrieval.evaluation.report import EvalReport, ranking_metrics
from retrieval.search.hybrid import SearchFilters, SearchMode

Split = Literal["all", "tune", "heldout"]
RECALL_AT: tuple[int, ...] = (1, 3, 5, 10)


class ArticleSearch(Protocol):
    """What the evaluation needs from a searcher (`HybridSearcher` has it)."""

    def articles(
        self, query: str, k: int = 5, filters: SearchFilters | None = None, mode: SearchMode = ...
    ) -> Sequence[Any]: ...


@dataclass(frozen=True)
class FaqQuestion:
    question: str
    article_id: str
    language: str = ""


def load_faq_questions(
    paths: Sequence[Path],
    question_col: str = "question",
    article_col: str = "article_id",
    language_col: str = "language",
) -> list[FaqQuestion]:
    """Questions from one or more CSV files; the language column is optional."""
    questions: list[FaqQuestion] = []
    for path in paths:
        rows = read_labelled_csv(path, question_col, article_col, optional_cols=[language_col])
        languages = rows.extras[language_col]
        questions += [
            FaqQuestion(text, label, language)
            for text, label, language in zip(rows.texts, rows.labels, languages, strict=True)
        ]
    if not questions:
        raise DataFormatError(f"no questions in {', '.join(str(p) for p in paths)}")
    return questions


def in_heldout(question: FaqQuestion, seed: int, heldout_fraction: float) -> bool:
    """Held-out membership from a hash of the question alone, so adding or reordering questions
    never moves an existing one between the tuning and the held-out part."""
    digest = hashlib.sha256(f"{seed}\0{question.question}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < heldout_fraction


def select_split(
    questions: Sequence[FaqQuestion], split: Split, seed: int = 13, heldout_fraction: float = 0.5
) -> list[FaqQuestion]:
    if split == "all":
        return list(questions)
    keep_heldout = split == "heldout"
    return [q for q in questions if in_heldout(q, seed, heldout_fraction) == keep_heldout]


def answer_rank(results: Sequence[Any], article_id: str) -> int | None:
    """1-based rank of the first result from `article_id`; None when it was not retrieved."""
    for rank, match in enumerate(results, start=1):
        if match.article_id == article_id:
            return rank
    return None


def evaluate_faq(
    searcher: ArticleSearch,
    questions: Sequence[FaqQuestion],
    modes: Sequence[SearchMode],
    data: str,
    *,
    task: str = "faq",
    depth: int = 10,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
    max_misses: int = 25,
) -> EvalReport:
    """recall@1/3/5/10 and MRR (within the top `depth`) for each mode; metric keys are
    `<mode>/<metric>`, and per-language figures and the misses go into the details."""
    if not questions:
        raise ValueError("nothing to evaluate: no questions")
    started = time.perf_counter()
    ks = tuple(k for k in RECALL_AT if k <= depth)
    metrics: dict[str, float] = {}
    per_language: dict[str, dict[str, dict[str, float]]] = {}
    misses: dict[str, list[dict[str, Any]]] = {}
    total = len(questions) * len(modes)
    with tqdm(total=total, desc=f"eval {task}", unit="query", disable=not progress) as bar:
        for mode in modes:
            ranks: list[int | None] = []
            by_language: dict[str, list[int | None]] = defaultdict(list)
            misses[mode] = []
            for item in questions:
                results = searcher.articles(item.question, k=depth, mode=mode)
                rank = answer_rank(results, item.article_id)
                ranks.append(rank)
                by_language[item.language or "?"].append(rank)
                if rank != 1 and len(misses[mode]) < max_misses:
                    misses[mode].append(
                        {
                            "question": item.question,
                            "expected": item.article_id,
                            "rank": rank,
                            "got": [match.article_id for match in results[:3]],
                        }
                    )
                bar.update(1)
            for name, value in ranking_metrics(ranks, ks).items():
                metrics[f"{mode}/{name}"] = value
            per_language[mode] = {
                language: ranking_metrics(language_ranks, ks)
                for language, language_ranks in sorted(by_language.items())
            }
    return EvalReport(
        task=task,
        data=data,
        metrics=metrics,
        details={
            "comparison": comparison_table(metrics, modes, ks),
            "per_language": per_language,
            "misses (first of each mode)": misses,
        },
        settings=dict(settings or {}, depth=depth, modes=list(modes)),
        seconds=round(time.perf_counter() - started, 3),
    )


def comparison_table(
    metrics: dict[str, float], modes: Sequence[str], ks: Sequence[int] = RECALL_AT
) -> str:
    """Markdown table with one row per mode, so the modes compare at a glance."""
    names = [f"recall@{k}" for k in ks] + ["mrr"]
    lines = ["| mode | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for mode in modes:
        values = " | ".join(f"{metrics[f'{mode}/{name}']:.3f}" for name in names)
        lines.append(f"| {mode} | {values} |")
    return "\n".join(lines)


def unknown_articles(store: KnowledgeStore, article_ids: Sequence[str]) -> list[str]:
    """Expected answers that the knowledge base does not hold (a typo or a missing ingest)."""
    wanted = sorted(set(article_ids))
    if not wanted:
        return []
    found = store.get("articles", where={"article_id": {"$in": wanted}})
    present = {str(hit.metadata.get("article_id")) for hit in found}
    return [article_id for article_id in wanted if article_id not in present]
