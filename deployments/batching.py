"""Live batching settings shared by the batched model deployments (`user_config`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The batcher's values before a user_config sets them (the serve configs do): the @serve.batch
# decorators and BatchingConfig both start from these.
DEFAULT_MAX_BATCH_SIZE = 8  # images
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.005  # seconds a batch waits to fill


class BatchingConfig(BaseModel):
    """Validated `user_config` of a batched deployment; applied in `reconfigure()` without a
    restart. `max_batch_size` may not exceed the batch the replica's runtime was built for
    (a TensorRT profile's max), which is fixed at start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(DEFAULT_MAX_BATCH_SIZE, ge=1, le=256)
    batch_wait_timeout_s: float = Field(DEFAULT_BATCH_WAIT_TIMEOUT_S, ge=0, le=1)


# The stage deployments' logging: their calls come from the ingress, one per image and stage,
# so an access-log line each would bury the console's start-up lines, runtimes, policy reloads,
# canary transitions and errors (which still log). Serve's request metrics still count every
# call. The ingress keeps its access log of HTTP requests; the Canary's polls are switched off
# in the serve config.
STAGE_LOGGING = {"enable_access_log": False}

# Histogram boundaries of the batch sizes the model stages report.
BATCH_SIZE_BOUNDARIES = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
