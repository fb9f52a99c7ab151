"""Live batching settings shared by the batched model deployments (`user_config`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BatchingConfig(BaseModel):
    """Validated `user_config` of a batched deployment; applied in `reconfigure()` without a
    restart. `max_batch_size` may not exceed the batch the replica's runtime was built for
    (a TensorRT profile's max), which is fixed at start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_timeout_s: float = Field(0.005, ge=0, le=1)


# Histogram boundaries of the batch sizes the model stages report.
BATCH_SIZE_BOUNDARIES = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
