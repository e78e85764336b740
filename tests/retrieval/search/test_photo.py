"""Photo → product search: ranking, evidence, confidence, evaluation harness and CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from assistant.cli.photo_search import register
from retrieval.calibration import threshold_for_precision
from retrieval.encoders.features import FeatureCache
from retrieval.encoders.text import l2_normalise
from retrieval.evaluation.photo_search import (
    evaluate_photo_search,
    load_catalogue,
    real_queries,
    sample_products,
)
from retrieval.search.photo import (
    ArrayImageIndex,
    MatchCalibrator,
    MatcherConfig,
    MirroredStoreIndex,
    PhotoMatcher,
    StoreImageIndex,
    load_artefact,
)
from retrieval.simulate import SimulationProtocol
from retrieval.training.photo_match import (
    CalibrationRows,
    calibrate_photo_match,
    fit_calibrator,
    save_artefact,
    threshold_for_targets,
)


class GridEncoder:
    """Test double: a 6×6 colour thumbnail, centred and L2-normalised (crop-tolerant, fast)."""

    name = "grid-test"
    dim = 6 * 6 * 3

    def __init__(self) -> None:
        self.images = 0

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.images += len(images)
        rows = [
            np.asarray(i.convert("RGB").resize((6, 6), Image.Resampling.BOX), dtype=np.float32)
            for i in images
        ]
        return l2_normalise(np.stack([r.reshape(-1) / 255.0 - 0.5 for r in rows]))


def _cache(root: Path, encoder: GridEncoder) -> FeatureCache:
    return FeatureCache(root, encoder)


def _product_image(seed: int, size: tuple[int, int] = (96, 128)) -> Image.Image:
    """A distinct, smooth pattern per seed: a few blocks of random colour, blurred by resizing."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)


def _folder_catalogue(root: Path, per_class: int = 6) -> Path:
    for c, category in enumerate(("hats", "shoes")):
        for i in range(per_class):
            path = root / category / f"item{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            _product_image(100 * c + i).save(path)
    return root


def _unit(*values: float) -> np.ndarray:
    return l2_normalise(np.asarray([values], dtype=np.float32))[0]


def _index() -> ArrayImageIndex:
    vectors = np.stack(
        [_unit(1, 0, 0), _unit(0.9, 0.1, 0), _unit(0, 1, 0), _unit(0, 0.9, 0.2), _unit(0, 0, 1)]
    )
    return ArrayImageIndex(
        vectors,
        ["a", "a", "b", "c", "d"],
        ["hat", "hat", "shoe", "shoe", "bag"],
        ["a0.jpg", "a1.jpg", "b.jpg", "c.jpg", "d.jpg"],
        ["Hat A", "Hat A", "Shoe B", "Shoe C", "Bag D"],
    )


def _matcher(**config: object) -> PhotoMatcher:
    return PhotoMatcher(_index(), GridEncoder(), config=MatcherConfig(**config))  # type: ignore[arg-type]


@pytest.mark.unit
def test_array_index_filters_like_chroma() -> None:
    index = _index()
    probe = _unit(1, 0, 0)
    assert {c.product_id for c in index.nearest(probe, 10, {"product_id": {"$ne": "a"}})} == {
        "b",
        "c",
        "d",
    }
    assert {c.product_id for c in index.nearest(probe, 10, {"category": "shoe"})} == {"b", "c"}
    assert {c.product_id for c in index.nearest(probe, 10, {"category": {"$in": ["bag"]}})} == {"d"}
    assert len(index.nearest(probe, 10, {"category": {"$nin": ["hat", "shoe"]}})) == 1
    assert index.nearest(probe, 10, {"category": "none"}) == []
    with pytest.raises(ValueError, match="filters by"):
        index.nearest(probe, 3, {"price": 3})


