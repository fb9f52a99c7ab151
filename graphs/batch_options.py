"""How a batch job runs (not what it decides: that is the serve config's). No Ray imported, so
the `curator` command builds its options from here without loading Ray."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curator.core.settings import InputLimits, ModelStageSettings

MIB = 2**20
# The smallest decode budget InputLimits accepts: a share below it is raised to it.
MIN_ACTOR_DECODE_BYTES = 16 * MIB


@dataclass(frozen=True)
class ActorMemory:
    """A model actor's peak RSS as a line in its batch size: what it holds once its models are
    loaded, and what each image of a batch adds (ONNX Runtime's arenas grow to the largest
    batch run). `reserve` asks Ray for that with room to spare, so that Ray places no more
    actors on a node than its memory carries: by CPU alone (0.5 an actor) a 16-vCPU node would
    take 32 extractor actors of 2 GiB each at batch 16."""

    loaded_bytes: int
    per_image_bytes: int
    headroom: float = 1.25  # other hosts' runtimes (every detector in FP32 without bf16)

    def reserve(self, batch_size: int) -> int:
        return int((self.loaded_bytes + self.per_image_bytes * batch_size) * self.headroom)


# Peak RSS of a fresh process that imports Ray Data, loads the stage as the batch actors do and
# runs three batches of measured dev-set photos (2026-12-07, Zen 4 EPYC, the CPU runtimes `auto`
# picks there): the extractor 757 / 1027 / 1351 / 2235 MiB at batch 1 / 4 / 8 / 16 (3905 at 32),
# the scorer 468 / 490 / 521 / 565 at 1 / 8 / 16 / 32. The same scorer read 648 MiB at batch 8
# once, inside the whole test suite, and a Serve scorer replica holds 507-529 in the soak: its
# loaded figure is taken from those. tests/graphs/test_batch_resources.py measures them again.
# At batch 16 the extractor's reservation is 2.9 GiB, where Ray Data's own memory check,
# watching these actors run unreserved, advised 2.6.
EXTRACTOR_MEMORY = ActorMemory(loaded_bytes=620 * MIB, per_image_bytes=110 * MIB)
SCORER_MEMORY = ActorMemory(loaded_bytes=540 * MIB, per_image_bytes=2 * MIB)
# A listing actor measures each fixed image through its own copy of all three stages, one image
# at a time, once its first fix has loaded them (graphs.batch_stages.AssessListings): 827 MiB peak
# in a fresh process running 24 dev-set photos so (2026-12-07, the same host and runtimes; the
# measurement tests/graphs/test_batch_resources.py repeats).
# It reserves that whether or not its listings need a fix: a policy set decides, not the actor.
LISTING_MEMORY = ActorMemory(loaded_bytes=760 * MIB, per_image_bytes=60 * MIB)


@dataclass(frozen=True)
class BatchOptions:
    batch_size: int = 16  # images per model call; at most the models' max_batch_size_limit
    read_actors: int = 1  # read + Preprocess actors (CPU)
    extract_actors: int = 1  # AttributeExtractor actors
    score_actors: int = 1  # QualityScorer actors
    listing_actors: int = 1  # rules + fixes + selection actors
    gpus_per_model_actor: float = 0.0  # GPUs each extractor and scorer actor asks Ray for
    # The GPU model those actors need ("L4"): Ray labels each node with its GPU's type, so on a
    # cluster of mixed GPUs the job runs where the capacity plan was measured.
    accelerator_type: str | None = None
    parquet: bool = False  # also write the answers as Parquet, beside the JSON Lines

    def check(self, models: ModelStageSettings) -> None:
        """ValueError for options these models cannot run with."""
        if self.batch_size > models.max_batch_size_limit:
            # The runtimes (TensorRT profiles) are built for batches up to the limit.
            raise ValueError(f"batch size {self.batch_size} exceeds the models' "
                             f"max_batch_size_limit {models.max_batch_size_limit}")
        if self.accelerator_type and not self.gpus_per_model_actor:
            raise ValueError(f"accelerator type {self.accelerator_type} needs GPUs per model "
                             "actor (--gpus-per-model-actor)")

    def model_actor_resources(self, cpus_without_gpu: float, memory: ActorMemory
                              ) -> dict[str, Any]:
        """What each extractor and scorer actor asks Ray for: on the CPU, `cpus_without_gpu`
        and the memory its batches take (`memory`). With GPUs, Ray Data's own default for the
        CPU side (1 CPU per actor): asking for both is marked experimental in Ray 2.60; and no
        memory, whose host-side figure with GPU runtimes has not been measured."""
        if not self.gpus_per_model_actor:
            return {"num_cpus": cpus_without_gpu, "memory": memory.reserve(self.batch_size)}
        resources: dict[str, Any] = {"num_gpus": self.gpus_per_model_actor}
        if self.accelerator_type:
            resources["accelerator_type"] = self.accelerator_type
        return resources

    @property
    def decoding_actors(self) -> int:
        """Actors that decode images at once: the readers (Preprocess) and the listing actors
        (a fix decodes the original again)."""
        return self.read_actors + self.listing_actors

    def actor_limits(self, limits: InputLimits) -> InputLimits:
        """The limits each decoding actor runs with. Online, each Preprocess replica's default
        decode budget comes from its own Ray memory reservation; batch actors have none, so
        each would take the host's default (a quarter of its memory), and eight of them could
        decode twice the host's memory at once. Here they share that default instead; an image
        over an actor's share is that image's error (too_many_pixels), never the job's. An
        explicit `decode_memory_bytes` is per actor, as it is per replica online."""
        if limits.decode_memory_bytes is not None:
            return limits
        share = max(MIN_ACTOR_DECODE_BYTES, limits.decode_budget() // self.decoding_actors)
        return limits.model_copy(update={"decode_memory_bytes": share})
