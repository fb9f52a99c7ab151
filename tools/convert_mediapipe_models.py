"""Convert MediaPipe's palm and full-range face detectors (TFLite, in the mediapipe wheel) to
ONNX.

    python3.11 tools/convert_mediapipe_models.py [--venv /tmp/venv_blaze] [--check-only]

The tool needs TensorFlow (the TFLite interpreter is the reference runtime), tf2onnx and onnx,
none of which belong in an install. Run with any Python 3.11, it builds a throw-away virtualenv
(`--venv`) with the pinned `CONVERTER_REQUIREMENTS` and runs itself again there. Then, per model:

1. Take the `.tflite` member out of the `mediapipe==0.10.14` wheel (pip download --no-deps).
2. The full-range face model stores its weights as sparse float16 tensors that a DENSIFY op
   expands at run time; tf2onnx cannot convert DENSIFY (it crashes), so the TFLite interpreter
   expands them once and the rewritten flatbuffer carries them as plain constants.
3. tf2onnx converts it with an NCHW input. The TFLite graph has the batch size 1 written into
   its input, its outputs and the Reshape targets of its heads ([1, -1, C]); the tool makes the
   batch axis symbolic and rewrites those targets to [0, -1, C] (0: copy the input's batch).
4. Checks, asserted and printed: the ONNX model against the TFLite interpreter on real photos
   (max abs difference of every output), and one batch of N against N single runs.
5. Writes models/weights/<name>.onnx and tests/models/data/<name>_reference.npz (the uint8
   canvas of one real photo and the interpreter's outputs) so a repo test can check the bundled
   file without TensorFlow, and prints each sha256 for models/artifacts.py.

The anchor and decoding options are not in the .tflite files; models/detectors/blaze.py carries
them, read from the graphs compiled into the same wheel (see its docstring).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO / "models" / "weights"
REFERENCE_DIR = REPO / "tests" / "models" / "data"
PHOTOS_DIR = REFERENCE_DIR / "people"
DEFAULT_VENV = Path("/tmp/venv_blaze")
SOURCE_WHEEL = "mediapipe==0.10.14"
CONVERTER_REQUIREMENTS = (
    "tensorflow-cpu==2.15.1",
    "tf2onnx==1.17.0",
    "onnx==1.16.2",  # newer onnx wants an ml_dtypes that tensorflow 2.15 does not allow
    "onnxruntime==1.32.0",
    "pillow",
)
OPSET = 17
# ONNX vs TFLite on real photos: both run float32 kernels, but in different orders. Box outputs
# are canvas pixels (up to ~200) and scores are logits (tens on a sure background), so the
# difference is bounded relative to the reference: |onnx - tflite| <= ABS + REL * |tflite|.
MAX_ABS_DIFFERENCE = 1e-3
MAX_REL_DIFFERENCE = 1e-3
MAX_BATCH_DIFFERENCE = 1e-4  # one batch of N against N singles, same runtime


@dataclass(frozen=True)
class SourceModel:
    name: str  # artifact name and file stem
    member: str  # path inside the wheel
    canvas: int  # square input side
    value_range: tuple[float, float]  # what uint8 0 and 255 map to (MediaPipe's ImageToTensor)
    reference_photo: str  # file in tests/models/data/people/ for the stored reference
    sparse: bool = False


MODELS = (
    SourceModel("mediapipe-palm-detection-full",
                "mediapipe/modules/palm_detection/palm_detection_full.tflite", 192, (0.0, 1.0),
                "magento_gear-equipment.jpg"),
    SourceModel("mediapipe-face-detection-full-range",
                "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite", 192,
                (-1.0, 1.0), "magento_mens-pants.jpg", sparse=True),
)


# --- throw-away environment -------------------------------------------------------------------

def ensure_converter_venv(venv: Path, argv: list[str]) -> None:
    """Re-run this script inside `venv` (made and filled on first use) unless already there.

    Also with a fixed PYTHONHASHSEED: tf2onnx names folded constants in set order, so without it
    two runs write different (equivalent) files and the sha256 would not be reproducible."""
    if Path(sys.prefix).resolve() == venv.resolve() and os.environ.get("PYTHONHASHSEED") == "0":
        return
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        *CONVERTER_REQUIREMENTS], check=True)
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *argv],
              {**os.environ, "PYTHONHASHSEED": "0"})


def download_wheel(directory: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--dest", str(directory), SOURCE_WHEEL], check=True)
    (wheel,) = directory.glob("mediapipe-*.whl")
    return wheel


# --- conversion -------------------------------------------------------------------------------

def densify(tflite: bytes) -> bytes:
    """The same model with every DENSIFY op replaced by the dense constant it produces."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    interpreter = tf.lite.Interpreter(model_content=tflite,
                                      experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    (entry,) = interpreter.get_input_details()
    interpreter.set_tensor(entry["index"], np.zeros(entry["shape"], entry["dtype"]))
    interpreter.invoke()

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    graph = model.subgraphs[0]
    densify_codes = {index for index, code in enumerate(model.operatorCodes)
                     if max(code.builtinCode, code.deprecatedBuiltinCode)
                     == schema.BuiltinOperator.DENSIFY}
    kept = []
    for op in graph.operators:
        if op.opcodeIndex not in densify_codes:
            kept.append(op)
            continue
        output = op.outputs[0]
        dense = interpreter.get_tensor(output)  # the expanded weights, in the tensor's dtype
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(dense.tobytes(), dtype=np.uint8)
        model.buffers.append(buffer)
        graph.tensors[output].buffer = len(model.buffers) - 1
        # The sparse source stays in the tensor table (renumbering is not worth it) but now
        # unused; it must not stay sparse, since reading tensor details crashes on it.
        source = graph.tensors[op.inputs[0]]
        source.sparsity = None
        source.buffer = graph.tensors[output].buffer
    removed = len(graph.operators) - len(kept)
    graph.operators = kept
    print(f"  densified {removed} sparse weight tensors")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def to_onnx(tflite: bytes, input_name: str) -> Any:
    import tf2onnx

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.tflite"
        path.write_bytes(tflite)
        model, _ = tf2onnx.convert.from_tflite(str(path), opset=OPSET,
                                               inputs_as_nchw=[input_name])
    return model


