"""Intent recognition: shipped examples, few-shot and trained models, artefacts, eval and CLI."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import typer
from assistant.commands import intent as intent_commands
from typer.testing import CliRunner

from assistant.evaluation.intent import applicable_models, evaluate_intent, held_out_rows
from assistant.perception.intent import (
    CachedEmbedder,
    FewShotIntentModel,
    IntentClassifier,
    TrainedIntentModel,
    class_scores,
    decide,
    latest_model_dir,
    load_examples,
)
from assistant.perception.intents import SHOP_INTENTS, Intent, to_intent
from assistant.training.intent import (
    IntentTrainConfig,
    IntentTrainResult,
    LabelledTexts,
    read_labelled_texts,
    stratified_split,
    train_intent,
)
from retrieval.calibration import (
    INTENT_TEMPERATURE_BOUNDS,
    fit_temperature,
    softmax,
    threshold_for_abstention,
)
from retrieval.encoders.text import HashEmbedder, TextKind
from tests.helpers.cli import train_eval_app

BITEXT_INTENTS = {
    "cancel_order", "change_order", "change_shipping_address", "check_cancellation_fee",
    "check_invoice", "check_payment_methods", "check_refund_policy", "complaint",
    "contact_customer_service", "contact_human_agent", "create_account", "delete_account",
    "delivery_options", "delivery_period", "edit_account", "get_invoice", "get_refund",
    "newsletter_subscription", "payment_issue", "place_order", "recover_password",
    "registration_problems", "review", "set_up_shipping_address", "switch_account",
    "track_order", "track_refund",
}  # fmt: skip
# Generated shop messages: each label has its own words, so a bag-of-words head separates them.
TEMPLATES = {
    "track_order": ["where is my order {n}", "track parcel {n} please", "status of package {n}"],
    "get_refund": ["refund my money for {n}", "I want a refund on {n}", "refund {n} now"],
    "cancel_order": ["cancel order {n}", "please cancel purchase {n}", "cancel my {n} order"],
    "review": ["leave a review for {n}", "write an opinion about {n}", "review item {n}"],
}
FAST = IntentTrainConfig(c_grid=(1.0,), thresholds=(0.0, 0.2, 0.4, 0.6))


class CountingEmbedder:
    """HashEmbedder that counts the texts it embeds, to prove what the cache saved."""

    name = "hash"

    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.dim = self.inner.dim
        self.texts: list[str] = []

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        self.texts += list(texts)
        return self.inner.embed_texts(texts, kind)


def write_messages(path: Path, per_label: int = 20, seed: int = 0) -> Path:
    """A labelled CSV of generated messages with the columns `msg` and `lab`."""
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["msg", "lab"])
        for label, templates in TEMPLATES.items():
            for index in range(per_label):
                template = templates[index % len(templates)]
                writer.writerow([template.format(n=int(rng.integers(1000, 99999))), label])
    return path


@pytest.fixture
def messages_csv(tmp_path: Path) -> Path:
    return write_messages(tmp_path / "messages.csv")


@pytest.fixture
def fewshot(tmp_path: Path) -> FewShotIntentModel:
    return FewShotIntentModel(HashEmbedder(), cache_dir=tmp_path / "cache")


# --- intents and shipped examples -------------------------------------------------------------


@pytest.mark.unit
def test_the_fourteen_shop_intents_have_snake_case_names() -> None:
    assert len(Intent) == 14 and Intent.OTHER.value == "other"
    assert all(name == name.lower() and " " not in name for name in SHOP_INTENTS)


@pytest.mark.unit
def test_unknown_labels_become_other_and_mapped_labels_their_shop_intent() -> None:
    assert to_intent("greeting") is Intent.GREETING
    assert to_intent("track_order", {"track_order": "order_status"}) is Intent.ORDER_STATUS
    assert to_intent("no_such_label") is Intent.OTHER


@pytest.mark.unit
def test_every_intent_ships_enough_english_and_chinese_examples() -> None:
    counts = load_examples().counts()
    assert set(counts) == set(SHOP_INTENTS)
    for intent, per_language in counts.items():
        assert per_language.get("en", 0) >= 12, intent
        assert per_language.get("zh", 0) >= 8, intent


@pytest.mark.unit
def test_shipped_examples_are_unique_and_the_chinese_ones_are_chinese() -> None:
    examples = load_examples()
    assert len(set(examples.texts)) == len(examples.texts)
    for text, language in zip(examples.texts, examples.languages, strict=True):
        has_han = any("\u4e00" <= ch <= "\u9fff" for ch in text)
        assert has_han == (language == "zh"), text


@pytest.mark.unit
def test_bitext_mapping_covers_all_27_bitext_intents_with_shop_intents() -> None:
    mapping = load_examples().bitext_mapping
    assert set(mapping) == BITEXT_INTENTS
    assert set(mapping.values()) <= set(SHOP_INTENTS)
    assert mapping["get_refund"] == "return_refund" and mapping["track_order"] == "order_status"


@pytest.mark.unit
def test_an_example_file_with_an_unknown_intent_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("examples:\n  teleport:\n    en: [beam me up]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="teleport"):
        load_examples(path)


# --- scoring pieces ---------------------------------------------------------------------------


@pytest.mark.unit
def test_class_scores_average_the_top_k_similarities_and_skip_masked_ones() -> None:
    similarities = np.array([[0.9, 0.7, 0.1, -np.inf, 0.4]])
    classes = np.array([0, 0, 0, 1, 1])
    scores = class_scores(similarities, classes, classes=3, top_k=2)
    assert scores[0, 0] == pytest.approx(0.8)
    assert scores[0, 1] == pytest.approx(0.4)
    assert scores[0, 2] == -1.0


@pytest.mark.unit
def test_fit_temperature_recovers_the_temperature_that_generated_the_labels() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(2000, 5))
    probabilities = softmax(logits, 2.0)
    targets = np.array([rng.choice(5, p=row) for row in probabilities])
    assert fit_temperature(logits, targets, bounds=INTENT_TEMPERATURE_BOUNDS) == pytest.approx(
        2.0, rel=0.15
    )


@pytest.mark.unit
def test_outliers_keep_a_perfectly_separated_head_from_becoming_certain_of_everything() -> None:
    logits = np.array([[4.0, 0.0], [0.0, 4.0]] * 20)
    targets = np.array([0, 1] * 20)
    outliers = np.array([[2.0, 0.0], [0.0, 2.0]] * 10)
    alone = fit_temperature(logits, targets, bounds=INTENT_TEMPERATURE_BOUNDS)
    exposed = fit_temperature(logits, targets, outliers, INTENT_TEMPERATURE_BOUNDS)
    assert alone < 0.05 < 0.5 < exposed


@pytest.mark.unit
def test_threshold_trades_validation_accuracy_against_rejected_probes() -> None:
    validation = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    targets = np.array([0, 0, 1])
    probes = np.array([[0.55, 0.45], [0.5, 0.5]])
    chosen, _ = threshold_for_abstention(validation, targets, probes, (0.0, 0.6, 0.75, 0.95))
    assert chosen == 0.6
    without_probes, _ = threshold_for_abstention(validation, targets, None, (0.0, 0.6, 0.75, 0.95))
    assert without_probes == 0.6


@pytest.mark.unit
def test_below_threshold_the_answer_is_other_with_the_candidates_kept(
    fewshot: FewShotIntentModel,
) -> None:
    row = np.full(len(fewshot.classes), 0.02)
    row[fewshot.classes.index("payment")] = 1 - 0.02 * (len(row) - 1)
    sure = decide(fewshot, row)
    assert sure.intent is Intent.PAYMENT and not sure.below_threshold
    unsure = decide(fewshot, np.full(len(fewshot.classes), 1 / len(fewshot.classes)))
    assert unsure.intent is Intent.OTHER and unsure.below_threshold
    assert len(unsure.alternatives) == 3 and unsure.confidence < fewshot.threshold


# --- text cache -------------------------------------------------------------------------------


@pytest.mark.unit
def test_cached_embedder_embeds_each_text_once_and_returns_the_same_vectors(
    tmp_path: Path,
) -> None:
    counting = CountingEmbedder()
    cached = CachedEmbedder(counting, tmp_path)
    first = cached.embed_texts(["a b", "c d"], kind="query")
    second = cached.embed_texts(["c d", "a b", "e f"], kind="query")
    assert counting.texts == ["a b", "c d", "e f"]
    np.testing.assert_array_equal(second[:2], first[::-1])
    cached.embed_texts(["a b"], kind="passage")
    assert counting.texts[-1] == "a b"


# --- few-shot model ---------------------------------------------------------------------------


@pytest.mark.unit
def test_fewshot_probabilities_cover_the_14_intents_and_sum_to_one(
    fewshot: FewShotIntentModel,
) -> None:
    probabilities = fewshot.predict_proba_batch(["cancel my order", "你好", "zzz"])
    assert probabilities.shape == (3, 14)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert fewshot.predict_proba_batch([]).shape == (0, 14)
    assert 0 < fewshot.temperature < 100


@pytest.mark.unit
def test_fewshot_ranks_a_shipped_example_first_and_calls_unknown_words_other(
    fewshot: FewShotIntentModel,
) -> None:
    classifier = IntentClassifier(fewshot)
    refund, gibberish = classifier.classify_batch(["how do i get a refund", "qqq vvv xxx"])
    assert refund.label == "return_refund" and refund.model == "fewshot:hash"
    assert refund.alternatives[0][0] == "return_refund"
    assert gibberish.intent is Intent.OTHER and gibberish.below_threshold


@pytest.mark.unit
def test_customer_messages_are_not_written_to_the_cache(
    tmp_path: Path, fewshot: FewShotIntentModel
) -> None:
    before = sorted((tmp_path / "cache").rglob("*.npy"))
    IntentClassifier(fewshot).classify("my secret order 12345 for Jane Doe")
    assert sorted((tmp_path / "cache").rglob("*.npy")) == before


# --- splitting and training -------------------------------------------------------------------


@pytest.mark.unit
def test_split_is_seeded_disjoint_complete_and_keeps_near_duplicates_together() -> None:
    texts = [f"message {i}" for i in range(60)] + ["Message 0", "MESSAGE  1"]
    labels = ["a"] * 30 + ["b"] * 30 + ["a", "a"]
    split = stratified_split(texts, labels, seed=3, validation=0.2, test=0.2)
    parts = [set(split.train), set(split.validation), set(split.test)]
    assert sum(len(p) for p in parts) == len(texts) == len(set.union(*parts))
    for twin, original in ((60, 0), (61, 1)):
        assert [twin in p for p in parts] == [original in p for p in parts]
    again = stratified_split(texts, labels, seed=3, validation=0.2, test=0.2)
    np.testing.assert_array_equal(split.test, again.test)
    other = stratified_split(texts, labels, seed=4, validation=0.2, test=0.2)
    assert not np.array_equal(split.test, other.test)


@pytest.mark.unit
def test_every_label_keeps_a_training_message_even_when_tiny() -> None:
    split = stratified_split(["x", "y", "z", "w"], ["a", "a", "a", "b"], 0, 0.3, 0.3)
    assert {"a", "b"} <= {["a", "a", "a", "b"][i] for i in split.train}


def train_fast(data: LabelledTexts, cache: Path) -> IntentTrainResult:
    """The intent head trained on `data` with the hash embedder and the fast settings."""
    return train_intent(data, HashEmbedder(), cache, FAST, progress=False)


@pytest.mark.unit
def test_training_on_generated_messages_reaches_high_held_out_accuracy(
    tmp_path: Path, messages_csv: Path
) -> None:
    data = read_labelled_texts(messages_csv, "msg", "lab")
    result = train_fast(data, tmp_path / "cache")
    assert result.metrics["test_accuracy_argmax"] >= 0.9
    assert result.metrics["test_messages"] == 12
    assert result.model.label_map["track_order"] == "order_status"
    assert result.model.meta["data"]["sha256"] == data.source["sha256"]
    assert len(result.model.meta["split"]["test_rows"]) == 12


@pytest.mark.unit
def test_training_is_reproducible(tmp_path: Path, messages_csv: Path) -> None:
    data = read_labelled_texts(messages_csv, "msg", "lab")
    first = train_fast(data, tmp_path / "cache")
    second = train_fast(data, tmp_path / "cache")
    np.testing.assert_array_equal(first.model.arrays["w0"], second.model.arrays["w0"])
    assert first.metrics == second.metrics


@pytest.mark.unit
def test_training_refuses_labels_with_too_few_messages(tmp_path: Path) -> None:
    data = LabelledTexts(["a", "b", "c", "d"], ["x", "x", "x", "y"], {})
    with pytest.raises(ValueError, match="fewer than 3"):
        train_fast(data, tmp_path)


@pytest.mark.unit
def test_a_saved_head_loads_automatically_and_predicts_the_same(
    tmp_path: Path, messages_csv: Path
) -> None:
    data = read_labelled_texts(messages_csv, "msg", "lab")
    result = train_fast(data, tmp_path / "cache")
    folder = result.model.save(tmp_path / "data" / "artifacts")
    assert folder.name == "intent-v1" and (folder / "head.npz").is_file()
    assert latest_model_dir(tmp_path / "data" / "artifacts") == folder
    classifier = IntentClassifier.from_settings(tmp_path / "data", embedder_name="hash")
    assert classifier.trained is not None and classifier.trained.name == "trained:intent-v1"
    texts = ["where is my order 4242", "cancel order 7"]
    np.testing.assert_allclose(
        classifier.predict_proba_batch(texts), result.model.predict_proba_batch(texts)
    )
    where, cancel = classifier.classify_batch(texts)
    assert (where.label, where.intent) == ("track_order", Intent.ORDER_STATUS)
    assert cancel.intent is Intent.CANCEL_ORDER and cancel.model == "trained:intent-v1"
    assert {intent for intent, _ in where.alternatives} <= set(SHOP_INTENTS)
    assert where.alternatives[0] == ("order_status", pytest.approx(where.confidence, abs=1e-3))
    assert classifier.model_for(where) is classifier.trained


@pytest.mark.unit
def test_an_unsure_head_hands_the_message_to_the_fewshot_model(
    tmp_path: Path, messages_csv: Path
) -> None:
    data = read_labelled_texts(messages_csv, "msg", "lab")
    head = train_fast(data, tmp_path / "cache").model
    head.threshold = 1.01
    classifier = IntentClassifier(FewShotIntentModel(HashEmbedder()), head)
    result = classifier.classify("hello there")
    assert result.model == "fewshot:hash" and result.intent is Intent.GREETING
    assert classifier.model_for(result) is classifier.fewshot


@pytest.mark.unit
def test_a_head_trained_on_other_embeddings_is_refused(tmp_path: Path, messages_csv: Path) -> None:
    data = read_labelled_texts(messages_csv, "msg", "lab")
    head = train_fast(data, tmp_path / "cache").model
    folder = head.save(tmp_path / "artifacts")

    class Other(HashEmbedder):
        name = "e5"

    with pytest.raises(ValueError, match="trained on 'hash'"):
        TrainedIntentModel.load(folder, Other())


# --- evaluation -------------------------------------------------------------------------------


@pytest.mark.unit
def test_evaluation_uses_the_test_rows_the_training_held_out(
    tmp_path: Path, messages_csv: Path, fewshot: FewShotIntentModel
) -> None:
    data = read_labelled_texts(messages_csv, "msg", "lab")
    head = train_fast(data, tmp_path / "cache").model
    held_out = held_out_rows(data, head, None)
    assert held_out.rows.tolist() == head.meta["split"]["test_rows"]
    with pytest.raises(ValueError, match="split seed 0"):
        held_out_rows(data, head, split_seed=5)
    other_file = read_labelled_texts(write_messages(tmp_path / "new.csv", seed=9), "msg", "lab")
    assert "seeded split (seed 0" in held_out_rows(other_file, head, None).note
    models = applicable_models(data.labels, head)
    assert models == ["fewshot", "trained", "combined"]
    reports = evaluate_intent(
        data, models, fewshot, head, tmp_path / "cache", held_out, None, False
    )
    assert reports["trained"].metrics["accuracy"] >= 0.9
    assert reports["trained"].metrics["examples"] == 12
    assert reports["combined"].settings["model"] == "trained → fewshot:hash"


@pytest.mark.unit
def test_labels_that_are_no_shop_intents_cannot_score_the_fewshot_model() -> None:
    with pytest.raises(ValueError, match="nothing to evaluate"):
        applicable_models(["sunny", "rainy"], None)
    assert applicable_models(["greeting", "payment"], None) == ["fewshot"]


# --- command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHOPSIGHT_TEXT_EMBEDDER", "hash")
    return train_eval_app(intent_commands.register)


@pytest.mark.unit
def test_cli_trains_then_evaluates_on_the_held_out_rows(
    cli: typer.Typer, tmp_path: Path, messages_csv: Path
) -> None:
    runner = CliRunner()
    columns = ["--data", str(messages_csv), "--text-col", "msg", "--label-col", "lab"]
    trained = runner.invoke(cli, ["train", "intent", *columns, "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["model"].endswith("intent-v1")
    evaluated = runner.invoke(cli, ["eval", "intent", *columns, "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    payload = json.loads(evaluated.stdout)
    assert "trained:intent-v1 held out" in payload["held_out"]
    assert set(payload["reports"]) == {"fewshot", "trained", "combined"}
    assert payload["reports"]["trained"]["metrics"]["examples"] == 12
    reports = tmp_path / "data" / "reports"
    assert {"intent-trained.md", "intent-combined.json", "intent-fewshot-confusion.png"} <= {
        p.name for p in reports.iterdir()
    }
    table = runner.invoke(cli, ["eval", "intent", *columns, "--model", "trained"])
    assert table.exit_code == 0 and "trained:intent-v1" in table.stdout


@pytest.mark.unit
def test_cli_bad_input_gives_one_line_errors(
    cli: typer.Typer, tmp_path: Path, messages_csv: Path
) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["train", "intent", "--data", str(tmp_path / "none.csv")])
    assert missing.exit_code == 1 and "no such file" in missing.output
    wrong = runner.invoke(cli, ["train", "intent", "--data", str(messages_csv)])
    assert wrong.exit_code == 1 and "missing column" in wrong.output
    untrained = runner.invoke(
        cli,
        ["eval", "intent", "--data", str(messages_csv), "--text-col", "msg", "--label-col",
         "lab", "--model", "trained"],
    )  # fmt: skip
    assert untrained.exit_code == 1 and "shopsight train intent" in untrained.output
    for result in (missing, wrong, untrained):
        assert "Traceback" not in result.output
    assert runner.invoke(cli, ["eval", "intent", "--help"]).exit_code == 0


# --- real embedder and real data --------------------------------------------------------------


@pytest.fixture(scope="module")
def e5_fewshot() -> FewShotIntentModel:
    """Few-shot over real E5; the examples' vectors live in the app's text cache."""
    from assistant.settings import Settings
    from retrieval.encoders.registry import get_text_embedder

    return FewShotIntentModel(get_text_embedder("e5"), cache_dir=Settings().data_dir / "cache")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("where is my parcel", Intent.ORDER_STATUS),
        ("我要退货", Intent.RETURN_REFUND),
        ("I want to talk to a person", Intent.HUMAN_AGENT),
        ("qwzx blorp vnnmq", Intent.OTHER),
        ("the cup arrived smashed", Intent.DAMAGED_WRONG_ITEM),
        ("我的快递到哪里了", Intent.ORDER_STATUS),
    ],
)
def test_e5_fewshot_recognises_english_and_chinese_messages(
    e5_fewshot: FewShotIntentModel, message: str, intent: Intent
) -> None:
    assert message not in e5_fewshot.examples.texts
    assert IntentClassifier(e5_fewshot).classify(message).intent is intent


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.data
def test_bitext_head_beats_095_and_fewshot_beats_075_on_held_out_messages(
    shared_data: Path, e5_fewshot: FewShotIntentModel
) -> None:
    from assistant.settings import Settings

    data = read_labelled_texts(
        shared_data / "bitext-customer-support" / "dev.csv", "instruction", "intent"
    )
    config = IntentTrainConfig(c_grid=(1.0,))
    cache = Settings().data_dir / "cache"
    result = train_intent(data, e5_fewshot.embedder, cache, config, progress=False)
    assert result.metrics["test_accuracy"] >= 0.95
    held_out = held_out_rows(data, result.model, None)
    reports = evaluate_intent(
        data, ["fewshot", "combined"], e5_fewshot, result.model, cache, held_out, None, False
    )
    assert reports["fewshot"].metrics["accuracy"] >= 0.75
    assert reports["combined"].metrics["accuracy"] >= 0.95


@pytest.mark.unit
def test_an_intent_head_saved_by_the_previous_code_loads_and_the_next_is_v2(
    tmp_path: Path,
) -> None:
    embedder = HashEmbedder()
    folder = tmp_path / "intent-v1"
    folder.mkdir()
    meta = {
        "created": "2024-06-18T10:00:00+0000",
        "metrics": {"test_accuracy": 0.9},
        "format_version": 1,
        "classes": ["cancel_order", "track_order"],
        "temperature": 0.5,
        "threshold": 0.4,
        "label_map": {"cancel_order": "cancel_order", "track_order": "order_status"},
        "embedder": embedder.name,
        "embed_kind": "query",
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    dim = embedder.embed_texts(["x"], kind="query").shape[1]
    np.savez(
        folder / "head.npz",
        mean=np.zeros(dim, np.float32),
        scale=np.ones(dim, np.float32),
        w0=np.zeros((dim, 2), np.float32),
        b0=np.array([1.0, 0.0], np.float32),
    )
    found = latest_model_dir(tmp_path)
    assert found == folder
    model = TrainedIntentModel.load(found, embedder)
    assert model.name == "trained:intent-v1" and model.threshold == 0.4
    assert model.predict_proba_batch(["where is it"]).argmax() == 0
    assert model.save(tmp_path).name == "intent-v2"
