"""Curator: the HTTP ingress. Fans a listing's images out to the stage deployments concurrently,
then applies the rules, fixes what the rules say to fix, and selects the main image
(curator.assessment, plain Python). The policy set is live: `reconfigure()` swaps it."""

# No `from __future__ import annotations` here: Serve's class-based routes need the endpoint
# annotations as real types, or FastAPI cannot build the form and OpenAPI models.
import asyncio
import base64
import binascii
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import ray
from fastapi import FastAPI, File, Form, Path, UploadFile
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter, Histogram

import curator
from curator.assessment import FixedMeasurement, ListingAssessor, MeasuredImage
from curator.errors import CuratorError, ImageError, PolicyError
from curator.fetch import ImageFetcher
from curator.http import BodySizeLimit, install_error_handlers
from curator.schemas import (
    AssessRequest,
    AssessResponse,
    ErrorResponse,
    HealthResponse,
    ImageInput,
    PolicyResponse,
    PolicyRule,
    Role,
    VersionResponse,
)
from curator.settings import CuratorAppArgs, CuratorConfig
from rules import PolicySet, load_policy_set, policy_set_from_texts
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
    },
)
install_error_handlers(app)

PREPROCESS_BACKEND = "cpu: pillow + opencv + numpy"
_DATA_URL_PREFIX = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class _ImageJob:
    image_id: str
    role: Role | None
    data: bytes | None = None
    url: str | None = None
    error: ImageError | None = None  # found while reading the request itself


def _stage_failed(image_id: str) -> MeasuredImage:
    return MeasuredImage(
        image_id=image_id,
        error={
            "code": "stage_failed",
            "message": "the image could not be assessed; retry later",
            "image_id": image_id,
        },
    )


def _policy_response(
    policies: PolicySet, category: str, marketplace: str, reload_error: str | None
) -> PolicyResponse:
    policy = policies.resolve(category, marketplace)
    return PolicyResponse(
        category=category,
        marketplace=marketplace,
        policy_id=policy.id,
        policy_version=policy.version,
        policy_set_version=policies.version,
        layers=list(policy.layers),
        rules=[
            PolicyRule(**rule.model_dump(mode="json", by_alias=True, exclude_none=True),
                       sources=list(policy.sources.get(rule.id, ())))
            for rule in policy.rules
        ],
        reload_error=reload_error,
    )