def make_batch_dynamic(model: Any) -> Any:
    """Batch axis symbolic in inputs and outputs; [1, ...] Reshape targets copy the batch."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del graph.value_info[:]  # shapes inferred for batch 1
    initialisers = {init.name: init for init in graph.initializer}
    shape_inputs = {node.input[1] for node in graph.node if node.op_type == "Reshape"}
    other_uses = {name for node in graph.node if node.op_type != "Reshape" for name in node.input}
    rewritten = 0
    for name in shape_inputs:
        target = numpy_helper.to_array(initialisers[name])
        if target.ndim != 1 or target[0] != 1:
            continue
        if name in other_uses:
            raise RuntimeError(f"Reshape target {name} is also used elsewhere; rewrite by hand")
        batched = target.copy()
        batched[0] = 0  # ONNX Reshape: 0 copies the input's dimension (allowzero defaults to 0)
        initialisers[name].CopyFrom(numpy_helper.from_array(batched.astype(np.int64), name))
        rewritten += 1
    for node in graph.node:
        if node.op_type == "Reshape" and any(a.name == "allowzero" and a.i for a in node.attribute):
            raise RuntimeError(f"{node.name} sets allowzero; 0 would not mean 'copy'")
    print(f"  batch axis made dynamic; {rewritten} Reshape targets rewritten")
    return model



# --- checks -----------------------------------------------------------------------------------

def letterbox_uint8(photo: Path, canvas: int) -> Any:
    """A canvas x canvas x 3 uint8 RGB frame: the photo scaled to fit, centred, black padding
    (MediaPipe's BORDER_ZERO). The detector letterboxes its own way; here any real input will do."""
    import numpy as np
    from PIL import Image

    image = Image.open(photo).convert("RGB")
    scale = canvas / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    placed = np.zeros((canvas, canvas, 3), np.uint8)
    top, left = (canvas - size[1]) // 2, (canvas - size[0]) // 2
    placed[top:top + size[1], left:left + size[0]] = np.asarray(image)
    return placed


def normalise(frames: Any, value_range: tuple[float, float]) -> Any:
    """N x S x S x 3 uint8 -> N x S x S x 3 float32 in value_range (NHWC, TFLite's layout)."""
    import numpy as np

    low, high = value_range
    return (frames.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low))


def run_tflite(tflite: bytes, nhwc: Any) -> list[Any]:
    """The interpreter's outputs for each image, stacked, in ONNX output order (by name)."""
    import numpy as np
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    (entry,) = interpreter.get_input_details()
    outputs = sorted(interpreter.get_output_details(), key=lambda detail: detail["name"])
    answers: list[list[Any]] = [[] for _ in outputs]
    for image in nhwc:
        interpreter.set_tensor(entry["index"], image[None])
        interpreter.invoke()
        for slot, detail in zip(answers, outputs, strict=True):
            slot.append(interpreter.get_tensor(detail["index"])[0].copy())
    return [np.stack(slot) for slot in answers]


