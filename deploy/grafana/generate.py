"""Writes deploy/grafana/curator.json, the Grafana dashboard of a curator cluster.

Curator's own metrics (deployments/*.py: `ray.serve.metrics`, exported by Ray with the prefix
`ray_` and Serve's `application`, `deployment` and `replica` labels) beside Ray Serve's. Import
the JSON in Grafana (Dashboards > New > Import) with a Prometheus data source that scrapes Ray's
metrics endpoints (every node's `--metrics-export-port`; on KubeRay, the pods' `metrics` port).

    python -m deploy.grafana.generate            # rewrite the dashboard
    python -m deploy.grafana.generate --check    # exit 1 if the committed one differs

tests/integration/test_dashboard_metrics.py checks that every metric the dashboard reads is
exported by the running service.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent / "curator.json"
APP = 'application=~"$application"'
RATE = "$__rate_interval"


def _target(expr: str, legend: str, ref: str, instant: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": {"type": "prometheus", "uid": "${datasource}"},
                              "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        target.update(instant=True, range=False, format="table")
    return target


def _panel(title: str, description: str, targets: list[tuple[str, str]], unit: str = "short",
           kind: str = "timeseries", instant: bool = False) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [_target(expr, legend, chr(ord("A") + i), instant)
                    for i, (expr, legend) in enumerate(targets)],
    }
    if kind == "table":
        panel["options"] = {"showHeader": True}
        panel["transformations"] = [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True,
                              "instance": True, "SessionName": True, "Version": True}}}]
    return panel


def _quantiles(metric: str, by: str, title: str, description: str) -> dict[str, Any]:
    group = f"{by}, le" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return _panel(title, description, [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{APP}}}[{RATE}])))",
         f"{legend}p{round(q * 100)}") for q in (0.5, 0.99)], unit="ms")


def panels() -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows of panels, top to bottom."""
    shed = (f"sum(rate(ray_curator_admission_refused_total{{{APP}}}[{RATE}])) / "
            f"(sum(rate(ray_curator_admission_refused_total{{{APP}}}[{RATE}])) + "
            f"sum(rate(ray_curator_listing_ms_count{{{APP}}}[{RATE}])))")
    return [
        ("Traffic and load shedding", [
            _panel("HTTP requests by status", "Ray Serve's proxy: requests per second by "
                   "status code (429 = shed by the admission limit).",
                   [(f"sum by (status_code) (rate(ray_serve_num_http_requests_total{{{APP}}}"
                     f"[{RATE}]))", "{{status_code}}")], unit="reqps"),
            _panel("Shed share", "Listings refused with 429 over listings offered "
                   "(curator_admission_refused / (refused + answered)).",
                   [(shed, "shed")], unit="percentunit"),
            _panel("Admission limit per ingress replica", "Images in flight each ingress "
                   "replica admits now: adaptive (curator/core/admission.py).",
                   [(f"ray_curator_admission_limit{{{APP}}}", "{{replica}}")]),
            _panel("Listing latency (ingress)", "Time to assess a listing in the ingress, "
                   "all stages included (curator_listing_ms).",
                   [(f"histogram_quantile({q}, sum by (le) (rate(ray_curator_listing_ms_bucket"
                     f"{{{APP}}}[{RATE}])))", f"p{round(q * 100)}") for q in (0.5, 0.99)],
                   unit="ms"),
        ]),
        ("Stages", [
            _quantiles("ray_serve_deployment_processing_latency_ms", "deployment",
                       "Latency per stage (Serve)", "Time each deployment's replicas take per "
                       "request: Preprocess per image, the model stages per image in a batch."),
            _quantiles("ray_curator_preprocess_ms", "", "Preprocess: decode and measure",
                       "Time to decode and measure one image (curator_preprocess_ms)."),
            _panel("Model batch size", "Mean images per batch the model stages ran "
                   "(curator_extractor_batch_size, curator_scorer_batch_size by scorer card).",
                   [(f"sum(rate(ray_curator_extractor_batch_size_sum{{{APP}}}[{RATE}])) / "
                     f"sum(rate(ray_curator_extractor_batch_size_count{{{APP}}}[{RATE}]))",
                     "extractor"),
                    (f"sum by (card) (rate(ray_curator_scorer_batch_size_sum{{{APP}}}[{RATE}]))"
                     f" / sum by (card) (rate(ray_curator_scorer_batch_size_count{{{APP}}}"
                     f"[{RATE}]))", "scorer {{card}}")]),
            _panel("Replicas per deployment", "Healthy replicas: Serve's autoscaling at work.",
                   [(f"sum by (deployment) (ray_serve_deployment_replica_healthy{{{APP}}})",
                     "{{deployment}}")]),
            _panel("Requests waiting for a replica", "Requests queued in the handles, not yet "
                   "sent to a replica: the autoscaler's signal beside the ongoing requests.",
                   [(f"sum by (deployment) (ray_serve_deployment_queued_queries{{{APP}}})",
                     "{{deployment}}")]),
            _panel("Decode memory held", "Decoding working memory each Preprocess replica holds "
                   "now (curator_decode_memory_reserved_bytes; limits.decode_memory_bytes).",
                   [(f"ray_curator_decode_memory_reserved_bytes{{{APP}}}", "{{replica}}")],
                   unit="bytes"),
        ]),
        ("Models", [
            _panel("Model runtime in force", "What each model runs on now: runtime, device, "
                   "precision (curator_model_runtime == 1).",
                   [(f"max by (deployment, model, runtime, device, precision) "
                     f"(ray_curator_model_runtime{{{APP}}}) == 1", "")],
                   kind="table", instant=True),
            _panel("Image errors by code", "Images Preprocess could not decode, by error code "
                   "(curator_preprocess_image_errors).",
                   [(f"sum by (code) (rate(ray_curator_preprocess_image_errors_total{{{APP}}}"
                     f"[{RATE}]))", "{{code}}")], unit="ops"),
        ]),
        ("Decisions and experiments", [
            _panel("Decisions written", "Rows the decision store committed from the ingress "
                   "outboxes (decisions and outcomes), per second.",
                   [(f"sum(rate(ray_curator_outbox_events_total{{{APP}, "
                     f'event="outbox_rows_stored"}}[{RATE}]))', "rows stored")], unit="ops"),
            _panel("Outbox trouble", "Store errors (each followed by a backoff: rows wait in "
                   "the outbox), dead letters, rows the local file could not take. The outbox's "
                   "depth itself is not exported yet.",
                   [(f"sum by (event) (rate(ray_curator_outbox_events_total{{{APP}, "
                     f'event!="outbox_rows_stored"}}[{RATE}]))', "{{event}}")], unit="ops"),
            _panel("Actions per image", "approve, review, reject, fix or error, per second "
                   "(curator_image_actions).",
                   [(f"sum by (action) (rate(ray_curator_image_actions_total{{{APP}}}[{RATE}]))",
                     "{{action}}")], unit="ops"),
            _panel("Experiment arms: images per scorer card", "Images each scorer card scores "
                   "per second: an experiment whose variants change the card splits here "
                   "(curator_scorer_batch_size by card).",
                   [(f"sum by (card) (rate(ray_curator_scorer_batch_size_sum{{{APP}}}[{RATE}]))",
                     "{{card}}")], unit="ops"),
            _panel("Policy set reloads", "Live policy updates through user_config, applied or "
                   "refused (curator_policy_reloads).",
                   [(f"sum by (outcome) (increase(ray_curator_policy_reloads_total{{{APP}}}"
                     f"[{RATE}]))", "{{outcome}}")]),
        ]),
    ]


def build() -> dict[str, Any]:
    laid_out: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, row in panels():
        laid_out.append({"type": "row", "title": title, "collapsed": False, "id": next_id,
                         "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        for i, panel in enumerate(row):
            panel["id"] = next_id
            next_id += 1
            panel["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)}
            laid_out.append(panel)
        y += 8 * ((len(row) + 1) // 2)
    return {
        "title": "curator",
        "uid": "curator-serve",
        "description": "curator on Ray Serve: admission and shedding, stages, models, decisions "
                       "and experiment arms. Generated by deploy/grafana/generate.py.",
        "tags": ["curator", "ray", "serve"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0},
            {"name": "application", "label": "Serve application", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(ray_curator_listing_ms_count, application)",
                       "refId": "application"},
             "definition": "label_values(ray_curator_listing_ms_count, application)",
             "includeAll": True, "multi": True, "allValue": ".*",
             "current": {"text": "All", "value": "$__all"}, "refresh": 2, "hide": 0},
        ]},
        "panels": laid_out,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DASHBOARD.exists() or DASHBOARD.read_text() != text:
            print(f"{DASHBOARD} is stale: run python -m deploy.grafana.generate", file=sys.stderr)
            return 1
        return 0
    DASHBOARD.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
