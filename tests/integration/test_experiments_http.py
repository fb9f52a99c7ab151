"""Effectiveness end to end over HTTP on the real graph: listings assessed under an experiment,
outcomes posted, a report whose counts match what was sent, and a PostgreSQL outage mid-stream
that loses no decision.

The "lab" application is the technical tier (no model stages: fast) running an experiment whose
treatment decides by a stricter policy set: zoom at 1100 px instead of 1000.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from ray import serve
from sqlalchemy.exc import SQLAlchemyError

from experiments.assignment import assign
from experiments.config import experiments_from_data
from experiments.store import DecisionStore
from graphs.online import build_graph
from rules import POLICY_DIR
from rules.loader import read_policy_texts
from tests.experiments.postgres_server import PostgresServer
from tests.integration.conftest import OUTCOME_KEY, OUTCOME_KEY_SHA256, TEST_LIMITS, store_args
from tests.support import synthetic

ROUTE = "/lab"
EXPERIMENT: dict[str, Any] = {
    "id": "strict-zoom",
    "salt": "strict-zoom-test",
    "variants": [{"name": "control"}, {"name": "treatment", "policy_set": "strict"}],
    "primary_metric": "click",
    "guardrails": ["add_to_cart"],
    "min_sample_per_variant": 10,
    "status": "running",
}
CONFIG = experiments_from_data([EXPERIMENT])["strict-zoom"]
_SHIPPED = read_policy_texts(POLICY_DIR)
STRICT = {**_SHIPPED, "base.yaml": _SHIPPED["base.yaml"].replace(
    'require: {attribute: file.longest_side, op: ">=", value: 1000}',
    'require: {attribute: file.longest_side, op: ">=", value: 1100}')}
# 1050 px: enough for zoom in control (1000), not in the treatment (1100).
IMAGE = base64.b64encode(synthetic.to_jpeg_bytes(
    synthetic.render_product(size=(1050, 1050), fill=0.86, seed=41), quality=95)).decode()
WAIT_S = 120


@pytest.fixture(scope="module")
def lab(service_url: str, postgres_server: PostgresServer,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The lab app at /lab, its store on PostgreSQL; yields (base URL, store URL)."""
    store_url = postgres_server.create_database("lab")
    args = {"limits": TEST_LIMITS, "models": None, "canary_interval_s": 1,
            "store": store_args(Path(tmp_path_factory.mktemp("lab")), store_url),
            "outcome_key_sha256": [OUTCOME_KEY_SHA256]}
    user_config = {"policy_sets": {"strict": STRICT}, "experiments": [EXPERIMENT]}
    serve.run(build_graph(args, user_config), name="lab", route_prefix=ROUTE)
    yield f"{service_url}{ROUTE}", store_url
    serve.delete("lab")


def assess(url: str, listing_id: str) -> dict[str, Any]:
    answer = requests.post(f"{url}/v1/assess", timeout=60, json={
        "listing_id": listing_id, "category": "toys", "marketplace": "DE",
        "images": [{"image_id": "front", "data": IMAGE}]})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def post_outcomes(url: str, events: list[dict[str, Any]], key: str | None = OUTCOME_KEY
                  ) -> requests.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return requests.post(f"{url}/v1/outcomes", json={"events": events}, headers=headers,
                         timeout=30)


def click(listing_id: str, event_id: str) -> dict[str, Any]:
    # Now: a report counts only what a unit did after it was first exposed.
    return {"event_id": event_id, "type": "click", "time": datetime.now(UTC).isoformat(),
            "unit_id": listing_id}


def stored_decisions(store_url: str) -> set[str]:
    """Units with a decision in the store; none while the database is unreachable."""
    store = DecisionStore(store_url)
    try:
        return {e.unit_id for e in store.exposures(CONFIG.id)}
    except SQLAlchemyError:
        return set()
    finally:
        store.close()


