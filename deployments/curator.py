"""Curator: the HTTP ingress. Fans a listing's images out to the stage deployments concurrently,
then applies the rules, fixes what the rules say to fix, and selects the main image
(curator.core.assessment, plain Python). The policy set is live: `reconfigure()` swaps it."""

# No `from __future__ import annotations` here: Serve's class-based routes need the endpoint
# annotations as real types, or FastAPI cannot build the form and OpenAPI models.
import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated

import ray
from fastapi import FastAPI, File, Form, Header, Path, Request, UploadFile
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter, Gauge, Histogram

import curator
from curator.contracts.errors import CuratorError, ImageError
from curator.contracts.ids import CATEGORY_PATTERN, EXPERIMENT_ID_PATTERN, MARKETPLACE_PATTERN
from curator.contracts.schemas import (
    AdmissionState,
    AssessRequest,
    AssessResponse,
    ErrorResponse,
    ExperimentsResponse,
    ExperimentState,
    HealthResponse,
    OutcomesRequest,
    OutcomesResponse,
    PolicyResponse,
    VersionResponse,
)
from curator.core.admission import AdmissionLimiter, Overloaded
from curator.core.assessment import FixedMeasurement, ListingAssessor, MeasuredImage
from curator.core.fetch import ImageFetcher
from curator.core.image_jobs import (
    ImageJob,
    check_decode_memory,
    check_listing,
    job_from_input,
    upload_request,
)
from curator.core.settings import CuratorAppArgs, CuratorConfig
from curator.http.shared import (
    BodySizeLimit,
    install_error_handlers,
    openapi_body,
    parse_json_body,
    reading_request,
    require_api_key,
)
from deployments.stage_chain import TECHNICAL_CARD, StageChain
from experiments.config import ExperimentConfig, experiments_from_data
from experiments.live import Arm, EnsuredStore, LiveExperiments, decision_record
from experiments.outbox import Outbox, replica_outbox_path
from experiments.records import OutcomeRecord
from experiments.store import DecisionStore
from rules import load_policy_set, policy_set_from_texts
from rules.schema import FixRef

logger = logging.getLogger("ray.serve")

app = FastAPI(
    title="curator",
    version=curator.__version__,
    description="Product-image curation: rules, detection, actions, effectiveness.",
    responses={
        400: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        429: {"model": ErrorResponse, "description": "Overloaded: retry after Retry-After"},
    },
)
install_error_handlers(app)

# How often each ingress replica reads the canary weights from the store, seconds.
REFRESH_INTERVAL_S = 5.0


