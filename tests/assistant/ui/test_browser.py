"""The web UI end to end in a real headless Chromium, on the real app serving the demo shop.

A customer sends a photo of a demo product, sees its card, asks the price and gets a cited answer;
an agent opens the console and sees the Grad-CAM heatmap and the SHAP highlights of that turn.
Screenshots of every step are written to data/reports/ui-screenshots/ (look at them).

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); skipped without them.
Set SHOPSIGHT_TEST_DEMO_STORE to a data folder holding an ingested demo shop (E5 embedder) to
start from a copy of it instead of embedding the demo shop again.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.assistant.demo_shop import DEMO, customer_photo

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEP_TIMEOUT_S = 90
# The first explanation of a process also compiles SHAP's numba code and loads Grad-CAM.
EVIDENCE_TIMEOUT_S = 120


# --- small page helpers ---------------------------------------------------------------------


def wait_for(browser: Any, condition: Callable[[Any], Any], timeout: float = STEP_TIMEOUT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.5).until(condition)


def css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, selector))


def text_of(browser: Any, selector: str) -> str:
    found = css(browser, selector)
    return str(found[0].text) if found else ""


def open_tab(browser: Any, title: str) -> None:
    tab = wait_for(
        browser, lambda b: next((t for t in css(b, "button[role=tab]") if title in t.text), None)
    )
    tab.click()


def pick_option(browser: Any, dropdown_id: str, contains: str) -> None:
    """Open a Gradio dropdown and click the first option whose label contains `contains`."""

    def option(b: Any) -> Any:
        box = css(b, f"#{dropdown_id} input")
        if box and not css(b, f"#{dropdown_id} [data-testid=dropdown-option]"):
            box[0].click()
        found = [
            o for o in css(b, f"#{dropdown_id} [data-testid=dropdown-option]") if contains in o.text
        ]
        if not found and box:
            box[0].click()  # close and reopen on the next poll: choices may have been refreshed
        return found[0] if found else None

    wait_for(browser, option).click()


def image_loaded(browser: Any, selector: str) -> bool:
    return bool(
        browser.execute_script(
            "const i = document.querySelector(arguments[0]);"
            "return !!i && i.complete && i.naturalWidth > 0;",
            selector,
        )
    )


def send_message(browser: Any, text: str, photo: Path | None = None) -> None:
    from selenium.webdriver.common.keys import Keys

    wait_for(browser, lambda b: css(b, "#chat-input textarea")[0].is_enabled())
    if photo is not None:
        css(browser, "#chat-input input[type=file]")[0].send_keys(str(photo))
        wait_for(browser, lambda b: css(b, "#chat-input img"))
    box = css(browser, "#chat-input textarea")[0]
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def replies(browser: Any) -> list[Any]:
    return css(browser, "#chatbot .ss-reply")


# --- the tests ------------------------------------------------------------------------------


def test_photo_price_question_and_agent_evidence_in_a_real_browser(
    driver: Any,
    app_url: str,
    shots: Callable[[Any, str], Path],
    tmp_path: Path,
    on_failure: None,
) -> None:
    photo = tmp_path / "my-backpack.jpg"
    photo.write_bytes(customer_photo("backpack-urban-black"))
    driver.get(app_url + "/")
    wait_for(driver, lambda b: "web-" in text_of(b, "#session-id"))
    session_id = text_of(driver, "#session-id code")

    # 1. The customer attaches a photo of a demo product: its card comes back.
    send_message(driver, "Hi, what is this?", photo)
    wait_for(driver, lambda b: css(b, "#product-cards .ss-card"))
    cards = text_of(driver, "#product-cards")
    assert "Urban Commuter Backpack 20L – Black" in cards
    assert "79.00 USD" in cards and "In stock" in cards
    assert image_loaded(driver, "#product-cards .ss-card img")
    shots(driver, "01-photo-and-product-card")

    # 2. "How much is it?" is answered with the price and a numbered, expandable source.
    send_message(driver, "How much is it?")
    wait_for(driver, lambda b: len(replies(b)) >= 2)
    answer = replies(driver)[-1].text
    assert "79.00" in answer and "[1]" in answer
    source = css(driver, "#chatbot details.ss-source")
    assert source, "the cited answer has no expandable source"
    last_source = source[-1]
    assert last_source.get_attribute("open") is None
    last_source.find_element("css selector", "summary").click()
    wait_for(driver, lambda _b: last_source.get_attribute("open") is not None)
    assert "79.00" in last_source.text and "Urban Commuter Backpack" in last_source.text
    shots(driver, "02-cited-answer-with-source-open")

    # 3. The agent opens the console and picks the conversation.
    open_tab(driver, "Agent console")
    pick_option(driver, "agent-session", session_id)
    wait_for(driver, lambda b: "How much is it?" in text_of(b, "#agent-transcript"))
    assert "answer" in text_of(driver, "#agent-decision")
    assert len(css(driver, "#suggested-replies input[type=radio]")) == 3
    wait_for(driver, lambda b: css(b, "#sentiment-plot canvas, #sentiment-plot svg"))
    shots(driver, "03-agent-console")

    # 4. The evidence of the photo turn: SHAP highlights and the Grad-CAM overlay.
    pick_option(driver, "evidence-turn", "Turn 1")
    wait_for(
        driver,
        lambda b: (
            "Evidence ready" in text_of(b, "#evidence-status")
            or "failed" in text_of(b, "#evidence-status")
        ),
        EVIDENCE_TIMEOUT_S,
    )
    assert "Evidence ready" in text_of(driver, "#evidence-status"), text_of(
        driver, "#evidence-status"
    )
    wait_for(driver, lambda b: image_loaded(b, "#heatmaps img"))
    highlighted = css(driver, "#shap-highlights .shopsight-shap span[title]")
    assert highlighted, "no SHAP-highlighted words"
    assert any("what" in word.text.lower() for word in highlighted)
    assert "why the photo matches" in text_of(driver, "#heatmaps")
    driver.execute_script(
        "document.querySelector('#shap-highlights').scrollIntoView({block: 'start'})"
    )
    shots(driver, "04-evidence-shap-and-gradcam")

    # 5. The agent sends an edited suggestion; it appears in the customer's chat.
    css(driver, "#suggested-replies label")[0].click()
    draft = wait_for(
        driver, lambda b: css(b, "#agent-draft textarea")[0].get_attribute("value") or None
    )
    css(driver, "#agent-draft textarea")[0].send_keys(" Anything else?")
    css(driver, "#agent-send")[0].click()
    open_tab(driver, "Customer chat")
    wait_for(driver, lambda b: "Anything else?" in text_of(b, "#chatbot"))
    assert draft.strip() in text_of(driver, "#chatbot")
    shots(driver, "05-agent-reply-in-customer-chat")


def test_unsure_photo_offers_clickable_choices_in_chinese(
    driver: Any,
    app_url: str,
    shots: Callable[[Any, str], Path],
    tmp_path: Path,
    on_failure: None,
) -> None:
    lamp = Image.open(DEMO / "images" / "lamp-desk-arc-black.png").convert("RGB")
    cushion = Image.open(DEMO / "images" / "cushion-velvet-mustard.png").convert("RGB")
    buffer = io.BytesIO()
    Image.blend(lamp, cushion.resize(lamp.size), 0.5).save(buffer, format="JPEG", quality=85)
    photo = tmp_path / "unsure.jpg"
    photo.write_bytes(buffer.getvalue())
    driver.get(app_url + "/")
    wait_for(driver, lambda b: "web-" in text_of(b, "#session-id"))

    send_message(driver, "你们有这个吗？", photo)
    wait_for(driver, lambda b: css(b, "#product-cards .ss-card"))
    assert "是其中之一吗？" in text_of(driver, "#product-cards")
    # In a Chinese conversation the choices carry the catalogue's Chinese titles.
    choices = wait_for(driver, lambda b: [c for c in css(b, "#chatbot button") if "台灯" in c.text])
    shots(driver, "06-unsure-photo-choices-zh")
    choices[0].click()
    wait_for(driver, lambda b: len(replies(b)) >= 2)
    answer = replies(driver)[-1].text
    assert "59.00" in answer and "[1]" in answer
    shots(driver, "07-picked-product-answer-zh")


def test_knowledge_base_tab_searches_and_ingests_a_catalogue_and_a_zip_of_images(
    driver: Any,
    app_url: str,
    shots: Callable[[Any, str], Path],
    tmp_path: Path,
    on_failure: None,
) -> None:
    catalogue = tmp_path / "new-products.json"
    product = {
        "id": "umbrella-storm-navy",
        "title": "Storm Umbrella – Navy",
        "description": "A windproof travel umbrella with a fibreglass frame.",
        "category": "accessories",
        "price": 29.0,
        "currency": "USD",
        "stock": 12,
    }
    catalogue.write_text(json.dumps({"products": [product]}), encoding="utf-8")
    images = tmp_path / "hat-photos.zip"
    with zipfile.ZipFile(images, "w") as bundle:
        bundle.write(DEMO / "images" / "cap-baseball-navy.png", "hats/navy-cap.png")
    driver.get(app_url + "/")
    open_tab(driver, "Knowledge base")
    wait_for(driver, lambda b: "59 products" in text_of(b, "#kb-stats"))

    css(driver, "#kb-query textarea, #kb-query input")[0].send_keys("return policy")
    css(driver, "#kb-search")[0].click()
    wait_for(driver, lambda b: "Returns policy" in text_of(b, "#kb-results"))

    css(driver, "#kb-upload input[type=file]")[0].send_keys(f"{catalogue}\n{images}")
    wait_for(driver, lambda b: "hat-photos" in text_of(b, "#kb-upload"))
    css(driver, "#kb-ingest")[0].click()
    wait_for(driver, lambda b: "Ingested" in text_of(b, "#kb-ingest-report"))
    report = text_of(driver, "#kb-ingest-report")
    assert "products: 2 new" in report and "product images: 1 new" in report, report
    assert "images kept in" in report and "rejected" not in report
    wait_for(driver, lambda b: "61 products" in text_of(b, "#kb-stats"))
    driver.execute_script("document.querySelector('#kb-upload').scrollIntoView({block: 'start'})")
    shots(driver, "08-knowledge-base-search-and-upload")
