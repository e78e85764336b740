"""`shopsight eval conversations --url`: scripts played against a real server over REST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from assistant.api.server import BackgroundServer
from assistant.cli import build_app
from tests.assistant.api.conftest import AGENT_KEY
from tests.assistant.demo_shop import customer_photo
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def scripts(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "backpack.jpg").write_bytes(customer_photo("backpack-urban-black"))
    photo = {
        "kind": "photo",
        "lang": "en",
        "turns": [
            {
                "text": "How much is this?",
                "image": "backpack.jpg",
                "expect": {"product": "backpack-urban-black", "price": "79.00"},
            },
            {"text": "What is your return policy?", "expect": {"article": "returns-policy-en"}},
        ],
    }
    wrong = {"kind": "faq", "turns": [{"text": "hello", "expect": {"article": "no-such-article"}}]}
    (folder / "photo.yaml").write_text(yaml.safe_dump(photo), encoding="utf-8")
    (folder / "wrong.yaml").write_text(yaml.safe_dump(wrong), encoding="utf-8")
    return folder


def evaluate(folder: Path, url: str, tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        build_app(),
        [
            *("eval", "conversations", "--scripts", str(folder), "--url", url),
            *("--api-key", AGENT_KEY, "--out", str(tmp_path / "reports"), "--json"),
        ],
    )
    return result.exit_code, result.output


def test_scripts_play_over_rest_and_a_failed_expectation_is_reported(
    server: BackgroundServer, tmp_path: Path
) -> None:
    code, output = evaluate(scripts(tmp_path / "scripts"), server.url, tmp_path)
    assert code == 0, output
    report = json.loads(output.splitlines()[-1])
    metrics = report["metrics"]
    assert metrics["success_photo"] == 1.0 and metrics["success_faq"] == 0.0
    assert metrics["photo_right_product_stated"] == 1.0 and metrics["photo_turns"] == 1
    assert metrics["photo_turn_p95_ms"] > 0 and metrics["text_turns"] == 2
    (failure,) = report["details"]["failures"]
    assert failure["script"] == "wrong.yaml" and "no-such-article" in failure["failures"][0]


def test_a_server_that_is_not_running_is_one_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, output = evaluate(scripts(tmp_path / "scripts"), url, tmp_path)
    assert code == 1
    assert "cannot reach" in output and "shopsight serve" in output
