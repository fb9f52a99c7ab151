"""What Ray Serve itself costs a one-image listing on this host, in the full graph's shape, with
stages that compute nothing: the floor under the service's latency at concurrency 1.

    .venv/bin/python -m benchmarks.serve_floor [--requests 60] [--json PATH]

Each shape is a FastAPI ingress behind Serve's HTTP proxy, sent one listing at a time the
benchmark's dev-set photos as `POST /v1/assess` takes them (JSON, the image in base64):
- `ingress`: the body parsed and the image decoded from base64; nothing else;
- `one_hop`: then the bytes sent to a stage replica that answers an array the size of the model
  inputs Preprocess hands on (640 x 640 x 3 uint8);
- `graph`: then that answer passed on, unawaited, to two more replicas side by side, as the
  ingress chains Preprocess into the AttributeExtractor beside the QualityScorer
  (deployments/stage_chain.py).
The shapes take turns request by request, so drift on a shared host falls on all three alike.
Set against the stage times of `make bench`'s c=1 row (benchmarks/README.md), `graph` is the part
of the service's p50 that no model or measurement can win back.
"""

# No `from __future__ import annotations`: FastAPI must see `Request` itself on the ingress's
# method, or it reads the parameter as a query field.
import argparse
import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import numpy as np
import requests
from fastapi import FastAPI, Request
from ray import serve
from ray.serve.handle import DeploymentHandle

from benchmarks.report import machine_info, measure_and_report
from benchmarks.stats import summarize_ms

SHAPES = ("ingress", "one_hop", "graph")
MODEL_INPUTS_SHAPE = (640, 640, 3)  # models.preprocess.ModelInputs.rgb at its largest
WARMUP_PER_SHAPE = 5

app = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Stage:
    def run(self, data: bytes) -> dict[str, Any]:
        return {"rgb": np.zeros(MODEL_INPUTS_SHAPE, dtype=np.uint8), "bytes": len(data)}


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Model:
    def run(self, item: dict[str, Any]) -> int:
        return int(item["rgb"].shape[0])


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class Ingress:
    def __init__(self, stage: DeploymentHandle, extractor: DeploymentHandle,
                 scorer: DeploymentHandle) -> None:
        self._stage, self._extractor, self._scorer = stage, extractor, scorer

    @app.post("/{shape}")
    async def answer(self, shape: str, request: Request) -> dict[str, int]:
        data = base64.b64decode((await request.json())["image_b64"], validate=True)
        if shape == "ingress":
            return {"bytes": len(data)}
        staged = self._stage.run.remote(data)
        if shape == "one_hop":
            return {"bytes": (await staged)["bytes"]}
        extracted, scored = await asyncio.gather(self._extractor.run.remote(staged),
                                                 self._scorer.run.remote(staged))
        return {"rows": extracted + scored}


def measure(requests_per_shape: int, images: int = 16) -> dict[str, Any]:
    """p50/p95/p99 ms per shape over `requests_per_shape` listings each (after a warm-up)."""
    import ray

    from benchmarks.images import devset_images
    from benchmarks.service import REPO_ROOT, free_port
    from graphs.online import deployment

    bodies = [{"image_b64": image.b64} for image in devset_images(images)]
    port = free_port()
    ray.init(include_dashboard=False, logging_level=logging.WARNING)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        model = deployment(Model)
        graph = deployment(Ingress).bind(deployment(Stage).bind(), model.bind(),
                                         model.options(name="Scorer").bind())
        serve.run(graph, name="serve-floor", route_prefix="/")
        latencies: dict[str, list[float]] = {shape: [] for shape in SHAPES}
        with requests.Session() as session:
            for turn in range(WARMUP_PER_SHAPE + requests_per_shape):
                for shape in SHAPES:
                    body = bodies[turn % len(bodies)]
                    response = session.post(f"http://127.0.0.1:{port}/{shape}", json=body,
                                            timeout=30)
                    if not response.ok:
                        raise RuntimeError(f"{shape}: {response.status_code} {response.text}")
                    if turn >= WARMUP_PER_SHAPE:
                        latencies[shape].append(response.elapsed.total_seconds() * 1000)
    finally:
        serve.shutdown()
        ray.shutdown()
    return {"machine": machine_info(REPO_ROOT), "requests_per_shape": requests_per_shape,
            "images": len(bodies),
            "latency_ms": {shape: summarize_ms(values) for shape, values in latencies.items()}}


def render(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [f"Serve's floor at concurrency 1 on {machine['cpu_model']} "
             f"({machine['logical_cores']} cores; {machine['cpu_flags']}), "
             f"{result['requests_per_shape']} listings a shape, {result['images']} dev-set photos",
             f"{'shape':<8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"]
    for shape in SHAPES:
        figures = result["latency_ms"][shape]
        lines.append(f"{shape:<8} {figures['p50']:>7.1f} {figures['p95']:>7.1f} "
                     f"{figures['p99']:>7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="listings per shape")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    return measure_and_report(lambda: measure(args.requests), render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
