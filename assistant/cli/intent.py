"""`shopsight train intent` and `shopsight eval intent`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import (
    ArtifactsOutOption,
    JsonOption,
    ReportsOutOption,
    print_json,
    user_errors,
)
from assistant.settings import Settings

if TYPE_CHECKING:
    from retrieval.evaluation.report import EvalReport

console = Console()

ModelChoice = Literal["fewshot", "trained", "combined", "all"]

DataOption = Annotated[
    Path, typer.Option("--data", help="CSV of labelled customer messages (UTF-8, with a header).")
]
TextColOption = Annotated[str, typer.Option("--text-col", help="Column holding the message.")]
LabelColOption = Annotated[str, typer.Option("--label-col", help="Column holding the intent.")]
TestDataOption = Annotated[
    Path | None,
    typer.Option(
        "--test-data",
        help="A separate labelled CSV in the training file's format, scored on every row "
        "(instead of --data, which is scored on its held-out rows).",
    ),
]


def register(train_app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add `train intent` and `eval intent` to the CLI."""
    train_app.command("intent")(train_intent_command)
    eval_app.command("intent")(eval_intent_command)


def train_intent_command(
    data: DataOption,
    text_col: TextColOption = "text",
    label_col: LabelColOption = "label",
    split_seed: Annotated[int, typer.Option(help="Seed of the train/validation/test split.")] = 0,
    validation_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.4, help="Share of each label used to choose settings.")
    ] = 0.15,
    test_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.4, help="Share of each label held out for the report.")
    ] = 0.15,
    out: ArtifactsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train an intent head on labelled messages and save a new `intent-vN` artefact."""
    from assistant.training.intent import IntentTrainConfig, read_labelled_texts, train_intent
    from retrieval.encoders.registry import get_text_embedder

    settings = Settings()
    with user_errors():
        labelled = read_labelled_texts(data, text_col, label_col)
        config = IntentTrainConfig(
            seed=split_seed, validation_fraction=validation_fraction, test_fraction=test_fraction
        )
        result = train_intent(
            labelled,
            get_text_embedder(settings.text_embedder, settings.cache_dir),
            settings.data_dir / "cache",
            config,
            progress=not as_json,
        )
        folder = result.model.save(out or settings.artifacts_dir)
    metrics = result.metrics
    if as_json:
        print_json({"model": str(folder), "metrics": metrics})
        return
    table = Table("C", "validation accuracy", title="Logistic regression, C chosen on validation")
    for c, accuracy in result.validation_by_c.items():
        table.add_row(c, f"{accuracy:.4f}")
    console.print(table)
    console.print(
        f"C {metrics['c']}, temperature {metrics['temperature']:.3f}, unsure below "
        f"{metrics['threshold']:.2f} (then the few-shot model decides)"
    )
    if "test_accuracy" in metrics:
        console.print(
            f"held-out test ({int(metrics['test_messages'])} messages): accuracy "
            f"{metrics['test_accuracy']:.4f} (unsure counted wrong; argmax "
            f"{metrics['test_accuracy_argmax']:.4f}), macro-F1 {metrics['test_macro_f1']:.4f}, "
            f"coverage {metrics['test_coverage']:.4f}"
        )
    console.print(f"Saved {folder}")


def eval_intent_command(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Labelled CSV scored on its held-out rows (see --split-seed)."),
    ] = None,
    test_data: TestDataOption = None,
    text_col: TextColOption = "text",
    label_col: LabelColOption = "label",
    model: Annotated[
        ModelChoice,
        typer.Option(
            "--model",
            help="fewshot = shipped examples only, on shop intents; trained = the trained head "
            "on the file's labels; combined = the deployed classifier (head, few-shot fallback) "
            "on shop intents; all = each that applies.",
        ),
    ] = "all",
    split_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the held-out split; default: the trained model's when it was trained "
            "on this file, else 0."
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="An `intent-vN` folder (default: the newest under the artefacts)."),
    ] = None,
    out_of_scope: Annotated[
        Path | None,
        typer.Option(
            "--out-of-scope",
            help="Messages that fit no shop intent, one a line (# starts a comment): the share "
            "the shop-intent models reject as `other` is reported with the rest.",
        ),
    ] = None,
    out: ReportsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score intent models on the held-out test rows of a labelled CSV, or on every row of a
    separate one (--test-data): accuracy, macro-F1, per-class figures and a confusion matrix
    each. Shop-intent models also report how often they answer `other` (reject the message):
    for messages labelled `other` (Bitext intents no shop intent fits), for in-scope ones and
    for the --out-of-scope messages."""
    from assistant.evaluation.intent import (
        applicable_models,
        evaluate_intent,
        held_out_rows,
        read_messages,
        test_file_rows,
    )
    from assistant.perception.intent import FewShotIntentModel, TrainedIntentModel, latest_model_dir
    from assistant.training.intent import read_labelled_texts
    from retrieval.encoders.registry import get_text_embedder

    settings = Settings()
    cache_dir = settings.data_dir / "cache"
    with user_errors():
        if (data is None) == (test_data is None):
            raise ValueError(
                "give one of --data CSV (scored on its held-out rows) and --test-data CSV "
                "(a separate file, scored on every row)"
            )
        if test_data is not None and split_seed is not None:
            raise ValueError("--split-seed applies to --data; --test-data is scored whole")
        path = test_data or data
        assert path is not None
        labelled = read_labelled_texts(path, text_col, label_col)
        off_topic = read_messages(out_of_scope) if out_of_scope else []
        folder = model_dir or latest_model_dir(settings.artifacts_dir)
        needs_head = model in ("trained", "combined") or (test_data is not None and model == "all")
        if needs_head and folder is None:
            raise FileNotFoundError(
                f"no intent model under {settings.artifacts_dir}: run `shopsight train intent "
                "--data CSV --text-col ... --label-col ...` first"
            )
        embedder = get_text_embedder(settings.text_embedder, settings.cache_dir)
        trained = TrainedIntentModel.load(folder, embedder) if folder else None
        if test_data is not None:
            held_out = test_file_rows(labelled, trained)
        else:
            held_out = held_out_rows(labelled, trained, split_seed)
        fewshot = FewShotIntentModel(embedder, cache_dir=cache_dir)
        models = [model] if model != "all" else applicable_models(labelled.labels, trained)
        reports = evaluate_intent(
            labelled,
            models,
            fewshot,
            trained,
            cache_dir,
            held_out,
            out or settings.data_dir / "reports",
            progress=not as_json,
            off_topic=off_topic,
        )
    if as_json:
        print_json(
            {
                "held_out": held_out.note,
                "reports": {name: r.model_dump(mode="json") for name, r in reports.items()},
            }
        )
        return
    table = Table("model", "accuracy", "macro-F1", "messages", title=f"Intent: {path}")
    for name, report in reports.items():
        table.add_row(
            f"{name} [dim]({report.settings['model']})[/]",
            f"{report.metrics['accuracy']:.4f}",
            f"{report.metrics['macro_f1']:.4f}",
            str(int(report.metrics["examples"])),
        )
    console.print(table)
    rejections = _rejection_table(reports)
    if rejections is not None:
        console.print(rejections)
    console.print(f"Held-out rows: {held_out.note}.")
    console.print("Wrote " + ", ".join(f for r in reports.values() for f in r.files))


def _rejection_table(reports: dict[str, EvalReport]) -> Table | None:
    """Shares answered `other` per shop-intent model; None when no report has them."""
    columns: dict[str, tuple[str, str]] = {
        "out_of_scope_rejected": ("labelled other, rejected", "out_of_scope_messages"),
        "in_scope_rejected": ("in scope, wrongly rejected", "in_scope_messages"),
        "off_topic_rejected": ("off-topic, rejected", "off_topic_messages"),
    }
    shown = [key for key in columns if any(key in r.metrics for r in reports.values())]
    if not shown:
        return None
    table = Table("model", *(columns[key][0] for key in shown), title="Answered `other`")
    for name, report in reports.items():
        if not any(key in report.metrics for key in shown):
            continue
        cells = []
        for key in shown:
            value, count_key = report.metrics.get(key), columns[key][1]
            count = f" of {int(report.metrics[count_key])}" if count_key in report.metrics else ""
            cells.append("" if value is None else f"{value:.4f}{count}")
        table.add_row(name, *cells)
    return table
