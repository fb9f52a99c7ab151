"""What the INT8 tools share: which dev-set photos calibrate, the product renders, and ONNX
Runtime's static QDQ quantisation with the choices this project made for its detectors.

Used by tools/quantize_text_detector.py and tools/quantize_detectors.py, and by the benchmarks
and tests that measure agreement on the photos held out from calibration
(`devset_photos(calibration=False)`).

The split is by product group, so no product has photos on both sides: a third of the dev set's
groups (by hash) lend their photos to calibration, the rest are where agreement is measured.
Nothing under the independent evaluation image set is read.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from curator.core.evaluation import LabelledImage, load_devset
from tests.support import synthetic

if TYPE_CHECKING:
    import onnx

# Dev-set groups whose hash is 0 modulo this calibrate.
CALIBRATION_GROUP_SHARE = 3
# Every STRIDE-th of the calibration groups' photos is read by default.
CALIBRATION_STRIDE = 5
# Seeds of the renders: far from the tests' (0..200) and the text benchmark's (0..15).
SEED_BASE = 50_000
# Per-channel DequantizeLinear (its `axis`) needs opset 13.
MIN_OPSET = 13

_WORDS = ("Handmade", "ORIGINAL", "Gift idea", "99 USD", "Eco friendly", "Summer 2025",
          "Buy now", "Made in Italy", "CLEARANCE", "ml 250", "Fresh", "Kids size 8",
          "waterproof", "Bundle deal", "ONLY TODAY", "cotton 100%")
_FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "")
_BACKGROUNDS: tuple[synthetic.Background, ...] = ("white", "offwhite", "studio", "busy",
                                                   (230, 236, 245), (40, 40, 44))


def is_calibration_group(group: str) -> bool:
    """Whether a dev-set product group lends its photos to calibration: a third of the groups,
    by hash, so no product has photos on both sides of the split."""
    return hashlib.sha256(group.encode()).digest()[0] % CALIBRATION_GROUP_SHARE == 0


def devset_photos(calibration: bool) -> list[LabelledImage]:
    """The dev set's photos on one side of the split, in the labels files' order."""
    return [image for image in load_devset() if is_calibration_group(image.group) == calibration]


def calibration_image(index: int) -> Image.Image:
    """A product render with 0-4 lines of text: on the background, on bands, on the product."""
    rng = np.random.default_rng(SEED_BASE + index)
    width, height = (int(v) for v in rng.choice([(1000, 1000), (800, 1000), (1200, 900),
                                                  (640, 640), (1500, 1000)]))
    image = synthetic.render_product(
        (width, height), fill=float(rng.uniform(0.5, 0.9)),
        background=_BACKGROUNDS[index % len(_BACKGROUNDS)],
        product_colour=tuple(int(v) for v in rng.integers(20, 240, 3)),  # type: ignore[arg-type]
        textured=bool(rng.integers(2)), shape=("box", "bottle", "disc")[index % 3],
        seed=SEED_BASE + index, shadow=bool(rng.integers(2)),
    )
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 5))):
        size = int(rng.uniform(0.015, 0.08) * width)
        font = synthetic.font(size, _FACES[int(rng.integers(len(_FACES)))])
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        x, y = float(rng.uniform(0.02, 0.6)) * width, float(rng.uniform(0.02, 0.92)) * height
        if rng.random() < 0.3:  # a band behind the line
            _, top, right, bottom = font.getbbox(word)
            band = tuple(int(v) for v in rng.integers(0, 256, 3))
            draw.rectangle((x - size * 0.4, y + top - size * 0.3, x + right + size * 0.4,
                            y + bottom + size * 0.3), fill=band)
        ink = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.text((x, y), word, fill=ink, font=font)
    return image


def calibration_jpegs(photos: int, renders: int, stride: int = CALIBRATION_STRIDE
                      ) -> Iterator[bytes]:
    """Every `stride`-th photo of the calibration groups (at most `photos`), then the renders."""
    for image in devset_photos(calibration=True)[::stride][:photos]:
        yield image.path.read_bytes()
    for index in range(renders):
        yield synthetic.to_jpeg_bytes(calibration_image(index), quality=int(85 + index % 10))


def downstream(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """The named nodes and every node that reads, directly or not, one of their outputs: a
    detection head from its last convolutions on, to keep in FP32."""
    wanted = set(names)
    missing = wanted - {node.name for node in model.graph.node}
    if missing:
        raise ValueError(f"no such nodes in the model: {sorted(missing)}")
    tainted: set[str] = set()
    found: list[str] = []
    for node in model.graph.node:  # ONNX graphs are stored in topological order
        if node.name in wanted or tainted.intersection(node.input):
            found.append(node.name)
            tainted.update(node.output)
    return found


def quantize(
    source: Path,
    output: Path,
    batches: Iterator[np.ndarray],
    count: int,
    input_name: str,
    *,
    keep_fp32: Callable[[onnx.ModelProto], Sequence[str]],
    calibration: str = "percentile",
    percentile: float = 99.999,
    activations: str = "quint8",
    op_types: Sequence[str] | None = None,
    ranges: Path | None = None,
    chunk: int = 0,
) -> None:
    """Static QDQ INT8 of `source` into `output`, calibrated on `count` model inputs from
    `batches` (1 x ... float32 each, preprocessed as the service does); `keep_fp32` names the
    nodes of the prepared model (after ORT's pre-processing) left unquantised.

    Weights are per output channel, QInt8, symmetric; activations per tensor, QUInt8 by default
    (ONNX Runtime's x86 INT8 kernels are u8 x s8: QInt8 activations run far slower)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        """The calibration inputs in chunks (ORT's CalibStridedMinMax asks for them by
        `set_range`): the histogram calibrators merge each chunk into their histograms and let
        its activations go, instead of holding every image's at once."""

        def __init__(self) -> None:
            self._left = 0

        def __len__(self) -> int:
            return count

        def set_range(self, start_index: int, end_index: int) -> None:
            self._left = end_index - start_index  # chunks are asked for in order

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(batches, None) if self._left > 0 else None
            self._left -= 1
            return None if batch is None else {input_name: batch}

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    types = {"quint8": QuantType.QUInt8, "qint8": QuantType.QInt8}
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # Folds the exporters' Identity chains, Casts and constant subgraphs, infers shapes: the
        # quantiser then sees each Conv with its real inputs. Symbolic shape inference stops at
        # dynamic Resizes; ONNX shape inference is enough for QDQ.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        if opset < MIN_OPSET:
            model = version_converter.convert_version(model, MIN_OPSET)
            onnx.save(model, str(prepared))
        quantize_static(
            str(prepared), str(output), Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=types[activations],
            calibrate_method=methods[calibration],
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=list(keep_fp32(model)),
            calibration_cache_path=ranges,
            extra_options={
                "CalibStridedMinMax": chunk or count,
                "CalibPercentile": percentile,
                "ActivationSymmetric": activations == "qint8",
            },
        )