def wait_until(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_assignment_outcomes_and_report(lab: tuple[str, str]) -> None:
    url, store_url = lab
    listings = [f"lab-{i}" for i in range(40)]
    answers = {listing: assess(url, listing) for listing in listings}
    for listing, answer in answers.items():
        expected = assign(CONFIG, listing)  # the hash, recomputed here: stable across processes
        assert (answer["experiment_id"], answer["variant"], answer["bucket"]) == (
            "strict-zoom", expected.variant, expected.bucket)
        violated = {v["rule_id"] for v in answer["images"][0]["verdict"]["violations"]}
        assert ("main.size.zoom" in violated) == (expected.variant == "treatment")
    by_variant = {v: [x for x in listings if answers[x]["variant"] == v]
                  for v in ("control", "treatment")}
    assert by_variant["control"] and by_variant["treatment"]

    # Clicks on every third listing, sent twice (idempotent by event_id).
    clicked = listings[::3]
    events = [click(listing, f"click-{listing}") for listing in clicked]
    for _ in range(2):
        answer = post_outcomes(url, events)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"accepted": len(events)}

    wait_until(lambda: stored_decisions(store_url) >= set(listings), "decisions in the store")
    report = wait_until(lambda: _report_if_complete(url, clicked), "the report to count clicks")
    for variant, units in by_variant.items():
        row = next(v for v in report["variants"] if v["name"] == variant)
        assert row["units"] == len(units)
    clicks = _metric(report, "click")
    assert clicks["control"]["conversions"] == sum(x in clicked for x in by_variant["control"])
    assert clicks["treatment"]["conversions"] == sum(
        x in clicked for x in by_variant["treatment"])


def _report_if_complete(url: str, clicked: list[str]) -> dict[str, Any] | None:
    report = requests.get(f"{url}/v1/experiments/strict-zoom/report", timeout=30)
    assert report.status_code == 200, report.text
    body = dict(report.json())
    clicks = _metric(body, "click")
    counted = clicks["control"]["conversions"] + clicks["treatment"]["conversions"]
    return body if counted == len(clicked) else None


