"""Fixtures of the browser tests: headless Chromium, and the real app on the demo shop."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.components import Components
from tests.assistant.demo_shop import demo_components

SCREENSHOTS = Path(__file__).resolve().parents[3] / "data" / "reports" / "ui-screenshots"
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1400,1700",
]
PAGE_TIMEOUT_S = 90


def _executable(name: str, debian_path: str) -> str | None:
    return debian_path if Path(debian_path).is_file() else shutil.which(name)


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths; the browser tests are skipped when either is missing."""
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    browser = _executable("chromium", "/usr/bin/chromium")
    chromedriver = _executable("chromedriver", "/usr/bin/chromedriver")
    if browser is None or chromedriver is None:
        pytest.skip(
            "headless Chromium is not installed: apt-get install chromium chromium-driver "
            "(.ci/run does this when it can)"
        )
    return browser, chromedriver


@pytest.fixture(scope="module")
def driver(chromium: tuple[str, str], app_url: str) -> Iterator[Any]:
    """Headless Chromium through chromedriver, with a fresh profile; it quits before the server
    stops, so no open connection holds up the server's shutdown."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for argument in BROWSER_ARGS:
        options.add_argument(argument)
    profile = tempfile.mkdtemp(prefix="shopsight-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(chromium[1]), options=options)
    browser.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="package")
def components(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Components]:
    """A copy of the session's demo store for the UI tests (real E5, EfficientNet, Chroma)."""
    data_dir = tmp_path_factory.mktemp("ui") / "data"
    components = demo_components(demo_store, data_dir, evidence_mode="background")
    yield components
    if "evidence" in vars(components):
        components.evidence.close()


@pytest.fixture(scope="module")
def app_url(chromium: tuple[str, str], components: Components) -> Iterator[str]:
    """The real app (REST API + UI) served by uvicorn on a free loopback port, in a thread."""
    from assistant.api import create_app
    from assistant.api.server import BackgroundServer

    server = BackgroundServer(create_app(components.settings, components, ui=True)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/").status_code == 200
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shots() -> Callable[[Any, str], Path]:
    """`shot(driver, name)` saves a screenshot of the whole window as NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    print(f"\nscreenshots: {SCREENSHOTS}")

    def shot(browser: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        browser.save_screenshot(str(path))
        return path

    return shot


@pytest.fixture
def on_failure(
    request: pytest.FixtureRequest, driver: Any, shots: Callable[[Any, str], Path]
) -> Iterator[None]:
    """A screenshot named after the test when it fails."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"failure screenshot: {shots(driver, f'failed-{request.node.name}')}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: Any = yield
    setattr(item, f"rep_{report.when}", report)
    return report
