"""The environment of the Ray that `serve run` starts on one machine (`curator serve`, the
benchmark): Serve's background work, sized for a small host.

Measured 2026-12-06 on the 2-core Xeon (CPU time of every process of the served full graph over
30 s, no requests): idle, the service burns 560 CPU ms a second, 28% of the machine that a
one-image listing needs 1.5 cores of; 114 of them are the controller. With both settings below,
410 and then 338 (controller 38). Neither touches the request path: autoscaling decisions wait
seconds (`upscale_delay_s`), and Prometheus scrapes every 10-15 s.

On a cluster the head node's spare cores absorb this; its manifests keep Ray's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping

LOCAL_SERVE_ENV = {
    # The controller's reconcile loop: 10 a second by default, twice here.
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    # Each replica's and the proxy's push of Serve's own metrics to Ray's metrics agent: 10 a
    # second by default, once here.
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000",
}


def local_serve_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` (the caller's environment) with the settings above wherever it has none of its
    own: an operator's value wins."""
    return {**LOCAL_SERVE_ENV, **base}
