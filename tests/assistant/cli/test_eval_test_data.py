"""`shopsight eval intent|sentiment|category --test-data FILE`: the newest trained model scored on
every row of a separate labelled file, with clear errors for bad files and missing models."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import typer
from typer.testing import CliRunner

from assistant.cli import category as category_commands
from assistant.cli import intent as intent_commands
from assistant.cli import sentiment as sentiment_commands
from assistant.settings import get_settings
from retrieval.encoders.features import FeatureCache
from retrieval.evaluation.classification import read_labelled_csv
from tests.assistant.perception.test_intent import write_messages
from tests.helpers.cli import train_eval_app
from tests.retrieval.heads.test_category import MeanColourEncoder, make_folder

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
BITEXT = SHARED / "bitext-customer-support" / "dev.csv"
REVIEWS = SHARED / "product-reviews-en" / "dev.csv"
CLOTHING = SHARED / "clothing-small"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "data"
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(folder))
    monkeypatch.setenv("SHOPSIGHT_TEXT_EMBEDDER", "hash")
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result: Any, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert fragment in result.output and "Traceback" not in result.output


def head_rows(source: Path, target: Path, count: int) -> Path:
    """The header and the first `count` records of a CSV (records may span lines)."""
    with (
        source.open(encoding="utf-8", newline="") as read,
        target.open("w", encoding="utf-8", newline="") as write,
    ):
        csv.writer(write).writerows(itertools.islice(csv.reader(read), count + 1))
    return target


# --- intent -----------------------------------------------------------------------------------


@pytest.fixture
def intent_app(data_dir: Path) -> typer.Typer:
    return train_eval_app(intent_commands.register)


def train_intent(app: typer.Typer, data: Path, *columns: str) -> None:
    trained = run(app, "train", "intent", "--data", str(data), *columns, "--json")
    assert trained.exit_code == 0, trained.output


@pytest.mark.unit
def test_intent_test_data_is_scored_on_every_row(intent_app: typer.Typer, tmp_path: Path) -> None:
    columns = ("--text-col", "msg", "--label-col", "lab")
    train_intent(intent_app, write_messages(tmp_path / "train.csv"), *columns)
    test = write_messages(tmp_path / "test.csv", per_label=5, seed=9)
    evaluated = run(intent_app, "eval", "intent", "--test-data", str(test), *columns, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    payload = json.loads(evaluated.stdout)
    assert payload["held_out"].startswith("every row of test.csv (20)")
    assert set(payload["reports"]) == {"fewshot", "trained", "combined"}
    trained = payload["reports"]["trained"]
    assert trained["metrics"]["examples"] == 20 and trained["metrics"]["accuracy"] >= 0.9
    assert {"accuracy", "macro_f1"} <= set(trained["metrics"])
    table = run(intent_app, "eval", "intent", "--test-data", str(test), *columns)
    assert table.exit_code == 0 and "test.csv" in table.stdout


@pytest.mark.unit
def test_intent_test_data_errors_are_one_line(intent_app: typer.Typer, tmp_path: Path) -> None:
    columns = ("--text-col", "msg", "--label-col", "lab")
    train_file = write_messages(tmp_path / "train.csv")
    untrained = run(intent_app, "eval", "intent", "--test-data", str(train_file), *columns)
    assert_one_line_error(untrained, "shopsight train intent")
    train_intent(intent_app, train_file, *columns)

    def evaluate(path: Path, *extra: str) -> Any:
        return run(intent_app, "eval", "intent", "--test-data", str(path), *columns, *extra)

    assert_one_line_error(evaluate(train_file), "was trained on")
    assert_one_line_error(evaluate(tmp_path / "missing.csv"), "no such file")
    (tmp_path / "other.csv").write_text("text,label\nhello,greeting\n", encoding="utf-8")
    assert_one_line_error(evaluate(tmp_path / "other.csv"), "missing column")
    (tmp_path / "latin1.csv").write_bytes("msg,lab\ncaf\xe9,track_order\n".encode("latin-1"))
    assert_one_line_error(evaluate(tmp_path / "latin1.csv"), "not UTF-8")
    (tmp_path / "blank.csv").write_text("msg,lab\n,track_order\n", encoding="utf-8")
    assert_one_line_error(evaluate(tmp_path / "blank.csv"), "no rows")
    assert_one_line_error(evaluate(train_file, "--split-seed", "3"), "--split-seed")
    both = run(intent_app, "eval", "intent", "--data", str(train_file), "--test-data", "x.csv")
    assert_one_line_error(both, "one of --data")


@pytest.mark.unit
@pytest.mark.data
@pytest.mark.skipif(not BITEXT.is_file(), reason="../shared/data/bitext-customer-support absent")
def test_intent_test_data_scores_the_bitext_file(intent_app: typer.Typer, tmp_path: Path) -> None:
    columns = ("--text-col", "instruction", "--label-col", "intent")
    train_intent(intent_app, head_rows(BITEXT, tmp_path / "first.csv", 600), *columns)
    rows = len(read_labelled_csv(BITEXT, "instruction", "intent").texts)
    evaluated = run(
        intent_app,
        "eval",
        "intent",
        "--test-data",
        str(BITEXT),
        *columns,
        "--model",
        "trained",
        "--json",
    )
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)["reports"]["trained"]["metrics"]
    assert metrics["examples"] == rows and 0.0 <= metrics["macro_f1"] <= 1.0


# --- sentiment --------------------------------------------------------------------------------


def write_reviews(path: Path, products: list[str]) -> Path:
    good, bad = ["love", "great", "excellent", "perfect"], ["hate", "terrible", "awful", "broken"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "label", "product"])
        for product in products:
            for words, label in ((good, "positive"), (bad, "negative")):
                writer.writerows([f"the {product} is {word}", label, product] for word in words)
    return path


@pytest.fixture
def sentiment_app(data_dir: Path) -> typer.Typer:
    return train_eval_app(sentiment_commands.register)


def train_sentiment(app: typer.Typer, data: Path, *columns: str) -> None:
    trained = run(
        app,
        "train",
        "sentiment",
        "--data",
        str(data),
        *columns,
        "--no-zh",
        "--embedder",
        "hash",
        "--methods",
        "embedding-lexicon-lr",
        "--json",
    )
    assert trained.exit_code == 0, trained.output


SENTIMENT_COLUMNS = ("--text-col", "sentence", "--label-col", "label")


@pytest.mark.unit
def test_sentiment_test_data_is_scored_on_every_row(
    sentiment_app: typer.Typer, tmp_path: Path, data_dir: Path
) -> None:
    products = ["kettle", "lamp", "tent", "camera", "toaster", "blender"]
    train_file = write_reviews(tmp_path / "train.csv", products)
    train_sentiment(sentiment_app, train_file, *SENTIMENT_COLUMNS, "--group-col", "product")
    test = write_reviews(tmp_path / "test.csv", ["scarf", "mug"])
    evaluated = run(
        sentiment_app, "eval", "sentiment", "--test-data", str(test), *SENTIMENT_COLUMNS, "--json"
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["metrics"]["en/examples"] == 16
    assert {"en/trained/accuracy", "en/trained/macro_f1", "en/lexicon/accuracy"} <= set(
        report["metrics"]
    )
    assert not any(name.startswith("zh/") for name in report["metrics"])
    assert report["details"]["en/data"]["split"] == "test-file"
    assert (data_dir / "reports" / "sentiment-en-trained-confusion.png").is_file()


@pytest.mark.unit
def test_sentiment_test_data_errors_are_one_line(
    sentiment_app: typer.Typer, tmp_path: Path
) -> None:
    train_file = write_reviews(tmp_path / "train.csv", ["kettle", "lamp", "tent", "camera"])

    def evaluate(path: Path, *extra: str) -> Any:
        return run(
            sentiment_app,
            "eval",
            "sentiment",
            "--test-data",
            str(path),
            *SENTIMENT_COLUMNS,
            *extra,
        )

    assert_one_line_error(evaluate(train_file), "shopsight train sentiment")
    train_sentiment(sentiment_app, train_file, *SENTIMENT_COLUMNS, "--group-col", "product")
    assert_one_line_error(evaluate(train_file), "was trained on")
    assert_one_line_error(evaluate(tmp_path / "missing.csv"), "no such file")
    (tmp_path / "other.csv").write_text("text,label\nnice,positive\n", encoding="utf-8")
    assert_one_line_error(evaluate(tmp_path / "other.csv"), "missing column")
    (tmp_path / "odd.csv").write_text("sentence,label\nnice,maybe\n", encoding="utf-8")
    assert_one_line_error(evaluate(tmp_path / "odd.csv"), "odd.csv")
    assert_one_line_error(evaluate(tmp_path / "odd.csv", "--language", "zh"), "zh sentiment")
    test = write_reviews(tmp_path / "test.csv", ["mug"])
    assert_one_line_error(evaluate(test, "--model", "baseline"), "baseline needs --data")
    both = run(sentiment_app, "eval", "sentiment", "--data", str(test), "--test-data", str(test))
    assert_one_line_error(both, "not both")


@pytest.mark.unit
@pytest.mark.data
@pytest.mark.skipif(not REVIEWS.is_file(), reason="../shared/data/product-reviews-en absent")
def test_sentiment_test_data_scores_the_product_reviews_file(
    sentiment_app: typer.Typer, tmp_path: Path
) -> None:
    train_sentiment(
        sentiment_app, head_rows(REVIEWS, tmp_path / "first.csv", 400), *SENTIMENT_COLUMNS
    )
    rows = len(read_labelled_csv(REVIEWS, "sentence", "label").texts)
    evaluated = run(
        sentiment_app,
        "eval",
        "sentiment",
        "--test-data",
        str(REVIEWS),
        *SENTIMENT_COLUMNS,
        "--model",
        "trained",
        "--json",
    )
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)["metrics"]
    assert metrics["en/examples"] == rows and 0.0 <= metrics["en/trained/accuracy"] <= 1.0


# --- category ---------------------------------------------------------------------------------


@pytest.fixture
def category_app(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    cache = FeatureCache(tmp_path / "cache", cast(Any, MeanColourEncoder()))
    monkeypatch.setattr(category_commands, "_encoder", lambda features: cache.encoder)
    return train_eval_app(category_commands.register)


def train_category(app: typer.Typer, folder: Path) -> None:
    trained = run(
        app, "train", "category", "--data", str(folder), "--epochs", "40", "--hidden", "16"
    )
    assert trained.exit_code == 0, trained.output


@pytest.mark.unit
def test_category_test_data_is_scored_and_the_training_photos_refused(
    category_app: typer.Typer, tmp_path: Path
) -> None:
    assert_one_line_error(
        run(category_app, "eval", "category", "--test-data", str(tmp_path)),
        "shopsight train category",
    )
    train_dir = make_folder(tmp_path / "train", 12, seed=1)
    train_category(category_app, train_dir)
    test_dir = make_folder(tmp_path / "test", 4, seed=2)
    evaluated = run(category_app, "eval", "category", "--test-data", str(test_dir), "--json")
    assert evaluated.exit_code == 0, evaluated.output
    payload = json.loads(evaluated.stdout)
    assert payload["metrics"]["images"] == 12 and payload["metrics"]["accuracy"] == 1.0

    def evaluate(path: Path) -> Any:
        return run(category_app, "eval", "category", "--test-data", str(path))

    assert_one_line_error(evaluate(train_dir), "was trained on")
    reused = [
        {
            "id": "p1",
            "title": "Red",
            "category": "red",
            "images": [str(train_dir / "red" / "red0.png")],
        }
    ]
    (tmp_path / "reused.json").write_text(json.dumps(reused), encoding="utf-8")
    assert_one_line_error(evaluate(tmp_path / "reused.json"), "1 of its 1 photos")
    assert_one_line_error(evaluate(tmp_path / "missing"), "no such file")
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    assert_one_line_error(evaluate(tmp_path / "empty.json"), "no labelled images")
    both = run(
        category_app, "eval", "category", "--data", str(test_dir), "--test-data", str(test_dir)
    )
    assert_one_line_error(both, "one of --data")


@pytest.mark.unit
@pytest.mark.data
@pytest.mark.skipif(not CLOTHING.is_dir(), reason="../shared/data/clothing-small is absent")
def test_category_test_data_scores_the_clothing_validation_folder(
    category_app: typer.Typer, tmp_path: Path
) -> None:
    few = tmp_path / "few"
    for category in sorted(p for p in (CLOTHING / "train").iterdir() if p.is_dir()):
        (few / category.name).mkdir(parents=True)
        for photo in sorted(category.iterdir())[:3]:
            shutil.copy(photo, few / category.name / photo.name)
    train_category(category_app, few)
    validation = CLOTHING / "validation"
    photos = sum(1 for p in validation.rglob("*") if p.is_file() and not p.name.startswith("."))
    evaluated = run(category_app, "eval", "category", "--test-data", str(validation), "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)["metrics"]
    assert metrics["images"] == photos and {"accuracy", "macro_f1", "ece"} <= set(metrics)