@pytest.mark.unit
def test_each_product_appears_once_with_its_best_image() -> None:
    result = _matcher().match(np.stack([_unit(0.9, 0.1, 0)]), k=5)
    ids = [m.product_id for m in result.matches]
    assert ids[0] == "a"
    assert len(ids) == len(set(ids)) == 4
    assert result.matches[0].matched_image == "a1.jpg"
    assert result.matches[0].title == "Hat A"
    assert result.matches[0].similarity == pytest.approx(1.0, abs=1e-4)


@pytest.mark.unit
def test_an_image_is_scored_by_its_best_matching_view() -> None:
    matcher = _matcher(views=("full", "centre80"))
    views = np.stack([_unit(0, 0, 1), _unit(0, 1, 0)])
    result = matcher.match(views, k=2)
    best = {m.product_id: m.matched_view for m in result.matches}
    assert best == {"b": "centre80", "d": "full"} or best == {"d": "full", "b": "centre80"}


@pytest.mark.unit
def test_category_bonus_reorders_close_matches_and_reports_agreement() -> None:
    probe = np.stack([_unit(0.45, 0.55, 0)])
    plain = _matcher().match(probe, k=3, category=("hat", 0.9))
    assert plain.matches[0].product_id == "b"
    assert plain.matches[0].category_agrees is False
    assert plain.category_source == "model"
    boosted = _matcher(category_bonus=0.1).match(probe, k=3, category=("hat", 0.9))
    assert boosted.matches[0].product_id == "a"
    assert boosted.matches[0].category_agrees is True


@pytest.mark.unit
def test_without_a_model_the_nearest_products_vote_for_the_category() -> None:
    result = _matcher().match(np.stack([_unit(0.1, 1, 0.1)]), k=3)
    assert result.category_source == "catalogue"
    assert result.predicted_category == "shoe"
    assert result.category_confidence is not None and result.category_confidence > 0.5


@pytest.mark.unit
def test_confident_is_the_calibrated_probability_against_the_threshold() -> None:
    strict = MatchCalibrator(coef=[10.0, 0.0, 0.0], intercept=-9.5, threshold=0.5)
    matcher = PhotoMatcher(_index(), GridEncoder(), calibrator=strict)
    exact = matcher.match(np.stack([_unit(0, 0, 1)]))
    vague = matcher.match(np.stack([_unit(1, 1, 1)]))
    assert exact.confident and exact.confidence > 0.6
    assert exact.matches[0].confidence == exact.confidence
    assert all(m.confidence < exact.confidence for m in exact.matches[1:])
    assert not vague.confident and vague.confidence < 0.5
    assert vague.threshold == 0.5


@pytest.mark.unit
def test_empty_index_gives_no_matches_and_no_confidence() -> None:
    empty = ArrayImageIndex(np.zeros((0, 3), dtype=np.float32), [], [])
    result = PhotoMatcher(empty, GridEncoder()).match(np.stack([_unit(1, 0, 0)]))
    assert result.matches == [] and not result.confident


@pytest.mark.unit
def test_unknown_query_view_is_rejected() -> None:
    with pytest.raises(ValueError, match="query views"):
        PhotoMatcher(_index(), GridEncoder(), config=MatcherConfig(views=("sideways",)))


