"""The review queue in a real headless Chromium (Debian's, driven by Selenium through Debian's
chromedriver) against the real graph: listings that need review are posted over HTTP, a
reviewer logs in, opens the queue and a decision with its boxes drawn, marks a rule wrong and
approves the image with the keyboard; the verdict is in the store, the queue is one shorter,
and the rule-precision report counts it.

Chromium comes from scripts/chromium.sh (installs it as root). Without it the test is skipped
only for a non-root developer outside CI; as root or under CI a missing browser fails.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from curator.core.reviewer_auth import new_token, token_digest
from experiments.store import DecisionStore
from tests.integration.conftest import OUTCOME_KEY
from tests.models.detectors.text_scenes import on_product_scene
from tests.support import synthetic

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_SCRIPT = REPO / "scripts" / "chromium.sh"
PATIENCE_S = 120.0  # liveness bound for background work and page loads; never a timing check
# Where to copy the screenshot as well (docs/review-queue.png is one such run).
SCREENSHOT_ENV = "CURATOR_REVIEW_SCREENSHOT"


def cut_by_the_frame(index: int) -> str:
    """A product with print on it (a text box to draw), its right quarter cut off: the product
    touches the edge without spanning the frame, so `main.composition.not_cropped` sends it to
    review."""
    image = on_product_scene(index).image
    width, height = image.size
    return base64.b64encode(synthetic.to_jpeg_bytes(
        image.crop((0, 0, int(width * 0.75), height)))).decode()


def chromium_paths() -> dict[str, str] | None:
    result = subprocess.run([str(CHROMIUM_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if os.geteuid() == 0 or os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM_SCRIPT} could not provide Chromium: {result.stderr}")
        return None
    return dict(line.split("=", 1) for line in result.stdout.split())


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    paths = chromium_paths()
    if paths is None:
        pytest.skip(f"no Chromium: run {CHROMIUM_SCRIPT.relative_to(REPO)} as root to install it")
    options = Options()
    options.binary_location = paths["chromium"]
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1500", "--hide-scrollbars"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    # The driver is Debian's, named explicitly: Selenium Manager must not fetch anything.
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(service=DriverService(paths["chromedriver"]), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def assess(url: str, listing_id: str, data: str) -> dict[str, Any]:
    answer = requests.post(f"{url}/v1/assess", timeout=120, json={
        "listing_id": listing_id, "category": "default", "marketplace": "US",
        "images": [{"image_id": "front", "data": data}]})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def queue_count(driver: WebDriver) -> int:
    return int(driver.find_element(By.ID, "queue-count").get_attribute("data-count") or -1)


def test_a_reviewer_judges_a_decision_in_a_real_browser(
    service_url: str, curator_store_url: str, browser: WebDriver, tmp_path: Path,
) -> None:
    store = DecisionStore(curator_store_url)
    token = new_token()
    store.review.add_reviewer("browser-reviewer", token_digest(token))
    answers = [assess(service_url, f"browser-{index}", cut_by_the_frame(index))
               for index in (0, 4)]
    assert [a["images"][0]["action"] for a in answers] == ["review", "review"]
    decision_ids = {a["decision_id"] for a in answers}
    wait_until(lambda: decision_ids <= {i["decision_id"] for i in store.review.pending_items()},
               "the review items reached the store")

    browser.get(f"{service_url}/review")  # no session yet: refused
    assert "Log in required" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.LINK_TEXT, "log in with your reviewer token").click()
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, PATIENCE_S).until(lambda d: d.find_elements(By.ID, "queue-count"))
    before = queue_count(browser)
    assert before >= 2
    chosen = answers[1]
    # Key "1" marks the first rule of the image's violations (the page numbers them in order).
    first_rule = chosen["images"][0]["verdict"]["violations"][0]["rule_id"]
    assert first_rule in browser.find_element(By.CSS_SELECTOR, "section.rule-counts").text

    browser.find_element(By.LINK_TEXT, chosen["listing_id"]).click()
    WebDriverWait(browser, PATIENCE_S).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-keys-ready") == "yes")
    detections = chosen["images"][0]["detections"]
    assert detections, "the chosen image has boxes to draw"
    boxes = browser.find_elements(By.CSS_SELECTOR, "svg.thumb g.box rect")
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "svg.thumb g.box text")]
    assert len(boxes) == len(detections)
    assert {f"{d['kind']}: {d['label']}" for d in detections} == {
        label.rsplit(" ", 1)[0] for label in labels}
    WebDriverWait(browser, PATIENCE_S).until(lambda d: d.execute_script(
        "var i = document.querySelector('svg.thumb image');"
        "return i && i.getBBox().width > 0"))
    screenshot = tmp_path / "review-queue.png"
    browser.save_screenshot(str(screenshot))
    if os.environ.get(SCREENSHOT_ENV):
        Path(os.environ[SCREENSHOT_ENV]).write_bytes(screenshot.read_bytes())

    # "1": the first rule's verdict was wrong; "a": approve. The page posts and goes back to
    # the queue, since the listing had one image.
    ActionChains(browser).send_keys("1").send_keys("a").perform()
    WebDriverWait(browser, PATIENCE_S).until(lambda d: d.find_elements(By.ID, "queue-count"))
    assert queue_count(browser) == before - 1

    [stored] = [entry.review for entry in store.review.reviews(
        decision_id=chosen["decision_id"])]
    assert (stored.reviewer, stored.action, stored.image_id) == (
        "browser-reviewer", "approve", "front")
    assert stored.rules_wrong == [first_rule]

    report = requests.get(f"{service_url}/v1/rules/precision",
                          headers={"X-API-Key": OUTCOME_KEY}, timeout=60).json()
    [rule] = [r for r in report["rules"] if r["rule_id"] == first_rule]
    assert rule["overturned"] >= 1 and rule["ci_low"] is not None
    store.close()
