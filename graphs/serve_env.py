"""The environment of the Ray that `serve run` starts on one machine (`curator serve`, the
benchmark): Serve's background work, sized for a small host.

Measured 2026-12-06 on the 2-core Xeon (CPU time of every process of the served full graph over
30 s, no requests): idle, the service burns 560 CPU ms a second, 28% of the machine that a
one-image listing needs 1.5 cores of; 114 of them are the controller. With both settings below,
410 and then 338 (controller 38). Neither touches the request path: autoscaling decisions wait
seconds (`upscale_delay_s`), and Prometheus scrapes every 10-15 s.

On a cluster the head node's spare cores absorb this; its manifests keep those defaults, and
set what a cluster needs instead (CLUSTER_SERVE_ENV).
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


# The Serve controller's environment on a cluster whose nodes come and go with load (cluster.yaml,
# the KubeRay manifest, the simulated cluster of benchmarks/cluster_demo.py). Serve spreads
# replicas by default and picks a downscale's victims one deployment at a time, so after a load
# step the extractor's last replica can stay on one GPU node and the scorer's on another: two L4s
# held where one fits both, for as long as traffic stays low (seen in the cluster demo,
# 2026-12-07). Packing places replicas on the fullest node that fits them and, once every
# deployment has been steady for RAY_SERVE_NODE_COMPACTION_DELAY_S (300 s by default), moves a
# node's last replicas onto the others so that the autoscaler can give that node back.
CLUSTER_SERVE_ENV = {
    "RAY_SERVE_USE_PACK_SCHEDULING_STRATEGY": "1",
}


def local_serve_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` (the caller's environment) with the settings above wherever it has none of its
    own: an operator's value wins."""
    return {**LOCAL_SERVE_ENV, **base}
