"""POST /v1/assess (JSON, base64 or URLs) and POST /v1/assess/upload (multipart files)."""

# No `from __future__ import annotations`: FastAPI builds the form and OpenAPI models from
# these annotations at run time.
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from curator.contracts.schemas import AssessRequest, AssessResponse
from curator.core.image_jobs import ImageJob, check_listing, job_from_input, upload_request
from curator.http.dependencies import Service
from curator.http.shared import reading_request

router = APIRouter()


@router.post("/v1/assess", response_model=AssessResponse, response_model_exclude_none=True)
async def assess(request: AssessRequest, service: Service) -> AssessResponse:
    limits = service.args.limits
    with reading_request("listing"):
        # The count and the ids before any base64 is decoded (each image's encoded size is
        # checked before its own decoding, in job_from_input).
        check_listing(request.images, limits.max_images_per_listing)
        jobs = [job_from_input(i, image, limits.max_image_bytes)
                for i, image in enumerate(request.images)]
    return await service.assess(request.listing_id, request.category, request.marketplace, jobs,
                                request.include_fixed_images)


@router.post("/v1/assess/upload", response_model=AssessResponse,
             response_model_exclude_none=True)
async def assess_upload(
    service: Service,
    images: Annotated[list[UploadFile], File(description="One file per image")],
    listing_id: Annotated[str, Form()],
    category: Annotated[str, Form()] = "default",
    marketplace: Annotated[str, Form()] = "US",
    main: Annotated[str | None, Form(description="image_id the seller wants as main")] = None,
) -> AssessResponse:
    with reading_request("upload"):
        request = upload_request(listing_id, category, marketplace,
                                 [upload.filename for upload in images],
                                 service.args.limits.max_images_per_listing)
        jobs = [
            ImageJob(image.image_id, "main" if image.image_id == main else None,
                     data=await upload.read())
            for image, upload in zip(request.images, images, strict=True)
        ]
    return await service.assess(listing_id, category, marketplace, jobs)
