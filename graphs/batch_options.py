"""How a batch job runs (not what it decides: that is the serve config's). No Ray imported, so
the `curator` command builds its options from here without loading Ray."""

from __future__ import annotations

from dataclasses import dataclass

from curator.settings import ModelStageSettings


@dataclass(frozen=True)
class BatchOptions:
    batch_size: int = 16  # images per model call; at most the models' max_batch_size_limit
    read_actors: int = 1  # read + Preprocess actors (CPU)
    extract_actors: int = 1  # AttributeExtractor actors
    score_actors: int = 1  # QualityScorer actors
    listing_actors: int = 1  # rules + fixes + selection actors
    gpus_per_model_actor: float = 0.0  # GPUs each extractor and scorer actor asks Ray for

    def check(self, models: ModelStageSettings) -> None:
        """ValueError for options these models cannot run with."""
        if self.batch_size > models.max_batch_size_limit:
            # The runtimes (TensorRT profiles) are built for batches up to the limit.
            raise ValueError(f"batch size {self.batch_size} exceeds the models' "
                             f"max_batch_size_limit {models.max_batch_size_limit}")
