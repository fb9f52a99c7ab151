"""Dev-set photos as the extractor sees them: through the real preprocess stage."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from models.preprocess import ModelInputs

DEVSET = Path(__file__).resolve().parents[3] / "benchmarks" / "devset" / "images"


@cache
def devset_inputs(name: str) -> ModelInputs:
    from curator.core.measured import measure_locally
    from models.preprocess import Preprocessor

    measured = measure_locally((DEVSET / name).read_bytes(), name, Preprocessor(),
                               keep_model_inputs=True)
    assert measured.model_inputs is not None, measured.error
    return measured.model_inputs
