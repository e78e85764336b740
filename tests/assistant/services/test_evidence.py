"""Evidence packs through the real engine: SHAP highlights, Grad-CAM overlays, the CLI, erasure."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from assistant.components import Components
from assistant.services.evidence import EvidenceFolders, EvidenceService
from assistant.turn.schemas import TurnRequest, TurnResult
from tests.assistant.demo_shop import customer_photo

pytestmark = pytest.mark.integration

COMPLAINT = "The zipper arrived broken and I want a refund"


@pytest.fixture(scope="module")
def damaged_turn(components: Components) -> TurnResult:
    return components.engine.handle_turn(
        TurnRequest(
            session_id="evidence", text=COMPLAINT, image=customer_photo("backpack-urban-black")
        )
    )


def test_a_turn_keeps_its_photo_and_explains_nothing_until_asked(
    components: Components, damaged_turn: TurnResult
) -> None:
    folder = components.evidence.folders.folder(damaged_turn.evidence_id)
    assert (folder / "photo.jpg").is_file()
    assert components.evidence.folders.load_pack(damaged_turn.evidence_id) is None


def test_pack_explains_words_and_photo(components: Components, damaged_turn: TurnResult) -> None:
    pack = components.evidence.build(damaged_turn.evidence_id)

    assert pack.status == "ready", pack.error
    assert pack.decision == damaged_turn.decision
    assert pack.products[0].product_id == "backpack-urban-black"
    assert pack.sentiment_trend == [damaged_turn.sentiment.trend]
    by_target = {a.target: a for a in pack.attributions}
    assert set(by_target) == {"sentiment", "intent", "escalation"}
    sentiment = by_target["sentiment"]
    most_negative = sentiment.tokens[sentiment.values.index(min(sentiment.values))]
    assert most_negative.lower() in {"broken", "refund", "zipper"}
    assert "<span" in sentiment.html
    kinds = {h.kind for h in pack.heatmaps}
    assert "similarity" in kinds
    for heatmap in pack.heatmaps:
        path = components.evidence.heatmap_path(pack.evidence_id, heatmap.file)
        assert path is not None
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.width > picture.height


def test_text_only_turn_has_no_heatmap(components: Components) -> None:
    result = components.engine.handle_turn(
        TurnRequest(session_id="evidence-text", text="How long does delivery take to Germany?")
    )
    pack = components.evidence.build(result.evidence_id)
    assert pack.status == "ready"
    assert pack.heatmaps == []
    assert len(pack.attributions) == 3


def test_background_mode_reports_pending_then_ready(components: Components) -> None:
    background = EvidenceService(
        components.evidence.folders,
        components.memory,
        components.evidence.explainers,
        mode="background",
    )
    result = components.engine.handle_turn(
        TurnRequest(session_id="evidence-bg", text="Where is my parcel? This is taking forever")
    )
    background.submit(result, None)
    first = background.get(result.evidence_id)
    assert first is not None and first.status in {"pending", "ready"}
    pack = background.wait(result.evidence_id, timeout_s=120)
    background.close()
    assert pack is not None and pack.status == "ready", pack
    assert background.get(result.evidence_id) == pack


def test_unknown_or_unsafe_ids_are_refused(components: Components) -> None:
    assert components.evidence.get("0" * 32) is None
    with pytest.raises(ValueError, match="not an evidence id"):
        components.evidence.folders.folder("../sessions.db")
    assert components.evidence.heatmap_path("0" * 32, "../pack.json") is None


def test_explain_command_prints_and_saves_the_pack(
    components: Components,
    damaged_turn: TurnResult,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assistant.cli import build_app

    app = build_app()

    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(components.settings.data_dir))
    out = components.settings.data_dir / "explained"
    result = CliRunner().invoke(
        app, ["explain", damaged_turn.evidence_id, "--json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    pack = json.loads(result.stdout)
    assert pack["evidence_id"] == damaged_turn.evidence_id and pack["status"] == "ready"
    assert (out / "report.html").is_file() and (out / "similarity.png").is_file()

    missing = CliRunner().invoke(app, ["explain", "f" * 32])
    assert missing.exit_code == 1
    assert "no turn has evidence id" in missing.output


def test_deleting_a_session_erases_its_evidence(components: Components) -> None:
    result = components.engine.handle_turn(
        TurnRequest(
            session_id="evidence-gone", text="hi", image=customer_photo("mug-stoneware-white")
        )
    )
    folders: EvidenceFolders = components.evidence.folders
    assert folders.folder(result.evidence_id).is_dir()
    assert components.delete_session("evidence-gone")
    assert not folders.folder(result.evidence_id).exists()
    assert components.evidence.get(result.evidence_id) is None
