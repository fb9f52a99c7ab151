"""The review queue over HTTP in this process: the real app under uvicorn on loopback, the real
core with the technical tier's stages in process, a real SQLite store and outbox. Listings that
need review leave thumbnails; pages refuse anonymous readers (401) and posts without their CSRF
token (403 csrf_failed); every page carries the CSP; a verdict is stored and counted.

The same flow in a real browser on the real Serve graph: tests/integration/test_review_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from benchmarks.service import free_port
from curator.core.review_desk import purge_review_items
from curator.core.reviewer_auth import new_token, token_digest
from curator.core.service import CuratorService, Replica
from curator.core.settings import CuratorAppArgs, StoreSettings
from curator.http.app import build_app
from curator.http.review_pages import CONTENT_SECURITY_POLICY
from experiments.live import EnsuredStore
from experiments.outbox import Outbox
from experiments.store import DecisionStore
from tests.curator.test_service import LocalStages
from tests.support import synthetic

PATIENCE_S = 60.0  # liveness bound for background work; never a performance assertion
API_KEY = "pages-test-key"
CROPPED = base64.b64encode(synthetic.to_jpeg_bytes(
    synthetic.crop_product(size=(1200, 1200), seed=1))).decode()
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class Client(requests.Session):
    """A browser-like session (cookies kept) against one base URL."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        kwargs["allow_redirects"] = kwargs.pop("follow_redirects", True)
        return super().request(method, f"{self.base}{url!s}", *args, **kwargs)


