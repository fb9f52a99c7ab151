"""What the ingress decides, as one plain class (no Ray): the live config and its reconfigure
rule, admission, the experiment arm of each listing, the assessment, and the decision log
through the outbox. The Serve deployment (deployments/curator.py) only wires the stage handles,
the metrics and this class; the HTTP routes (curator/http/routes) call it; tests drive it
directly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import curator
from curator.contracts.errors import CuratorError, ImageError
from curator.contracts.schemas import (
    AdmissionState,
    AssessResponse,
    ExperimentsResponse,
    ExperimentState,
    HealthResponse,
    PolicyResponse,
    VersionResponse,
)
from curator.core.admission import AdmissionLimiter, Overloaded
from curator.core.image_jobs import ImageJob, check_decode_memory, check_listing
from curator.core.live_config import LiveConfig
from curator.core.measured import FixedMeasurement, MeasuredImage
from curator.core.review_capture import ReviewCapture
from curator.core.review_desk import ReviewDesk
from curator.core.reviewer_auth import ReviewerSessions
from curator.core.settings import CuratorAppArgs, CuratorConfig
from experiments.config import ExperimentConfig
from experiments.live import EnsuredStore, LiveExperiments, decision_record
from experiments.outbox import Outbox
from experiments.records import OutcomeRecord
from models.scorer_cards import TECHNICAL_CARD
from rules.schema import FixRef

logger = logging.getLogger("ray.serve")

# How often each ingress replica reads the canary weights from the store, seconds.
REFRESH_INTERVAL_S = 5.0


class Stages(Protocol):
    """How the core reaches the measuring stages (deployments.stage_chain.StageChain online)."""

    @property
    def scorer_cards(self) -> tuple[str, ...]: ...

    def card_for(self, requested: str | None) -> str: ...

    async def image_bytes(self, job: ImageJob) -> bytes: ...

    async def measure(self, image_id: str, data: bytes, card: str) -> MeasuredImage: ...

    async def fix(self, image_id: str, data: bytes, fixes: Sequence[FixRef], card: str
                  ) -> FixedMeasurement: ...

    async def backends(self) -> dict[str, str]: ...


class IngressMetrics(Protocol):
    """What the core reports; the deployment exports it through ray.serve.metrics."""

    def listing_assessed(self, latency_ms: float, actions: Sequence[str]) -> None: ...

    def policy_reload(self, outcome: str) -> None: ...

    def admission_refused(self) -> None: ...

    def admission_limit(self, limit: float) -> None: ...

    def outbox_event(self, name: str, amount: float) -> None: ...


class NoMetrics:
    """IngressMetrics that reports nowhere (tests, tools)."""

    def listing_assessed(self, latency_ms: float, actions: Sequence[str]) -> None:
        pass

    def policy_reload(self, outcome: str) -> None:
        pass

    def admission_refused(self) -> None:
        pass

    def admission_limit(self, limit: float) -> None:
        pass

    def outbox_event(self, name: str, amount: float) -> None:
        pass


@dataclass(frozen=True)
class Replica:
    """Who is serving, for GET /v1/version."""

    replica_id: str = "local"
    ray_version: str = ""


# Tells the canary controller which experiments to watch (the Canary deployment's `watch`).
WatchExperiments = Callable[[list[dict[str, Any]]], Awaitable[object]]


class CuratorService:
    def __init__(
        self,
        args: CuratorAppArgs,
        stages: Stages,
        store: EnsuredStore,
        outbox: Outbox,
        watch: WatchExperiments,
        metrics: IngressMetrics | None = None,
        replica: Replica = Replica(),
    ) -> None:
        self.args = args
        self._stages = stages
        self._store = store
        self._outbox = outbox
        self._watch = watch
        self._metrics = metrics or NoMetrics()
        self._replica = replica
        self._live = LiveConfig.from_files(args.policy_dir)
        self._reload_error: str | None = None
        self._admission = AdmissionLimiter(CuratorConfig().admission)
        self._configured = False  # no user_config applied yet
        self._refresher: asyncio.Task[None] | None = None
        # The listing check's decode budget: `decode_memory_bytes`, else the default for this
        # host (a Preprocess replica with a Ray memory reservation derives its own from that).
        self._decode_limits = args.limits.decode_limits()
        # Thumbnails of decisions a person must look at, kept after the answer (issue 15).
        self.review_capture = ReviewCapture(args.review, outbox)
        self._review_sessions: ReviewerSessions | None = None

    @property
    def live(self) -> LiveConfig:
        return self._live

    @property
    def reload_error(self) -> str | None:
        return self._reload_error

    # The review queue's desk and sessions, on the store once it is reachable (issue 15).
    @property
    def review_desk(self) -> ReviewDesk:
        return ReviewDesk(self._store.ready().review)

    @property
    def review_sessions(self) -> ReviewerSessions:
        if self._review_sessions is None:
            self._review_sessions = ReviewerSessions(
                self._store.ready().review, self.args.review.session_hours * 3600)
        return self._review_sessions

    # -- live config ---------------------------------------------------------------------------

    def reconfigure(self, config: Mapping[str, Any]) -> None:
        """A new policy set from user_config. Built and checked completely before one reference
        swap, so a request sees the old set or the new one, never a mix.

        A set that does not load is refused and the old one stays live, without raising: Serve
        would count the running replica as failed and restart it into the same bad config. A
        replica that is just starting does raise, so that it never goes live with a different
        set (the files it started from) than its running peers."""
        try:
            settings = CuratorConfig.model_validate(config)
            live = LiveConfig.build(settings, self.args.policy_dir, self._stages.scorer_cards,
                                    self._canary_weights)
        except (CuratorError, ValueError) as exc:  # PolicyError, ExperimentConfigError, ...
            if not self._configured:
                raise
            self._reload_error = str(exc)
            self._metrics.policy_reload("refused")
            logger.error("user_config update refused; policy set %s stays live: %s",
                         self._live.policy_set_version, exc)
            return
        previous = self._live.policy_set_version
        self._live = live
        self._admission.reconfigure(settings.admission)
        self._reload_error = None
        self._configured = True
        self._metrics.policy_reload("applied")
        logger.info("policy set %s -> %s; experiments: %s", previous,
                    live.policy_set_version, ", ".join(live.experiments.experiments))

    def _canary_weights(self, experiments: LiveExperiments) -> dict[str, dict[str, float]]:
        """The ramped experiments' weights as the store has them now. Unreadable (database
        down): control only, the one state that exposes nobody to an untested treatment."""
        ramped = {i: e for i, e in experiments.experiments.items() if e.ramp is not None}
        if not ramped:
            return {}
        from experiments.canary_runner import CanaryRunner  # SQL-heavy; only ramps need it

        try:
            runner = CanaryRunner(self._store.ready(), ramped)
            return {i: runner.weights(i) for i in ramped}
        except Exception:
            logger.exception("canary state unreadable; serving control only until it is")
            return {i: {e.control: 1.0, **{t: 0.0 for t in e.treatment_names}}
                    for i, e in ramped.items()}

    def ensure_refresher(self) -> None:
        """Start keeping the canary weights current, on the first request of the replica's
        event loop (there is none yet in __init__)."""
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        """Keep the canary weights current and the canary controller told what to watch."""
        while True:
            try:
                await self.refresh()
            except Exception:  # the store may be down: keep serving the last known weights
                logger.exception("experiment refresh failed")
            await asyncio.sleep(REFRESH_INTERVAL_S)

    async def refresh(self) -> None:
        live = self._live
        await self._watch(live.experiment_dicts)
        weights = await asyncio.to_thread(self._canary_weights, live.experiments)
        if weights and self._live is live:  # not replaced meanwhile by a reconfigure
            self._live = replace(live, experiments=live.experiments.with_weights(weights))

    # -- assessment ----------------------------------------------------------------------------

    async def assess(
        self,
        listing_id: str,
        category: str,
        marketplace: str,
        jobs: list[ImageJob],
        include_fixed_images: bool = True,
    ) -> AssessResponse:
        check_listing(jobs, self.args.limits.max_images_per_listing)
        try:
            async with self._admission.admit(len(jobs)):
                return await self._assess_admitted(listing_id, category, marketplace, jobs,
                                                   include_fixed_images)
        except Overloaded:
            self._metrics.admission_refused()
            raise
        finally:
            self._metrics.admission_limit(self._admission.limit)

    async def _assess_admitted(
        self,
        listing_id: str,
        category: str,
        marketplace: str,
        jobs: list[ImageJob],
        include_fixed_images: bool,
    ) -> AssessResponse:
        started = time.perf_counter()
        self.ensure_refresher()
        live = self._live  # one configuration for the whole request, even across a reload
        arm = live.experiments.arm_for(listing_id)
        assessor = live.assessor_for(arm)
        card = self._stages.card_for(arm.scorer_card)
        originals: dict[str, bytes] = {}  # kept for the fixes

        async def read(job: ImageJob) -> bytes | MeasuredImage:
            try:
                data = await self._stages.image_bytes(job)
            except ImageError as error:
                error.image_id = job.image_id
                return MeasuredImage(image_id=job.image_id, error=error.to_dict())
            originals[job.image_id] = data
            return data

        sources = await asyncio.gather(*(read(job) for job in jobs))
        # Every file in hand (uploads, fetched URLs): the listing's decoding memory from the
        # headers, refused whole (413) before any image is sent to be decoded.
        await asyncio.to_thread(
            check_decode_memory,
            [source if isinstance(source, bytes) else None for source in sources],
            self._decode_limits)

        async def measure(job: ImageJob, source: bytes | MeasuredImage) -> MeasuredImage:
            if isinstance(source, MeasuredImage):
                return source
            return await self._stages.measure(job.image_id, source, card)

        measured = await asyncio.gather(*(measure(job, source)
                                          for job, source in zip(jobs, sources, strict=True)))

        async def fix(image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement:
            return await self._stages.fix(image_id, originals[image_id], fixes, card)

        response = await assessor.assess(
            listing_id=listing_id,
            category=category,
            marketplace=marketplace,
            images=measured,
            roles=[job.role for job in jobs],
            fixer=fix,
            include_fixed_images=include_fixed_images,
            variant=arm.variant,
            experiment_id=arm.experiment_id,
            bucket=arm.bucket,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        self._metrics.listing_assessed(latency_ms,
                                       [image.action or "error" for image in response.images])
        # Into the local outbox (a fraction of a millisecond); the store gets it in the
        # background, so a database outage delays decisions and fails no assessment.
        self._outbox.put_decision(decision_record(response, arm, card, latency_ms))
        self.review_capture.keep(response, originals,
                                 {job.image_id: job.url for job in jobs if job.url})
        return response

    # -- outcomes, experiments, policies, health -----------------------------------------------

    def record_outcomes(self, records: Sequence[OutcomeRecord]) -> None:
        if not self._outbox.put_outcomes(records):
            raise CuratorError("the events could not be queued; retry", code="outcomes_unavailable",
                               status=503)

    async def experiments(self) -> ExperimentsResponse:
        self.ensure_refresher()
        live = self._live.experiments
        states = []
        for experiment in live.experiments.values():
            weights = live.weights.get(experiment.id) or experiment.normalized_weights()
            canary = None
            if experiment.ramp is not None:
                canary = await asyncio.to_thread(self._canary_summary, experiment)
            states.append(ExperimentState(
                id=experiment.id, status=experiment.status, description=experiment.description,
                primary_metric=experiment.primary_metric, weights=weights,
                variants=[v.model_dump(exclude_none=True) for v in experiment.variants],
                ramp=list(experiment.ramp) if experiment.ramp else None, canary=canary,
            ))
        return ExperimentsResponse(experiments=states, generated_at=datetime.now(UTC))

    def _canary_summary(self, experiment: ExperimentConfig) -> dict[str, object]:
        from experiments.canary_runner import CanaryRunner

        return CanaryRunner(self._store.ready(), {experiment.id: experiment}).describe(
            experiment.id)

    async def experiment_report(self, experiment_id: str) -> dict[str, Any]:
        from experiments.report import build_report  # statistics stack; only reports need it

        experiment = self._live.experiments.experiments.get(experiment_id)
        if experiment is None:
            raise CuratorError(f"no experiment {experiment_id!r} is configured",
                               code="unknown_experiment", status=404, field="experiment_id")
        report = await asyncio.to_thread(build_report, self._store.ready(), experiment)
        return report.model_dump(mode="json")

    def policy(self, category: str, marketplace: str) -> PolicyResponse:
        return PolicyResponse.of(self._live.assessor.policies, category, marketplace,
                                 self._reload_error)

    async def health(self) -> HealthResponse:
        self.ensure_refresher()
        admission = self._admission
        return HealthResponse(
            status="ok",
            policy_set_version=self._live.policy_set_version,
            admission=AdmissionState(limit=admission.limit, in_flight=admission.in_flight,
                                     admitted=admission.admitted, refused=admission.refused),
        )

    async def version(self) -> VersionResponse:
        models = self.args.models
        return VersionResponse(
            code_version=curator.__version__,
            ray_version=self._replica.ray_version,
            replica_id=self._replica.replica_id,
            policy={"set_version": self._live.policy_set_version}
            | ({"reload_error": self._reload_error} if self._reload_error else {}),
            models=(
                {
                    "scorer_card": models.scorer_card,
                    "scorer_cards": ",".join(models.scorer_cards),
                    "extractor": ",".join(models.extractor_models),
                }
                if models is not None
                else {"scorer_card": TECHNICAL_CARD, "extractor": ""}
            ),
            backends=await self._stages.backends(),
        )