def _metric(report: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """{control: {...}, treatment: {...}} of one metric in the report."""
    metric = next(m for m in report["metrics"] if m["metric"] == name)
    (comparison,) = metric["comparisons"]
    return {"control": comparison["control"], "treatment": comparison["treatment"]}


def test_outcomes_need_a_valid_key_and_valid_events(lab: tuple[str, str]) -> None:
    url, _ = lab
    event = click("lab-0", "click-auth")
    for key in (None, "wrong-key"):
        answer = post_outcomes(url, [event], key=key)
        assert answer.status_code == 401
        assert answer.json()["error"] == {"code": "unauthorized", "field": "X-API-Key",
                                          "message": "a valid X-API-Key header is required"}
    naive = {**event, "time": "2026-11-25T12:00:00"}  # no time zone
    answer = post_outcomes(url, [naive])
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "events[0].time"
    nowhere = {key: value for key, value in event.items() if key != "unit_id"}
    answer = post_outcomes(url, [nowhere])
    assert answer.status_code == 422 and "unit_id or decision_id" in answer.json()["error"][
        "message"]


def test_experiments_are_listed(lab: tuple[str, str]) -> None:
    url, _ = lab
    body = requests.get(f"{url}/v1/experiments", timeout=10).json()
    (experiment,) = body["experiments"]
    assert experiment["id"] == "strict-zoom" and experiment["status"] == "running"
    assert experiment["weights"] == {"control": 0.5, "treatment": 0.5}


def test_a_database_outage_loses_no_decision(
    lab: tuple[str, str], postgres_server: PostgresServer
) -> None:
    url, store_url = lab
    before = [f"outage-before-{i}" for i in range(10)]
    during = [f"outage-during-{i}" for i in range(15)]
    for listing in before:
        assess(url, listing)
    wait_until(lambda: stored_decisions(store_url) >= set(before), "decisions before the outage")
    postgres_server.stop()
    try:
        for listing in during:  # every assessment still answers while the database is down
            assess(url, listing)
        answer = post_outcomes(url, [click(during[0], "click-during-outage")])
        assert answer.status_code == 202
    finally:
        postgres_server.start()
    stored = wait_until(lambda: (s := stored_decisions(store_url)) >= set(during) and s,
                        "the outbox to drain after the outage")
    assert set(before) | set(during) <= stored


# --- the canary controller, running in the service -------------------------------------------

# The treatment's policy set rejects every image: its reject rate is harmed at once.
REJECT_ALL = {**_SHIPPED, "base.yaml": _SHIPPED["base.yaml"].replace(
    'require: {attribute: file.longest_side, op: "<=", value: 10000}',
    'require: {attribute: file.longest_side, op: ">=", value: 20000}')}
CANARY_EXPERIMENT: dict[str, Any] = {
    "id": "reject-all-canary",
    "variants": [{"name": "control"}, {"name": "treatment", "policy_set": "reject-all"}],
    "primary_metric": "click",
    "guardrails": ["reject_rate"],
    "min_sample_per_variant": 1000,
    "ramp": [50],
    "status": "running",
}


@pytest.fixture(scope="module")
def canary_lab(service_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = Path(tmp_path_factory.mktemp("canary-lab"))
    args = {"limits": TEST_LIMITS, "models": None, "canary_interval_s": 1,
            "store": store_args(data)}
    user_config = {"policy_sets": {"reject-all": REJECT_ALL}, "experiments": [CANARY_EXPERIMENT]}
    serve.run(build_graph(args, user_config), name="canary-lab", route_prefix="/canary-lab")
    yield f"{service_url}/canary-lab"
    serve.delete("canary-lab")


def test_the_canary_controller_rolls_back_a_harmful_treatment(canary_lab: str) -> None:
    variants = {assess(canary_lab, f"canary-{i}")["variant"] for i in range(80)}
    assert variants == {"control", "treatment"}  # the first step: 50 %

    def rolled_back() -> dict[str, Any] | None:
        body = requests.get(f"{canary_lab}/v1/experiments", timeout=10).json()
        (experiment,) = body["experiments"]
        return experiment if experiment["weights"]["treatment"] == 0 else None

    experiment = wait_until(rolled_back, "the controller to roll the treatment back")
    assert experiment["canary"]["status"] == "rolled_back"
    (transition,) = experiment["canary"]["transitions"]
    assert (transition["kind"], transition["from_percent"], transition["to_percent"]) == (
        "rollback", 50, 0)
    assert "reject_rate" in transition["reason"]
    # From now on every listing, including those the treatment had, is decided by control.
    assert {assess(canary_lab, f"canary-{i}")["variant"] for i in range(80)} == {"control"}


# --- scorer variants: one QualityScorer deployment per card ------------------------------------

SCORER_EXPERIMENT: dict[str, Any] = {
    "id": "scorer-ab",
    "variants": [{"name": "control", "scorer_card": "card-v1"},
                 {"name": "treatment", "scorer_card": "card-v0"}],
    "primary_metric": "click",
    "status": "running",
}


@pytest.fixture(scope="module")
def scorer_lab(service_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The full graph with both scorer cards deployed and an experiment between them."""
    args = {"limits": TEST_LIMITS, "store": store_args(Path(tmp_path_factory.mktemp("scorer"))),
            "models": {"scorer_card": "card-v1", "extra_scorer_cards": ["card-v0"]}}
    serve.run(build_graph(args, {"experiments": [SCORER_EXPERIMENT]}), name="scorer-lab",
              route_prefix="/scorer-lab")
    yield f"{service_url}/scorer-lab"
    serve.delete("scorer-lab")


def test_each_variant_is_scored_by_its_own_card(scorer_lab: str) -> None:
    cards = {}
    for i in range(12):
        answer = assess(scorer_lab, f"scored-{i}")
        (image,) = answer["images"]
        expected = {"control": "card-v1", "treatment": "card-v0"}[answer["variant"]]
        assert image["quality"]["scorer"] == expected
        assert image["attributes"]["quality.scorer"] == expected
        cards[answer["variant"]] = expected
    assert cards == {"control": "card-v1", "treatment": "card-v0"}
    version = requests.get(f"{scorer_lab}/v1/version", timeout=10).json()
    assert version["models"]["scorer_cards"] == "card-v1,card-v0"
