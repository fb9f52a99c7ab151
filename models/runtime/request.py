"""What a model stage asks of the runtime of each of its models, as one value.

Every detector factory takes a `RuntimeRequest`, so a new runtime setting (threads, CPU
precision) reaches them all through one parameter. Light on purpose: the ingress validates
settings that name detectors without loading torch or ONNX Runtime; `create` imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.artifacts import ModelArtifact
    from models.runtime.base import InferenceRuntime
    from models.runtime.select import CpuPrecision, Prefer


@dataclass(frozen=True)
class RuntimeRequest:
    max_batch_size: int = 1  # the batch profile's opt and max (a TensorRT engine's largest batch)
    prefer: Prefer = "auto"
    cpu_threads: int = 0  # threads of each CPU session (ORT or OpenVINO); 0: one per core
    cpu_precision: CpuPrecision = "auto"  # what runs on the CPU: auto, fp32, int8, bf16

    def create(self, artifact: ModelArtifact) -> InferenceRuntime:
        """The artifact's runtime, as models.runtime.select picks it for this request."""
        from models.runtime.select import create_runtime

        return create_runtime(
            artifact,
            batch_profile=(1, self.max_batch_size, self.max_batch_size),
            prefer=self.prefer,
            intra_op_threads=self.cpu_threads,
            cpu_precision=self.cpu_precision,
        )
