"""Every endpoint of the REST API against a real uvicorn server on the ingested demo shop."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from assistant.api.public import PUBLIC_METADATA
from assistant.components import Components
from knowledge_base.admin import delete_record
from tests.assistant.api.conftest import ADMIN, AGENT, assert_error, assert_healthy
from tests.assistant.api.helpers import chat, chat_json, multipart, session_id
from tests.assistant.demo_shop import DEMO, customer_photo

pytestmark = pytest.mark.integration

PROTECTED = [
    ("GET", "/v1/sessions", "agent"),
    ("GET", "/v1/sessions/some-session", "agent"),
    ("GET", "/v1/evidence/0123abcd", "agent"),
    ("GET", "/v1/evidence/0123abcd/heatmaps/similarity.png", "agent"),
    ("POST", "/v1/kb/ingest", "admin"),
    ("GET", "/v1/kb/stats", "admin"),
]


def test_health_readiness_metrics_and_docs(client: httpx.Client) -> None:
    assert_healthy(client)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["models"] == "ready" and checks["store"] == "ok"
    assert checks["knowledge_base"]["products"] >= 59
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for name in ("shopsight_turn_latency_seconds", "shopsight_decisions_total", "shopsight_ready"):
        assert name in metrics.text
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/chat",
        "/v1/sessions/{session_id}",
        "/v1/search/text",
        "/v1/search/image",
        "/v1/evidence/{evidence_id}",
        "/v1/kb/ingest",
        "/v1/kb/stats",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths
    for path in ("/v1/chat", "/v1/search/image"):
        content = paths[path]["post"]["requestBody"]["content"]
        assert "multipart/form-data" in content
        assert content["application/json"]["schema"]["properties"]["image"]
    chat_body = paths["/v1/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert chat_body["required"] == ["session_id"]
    assert set(chat_body["properties"]) == {
        "session_id",
        "text",
        "image",
        "lang",
        "chosen_product_id",
    }
    assert chat_body["additionalProperties"] is False
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_text_chat_answers_with_citations_and_keeps_agent_fields_for_agents(
    client: httpx.Client,
) -> None:
    session = session_id()
    customer = chat(client, session, "What is your return policy?")
    assert customer.status_code == 200, customer.text
    result = customer.json()
    assert result["session_id"] == session and result["turn_index"] == 0
    assert result["decision"]["action"] == "answer"
    assert any(c["source_id"].startswith("returns-policy") for c in result["citations"])
    assert result["suggested_replies"] == [] and result["debug"] == {}

    agent = chat(client, session, "And how long does delivery take?", headers=AGENT)
    assert agent.status_code == 200, agent.text
    assert agent.json()["turn_index"] == 1
    assert agent.json()["debug"] != {}


def test_photo_chat_recognises_the_product_and_a_pick_is_answered(client: httpx.Client) -> None:
    session = session_id()
    photo = chat(client, session, "Hi, what is this?", image=customer_photo("backpack-urban-black"))
    assert photo.status_code == 200, photo.text
    card = photo.json()["products"][0]
    assert card["product_id"] == "backpack-urban-black"
    # Pictures are links to this service, never file paths of the server.
    assert card["image"] == "/v1/products/backpack-urban-black/image"
    picture = client.get(card["image"])
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert_error(client.get("/v1/products/no-such-product/image"), 404, "image_not_found")
    history = client.get(f"/v1/sessions/{session}", headers=AGENT)
    assert history.status_code == 200 and str(DEMO) not in history.text
    assert history.json()["turns"][0]["result"]["products"][0]["image"] == card["image"]

    picked = chat(client, session_id(), chosen_product_id="mug-stoneware-blue")
    assert picked.status_code == 200, picked.text
    assert "mug-stoneware-blue" in [c["source_id"] for c in picked.json()["citations"]]


def test_json_chat_with_a_base64_photo_answers_like_multipart(client: httpx.Client) -> None:
    photo = customer_photo("backpack-urban-black")
    session = session_id("json")
    sent = chat_json(client, session, "Hi, what is this?", image=photo)
    assert sent.status_code == 200, sent.text
    card = sent.json()["products"][0]
    assert card["product_id"] == "backpack-urban-black"
    assert card["image"] == "/v1/products/backpack-urban-black/image"
    assert sent.json()["suggested_replies"] == []

    as_data_url = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
    agent = client.post(
        "/v1/chat",
        json={"session_id": session, "text": "And this one?", "image": as_data_url, "lang": "en"},
        headers=AGENT,
    )
    assert agent.status_code == 200, agent.text
    assert agent.json()["turn_index"] == 1 and agent.json()["debug"] != {}
    text_only = chat_json(client, session_id(), "What is your return policy?")
    assert text_only.status_code == 200, text_only.text
    assert text_only.json()["decision"]["action"] == "answer"


def test_concurrent_messages_of_one_session_are_taken_in_turn(client: httpx.Client) -> None:
    session = session_id()
    with ThreadPoolExecutor(2) as pool:
        responses = list(
            pool.map(
                lambda text: chat(client, session, text), ["Hello there", "Do you ship abroad?"]
            )
        )
    assert [r.status_code for r in responses] == [200, 200]
    assert sorted(r.json()["turn_index"] for r in responses) == [0, 1]


def test_sessions_are_listed_and_read_by_agents_with_redacted_text(client: httpx.Client) -> None:
    session = session_id("history")
    assert chat(client, session, "My email is jane.doe@example.com, where is my order?").is_success

    listed = client.get("/v1/sessions", params={"limit": 500}, headers=AGENT)
    assert listed.status_code == 200
    assert session in [s["session_id"] for s in listed.json()]

    read = client.get(f"/v1/sessions/{session}", headers=AGENT)
    assert read.status_code == 200
    body = read.json()
    assert body["state"]["turn_count"] == 1
    (turn,) = body["turns"]
    assert "[email]" in turn["text"] and "jane.doe" not in turn["text"]
    assert str(DEMO) not in read.text
    assert turn["result"]["evidence_id"] == turn["evidence_id"]

    assert_error(
        client.get("/v1/sessions/no-such-session", headers=AGENT), 404, "session_not_found"
    )
    assert_error(client.get("/v1/sessions", params={"limit": 0}, headers=AGENT), 422)


def test_a_customer_may_erase_their_own_session(client: httpx.Client) -> None:
    session = session_id("erase")
    assert chat(client, session, "Hello").is_success
    erased = client.delete(f"/v1/sessions/{session}")
    assert erased.status_code == 200 and erased.json() == {"session_id": session, "deleted": True}
    assert_error(client.get(f"/v1/sessions/{session}", headers=AGENT), 404, "session_not_found")
    assert_error(client.delete(f"/v1/sessions/{session}"), 404, "session_not_found")


def test_metrics_count_turns_decisions_and_errors(client: httpx.Client) -> None:
    assert chat(client, session_id(), "I want to talk to a human agent now!").is_success
    client.get("/v1/nothing-here")
    text = client.get("/metrics").text
    assert 'shopsight_turn_latency_seconds_count{input="text"}' in text
    assert 'shopsight_decisions_total{action="escalate"}' in text
    assert "shopsight_escalations_total" in text
    assert 'shopsight_errors_total{code="not_found"}' in text


def test_text_search_finds_articles_and_products(client: httpx.Client) -> None:
    found = client.post("/v1/search/text", json={"query": "return policy", "k": 3})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["articles"][0]["article_id"].startswith("returns-policy")
    assert len(body["products"]) == 3

    boots = client.post(
        "/v1/search/text",
        json={"query": "waterproof hiking boots", "include": ["products"], "mode": "dense"},
    )
    assert boots.json()["products"][0]["product_id"] == "boot-hiking-olive"
    assert boots.json()["articles"] == []

    assert_error(
        client.post("/v1/search/text", json={"query": "x", "k": 0}), 422, "invalid_request"
    )
    assert_error(client.post("/v1/search/text", json={"query": "x", "colour": "red"}), 422)
    assert_error(
        client.post("/v1/search/text", json={"query": "x", "min_price": 9, "max_price": 1}), 422
    )
    assert_error(
        client.post(
            "/v1/search/text", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
        "invalid_json",
    )


def test_image_search_finds_the_photographed_product(client: httpx.Client) -> None:
    found = client.post(
        "/v1/search/image",
        files=multipart({"k": "3"}, {"image": ("x.bin", customer_photo("mug-stoneware-blue"))}),
    )
    assert found.status_code == 200, found.text
    products = found.json()["products"]
    assert len(products) == 3 and products[0]["product_id"] == "mug-stoneware-blue"

    photo = base64.b64encode(customer_photo("mug-stoneware-blue")).decode()
    as_json = client.post("/v1/search/image", json={"image": photo, "k": 3})
    assert as_json.status_code == 200, as_json.text
    assert [p["product_id"] for p in as_json.json()["products"]] == [
        p["product_id"] for p in products
    ]


def test_anonymous_search_results_show_links_and_whitelisted_metadata_only(
    client: httpx.Client,
) -> None:
    by_photo = client.post(
        "/v1/search/image",
        files=multipart({"k": "3"}, {"image": ("x.jpg", customer_photo("mug-stoneware-blue"))}),
    )
    by_text = client.post("/v1/search/text", json={"query": "blue mug", "k": 3})
    for response in (by_photo, by_text):
        assert response.status_code == 200, response.text
        assert str(DEMO) not in response.text and "vector_hash" not in response.text
        for product in response.json()["products"]:
            assert set(product["metadata"]) <= set(PUBLIC_METADATA)
            assert product["metadata"]["description"]
    best = by_photo.json()["products"][0]
    assert best["matched_image"] == "/v1/products/mug-stoneware-blue/images/0"
    picture = client.get(best["matched_image"])
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert_error(client.get("/v1/products/mug-stoneware-blue/images/7"), 404, "image_not_found")
    assert_error(client.get("/v1/products/mug-stoneware-blue/images/-1"), 422)


def test_kb_stats_need_an_admin_key(client: httpx.Client) -> None:
    stats = client.get("/v1/kb/stats", headers=ADMIN)
    assert stats.status_code == 200
    assert stats.json()["products"] >= 59 and stats.json()["articles"] > 0
    assert "location" not in stats.json()
    assert_error(client.get("/v1/kb/stats", headers=AGENT), 403, "admin_key_required")


def test_kb_ingest_of_a_catalogue_reports_counts_and_rejected_rows(
    client: httpx.Client, components: Components
) -> None:
    catalogue = {
        "products": [
            {"id": "api-kettle", "title": "Enamel tea kettle", "category": "kitchen", "price": 35},
            {"id": "api-broken", "price": 10},
            {"id": "api-escape", "title": "Escapee", "images": ["/etc/hostname"]},
        ]
    }
    try:
        response = client.post(
            "/v1/kb/ingest",
            files=multipart({}, {"file": ("shop.txt", json.dumps(catalogue, indent=1).encode())}),
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["kind"] == "json" and body["ok"] is False
        assert body["report"]["products_embedded"] == 2
        reasons = [(r["source"], r["reason"]) for r in body["report"]["rejections"]]
        assert any(source.startswith("shop.json") and "title" in why for source, why in reasons)
        assert any("outside the upload" in why for _, why in reasons)
        assert all("/tmp" not in source for source, _ in reasons)
    finally:
        for record in ("api-kettle", "api-escape"):
            delete_record(components.store, record)


def test_kb_ingest_of_a_zip_with_images(
    client: httpx.Client, components: Components, tmp_path: Path
) -> None:
    archive = io.BytesIO()
    catalogue = [
        {
            "id": "api-zip-lamp",
            "title": "Arc desk lamp (zip)",
            "category": "home",
            "images": ["pictures/lamp.png"],
        }
    ]
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("catalogue.json", json.dumps(catalogue))
        bundle.write(DEMO / "images" / "lamp-desk-arc-black.png", "pictures/lamp.png")
        bundle.writestr("faq/opening-hours.md", "# Opening hours\n\nWe answer 9-17 on weekdays.")
    try:
        response = client.post(
            "/v1/kb/ingest",
            files=multipart({}, {"file": ("bundle", archive.getvalue())}),
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["kind"] == "zip" and body["ok"], body
        report = body["report"]
        assert (report["products_embedded"], report["images_embedded"]) == (1, 1)
        assert report["articles_embedded"] == 1
    finally:
        delete_record(components.store, "api-zip-lamp")
        delete_record(components.store, "opening-hours")


def test_kb_ingest_refuses_an_archive_that_escapes_its_folder(
    client: httpx.Client, components: Components
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("catalogue.json", "[]")
        bundle.writestr("../../escaped.txt", "gotcha")
    message = assert_error(
        client.post(
            "/v1/kb/ingest",
            files=multipart({}, {"file": ("evil.zip", archive.getvalue())}),
            headers=ADMIN,
        ),
        400,
        "unsafe_archive",
    )
    assert "escaped.txt" in message
    uploads = components.settings.data_dir / "uploads"
    assert not list(uploads.parent.rglob("escaped.txt"))


def test_evidence_is_pending_then_ready_with_heatmaps(client: httpx.Client) -> None:
    turn = chat(
        client,
        session_id("evidence"),
        "The zipper arrived broken and I want a refund",
        image=customer_photo("backpack-urban-black"),
        headers=AGENT,
    )
    assert turn.status_code == 200, turn.text
    evidence_id = turn.json()["evidence_id"]

    first = client.get(f"/v1/evidence/{evidence_id}", headers=AGENT)
    assert first.status_code in (200, 202)
    if first.status_code == 202:
        assert first.json()["status"] == "pending" and "Retry-After" in first.headers
    deadline = time.monotonic() + 300
    pack = first
    while pack.status_code == 202 and time.monotonic() < deadline:
        time.sleep(1)
        pack = client.get(f"/v1/evidence/{evidence_id}", headers=AGENT)
    assert pack.status_code == 200, pack.text
    body = pack.json()
    assert body["status"] == "ready", body.get("error")
    assert body["products"][0]["image"] == "/v1/products/backpack-urban-black/image"
    assert str(DEMO) not in pack.text
    assert {a["target"] for a in body["attributions"]} == {"sentiment", "intent", "escalation"}
    assert body["heatmaps"]
    heatmap = client.get(
        f"/v1/evidence/{evidence_id}/heatmaps/{body['heatmaps'][0]['file']}", headers=AGENT
    )
    assert heatmap.status_code == 200 and heatmap.headers["content-type"] == "image/png"
    assert heatmap.content.startswith(b"\x89PNG")

    for name in ("photo.jpg", "pack.json", "..%2Fpack.json", "nope.png"):
        assert_error(client.get(f"/v1/evidence/{evidence_id}/heatmaps/{name}", headers=AGENT), 404)
    assert_error(client.get("/v1/evidence/0000dead", headers=AGENT), 404, "evidence_not_found")
    assert_error(client.get("/v1/evidence/not..an..id", headers=AGENT), 404, "evidence_not_found")


@pytest.mark.parametrize(("method", "path", "role"), PROTECTED)
def test_protected_endpoints_refuse_missing_and_wrong_keys(
    client: httpx.Client, method: str, path: str, role: str
) -> None:
    missing = client.request(method, path)
    message = assert_error(missing, 401, "api_key_required")
    assert role in message and "X-API-Key" in message
    assert missing.headers["WWW-Authenticate"].startswith("ApiKey")
    assert_error(
        client.request(method, path, headers={"X-API-Key": "not-a-key"}), 403, "invalid_api_key"
    )


def test_a_wrong_key_is_refused_even_where_no_key_is_needed(client: httpx.Client) -> None:
    response = chat(client, session_id(), "Hello", headers={"X-API-Key": "guess"})
    assert_error(response, 403, "invalid_api_key")


def test_unknown_paths_and_wrong_methods_get_the_json_error_shape(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    wrong = client.get("/v1/chat")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "POST"
    assert_error(client.post("/healthz"), 405, "method_not_allowed")
    assert_error(client.put("/v1/sessions/abc", headers=AGENT), 405, "method_not_allowed")
    assert_healthy(client)


def test_agent_replies_are_stored_with_the_conversation(client: httpx.Client) -> None:
    session = session_id()
    assert chat(client, session, "Where is my parcel?").status_code == 200
    path = f"/v1/sessions/{session}/replies"
    assert_error(client.post(path, json={"text": "On its way!"}), 401)
    sent = client.post(path, json={"text": "It left our warehouse today."}, headers=AGENT)
    assert sent.status_code == 201, sent.text
    assert sent.json()["after_turn"] == 1

    mine = client.get(path)  # the customer holding the session id polls it
    assert [r["text"] for r in mine.json()] == ["It left our warehouse today."]
    view = client.get(f"/v1/sessions/{session}", headers=AGENT).json()
    assert view["agent_replies"][0]["text"] == "It left our warehouse today."
    assert_error(client.post(path, json={"text": "  "}, headers=AGENT), 422)
    missing = client.post("/v1/sessions/no-such/replies", json={"text": "hi"}, headers=AGENT)
    assert_error(missing, 404, "session_not_found")

    assert client.delete(f"/v1/sessions/{session}").status_code == 200
    assert client.get(path).json() == []
