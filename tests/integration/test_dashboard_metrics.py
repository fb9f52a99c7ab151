"""Every metric the Grafana dashboard (deploy/grafana/curator.json) reads is exported by the
running service: the real graph under `serve.run` (the package's fixtures), driven over HTTP so
that each counter has counted something (an answered listing, an undecodable image, a listing
shed with 429), then Ray's Prometheus endpoint scraped and compared with the dashboard's
queries, name by name.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from ray import serve

from graphs.online import build_graph
from tests.integration.conftest import TEST_LIMITS, store_args
from tests.integration.test_admission_http import (  # noqa: F401 (a fixture)
    assess,
    slow_image_url,
    wait_for_in_flight,
)
from tests.support import synthetic

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "curator.json"
ROUTE = "/dashboard-lab"
JPEG = synthetic.to_jpeg_bytes(synthetic.render_product(size=(500, 500), seed=11))
METRIC = re.compile(r"\bray_[a-z0-9_]+")


BY = re.compile(r"\bby \(([^)]*)\)")
MATCHER = re.compile(r"\b(\w+)=\"([^\"$]+)\"")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    texts = [target["expr"] for panel in dashboard["panels"]
             for target in panel.get("targets", [])]
    texts += [variable["definition"] for variable in dashboard["templating"]["list"]
              if "definition" in variable]
    return texts


def dashboard_metrics() -> set[str]:
    """The metric names (Prometheus sample names) in the dashboard's queries."""
    return {name for text in dashboard_queries() for name in METRIC.findall(text)}


def exported(metrics_url: str) -> dict[str, dict[str, set[str]]]:
    """Sample names on Ray's endpoint, each with its labels and the values they took."""
    names: dict[str, dict[str, set[str]]] = {}
    text = requests.get(metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = names.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                labels.setdefault(label, set()).add(value)
    return names


def unseen(wanted: set[str], names: dict[str, dict[str, set[str]]]) -> list[str]:
    """Dashboard metrics not exported yet; curator's must come from the "curator" application
    too (the one the graph's listings went to; only the shedding lab sheds)."""
    missing = sorted(wanted - names.keys())
    missing += sorted(f"{name} from the curator application" for name in wanted & names.keys()
                      if name.startswith("ray_curator_") and "admission_refused" not in name
                      and "curator" not in names[name].get("application", set()))
    return missing


def label_problems(names: dict[str, dict[str, set[str]]]) -> list[str]:
    """Labels a query groups by that its metrics lack, and fixed label values never seen."""
    problems = []
    for text in dashboard_queries():
        grouped = {label.strip() for clause in BY.findall(text) for label in clause.split(",")}
        grouped.discard("le")
        for metric in METRIC.findall(text):
            labels = names.get(metric, {})
            problems += [f"{metric} has no label {label}" for label in grouped
                         if label not in labels]
            problems += [f"{metric} never had {label}={value!r}"
                         for label, value in MATCHER.findall(text)
                         if value not in labels.get(label, set())]
    return problems


@pytest.fixture(scope="module")
def shedding_lab(service_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The technical tier with an admission limit of one image, to have a listing shed."""
    args = {"limits": TEST_LIMITS, "models": None,
            "store": store_args(Path(tmp_path_factory.mktemp("dashboard-lab"))),
            "url_fetch": {"allow_private": ["127.0.0.1/32"], "timeout_s": 15}}
    serve.run(build_graph(args, {"admission": {"initial_limit": 1, "min_limit": 1,
                                               "max_limit": 1}}),
              name="dashboard-lab", route_prefix=ROUTE)
    yield f"{service_url}{ROUTE}"
    serve.delete("dashboard-lab")


def test_dashboard_reads_curator_and_serve_metrics() -> None:
    names = dashboard_metrics()
    curator = {name for name in names if name.startswith("ray_curator_")}
    # What the issue asks the operations view to show.
    for wanted in ("ray_curator_admission_limit", "ray_curator_admission_refused_total",
                   "ray_curator_listing_ms_bucket", "ray_curator_preprocess_ms_bucket",
                   "ray_curator_extractor_batch_size_sum", "ray_curator_scorer_batch_size_sum",
                   "ray_curator_model_runtime", "ray_curator_outbox_events_total"):
        assert wanted in curator, wanted
    assert any(name.startswith("ray_serve_") for name in names)


def test_every_dashboard_metric_is_exported(service_url: str, metrics_url: str,
                                            shedding_lab: str,
                                            slow_image_url: str) -> None:  # noqa: F811
    # An answered listing through every stage, with one image that cannot be decoded.
    answer = requests.post(f"{service_url}/v1/assess", timeout=120, json={
        "listing_id": "dashboard-1", "category": "home", "marketplace": "US",
        "images": [{"image_id": "ok", "data": base64.b64encode(JPEG).decode()},
                   {"image_id": "broken", "data": base64.b64encode(b"not an image").decode()}]})
    assert answer.status_code == 200, answer.text
    statuses = {image["image_id"]: image["status"] for image in answer.json()["images"]}
    assert statuses == {"ok": "ok", "broken": "error"}, statuses
    # A listing shed: one held in flight by a slow image URL, the next refused with 429.
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(assess, shedding_lab, {"url": slow_image_url}, "held")
        wait_for_in_flight(shedding_lab, 1)
        refused = assess(shedding_lab, {"data": base64.b64encode(JPEG).decode()}, "shed")
        assert refused.status_code == 429, refused.text
        assert held.result(timeout=60).status_code == 200

    wanted = dashboard_metrics()
    # Replicas push their metrics every few seconds and the outbox drains in the background,
    # so the endpoint is read until everything has shown up, with a listing now and then: Ray
    # drops a gauge series that has not been set for about two export intervals, and the
    # admission limit and the decode memory gauges are set only by traffic.
    deadline = time.monotonic() + 120
    names: dict[str, dict[str, set[str]]] = {}
    while True:
        for name, labels in exported(metrics_url).items():
            for label, values in labels.items():
                names.setdefault(name, {}).setdefault(label, set()).update(values)
        if not unseen(wanted, names) or time.monotonic() > deadline:
            break
        again = requests.post(f"{service_url}/v1/assess", timeout=120, json={
            "listing_id": "dashboard-2", "category": "home", "marketplace": "US",
            "images": [{"image_id": "ok", "data": base64.b64encode(JPEG).decode()}]})
        assert again.status_code == 200, again.text
        time.sleep(2)
    missing = unseen(wanted, names)
    assert not missing, (missing, sorted(name for name in names if "curator" in name
                                         or name.startswith("ray_serve")))
    assert not label_problems(names), label_problems(names)
