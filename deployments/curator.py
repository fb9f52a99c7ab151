"""Curator: the HTTP ingress. Wires the stage handles, the metrics and the plain core
(curator.core.service.CuratorService), which decides everything: the live config, admission,
the experiment arm, the assessment and the decision log. The routes are curator/http/routes;
the app is built per replica (`__serve_build_asgi_app__`), so no module-level app is changed."""

from __future__ import annotations

import logging
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from curator.core.fetch import ImageFetcher
from curator.core.review_desk import purge_review_items
from curator.core.service import CuratorService, Replica
from curator.core.settings import CuratorAppArgs
from curator.http.app import build_app
from deployments.ingress_metrics import ServeIngressMetrics
from deployments.stage_chain import StageChain
from experiments.live import EnsuredStore
from experiments.outbox import Outbox, replica_outbox_path
from experiments.store import DecisionStore

logger = logging.getLogger("ray.serve")


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress()
class Curator:
    def __init__(
        self,
        preprocess: DeploymentHandle,
        extractor: DeploymentHandle | None,
        scorers: dict[str, DeploymentHandle] | None,
        canary: DeploymentHandle,
        args: CuratorAppArgs | dict,
    ) -> None:
        args = CuratorAppArgs.model_validate(args)
        context = serve.get_replica_context()
        metrics = ServeIngressMetrics()
        store = EnsuredStore(DecisionStore(args.store.url))
        # One outbox file per replica rank: a replica restarted in the same slot drains what
        # its predecessor left.
        # Its drain thread also purges review thumbnails past their retention (issue 15).
        outbox = Outbox(replica_outbox_path(args.store.outbox_dir, context.rank), store,
                        on_metric=metrics.outbox_event,
                        housekeeping=lambda: purge_review_items(store, args.review),
                        housekeeping_interval_s=args.review.purge_interval_s)
        limits = args.limits
        models = args.models
        stages = StageChain(
            preprocess, extractor, scorers or {},
            default_card=models.scorer_card if models is not None else None,
            fetcher=ImageFetcher(args.url_fetch, max_bytes=limits.max_image_bytes),
            max_image_bytes=limits.max_image_bytes,
        )
        self._service = CuratorService(
            args, stages, store, outbox,
            watch=lambda experiments: canary.watch.remote(experiments),
            metrics=metrics,
            replica=Replica(context.replica_id.unique_id, ray.__version__),
        )
        logger.info("curator ingress ready; policy set %s", self._service.live.policy_set_version)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(self._service)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """user_config: the policy set, experiments and admission, swapped live; the rule for a
        config that does not load is CuratorService.reconfigure's."""
        self._service.reconfigure(config)