@pytest.mark.unit
def test_threshold_is_the_lowest_that_meets_the_precision() -> None:
    probabilities = np.asarray([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.asarray([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    threshold, precision, coverage = threshold_for_precision(probabilities, labels, 0.8)
    assert threshold == 0.6
    assert precision == pytest.approx(0.8)
    assert coverage == 1.0
    threshold, precision, coverage = threshold_for_precision(probabilities, labels, 0.95)
    assert threshold == 0.8 and precision == 1.0 and coverage == 0.75


@pytest.mark.unit
def test_fitted_calibrator_ranks_strong_matches_higher() -> None:
    rng = np.random.default_rng(0)
    right = np.column_stack([rng.uniform(0.75, 0.95, 200), rng.uniform(0.05, 0.3, 200)])
    wrong = np.column_stack([rng.uniform(0.5, 0.8, 200), rng.uniform(0.0, 0.08, 200)])
    rows = np.column_stack([np.vstack([right, wrong]), np.ones(400)])
    right_first = np.concatenate([np.ones(200), np.zeros(50)])
    calibrator, metrics = fit_calibrator(
        CalibrationRows(rows[:250], right_first, rows[250:]), target_precision=0.9
    )
    assert metrics["auc"] > 0.95
    assert metrics["precision_at_threshold"] >= 0.9
    assert metrics["absent_at_threshold"] <= 0.05
    assert calibrator.probability([0.9, 0.25, 1.0]) > calibrator.probability([0.6, 0.01, 1.0])
    with pytest.raises(ValueError, match="both"):
        fit_calibrator(CalibrationRows(rows[:10], np.ones(10), np.zeros((0, 3))))


@pytest.mark.unit
def test_threshold_meets_the_precision_and_the_unlisted_share_apart() -> None:
    present = np.asarray([0.9, 0.8, 0.7, 0.6])
    right = np.asarray([1.0, 1.0, 0.0, 1.0])
    absent = np.asarray([0.75, 0.5])
    assert threshold_for_targets(present, right, absent, 0.9, 0.5) == 0.8
    assert threshold_for_targets(present, right, absent, 0.6, 0.5) == 0.6
    assert threshold_for_targets(present, right, absent, 0.6, 0.0) == 0.8
    assert threshold_for_targets(present, np.zeros(4), absent, 0.9, 1.0) == 0.9


@pytest.mark.unit
def test_a_relisted_photo_is_not_a_rival() -> None:
    vectors = np.stack([_unit(1, 0, 0), _unit(1, 0, 0), _unit(0.8, 0.6, 0)])
    index = ArrayImageIndex(vectors, ["a", "a-again", "b"], ["hat"] * 3)
    result = PhotoMatcher(index, GridEncoder()).match(np.stack([_unit(1, 0.05, 0)]), k=3)
    assert {m.product_id for m in result.matches[:2]} == {"a", "a-again"}
    assert result.margin == pytest.approx(
        result.matches[0].similarity - result.matches[2].similarity, abs=1e-3
    )


@pytest.mark.unit
def test_artefact_round_trip(tmp_path: Path) -> None:
    calibrator = MatchCalibrator(coef=[1.0, 2.0, 3.0], intercept=-1.5, threshold=0.7)
    config = MatcherConfig(views=("full",), category_bonus=0.02)
    folder = save_artefact(calibrator, config, {"metrics": {"auc": 0.9}}, tmp_path)
    assert json.loads((folder / "meta.json").read_text())["metrics"]["auc"] == 0.9
    loaded = load_artefact(tmp_path)
    assert loaded is not None
    assert loaded[0].coef == [1.0, 2.0, 3.0] and loaded[0].threshold == 0.7
    assert loaded[0].source == str(folder)
    assert loaded[1] == config
    assert load_artefact(tmp_path / "nothing") is None


@pytest.mark.integration
def test_store_index_ranks_like_exact_search(tmp_path: Path) -> None:
    from knowledge_base.store import KnowledgeStore

    rng = np.random.default_rng(3)
    vectors = l2_normalise(rng.standard_normal((40, 16)))
    store = KnowledgeStore(path=tmp_path / "chroma", prefix="test")
    store.collection("images", encoder="grid-test")
    store.upsert(
        "images",
        [f"p{i // 2}#img{i % 2}" for i in range(40)],
        vectors,
        [f"Product {i // 2}" for i in range(40)],
        [
            {"product_id": f"p{i // 2}", "category": f"c{i % 3}", "path": f"{i}.jpg"}
            for i in range(40)
        ],
    )
    store.upsert(
        "products",
        [f"p{i}" for i in range(20)],
        rng.standard_normal((20, 8)),
        ["x"] * 20,
        [{"title": f"Product {i}", "category": "c", "price": 9.5} for i in range(20)],
    )
    exact = ArrayImageIndex(
        vectors, [f"p{i // 2}" for i in range(40)], [f"c{i % 3}" for i in range(40)]
    )
    query = np.stack([l2_normalise(vectors[7:8] + 0.05 * rng.standard_normal((1, 16)))[0]])
    from_store = PhotoMatcher(StoreImageIndex(store, "grid-test"), GridEncoder()).match(query, k=5)
    from_array = PhotoMatcher(exact, GridEncoder()).match(query, k=5)
    assert [m.product_id for m in from_store.matches] == [m.product_id for m in from_array.matches]
    assert from_store.matches[0].product_id == "p3"
    assert from_store.matches[0].matched_image == "7.jpg"
    assert from_store.matches[0].price == 9.5
    absent = PhotoMatcher(StoreImageIndex(store, "grid-test"), GridEncoder()).match(
        query, k=5, where={"product_id": {"$ne": "p3"}}
    )
    assert "p3" not in [m.product_id for m in absent.matches]
    mirror = MirroredStoreIndex(store, "grid-test", page=7, recheck_s=0)
    mirrored = PhotoMatcher(mirror, GridEncoder()).match(query, k=5)
    assert [m.product_id for m in mirrored.matches] == [m.product_id for m in from_array.matches]
    assert mirrored.matches[0].price == 9.5 and mirrored.matches[0].matched_image == "7.jpg"
    patient = MirroredStoreIndex(store, "grid-test", recheck_s=3600)
    patient.nearest(query, 1)
    store.delete("images", ids=["p3#img1"])

    def images(index: MirroredStoreIndex) -> set[str | None]:
        return {m.matched_image for m in PhotoMatcher(index, GridEncoder()).match(query).matches}

    assert "7.jpg" not in images(mirror)  # the count changed, and it is checked every time
    assert "7.jpg" in images(patient)  # not rechecked yet...
    patient.refresh()
    assert "7.jpg" not in images(patient)  # ...until told


@pytest.mark.integration
def test_search_embeds_every_view_and_finds_a_simulated_photo(tmp_path: Path) -> None:
    catalogue = load_catalogue(_folder_catalogue(tmp_path / "shop"))
    encoder = GridEncoder()
    index = ArrayImageIndex(
        encoder.embed_images([Image.open(p) for p in catalogue.paths]),
        catalogue.product_ids,
        catalogue.categories,
    )
    matcher = PhotoMatcher(index, encoder, lambda images: [("shoes", 0.8)] * len(images))
    before = encoder.images
    photo = SimulationProtocol()(Image.open(catalogue.paths[3]))
    result = matcher.search(photo, k=3)
    assert encoder.images - before == len(matcher.config.views)
    assert result.matches[0].product_id == catalogue.product_ids[3]
    assert result.predicted_category == "shoes" and result.category_source == "model"
    assert result.seconds > 0


@pytest.mark.integration
def test_evaluation_reports_recall_and_decisions(tmp_path: Path) -> None:
    catalogue = load_catalogue(_folder_catalogue(tmp_path / "shop"))
    assert catalogue.products == 12 and catalogue.product_ids[0] == "hats/item0"
    encoder = GridEncoder()
    cache = _cache(tmp_path / "cache", encoder)
    report = evaluate_photo_search(
        encoder, catalogue, cache, cache, tmp_path / "reports", progress=False
    )
    assert report.metrics["queries"] == 12
    assert report.metrics["recall@1"] >= 0.8
    assert report.metrics["recall@5"] >= report.metrics["recall@1"]
    assert 0 < report.metrics["mrr"] <= 1
    assert 0 <= report.metrics["absent_confident_rate"] <= 1
    assert (tmp_path / "reports" / "photo-search.json").exists()
    markdown = (tmp_path / "reports" / "photo-search.md").read_text()
    assert "random resized crop" in markdown and "recall@1" in markdown
    again = evaluate_photo_search(encoder, catalogue, cache, cache, tmp_path / "r2", progress=False)
    assert again.metrics == report.metrics


@pytest.mark.integration
def test_distractors_are_indexed_but_never_asked_for(tmp_path: Path) -> None:
    catalogue = load_catalogue(_folder_catalogue(tmp_path / "shop"))
    others = load_catalogue(_folder_catalogue(tmp_path / "others", 5))
    grown = catalogue.with_distractors([others])
    assert grown.products == catalogue.products + others.products
    assert set(grown.first_images()) == set(catalogue.first_images())
    assert "distractor1:hats/item0" in grown.product_ids
    assert sample_products(grown, 12, 0).queried is not None
    encoder = GridEncoder()
    cache = _cache(tmp_path / "cache", encoder)
    report = evaluate_photo_search(encoder, grown, cache, cache, tmp_path / "r", progress=False)
    assert report.metrics["queries"] == report.metrics["queried_products"] == catalogue.products
    assert report.metrics["products"] == grown.products


@pytest.mark.integration
def test_a_relisted_twin_counts_as_the_product_and_leaves_with_it(tmp_path: Path) -> None:
    shop = _folder_catalogue(tmp_path / "shop", 3)
    (shop / "hats" / "again.png").write_bytes((shop / "hats" / "item0.png").read_bytes())
    catalogue = load_catalogue(shop)
    assert catalogue.twins() == {"hats/item0": {"hats/again"}, "hats/again": {"hats/item0"}}
    encoder = GridEncoder()
    cache = _cache(tmp_path / "cache", encoder)
    report = evaluate_photo_search(
        encoder,
        catalogue,
        cache,
        cache,
        tmp_path / "r",
        protocol=SimulationProtocol(seed=3),
        progress=False,
    )
    assert report.metrics["relisted_products"] == 2
    missed = {m["product"] for m in report.details["misses (top-1 wrong)"]}
    assert not missed & {"hats/item0", "hats/again"}


@pytest.mark.integration
def test_photos_of_products_not_sold_here_are_counted(tmp_path: Path) -> None:
    catalogue = load_catalogue(_folder_catalogue(tmp_path / "shop", 3))
    strangers = load_catalogue(_folder_catalogue(tmp_path / "others", 4))
    encoder = GridEncoder()
    cache = _cache(tmp_path / "cache", encoder)
    rates = []
    for threshold in (0.4, 0.6):
        report = evaluate_photo_search(
            encoder,
            catalogue,
            cache,
            cache,
            tmp_path / "r",
            calibrator=MatchCalibrator(coef=[0, 0, 0], intercept=0, threshold=threshold),
            unlisted=strangers,
            progress=False,
        )
        assert report.metrics["unlisted_products"] == strangers.products
        rates.append(report.metrics["unlisted_confident_rate"])
    assert rates == [1.0, 0.0]


@pytest.mark.integration
def test_calibration_on_a_training_catalogue(tmp_path: Path) -> None:
    catalogue = sample_products(load_catalogue(_folder_catalogue(tmp_path / "shop", 10)), 16, 0)
    assert catalogue.products == 16
    encoder = GridEncoder()
    cache = _cache(tmp_path / "cache", encoder)
    calibrator, metrics = calibrate_photo_match(
        encoder,
        catalogue,
        cache,
        cache,
        SimulationProtocol(seed=1),
        MatcherConfig(),
        0.9,
        progress=False,
    )
    assert metrics["rows"] == 32
    assert 0 <= calibrator.threshold <= 1
    assert metrics["precision_at_threshold"] >= 0.9


@pytest.mark.integration
def test_real_query_photos_are_named_after_their_product(tmp_path: Path) -> None:
    catalogue = load_catalogue(_folder_catalogue(tmp_path / "shop", 2))
    queries = tmp_path / "queries"
    (queries / "hats" / "item1").mkdir(parents=True)
    _product_image(1).save(queries / "hats" / "item0.jpg")
    _product_image(1).save(queries / "hats" / "item1" / "second.jpg")
    _product_image(1).save(queries / "unknown.jpg")
    encoder = GridEncoder()
    query_set = real_queries(queries, catalogue, _cache(tmp_path / "c", encoder), ["full"], False)
    assert query_set.targets == ["hats/item0", "hats/item1"]
    assert query_set.unmatched == [str(queries / "unknown.jpg")]
    assert query_set.views.shape == (2, 1, encoder.dim)


@pytest.mark.integration
def test_catalogue_file_with_several_images_per_product(tmp_path: Path) -> None:
    for name, seed in (("a1.png", 1), ("a2.png", 2), ("b.png", 3)):
        _product_image(seed).save(tmp_path / name)
    records = [
        {"id": "A", "title": "Alpha", "category": "x", "images": "a1.png|a2.png"},
        {"id": "B", "title": "Beta", "category": "y", "images": "b.png"},
        {"id": "C", "title": "No photo", "category": "y"},
    ]
    lines = ["id,title,category,images"] + [
        f"{r['id']},{r['title']},{r['category']},{r.get('images', '')}" for r in records
    ]
    (tmp_path / "catalogue.csv").write_text("\n".join(lines) + "\n")
    catalogue = load_catalogue(tmp_path / "catalogue.csv")
    assert catalogue.product_ids == ["A", "A", "B"]
    assert catalogue.first_images()["A"].name == "a1.png"
    assert any("C" in s for s in catalogue.skipped)


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, typer.Typer]:
    import retrieval.encoders.registry

    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(retrieval.encoders.registry, "get_image_encoder", GridEncoder)
    app = typer.Typer()
    train_app, eval_app = typer.Typer(), typer.Typer()
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    register(train_app, eval_app)
    return CliRunner(), app


@pytest.mark.integration
def test_cli_trains_then_evaluates_with_the_trained_calibrator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, app = _cli(tmp_path, monkeypatch)
    shop = _folder_catalogue(tmp_path / "shop", 12)
    trained = runner.invoke(
        app,
        [
            "train",
            "photo-match",
            "--data",
            str(shop),
            "--products",
            "20",
            "--calibrate-only",
            "--json",
        ],
    )
    assert trained.exit_code == 0, trained.output
    model = json.loads(trained.stdout)
    assert Path(model["model"], "calibrator.npz").exists()
    assert model["products"] == 20
    evaluated = runner.invoke(app, ["eval", "photo-search", "--data", str(shop), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["metrics"]["queries"] == 24
    assert report["settings"]["calibrator"]["source"] == model["model"]
    assert (tmp_path / "data" / "reports" / "photo-search.md").exists()


@pytest.mark.unit
def test_cli_help_and_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, app = _cli(tmp_path, monkeypatch)
    assert "--queries" in runner.invoke(app, ["eval", "photo-search", "--help"]).stdout
    assert "--precision" in runner.invoke(app, ["train", "photo-match", "--help"]).stdout
    missing = runner.invoke(app, ["eval", "photo-search", "--data", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "error:" in missing.output and "Traceback" not in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["eval", "photo-search", "--data", str(empty)])
    assert result.exit_code == 1 and "no products with local images" in result.output


@pytest.mark.data
@pytest.mark.slow
def test_clothing_validation_subset_recall(shared_data: Path, tmp_path: Path) -> None:
    """The real encoder on 120 validation products (shared feature cache when present)."""
    from retrieval.encoders.registry import get_image_encoder

    catalogue = sample_products(
        load_catalogue(shared_data / "clothing-small" / "validation"), 120, 0
    )
    encoder = get_image_encoder()
    root = Path(__file__).resolve().parents[3] / "data" / "cache"
    cache = FeatureCache(root, encoder)
    query_cache = FeatureCache(root, encoder, max_side=1024)
    report = evaluate_photo_search(encoder, catalogue, cache, query_cache, tmp_path, progress=False)
    assert report.metrics["recall@1"] >= 0.93
    assert report.metrics["recall@5"] >= 0.97
