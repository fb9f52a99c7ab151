"""Load shedding over real HTTP: a replica at its admission limit answers 429 with Retry-After
and a stable code at once, and keeps serving what it admitted. (Changing the limits live with
`serve deploy` is tested in tests/deploy/test_policy_hot_reload.py.)

The "admission-lab" application is the technical tier (no model stages) with an admission limit
of one image. A listing whose image URL answers only after a pause holds that one image in
flight for as long as the test needs, so the refusal is deterministic rather than a race.
"""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from ray import serve

from graphs.online import build_graph
from tests.integration.conftest import TEST_LIMITS, store_args
from tests.support import synthetic

ROUTE = "/admission-lab"
JPEG = synthetic.to_jpeg_bytes(synthetic.render_product(size=(400, 400), seed=7))
HOLD_S = 4.0  # how long the slow image server keeps a listing in flight


@pytest.fixture(scope="module")
def slow_image_url() -> Iterator[str]:
    """A loopback server that answers every GET with the JPEG after `HOLD_S` seconds."""

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the stdlib handler's name
            time.sleep(HOLD_S)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            self.wfile.write(JPEG)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slow.jpg"
    server.shutdown()


def deploy(user_config: dict[str, Any], data: Path) -> None:
    args = {"limits": TEST_LIMITS, "models": None, "store": store_args(data),
            "url_fetch": {"allow_private": ["127.0.0.1/32"], "timeout_s": HOLD_S + 5}}
    serve.run(build_graph(args, user_config), name="admission-lab", route_prefix=ROUTE)


@pytest.fixture(scope="module")
def lab_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("admission-lab"))


@pytest.fixture(scope="module")
def lab(service_url: str, lab_data: Path) -> Iterator[str]:
    deploy({"admission": {"initial_limit": 1, "min_limit": 1, "max_limit": 1,
                          "retry_after_s": 2}}, lab_data)
    yield f"{service_url}{ROUTE}"
    serve.delete("admission-lab")


def assess(url: str, image: dict[str, str], listing_id: str) -> requests.Response:
    return requests.post(f"{url}/v1/assess", timeout=60, json={
        "listing_id": listing_id, "category": "home", "marketplace": "US",
        "images": [{"image_id": "front", **image}]})


def admission(url: str) -> dict[str, int]:
    state: dict[str, int] = requests.get(f"{url}/healthz", timeout=10).json()["admission"]
    return state


def wait_for_in_flight(url: str, images: int) -> None:
    deadline = time.monotonic() + 30
    while admission(url)["in_flight"] != images:
        assert time.monotonic() < deadline, admission(url)
        time.sleep(0.05)


def test_a_full_replica_refuses_at_once_with_retry_after(lab: str, slow_image_url: str) -> None:
    inline = {"data": base64.b64encode(JPEG).decode()}
    before = admission(lab)
    assert before["limit"] == 1 and before["in_flight"] == 0
    with ThreadPoolExecutor(1) as pool:
        held: Future[requests.Response] = pool.submit(
            assess, lab, {"url": slow_image_url}, "held")
        wait_for_in_flight(lab, 1)

        started = time.monotonic()
        refused = assess(lab, inline, "refused")
        refused_in_s = time.monotonic() - started
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "2"
        error = refused.json()["error"]
        assert error["code"] == "overloaded"
        assert "limit of 1 images in flight" in error["message"]
        # Shed without waiting for the listing in flight (which holds for HOLD_S seconds).
        assert refused_in_s < HOLD_S
        assert held.running()

        answer = held.result(timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["images"][0]["status"] == "ok"

    after = assess(lab, inline, "after")
    assert after.status_code == 200, after.text
    state = admission(lab)
    assert state["in_flight"] == 0
    assert state["refused"] - before["refused"] == 1
    assert state["admitted"] - before["admitted"] == 2


def test_other_endpoints_are_not_shed(lab: str, slow_image_url: str) -> None:
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(assess, lab, {"url": slow_image_url}, "held-2")
        wait_for_in_flight(lab, 1)
        assert requests.get(f"{lab}/v1/version", timeout=10).status_code == 200
        assert requests.get(f"{lab}/v1/policies/home/US", timeout=10).status_code == 200
        assert held.result(timeout=60).status_code == 200
