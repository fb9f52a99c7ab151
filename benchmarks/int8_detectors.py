"""INT8 siblings of the object and nudity detectors against their FP32 files, on this CPU, in one
run: does each pay off (issue 11)?

    .venv/bin/python -m benchmarks.int8_detectors [--quick] [--json PATH] [--int8-dir DIR]

The INT8 files are those tools/quantize_detectors.py writes (models/weights/<name>-int8.onnx,
or --int8-dir), registered or not yet.

Speed: process CPU ms per image around `session.run` (ONNX Runtime, all graph optimisations, 1
intra-op thread, no spinning, batch 1) on the held-out photos letterboxed by the detector's own
functions, median and p90 after warm-up; FP32 and INT8 calls alternate, so a change in the
host's load hits both alike. Ratio: FP32 median / INT8 median.

Agreement, through the whole detector (its own pre- and post-processing) on the dev set's
photos held out from calibration (`devset_photos(calibration=False)`): the share of FP32's boxes
INT8 finds again (same kind and label, IoU >= 0.5), beside its noise floor: FP32 against itself
on the same photos with +-1 level of uniform pixel noise. Boxes near a threshold come and go
with any change of the input, so the floor, not 1, is what INT8 is held to.
- objects: `ObjectDetector` as the service runs it, all boxes and the person boxes alone;
- nudity: the service keeps only explicit classes (score >= 0.5), which product photos hardly
  ever show, so the figure is also given over all 18 classes at that same bar, through the
  same decoding and per-class NMS; `people.nudity` verdicts that differ are counted.
Targets (issue 11), printed PASS/MISS per model: INT8 at least 1.5x cheaper in CPU time, and
finding FP32's boxes again within 0.02 of the noise floor.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks.report import measure_and_report
from benchmarks.targets import Target, target_line
from benchmarks.text_detector import (
    detect_inputs,
    held_out_photos,
    jittered,
    recall_against,
    session,
)
from models.artifacts import WEIGHTS_DIR, ModelArtifact, sha256_of
from models.detectors.base import Detections, Detector
from models.detectors.nudity import (
    CLASS_FAMILIES,
    CLASS_NAMES,
    Family,
    NudityDetector,
    NudityDetectorSettings,
)
from models.detectors.objects import ObjectDetector
from models.preprocess import ModelInputs
from models.runtime.cpu_features import cpu_features
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from models.runtime.subnormals import loadable_model
from tools import quantize_detectors

logger = logging.getLogger(__name__)

SPEEDUP = Target("CPU ms per image, FP32 / INT8, 1 thread, batch 1", 1.5, True, "x")
AGREEMENT = Target("FP32 boxes INT8 finds again, below the noise floor by at most", 0.02, False,
                   "share")
WARM_UP = 3
CALLS = 40
TIMED_PHOTOS = 20
_EXPLICIT = frozenset(name for name, family in zip(CLASS_NAMES, CLASS_FAMILIES, strict=True)
                      if family is Family.EXPLICIT)


@dataclass(frozen=True)
class EveryClassAtTheBar(NudityDetectorSettings):
    """The service's explicit bar applied to all 18 classes: the boxes the agreement figure can
    count on product photos (the explicit ones are a subset: NMS is per class)."""

    def class_min_scores(self) -> np.ndarray:
        return np.full(len(CLASS_NAMES), self.explicit_min_score, dtype=np.float32)


@dataclass(frozen=True)
class Model:
    name: str  # a key of tools.quantize_detectors.TARGETS: its artifact and model input
    detector: Callable[[OnnxRuntimeCpu], Detector]
    # (name, keep) views of the boxes whose agreement is reported; the first is the headline
    views: tuple[tuple[str, Callable[[str], bool]], ...]

    @property
    def target(self) -> quantize_detectors.Target:
        return quantize_detectors.TARGETS[self.name]

    @property
    def artifact(self) -> ModelArtifact:
        return self.target.artifact


MODELS = (
    Model("objects", ObjectDetector,
          (("all boxes", lambda label: True), ("person", lambda label: label == "body"))),
    Model("nudity",
          lambda runtime: NudityDetector(runtime, EveryClassAtTheBar(), class_names=CLASS_NAMES),
          (("18 classes >= 0.5", lambda label: True),
           ("explicit (service)", lambda label: label in _EXPLICIT))),
)


def time_pair(model: Model, int8: Path, photos: Sequence[ModelInputs], calls: int
              ) -> dict[str, dict[str, float]]:
    """CPU ms per image of FP32 and INT8, alternating calls; median, p90 and the ratio."""
    inputs = [model.target.model_input(photo.rgb) for photo in photos]
    # FP32 as the service loads it (any subnormal weights zeroed; these two files have none).
    sessions = {"fp32": session(loadable_model(model.artifact.path()).source, "all", 1),
                "int8": session(str(int8), "all", 1)}
    feed_name = model.artifact.input_name
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    for call in range(WARM_UP + calls):
        feed = {feed_name: inputs[call % len(inputs)]}
        for name, current in sessions.items():
            start = time.process_time()
            current.run(None, feed)
            if call >= WARM_UP:
                samples[name].append((time.process_time() - start) * 1000)
    timing = {name: {"p50": float(np.median(values)), "p90": float(np.percentile(values, 90)),
                     "calls": len(values)}
              for name, values in samples.items()}
    timing["ratio"] = {"p50": timing["fp32"]["p50"] / timing["int8"]["p50"]}
    return timing


def _only(results: Sequence[Detections], keep: Callable[[str], bool]) -> list[Detections]:
    return [Detections(result.attributes, [box for box in result.boxes if keep(box.label)])
            for result in results]


def agreement(model: Model, int8: Path, photos: Sequence[ModelInputs]) -> dict[str, Any]:
    fp32_detector = model.detector(OnnxRuntimeCpu(model.artifact.name, model.artifact.path(),
                                                  intra_op_threads=2))
    fp32 = detect_inputs(fp32_detector, photos)
    noisy = detect_inputs(fp32_detector,
                          [jittered(photo, seed) for seed, photo in enumerate(photos)])
    quantised = detect_inputs(model.detector(OnnxRuntimeCpu(
        model.artifact.name, int8, intra_op_threads=2, precision="int8")), photos)
    views = {}
    for view, keep in model.views:
        reference = _only(fp32, keep)
        views[view] = {
            "fp32_boxes": sum(len(result.boxes) for result in reference),
            "int8_finds": recall_against(reference, _only(quantised, keep), same_label=True),
            "noise_floor": recall_against(reference, _only(noisy, keep), same_label=True),
            "fp32_finds_int8": recall_against(_only(quantised, keep), reference,
                                              same_label=True),
        }
    found: dict[str, Any] = {"photos": len(photos), "views": views}
    if model.name == "nudity":
        def verdict(result: Detections) -> bool:
            return any(box.label in _EXPLICIT for box in result.boxes)

        found["nudity_verdicts_changed"] = {
            "int8": sum(verdict(a) != verdict(b) for a, b in zip(fp32, quantised, strict=True)),
            "noise": sum(verdict(a) != verdict(b) for a, b in zip(fp32, noisy, strict=True)),
        }
    return found


def run(int8_dir: Path, quick: bool = False) -> dict[str, Any]:
    features = cpu_features()
    photos = held_out_photos(quick)
    logger.info("%d held-out photos on %s", len(photos), features.describe())
    models: dict[str, Any] = {}
    for model in MODELS:
        int8 = quantize_detectors.int8_path(model.artifact, int8_dir)
        if not int8.is_file():
            logger.warning("%s: no INT8 file at %s", model.name, int8)
            continue
        timing = time_pair(model, int8, photos[:TIMED_PHOTOS], 20 if quick else CALLS)
        logger.info("%s timed: %s", model.name, timing)
        agreed = agreement(model, int8, photos)
        headline = agreed["views"][model.views[0][0]]
        models[model.name] = {
            "fp32_file": model.artifact.local_path.name, "int8_file": str(int8),
            "int8_sha256": sha256_of(int8), "cpu_ms": timing, "agreement": agreed,
            "targets": [
                SPEEDUP.check(round(timing["ratio"]["p50"], 2), model.name),
                AGREEMENT.check(round(max(0.0, headline["noise_floor"]
                                          - headline["int8_finds"]), 3), model.name),
            ],
        }
    return {"cpu": features.describe(), "onnxruntime": ort.__version__, "models": models}


def render(result: dict[str, Any]) -> str:
    lines = [f"CPU: {result['cpu']}; onnxruntime {result['onnxruntime']}",
             f"{'model':<8} {'fp32 ms p50':>11} {'p90':>6} {'int8 ms p50':>11} {'p90':>6} "
             f"{'ratio':>6}"]
    for name, figures in result["models"].items():
        ms = figures["cpu_ms"]
        lines.append(f"{name:<8} {ms['fp32']['p50']:>11.1f} {ms['fp32']['p90']:>6.1f} "
                     f"{ms['int8']['p50']:>11.1f} {ms['int8']['p90']:>6.1f} "
                     f"{ms['ratio']['p50']:>6.2f}")
    lines.append(f"{'model':<8} {'boxes':<20} {'fp32 boxes':>10} {'int8 finds':>10} "
                 f"{'noise floor':>11} {'fp32 finds int8':>15}")
    for name, figures in result["models"].items():
        agreed = figures["agreement"]
        for view, row in agreed["views"].items():
            lines.append(f"{name:<8} {view:<20} {row['fp32_boxes']:>10} "
                         f"{row['int8_finds']:>10.3f} {row['noise_floor']:>11.3f} "
                         f"{row['fp32_finds_int8']:>15.3f}")
        if "nudity_verdicts_changed" in agreed:
            changed = agreed["nudity_verdicts_changed"]
            lines.append(f"{name:<8} people.nudity differs on {changed['int8']} of "
                         f"{agreed['photos']} photos (with pixel noise: {changed['noise']})")
    lines.append("targets (issue 11):")
    for figures in result["models"].values():
        lines += [target_line(check) for check in figures["targets"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the photos, 20 calls")
    parser.add_argument("--int8-dir", type=Path, default=WEIGHTS_DIR,
                        help="where the INT8 files are (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    return measure_and_report(lambda: run(args.int8_dir, args.quick), render, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
