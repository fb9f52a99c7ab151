"""YOLOv8 (Ultralytics export) pre- and post-processing of our own, in numpy and OpenCV.

An Ultralytics YOLOv8 detect head exported to ONNX takes N x 3 x S x S float32 RGB in 0..1 and
answers N x (4 + C) x A: per anchor a box (cx, cy, w, h in canvas pixels) and C class scores that
already went through a sigmoid (there is no objectness column in v8).

Every image gets its own S x S canvas (letterbox: aspect kept, centred, grey padding), so an
image's input tensor, and therefore its answer, never depends on the other images of its batch.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

# Ultralytics' LetterBox fills with grey 114 (of 255): the models were trained and validated on
# canvases padded with it, so it is the padding the weights have learned to ignore.
PAD_VALUE = 114
BOX_VALUES = 4  # cx, cy, w, h


class ModelMetadataError(ValueError):
    """The ONNX file does not describe the model this code was written for."""


@dataclass(frozen=True)
class Letterbox:
    """Where one frame sits on the square canvas, in canvas pixels."""

    canvas: int  # side of the square model input
    left: int  # padding before the scaled frame
    top: int
    width: int  # the scaled frame on the canvas
    height: int

    @classmethod
    def fit(cls, frame_height: int, frame_width: int, canvas: int) -> Letterbox:
        """Scale the frame to fit (up or down, aspect kept) and centre it, as Ultralytics does:
        the odd pixel of padding goes after the frame."""
        if frame_height < 1 or frame_width < 1:
            raise ValueError(f"empty frame {frame_width}x{frame_height}")
        gain = min(canvas / frame_height, canvas / frame_width)
        width = min(canvas, max(1, round(frame_width * gain)))
        height = min(canvas, max(1, round(frame_height * gain)))
        return cls(canvas, (canvas - width) // 2, (canvas - height) // 2, width, height)

    def to_frame_units(self, corners: np.ndarray) -> np.ndarray:
        """Canvas-pixel corners (..., 4: x0, y0, x1, y1) -> 0..1 units of the frame, clipped.

        Each axis uses its own exact scale (scaled size over 1.0), so rounding the scaled size to
        whole pixels costs no accuracy when going back.
        """
        out = np.empty_like(corners, dtype=np.float64)
        out[..., 0::2] = (corners[..., 0::2] - self.left) / self.width
        out[..., 1::2] = (corners[..., 1::2] - self.top) / self.height
        return np.clip(out, 0.0, 1.0)

    def from_frame_units(self, box: np.ndarray) -> np.ndarray:
        """The inverse of `to_frame_units` (without the clip): for tests and drawing."""
        out = np.empty_like(box, dtype=np.float64)
        out[..., 0::2] = box[..., 0::2] * self.width + self.left
        out[..., 1::2] = box[..., 1::2] * self.height + self.top
        return out


def letterbox_batch(
    images: Sequence[np.ndarray], canvas: int, pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, list[Letterbox]]:
    """uint8 H x W x 3 RGB frames -> one N x 3 x canvas x canvas float32 tensor in 0..1.

    Resizing is bilinear (cv2.INTER_LINEAR), as in Ultralytics' predictor. The uint8 canvases are
    filled first and normalised together in one pass.
    """
    placed = np.full((len(images), canvas, canvas, 3), pad_value, dtype=np.uint8)
    boxes: list[Letterbox] = []
    for index, rgb in enumerate(images):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 H x W x 3, got {rgb.dtype} {rgb.shape}")
        box = Letterbox.fit(rgb.shape[0], rgb.shape[1], canvas)
        if (box.height, box.width) != rgb.shape[:2]:
            rgb = cv2.resize(rgb, (box.width, box.height), interpolation=cv2.INTER_LINEAR)
        placed[index, box.top:box.top + box.height, box.left:box.left + box.width] = rgb
        boxes.append(box)
    tensor = placed.transpose(0, 3, 1, 2).astype(np.float32)
    tensor *= np.float32(1.0 / 255.0)
    return np.ascontiguousarray(tensor), boxes


@dataclass(frozen=True)
class Candidates:
    """Boxes of one image that passed their class threshold, before NMS."""

    corners: np.ndarray  # K x 4 float32, x0 y0 x1 y1 in canvas pixels
    scores: np.ndarray  # K float32
    class_ids: np.ndarray  # K int64


def decode(raw: np.ndarray, min_scores: np.ndarray) -> Candidates:
    """One image's raw head output, (4 + C) x A, -> every (anchor, class) pair whose score
    reaches that class's threshold.

    Multi-label: an anchor may yield several classes (e.g. a covered and an exposed reading of the
    same region), so a class never hides behind a stronger neighbour class of the same anchor.
    """
    classes = min_scores.shape[0]
    if raw.ndim != 2 or raw.shape[0] != BOX_VALUES + classes:
        raise ValueError(f"expected ({BOX_VALUES + classes}, anchors) output, got {raw.shape}")
    scores = raw[BOX_VALUES:]  # C x A
    class_ids, anchors = np.nonzero(scores >= min_scores[:, None])
    cx, cy, w, h = raw[:BOX_VALUES, anchors]
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return Candidates(
        corners=corners.astype(np.float32, copy=False),
        scores=scores[class_ids, anchors].astype(np.float32, copy=False),
        class_ids=class_ids.astype(np.int64, copy=False),
    )


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x0 y0 x1 y1 box with each of K others."""
    ix0 = np.maximum(box[0], others[:, 0])
    iy0 = np.maximum(box[1], others[:, 1])
    ix1 = np.minimum(box[2], others[:, 2])
    iy1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(
    corners: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    iou_threshold: float,
    max_keep: int,
) -> np.ndarray:
    """Greedy non-maximum suppression within each group; indices kept, best score first.

    A box suppresses only boxes of its own group whose IoU with it is above `iou_threshold`, so
    different groups (classes) never hide each other. The sort is stable, so equal scores keep
    anchor order and the answer is deterministic.
    """
    order = np.argsort(-scores, kind="stable")
    alive = np.ones(order.shape[0], dtype=bool)
    keep: list[int] = []
    for rank, index in enumerate(order):
        if not alive[rank]:
            continue
        keep.append(int(index))
        if len(keep) == max_keep:
            break
        rest = order[rank + 1:]
        same = groups[rest] == groups[index]
        overlap = box_iou(corners[index], corners[rest]) > iou_threshold
        alive[rank + 1:] &= ~(same & overlap)
    return np.asarray(keep, dtype=np.int64)


def read_class_names(onnx_path: Path) -> tuple[str, ...]:
    """Class names in class-id order from an Ultralytics ONNX file's `names` metadata."""
    options = ort.SessionOptions()
    # Only the metadata is wanted: skip graph optimisation to make the throwaway session cheap.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    metadata = session.get_modelmeta().custom_metadata_map
    if "names" not in metadata:
        raise ModelMetadataError(f"{onnx_path} has no 'names' metadata (not an Ultralytics export)")
    try:
        names = ast.literal_eval(metadata["names"])
    except (ValueError, SyntaxError) as error:
        raise ModelMetadataError(f"{onnx_path}: unreadable 'names' metadata: {error}") from None
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))):
        raise ModelMetadataError(f"{onnx_path}: 'names' is not a dense id -> name map: {names!r}")
    return tuple(str(names[class_id]) for class_id in range(len(names)))