class Pages:
    def __init__(self, tmp_path: Path) -> None:
        self.store = DecisionStore(f"sqlite:///{tmp_path / 'store.db'}")
        ensured = EnsuredStore(self.store)
        self.outbox = Outbox(tmp_path / "outbox.db", ensured, flush_interval_s=0.05)
        args = CuratorAppArgs(models=None, store=StoreSettings(url="sqlite://",
                                                               outbox_dir=tmp_path),
                              outcome_key_sha256=(hashlib.sha256(API_KEY.encode()).hexdigest(),))

        async def watch(_: list[dict[str, Any]]) -> None:
            return None

        self.service = CuratorService(args, LocalStages(), ensured, self.outbox, watch=watch,
                                      replica=Replica("replica-1", "2.60.0"))
        port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(build_app(self.service), host="127.0.0.1",
                                                    port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + PATIENCE_S
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{port}"
        self.client = Client(self.base)
        self.token = new_token()
        ensured.ready().review.add_reviewer("ana", token_digest(self.token))

    def assess(self, listing_id: str) -> dict[str, Any]:
        answer = self.client.post("/v1/assess", json={
            "listing_id": listing_id, "category": "default", "marketplace": "US",
            "images": [{"image_id": "front", "data": CROPPED}]})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait_for_items(self, count: int) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while len(self.store.review.pending_items()) < count:
            assert time.monotonic() < deadline, "review items never reached the store"
            self.outbox.flush(1)
            time.sleep(0.05)

    def log_in(self) -> None:
        form = self.client.get("/review/login")
        csrf = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
        answer = self.client.post("/review/login", data={"token": self.token, "csrf": csrf},
                                  follow_redirects=False)
        assert answer.status_code == 303, answer.text


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[Pages]:
    harness = Pages(tmp_path)
    yield harness
    harness.client.close()
    harness.server.should_exit = True
    harness.thread.join(PATIENCE_S)
    harness.outbox.close()
    harness.store.close()


def test_anonymous_readers_are_refused_with_a_401_page(pages: Pages) -> None:
    for path in ("/review", "/review/decisions/x", "/review/thumbnails/x/front"):
        answer = pages.client.get(path)
        assert answer.status_code == 401, path
        assert "text/html" in answer.headers["content-type"]
        assert "Log in required" in answer.text
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert pages.client.post("/review/decisions/x/images/front",
                             data={"action": "approve"}).status_code == 401
    assert pages.client.get("/v1/rules/precision").status_code == 401


def test_a_wrong_token_does_not_log_in(pages: Pages) -> None:
    form = pages.client.get("/review/login")
    csrf = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
    answer = pages.client.post("/review/login", data={"token": "nope", "csrf": csrf})
    assert answer.status_code == 401 and "not valid" in answer.text
    assert "curator_review_session" not in pages.client.cookies


def test_form_posts_without_their_csrf_token_are_refused(pages: Pages) -> None:
    pages.client.get("/review/login")
    answer = pages.client.post("/review/login", data={"token": pages.token})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "csrf_failed"
    pages.log_in()
    pages.assess("l-csrf")
    pages.wait_for_items(1)
    decision_id = pages.store.review.pending_items()[0]["decision_id"]
    for data in ({"action": "approve"}, {"action": "approve", "csrf": "0" * 64}):
        answer = pages.client.post(f"/review/decisions/{decision_id}/images/front", data=data)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "csrf_failed"
    assert pages.store.review.reviews() == []


def test_the_session_cookie_is_http_only_and_strict(pages: Pages) -> None:
    form = pages.client.get("/review/login")
    csrf = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
    answer = pages.client.post("/review/login", data={"token": pages.token, "csrf": csrf},
                               follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie


def test_a_listing_that_needs_review_is_queued_judged_and_counted(pages: Pages) -> None:
    first = pages.assess("l-1")
    pages.assess("l-2")
    assert first["images"][0]["action"] == "review"
    pages.wait_for_items(2)
    pages.log_in()
    queue = pages.client.get("/review")
    assert queue.status_code == 200
    assert queue.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "<script>" not in queue.text and "style=" not in queue.text
    assert 'data-count="2"' in queue.text
    assert "main.composition.not_cropped" in queue.text

    detail = pages.client.get(f"/review/decisions/{first['decision_id']}")
    assert detail.status_code == 200 and "<svg" in detail.text
    thumbnail = pages.client.get(f"/review/thumbnails/{first['decision_id']}/front")
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8" and len(thumbnail.content) < 60_000
    csrf = CSRF.search(detail.text).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "action": "approve", "rules_wrong": "main.composition.not_cropped",
            "comment": "the shadow touches the edge"}
    for _ in range(2):  # a resubmitted form stores one verdict
        answer = pages.client.post(f"/review/decisions/{first['decision_id']}/images/front",
                                   data=form, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/review"
    [stored] = pages.store.review.reviews()
    assert (stored.review.reviewer, stored.review.action) == ("ana", "approve")
    assert 'data-count="1"' in pages.client.get("/review").text

    report = pages.client.get("/v1/rules/precision").json()
    assert report["reviews"] == 1
    assert report["rules"] == [{"rule_id": "main.composition.not_cropped", "reviewed": 1,
                                "upheld": 0, "overturned": 1, "precision": 0.0,
                                "ci_low": 0.0, "ci_high": pytest.approx(0.7935, abs=1e-4)}]
    by_key = requests.get(f"{pages.base}/v1/rules/precision", headers={"X-API-Key": API_KEY},
                          timeout=60)
    assert by_key.status_code == 200


def test_the_precision_report_names_a_bad_time(pages: Pages) -> None:
    pages.log_in()
    for query, field in (("since=1999-12-31T00:00:00Z", "since"), ("until=2100-01-02", "until"),
                         ("since=yesterday", "since"),
                         ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since")):
        answer = pages.client.get(f"/v1/rules/precision?{query}")
        assert answer.status_code == 422, query
        assert answer.json()["error"]["field"] == field


def test_customers_cannot_post_the_review_outcome_type(pages: Pages) -> None:
    answer = pages.client.post("/v1/outcomes", headers={"X-API-Key": API_KEY}, json={
        "events": [{"event_id": "e1", "type": "click", "time": "2026-03-01T00:00:00Z",
                    "unit_id": "l-1"},
                   {"event_id": "e2", "type": "overturned_by_review",
                    "time": "2026-03-01T00:00:00Z", "unit_id": "l-1"}]})
    assert answer.status_code == 422
    assert answer.json()["error"] == {
        "code": "reserved_outcome_type", "field": "events.1.type",
        "message": "outcome type 'overturned_by_review' is written by the service from "
                   "reviews; clients cannot post it"}


def test_the_purge_runs_from_the_settings(pages: Pages) -> None:
    pages.assess("l-purge")
    pages.wait_for_items(1)
    assert purge_review_items(EnsuredStore(pages.store), pages.service.args.review) == 0
    days = pages.service.args.review.retention_days
    assert pages.service.review_desk.purge(days, now=_days_later(days + 1)) == 1
    assert pages.store.review.pending_items() == []


def _days_later(days: float) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=days)