def _id_from_filename(filename: str | None, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._:-]", "_", (filename or "").rsplit("/", 1)[-1])[:128]
    return stem.lstrip("._:-") or f"image-{index + 1}"


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress(app)
class Curator:
    def __init__(
        self,
        preprocess: DeploymentHandle,
        extractor: DeploymentHandle | None,
        scorer: DeploymentHandle | None,
        args: CuratorAppArgs | dict,
    ) -> None:
        self._args = CuratorAppArgs.model_validate(args)
        self._preprocess = preprocess
        self._extractor = extractor
        self._scorer = scorer
        self._assessor = ListingAssessor(load_policy_set(self._args.policy_dir))
        self._reload_error: str | None = None
        self._configured = False  # no user_config applied yet
        limits = self._args.limits
        self._fetcher = ImageFetcher(self._args.url_fetch, max_bytes=limits.max_image_bytes)
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
        logger.info("curator ingress ready; policy set %s", self._assessor.policy_set_version)

    def reconfigure(self, config: dict) -> None:
        """A new policy set from user_config. Built and checked completely before one reference
        swap, so a request sees the old set or the new one, never a mix.

        A set that does not load is refused and the old one stays live, without raising: Serve
        would count the running replica as failed and restart it into the same bad config. A
        replica that is just starting does raise, so that it never goes live with a different
        set (the files it started from) than its running peers."""
        try:
            settings = CuratorConfig.model_validate(config)
            policies = (
                policy_set_from_texts(settings.policies)
                if settings.policies is not None
                else load_policy_set(self._args.policy_dir)
            )
        except (PolicyError, ValueError) as exc:
            if not self._configured:
                raise
            self._reload_error = str(exc)
            self._policy_reloads.inc(tags={"outcome": "refused"})
            logger.error("policy update refused; policy set %s stays live: %s",
                         self._assessor.policy_set_version, exc)
            return
        previous = self._assessor.policy_set_version
        self._assessor = ListingAssessor(policies)
        self._reload_error = None
        self._configured = True
        self._policy_reloads.inc(tags={"outcome": "applied"})
        logger.info("policy set %s -> %s", previous, policies.version)

    @app.post("/v1/assess", response_model=AssessResponse, response_model_exclude_none=True)
    async def assess(self, request: AssessRequest) -> AssessResponse:
        jobs = [self._job_from_input(i, image) for i, image in enumerate(request.images)]
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
        # Validate the form through the same schema as JSON, so both routes share every rule.
        ids = [_id_from_filename(upload.filename, index) for index, upload in enumerate(images)]
        AssessRequest.model_validate(
            {
                "listing_id": listing_id,
                "category": category,
                "marketplace": marketplace,
                "images": [{"image_id": image_id, "data": ""} for image_id in ids],
            }
        )
        jobs = [
            _ImageJob(image_id, "main" if image_id == main else None, data=await upload.read())
            for image_id, upload in zip(ids, images, strict=True)
        ]
        return await self._assess(listing_id, category, marketplace, jobs)

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz(self) -> HealthResponse:
        return HealthResponse(status="ok", policy_set_version=self._assessor.policy_set_version)

    @app.get(
        "/v1/policies/{category}/{marketplace}",
        response_model=PolicyResponse,
        response_model_exclude_none=True,
    )
    async def policy(
        self,
        category: Annotated[str, Path(pattern=r"^[a-z0-9_\-]{1,64}$")],
        marketplace: Annotated[str, Path(pattern=r"^[A-Z]{2}$")],
    ) -> PolicyResponse:
        return _policy_response(self._assessor.policies, category, marketplace,
                                self._reload_error)

    @app.get("/v1/version", response_model=VersionResponse)
    async def version(self) -> VersionResponse:
        return VersionResponse(
            code_version=curator.__version__,
            ray_version=ray.__version__,
            replica_id=serve.get_replica_context().replica_id.unique_id,
            policy={"set_version": self._assessor.policy_set_version}
            | ({"reload_error": self._reload_error} if self._reload_error else {}),
            models=(
                {
                    "scorer_card": self._args.models.scorer_card,
                    "extractor": ",".join(self._args.models.extractor_models),
                }
                if self._args.models is not None
                else {"scorer_card": "card-v0", "extractor": ""}
            ),
            backends=await self._backends(),
        )

    async def _backends(self) -> dict[str, str]:
        if self._extractor is None or self._scorer is None:
            return {"preprocess": PREPROCESS_BACKEND}
        extractor, scorer = await asyncio.gather(
            self._extractor.runtime_info.remote(), self._scorer.runtime_info.remote()
        )
        backends = {"preprocess": PREPROCESS_BACKEND}
        for name, info in extractor.items():
            backends[f"extractor.{name}"] = (
                f"{info['runtime']} on {info['device']} ({info['precision']})"
            )
        backends["scorer"] = f"{scorer['runtime']} on {scorer['device']} ({scorer['card']})"
        return backends

    async def _assess(
        self,
        listing_id: str,
        category: str,
        marketplace: str,
        jobs: list[_ImageJob],
        include_fixed_images: bool = True,
    ) -> AssessResponse:
        started = time.perf_counter()
        assessor = self._assessor  # one policy set for the whole request, even across a reload
        self._check_listing(jobs)
        originals: dict[str, bytes] = {}

        async def measure(job: _ImageJob) -> MeasuredImage:
            try:
                data = await self._image_bytes(job)
            except ImageError as error:
                error.image_id = job.image_id
                return MeasuredImage(image_id=job.image_id, error=error.to_dict())
            originals[job.image_id] = data  # kept for the fixes
            return await self._measure(job.image_id, data)

        measured = await asyncio.gather(*(measure(job) for job in jobs))

        async def fix(image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement:
            return await self._fix(image_id, originals[image_id], fixes)

        response = await assessor.assess(
            listing_id=listing_id,
            category=category,
            marketplace=marketplace,
            images=measured,
            roles=[job.role for job in jobs],
            fixer=fix,
            include_fixed_images=include_fixed_images,
        )
        for image in response.images:
            self._actions.inc(tags={"action": image.action or "error"})
        self._listing_latency.observe((time.perf_counter() - started) * 1000)
        return response

    def _check_listing(self, jobs: list[_ImageJob]) -> None:
        limit = self._args.limits.max_images_per_listing
        if len(jobs) > limit:
            raise CuratorError(
                f"a listing has at most {limit} images, got {len(jobs)}",
                code="too_many_images",
                field="images",
            )
        seen: set[str] = set()
        for index, job in enumerate(jobs):
            if job.image_id in seen:
                raise CuratorError(
                    f"image_id {job.image_id!r} appears twice",
                    code="duplicate_image_id",
                    status=422,
                    field=f"images[{index}].image_id",
                    image_id=job.image_id,
                )
            seen.add(job.image_id)

    def _job_from_input(self, index: int, image: ImageInput) -> _ImageJob:
        if image.url is not None:
            return _ImageJob(image.image_id, image.role, url=image.url)
        assert image.data is not None
        field = f"images[{index}].data"
        encoded = _DATA_URL_PREFIX.sub("", image.data, count=1)
        limit = self._args.limits.max_image_bytes
        # 4 base64 characters carry 3 bytes: refuse before decoding what is too large anyway.
        if len(encoded) * 3 // 4 > limit:
            error = ImageError(f"image exceeds the {limit}-byte limit", code="image_too_large",
                               field=field)
            return _ImageJob(image.image_id, image.role, error=error)
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            error = ImageError("data is not valid base64", code="invalid_base64", field=field)
            return _ImageJob(image.image_id, image.role, error=error)
        return _ImageJob(image.image_id, image.role, data=data)

    async def _fix(self, image_id: str, data: bytes, fixes: Sequence[FixRef]) -> FixedMeasurement:
        """Fix on a Preprocess replica (pixel work stays off the ingress), then measure the fixed
        file through the same stages as any image."""
        try:
            fixed = await self._preprocess.apply_fixes.remote(
                data, [(f.name, dict(f.with_)) for f in fixes]
            )
        except Exception:
            logger.exception("fixing image %s failed", image_id)
            return FixedMeasurement(_stage_failed(image_id))
        if fixed.error is not None:
            return FixedMeasurement(MeasuredImage(image_id=image_id, error=fixed.error))
        assert fixed.data is not None
        measured = await self._measure(image_id, fixed.data)
        return FixedMeasurement(measured, fixed.data, fixed.applied, fixed.width, fixed.height)

    async def _measure(self, image_id: str, data: bytes) -> MeasuredImage:
        # Chained without awaiting in between: each stage's response feeds the next .remote()
        # and Serve passes the result replica to replica; the ingress waits once.
        measured = self._preprocess.run.remote(data, image_id)
        try:
            if self._extractor is None or self._scorer is None:
                return await measured
            extracted = self._extractor.extract.remote(measured)
            return await self._scorer.score.remote(extracted)
        except Exception:
            # A stage that crashed on this image (or lost its replica) fails this image only;
            # the rest of the listing is still assessed and answered.
            logger.exception("a stage failed on image %s", image_id)
            return _stage_failed(image_id)

    async def _image_bytes(self, job: _ImageJob) -> bytes:
        if job.error is not None:
            raise job.error
        if job.url is not None:
            return await self._fetcher.fetch(job.url)
        assert job.data is not None
        limit = self._args.limits.max_image_bytes
        if len(job.data) > limit:
            raise ImageError(f"image exceeds the {limit}-byte limit", code="image_too_large")
        return job.data
