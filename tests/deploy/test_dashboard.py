"""The Grafana dashboard (deploy/grafana/curator.json) without a server: it is what its generator
writes, valid Grafana JSON in shape, and every curator metric it reads is one a deployment
declares. tests/integration/test_dashboard_metrics.py checks the running service exports them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from deploy.grafana import generate
from tests.integration.test_dashboard_metrics import (
    DASHBOARD,
    dashboard_metrics,
    label_problems,
)

ROOT = Path(__file__).resolve().parents[2]
DECLARED = re.compile(r"(?:Counter|Gauge|Histogram)\(\s*\"(curator_[a-z_]+)\"")


def test_committed_dashboard_is_the_generated_one() -> None:
    assert DASHBOARD.read_text() == generate.render(), (
        "deploy/grafana/curator.json is stale: run python -m deploy.grafana.generate")
    assert generate.main(["--check"]) == 0


def test_dashboard_shape() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in ("Shed share", "Admission limit per ingress replica", "Latency per stage (Serve)",
                   "Model batch size", "Model runtime in force", "Decisions written",
                   "Experiment arms: images per scorer card"):
        assert wanted in titles, wanted
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_curator_metrics_on_the_dashboard_are_declared_by_the_deployments() -> None:
    declared = {name for path in (ROOT / "deployments").glob("*.py")
                for name in DECLARED.findall(path.read_text())}
    assert "curator_admission_limit" in declared
    used = {name for name in dashboard_metrics() if name.startswith("ray_curator_")}
    # Prometheus names: Ray's prefix, then _total (counters) or _bucket/_sum/_count (histograms).
    bases = {re.sub(r"_(total|bucket|sum|count)$", "", name.removeprefix("ray_")) for name in used}
    assert bases <= declared, bases - declared


def test_label_problems_names_missing_labels_and_values() -> None:
    good = {"ray_curator_outbox_events_total": {"event": {"outbox_rows_stored"},
                                                "application": {"curator"}},
            "ray_curator_scorer_batch_size_sum": {"card": {"card-v1"},
                                                  "application": {"curator"}},
            "ray_curator_scorer_batch_size_count": {"card": {"card-v1"}}}
    problems = label_problems(good)
    assert "ray_curator_scorer_batch_size_sum has no label card" not in problems
    without_card = {**good, "ray_curator_scorer_batch_size_sum": {"application": {"curator"}}}
    assert "ray_curator_scorer_batch_size_sum has no label card" in label_problems(without_card)
    no_stored = {**good, "ray_curator_outbox_events_total": {"event": {"outbox_store_errors"}}}
    assert ("ray_curator_outbox_events_total never had event='outbox_rows_stored'"
            in label_problems(no_stored))