@dataclass(frozen=True)
class _Live:
    """Everything user_config decides, swapped as one reference."""

    assessor: ListingAssessor
    variant_assessors: dict[str, ListingAssessor]  # by policy set name, for variants
    experiments: LiveExperiments
    experiment_dicts: list[dict]

    def assessor_for(self, arm: Arm) -> ListingAssessor:
        return self.variant_assessors[arm.policy_set] if arm.policy_set else self.assessor


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress(app)
class Curator:
    def __init__(
        self,
        preprocess: DeploymentHandle,
        extractor: DeploymentHandle | None,
        scorers: dict[str, DeploymentHandle] | None,
        canary: DeploymentHandle,
        args: CuratorAppArgs | dict,
    ) -> None:
        self._args = CuratorAppArgs.model_validate(args)
        self._canary = canary
        self._live = _Live(ListingAssessor(load_policy_set(self._args.policy_dir)), {},
                           LiveExperiments(), [])
        self._reload_error: str | None = None
        self._admission = AdmissionLimiter(CuratorConfig().admission)
        self._configured = False  # no user_config applied yet
        self._refresher: asyncio.Task[None] | None = None
        self._store = EnsuredStore(DecisionStore(self._args.store.url))
        # One outbox file per replica rank: a replica restarted in the same slot drains what
        # its predecessor left.
        outbox_path = replica_outbox_path(self._args.store.outbox_dir,
                                          serve.get_replica_context().rank)
        self._outbox = Outbox(outbox_path, self._store, on_metric=self._outbox_metric)
        limits = self._args.limits
        # The listing check's decode budget: `decode_memory_bytes`, else the default for this
        # host (a Preprocess replica with a Ray memory reservation derives its own from that).
        self._decode_limits = limits.decode_limits()
        models = self._args.models
        self._stages = StageChain(
            preprocess, extractor, scorers or {},
            default_card=models.scorer_card if models is not None else None,
            fetcher=ImageFetcher(self._args.url_fetch, max_bytes=limits.max_image_bytes),
            max_image_bytes=limits.max_image_bytes,
        )
        app.add_middleware(BodySizeLimit, max_bytes=limits.max_request_bytes)
        self._listing_latency = Histogram(
            "curator_listing_ms",
            description="Time to assess one listing in the ingress, ms",
            boundaries=[5, 10, 25, 50, 100, 250, 500, 1000, 2500],
        )
        self._actions = Counter(
            "curator_image_actions",
            description="Per-image outcomes: approve, review, reject, fix or error",
            tag_keys=("action",),
        )
        self._policy_reloads = Counter(
            "curator_policy_reloads",
            description="Policy set updates through user_config, by outcome",
            tag_keys=("outcome",),
        )
        self._refused = Counter(
            "curator_admission_refused",
            description="Listings refused with 429 at the admission limit",
        )
        self._admission_limit = Gauge(
            "curator_admission_limit",
            description="Images in flight this ingress replica admits now (adaptive)",
        )
        self._outbox_events = Counter(
            "curator_outbox_events",
            description="Decision outbox: rows stored, store errors, dead letters, put failures",
            tag_keys=("event",),
        )
        logger.info("curator ingress ready; policy set %s",
                    self._live.assessor.policy_set_version)

    def _outbox_metric(self, name: str, amount: float) -> None:
        self._outbox_events.inc(amount, tags={"event": name})

    def reconfigure(self, config: dict) -> None:
        """A new policy set from user_config. Built and checked completely before one reference
        swap, so a request sees the old set or the new one, never a mix.

        A set that does not load is refused and the old one stays live, without raising: Serve
        would count the running replica as failed and restart it into the same bad config. A
        replica that is just starting does raise, so that it never goes live with a different
        set (the files it started from) than its running peers."""
        try:
            settings = CuratorConfig.model_validate(config)
            live = self._live_from(settings)
        except (CuratorError, ValueError) as exc:  # PolicyError, ExperimentConfigError, ...
            if not self._configured:
                raise
            self._reload_error = str(exc)
            self._policy_reloads.inc(tags={"outcome": "refused"})
            logger.error("user_config update refused; policy set %s stays live: %s",
                         self._live.assessor.policy_set_version, exc)
            return
        previous = self._live.assessor.policy_set_version
        self._live = live
        self._admission.reconfigure(settings.admission)
        self._reload_error = None
        self._configured = True
        self._policy_reloads.inc(tags={"outcome": "applied"})
        logger.info("policy set %s -> %s; experiments: %s", previous,
                    live.assessor.policy_set_version, ", ".join(live.experiments.experiments))

    def _live_from(self, settings: CuratorConfig) -> _Live:
        policies = (
            policy_set_from_texts(settings.policies)
            if settings.policies is not None
            else load_policy_set(self._args.policy_dir)
        )
        variant_sets = {name: ListingAssessor(policy_set_from_texts(texts))
                        for name, texts in settings.policy_sets.items()}
        experiments = LiveExperiments.checked(
            experiments_from_data(settings.experiments, "user_config")
            if settings.experiments else {},
            scorer_cards=self._stages.scorer_cards,
            policy_sets=tuple(variant_sets),
        )
        return _Live(ListingAssessor(policies), variant_sets,
                     experiments.with_weights(self._canary_weights(experiments)),
                     settings.experiments)

    def _canary_weights(self, experiments: LiveExperiments) -> dict[str, dict[str, float]]:
        """The ramped experiments' weights as the store has them now. Unreadable (database
        down): control only, the one state that exposes nobody to an untested treatment."""
        ramped = {i: e for i, e in experiments.experiments.items() if e.ramp is not None}
        if not ramped:
            return {}
        from experiments.canary_runner import CanaryRunner

        try:
            runner = CanaryRunner(self._store.ready(), ramped)
            return {i: runner.weights(i) for i in ramped}
        except Exception:
            logger.exception("canary state unreadable; serving control only until it is")
            return {i: {e.control: 1.0, **{t: 0.0 for t in e.treatment_names}}
                    for i, e in ramped.items()}

    def _ensure_refresher(self) -> None:
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        """Keep the canary weights current and the canary controller told what to watch."""
        while True:
            try:
                await self._refresh()
            except Exception:  # the store may be down: keep serving the last known weights
                logger.exception("experiment refresh failed")
            await asyncio.sleep(REFRESH_INTERVAL_S)

    async def _refresh(self) -> None:
        live = self._live
        await self._canary.watch.remote(live.experiment_dicts)
        weights = await asyncio.to_thread(self._canary_weights, live.experiments)
        if weights and self._live is live:  # not replaced meanwhile by a reconfigure
            self._live = replace(live, experiments=live.experiments.with_weights(weights))

    @app.post("/v1/assess", response_model=AssessResponse, response_model_exclude_none=True)
    async def assess(self, request: AssessRequest) -> AssessResponse:
        limits = self._args.limits
        with reading_request("listing"):
            # The count and the ids before any base64 is decoded (each image's encoded size is
            # checked before its own decoding, in job_from_input).
            check_listing(request.images, limits.max_images_per_listing)
            jobs = [job_from_input(i, image, limits.max_image_bytes)
                    for i, image in enumerate(request.images)]
        return await self._assess(request.listing_id, request.category, request.marketplace, jobs,
                                  request.include_fixed_images)

    @app.post("/v1/assess/upload", response_model=AssessResponse, response_model_exclude_none=True)
    async def assess_upload(
        self,
        images: Annotated[list[UploadFile], File(description="One file per image")],
        listing_id: Annotated[str, Form()],
        category: Annotated[str, Form()] = "default",
        marketplace: Annotated[str, Form()] = "US",
        main: Annotated[str | None, Form(description="image_id the seller wants as main")] = None,
    ) -> AssessResponse:
        with reading_request("upload"):
            request = upload_request(listing_id, category, marketplace,
                                     [upload.filename for upload in images],
                                     self._args.limits.max_images_per_listing)
            jobs = [
                ImageJob(image.image_id, "main" if image.image_id == main else None,
                         data=await upload.read())
                for image, upload in zip(request.images, images, strict=True)
            ]
        return await self._assess(listing_id, category, marketplace, jobs)

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz(self) -> HealthResponse:
        self._ensure_refresher()
        admission = self._admission
        return HealthResponse(
            status="ok",
            policy_set_version=self._live.assessor.policy_set_version,
            admission=AdmissionState(limit=admission.limit, in_flight=admission.in_flight,
                                     admitted=admission.admitted, refused=admission.refused),
        )

    @app.get(
        "/v1/policies/{category}/{marketplace}",
        response_model=PolicyResponse,
        response_model_exclude_none=True,
    )
    async def policy(
        self,
        category: Annotated[str, Path(pattern=CATEGORY_PATTERN)],
        marketplace: Annotated[str, Path(pattern=MARKETPLACE_PATTERN)],
    ) -> PolicyResponse:
        return PolicyResponse.of(self._live.assessor.policies, category, marketplace,
                                 self._reload_error)

    @app.post("/v1/outcomes", response_model=OutcomesResponse, status_code=202,
              responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
              openapi_extra=openapi_body(OutcomesRequest))
    async def outcomes(
        self,
        http_request: Request,
        x_api_key: Annotated[str | None, Header(description="A key whose SHA-256 the service "
                                                "lists in outcome_key_sha256")] = None,
    ) -> OutcomesResponse:
        # The body is read only once the caller is known: an anonymous client gets a 401, never
        # a parser's attention (FastAPI would parse a declared body before this runs).
        if not self._args.outcome_key_sha256:
            raise CuratorError("outcome events are not enabled on this service "
                               "(no outcome_key_sha256 configured)", code="outcomes_disabled",
                               status=503)
        require_api_key(x_api_key, self._args.outcome_key_sha256)
        request: OutcomesRequest = parse_json_body(OutcomesRequest, await http_request.body())
        with reading_request("outcome events"):
            records = [
                OutcomeRecord(event_id=e.event_id, type=e.type, occurred_at=e.time,
                              unit_id=e.unit_id, decision_id=e.decision_id, value=e.value)
                for e in request.events
            ]
        if not self._outbox.put_outcomes(records):
            raise CuratorError("the events could not be queued; retry", code="outcomes_unavailable",
                               status=503)
        return OutcomesResponse(accepted=len(records))

    @app.get("/v1/experiments", response_model=ExperimentsResponse,
             response_model_exclude_none=True)
    async def experiments(self) -> ExperimentsResponse:
        self._ensure_refresher()
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

    @app.get("/v1/experiments/{experiment_id}/report")
    async def experiment_report(
        self, experiment_id: Annotated[str, Path(pattern=EXPERIMENT_ID_PATTERN)]
    ) -> dict:
        from experiments.report import build_report

        experiment = self._live.experiments.experiments.get(experiment_id)
        if experiment is None:
            raise CuratorError(f"no experiment {experiment_id!r} is configured",
                               code="unknown_experiment", status=404, field="experiment_id")
        report = await asyncio.to_thread(build_report, self._store.ready(), experiment)
        return report.model_dump(mode="json")

    @app.get("/v1/version", response_model=VersionResponse)
    async def version(self) -> VersionResponse:
        return VersionResponse(
            code_version=curator.__version__,
            ray_version=ray.__version__,
            replica_id=serve.get_replica_context().replica_id.unique_id,
            policy={"set_version": self._live.assessor.policy_set_version}
            | ({"reload_error": self._reload_error} if self._reload_error else {}),
            models=(
                {
                    "scorer_card": self._args.models.scorer_card,
                    "scorer_cards": ",".join(self._args.models.scorer_cards),
                    "extractor": ",".join(self._args.models.extractor_models),
                }
                if self._args.models is not None
                else {"scorer_card": TECHNICAL_CARD, "extractor": ""}
            ),
            backends=await self._stages.backends(),
        )

    async def _assess(
        self,
        listing_id: str,
        category: str,
        marketplace: str,
        jobs: list[ImageJob],
        include_fixed_images: bool = True,
    ) -> AssessResponse:
        check_listing(jobs, self._args.limits.max_images_per_listing)
        try:
            async with self._admission.admit(len(jobs)):
                return await self._assess_admitted(listing_id, category, marketplace, jobs,
                                                   include_fixed_images)
        except Overloaded:
            self._refused.inc()
            raise
        finally:
            self._admission_limit.set(self._admission.limit)

    async def _assess_admitted(
        self,
        listing_id: str,
        category: str,
        marketplace: str,
        jobs: list[ImageJob],
        include_fixed_images: bool,
    ) -> AssessResponse:
        started = time.perf_counter()
        self._ensure_refresher()
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
        for image in response.images:
            self._actions.inc(tags={"action": image.action or "error"})
        latency_ms = (time.perf_counter() - started) * 1000
        self._listing_latency.observe(latency_ms)
        # Into the local outbox (a fraction of a millisecond); the store gets it in the
        # background, so a database outage delays decisions and fails no assessment.
        self._outbox.put_decision(
            decision_record(response, arm, card, latency_ms))
        return response