def check(model: Any, tflite: bytes, source: SourceModel, photos: list[Path]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = sorted(output.name for output in session.get_outputs())
    frames = np.stack([letterbox_uint8(photo, source.canvas) for photo in photos])
    nhwc = normalise(frames, source.value_range)
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))

    reference = run_tflite(tflite, nhwc)
    batched = session.run(names, {input_name: nchw})
    singles = [session.run(names, {input_name: nchw[i:i + 1]}) for i in range(len(nchw))]
    for index, name in enumerate(names):
        difference = np.abs(batched[index] - reference[index])
        against_tflite = float(np.max(difference))
        excess = float(np.max(difference - MAX_REL_DIFFERENCE * np.abs(reference[index])))
        against_singles = float(np.max(np.abs(
            batched[index] - np.concatenate([single[index] for single in singles]))))
        print(f"  {name}: {batched[index].shape} max |onnx - tflite| = {against_tflite:.2e} "
              f"(largest |tflite| {float(np.max(np.abs(reference[index]))):.1f}), "
              f"max |batch of {len(nchw)} - singles| = {against_singles:.2e}")
        assert excess <= MAX_ABS_DIFFERENCE, (source.name, name, against_tflite)
        assert against_singles <= MAX_BATCH_DIFFERENCE, (source.name, name, against_singles)
    scores = next(output for output in reference if output.shape[-1] == 1)
    print(f"  best score logit per photo: {np.round(scores.max(axis=(1, 2)), 1).tolist()}")

    chosen = photos.index(PHOTOS_DIR / source.reference_photo)
    stored = {"input_uint8": frames[chosen:chosen + 1],
              "value_range": np.asarray(source.value_range, np.float32)}
    stored.update({f"output/{name}": reference[index][chosen:chosen + 1]
                   for index, name in enumerate(names)})
    return stored


def convert(source: SourceModel, wheel: Path, photos: list[Path], check_only: bool) -> None:
    import numpy as np
    import onnx

    print(f"{source.name} <- {SOURCE_WHEEL}:{source.member}")
    with zipfile.ZipFile(wheel) as archive:
        tflite = archive.read(source.member)
    runnable = densify(tflite) if source.sparse else tflite
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=runnable)
    (entry,) = interpreter.get_input_details()
    assert tuple(entry["shape"]) == (1, source.canvas, source.canvas, 3), entry["shape"]
    model = make_batch_dynamic(to_onnx(runnable, entry["name"]))
    model.doc_string = (f"{SOURCE_WHEEL}:{source.member}, converted by "
                        "tools/convert_mediapipe_models.py")
    onnx.checker.check_model(model)
    # The sparse model's reference is the original file: densifying must not change an answer.
    stored = check(model, tflite, source, photos)

    target = WEIGHTS_DIR / f"{source.name}.onnx"
    if check_only:
        # tf2onnx names and orders folded constants differently from run to run, so a fresh
        # conversion is the same graph in a different file: check the shipped file's answers
        # the same way, and that the stored reference is what this run would write.
        print(f"  {target.relative_to(REPO)}:")
        check(onnx.load(str(target)), tflite, source, photos)
        with np.load(REFERENCE_DIR / f"{source.name}_reference.npz") as on_disk:
            assert sorted(on_disk.files) == sorted(stored), on_disk.files
            for key, value in stored.items():
                assert np.array_equal(on_disk[key], value), f"reference {key} differs"
        return
    onnx.save(model, str(target))
    np.savez_compressed(REFERENCE_DIR / f"{source.name}_reference.npz", **stored)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    print(f"  wrote {target.relative_to(REPO)} ({target.stat().st_size} bytes) sha256 {digest}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--check-only", action="store_true",
                        help="convert and check, then check the files in the repo the same "
                             "way instead of writing them")
    parser.add_argument("--wheel-dir", type=Path, default=None,
                        help="a folder that already holds the mediapipe wheel")
    args = parser.parse_args(argv)
    ensure_converter_venv(args.venv, argv)

    photos = sorted(PHOTOS_DIR.glob("*.jpg"))
    missing = [m.reference_photo for m in MODELS if PHOTOS_DIR / m.reference_photo not in photos]
    if missing:
        raise SystemExit(f"reference photos missing from {PHOTOS_DIR}: {missing}")
    with tempfile.TemporaryDirectory() as scratch:
        wheel_dir = args.wheel_dir or Path(scratch)
        found = sorted(wheel_dir.glob("mediapipe-0.10.14-*.whl"))
        wheel = found[0] if found else download_wheel(wheel_dir)
        for source in MODELS:
            convert(source, wheel, photos, args.check_only)


if __name__ == "__main__":
    main(sys.argv[1:])
