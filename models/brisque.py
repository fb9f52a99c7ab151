"""BRISQUE (Mittal, Moorthy & Bovik 2012), with the `brisque` 0.2.0 model: batched torch passes
on a GPU, OpenCV one image at a time on the CPU.

The score is a no-reference quality estimate: lower is better, roughly 0..100. Pipeline per image,
at two scales (full, then halved):

    RGB uint8 -> luminance 0..1 -> MSCN coefficients -> 5 coefficient maps (MSCN and its products
    with the right, lower, lower-right and lower-left neighbour) -> an asymmetric generalised
    Gaussian fitted to each map by moment matching -> 18 features per scale, 36 in all
    -> min/max scaling to -1..1 -> RBF ε-SVR -> score

Every step follows the reference package (brisque 0.2.0, `brisque/brisque.py`), because its SVR
was trained on its features and parity with it is tested (tests/models/test_brisque.py against
tests/models/data/brisque_reference.json):
- luminance: skimage's rgb2gray, 0.2125 R + 0.7154 G + 0.0721 B on 0..1 values;
- local mean and deviation: a 7 x 7 Gaussian window, sigma 7/6, normalised to sum 1, applied as
  scipy's convolve2d(mode="same") does, i.e. with ZERO fill outside the image; deviation
  sqrt(|E[I^2] - mu^2|); MSCN = (I - mu) / (deviation + 1/255);
- the AGGD fit (models/aggd.py) is the reference's for all five maps: it fits the asymmetric
  model to the MSCN map too, reporting its shape and the mean of the two side variances;
- the second scale: OpenCV's resize(fx=fy=1/2, INTER_CUBIC) of the float luminance, which is a
  fixed 4-tap filter (-3/32, 19/32, 19/32, -3/32) at source pixels 2i-1..2i+2, clamped at the
  edges, output size rounded half to even (cvRound).

Flat windows need care. Where the 7 x 7 window is constant (a white background, a JPEG block)
I - mu is 0 in exact arithmetic, but the reference gets mu as a float64 sum of v * k_i in
row-major order and keeps a residue of about 1e-16 whose sign, a pseudo-random function of the
grey level v, decides whether that pixel, and its products with its neighbours, count to the left
or right side of the fits. We compute I - mu as Σ k (neighbour - centre), exactly 0
on a flat window, and there put a signed infinitesimal whose sign is the reference's residue,
recomputed with its kernel and summation order; its size adds nothing to any sum. Bit-exact
agreement there is out of reach (the residue also depends on the last bits of numpy's exp and
of the BLAS-computed luminance, which vary between numpy builds), but the parity set then agrees
within half a point where ignoring the residue (counting flat pixels as right-side zeros) was
off by up to 4.7.

Batching: images of different sizes share one tensor, zero-padded to the largest height and width
of the pass. Zero padding is exactly the reference's own border rule, so the local statistics of
every real pixel are unchanged by its neighbours in the batch; the padded pixels are then zeroed
and left out of every count, so nothing leaks between images (tests check batch invariance).
Images are sorted by size and cut into passes of bounded padded area to keep padding waste and
memory small. All arithmetic is float64 (the reference's precision; cheap on CPU, fine on GPU).
Float32 was tried for speed (1.6x faster) and moved dev-set scores by up to 4.5 points (E[I²] -
mu² cancels in float32), so the CPU time was cut in float64 instead: fewer full-map passes and
temporaries (the side sums as dot products, in-place masking, the centre tap skipped), 70 -> 51
ms an image on the benchmark's 16 photos, scores within 2e-11 points of before on all 282
dev-set photos.

On the CPU (`cpu_kernels="opencv"`, the default) each image is done alone, without padding:
OpenCV's separable filter (zero border) gives the local mean and E[I^2] in one pass each, the
reference's own cv2.resize gives the second scale, and numpy sums the maps. Flat windows are found
by the size of their coefficient instead (OpenCV leaves a rounding residue there, far below any
real coefficient) and get the same signed infinitesimal. On the 282 dev-set photos its scores are
within 0.023 points of the torch passes', and it meets the reference as they do.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from models import artifacts
from models.aggd import AggdFit, side_moments
from models.libsvm import SvrModel, load_svr_model

logger = logging.getLogger(__name__)

N_FEATURES = 36  # 2 scales x (MSCN: shape, variance + 4 products x (shape, mean, 2 variances))
_DOWNSCALE_TAPS = (-0.09375, 0.59375, 0.59375, -0.09375)  # OpenCV bicubic (a=-0.75) at t=1/2
# Stands in for the reference's ~1e-16 residue on flat windows: only its sign matters; its square
# (1e-200) still has a sign and a magnitude that no sum notices.
_INFINITESIMAL = 1e-100
# |MSCN| at or below which a pixel's window counts as flat in the OpenCV path. On a flat window
# OpenCV's I - mu is a rounding residue below ~5e-15 (49 products of values <= 1), so |MSCN| <
# 255 x 5e-15 ~ 1.3e-12. A real offset is at least ~4e-8 (one blue level, 0.0721/255, at a corner
# tap of weight 1.6e-4), over a divisor below 1: |MSCN| > 4e-8. Offsets that cancel to below the
# threshold count as flat too, as an exact 0 does in the torch passes.
_FLAT_COEFFICIENT = 1e-11


@dataclass(frozen=True)
class BrisqueConfig:
    window_size: int = 7  # side (px) of the Gaussian window of the local mean/deviation
    window_sigma: float = 7 / 6  # its standard deviation (px)
    stabiliser: float = 1 / 255  # C in MSCN = (I - mu) / (sigma + C), on 0..1 luminance
    luma_weights: tuple[float, float, float] = (0.2125, 0.7154, 0.0721)  # skimage rgb2gray
    min_side_px: int = 8  # smaller images have too few pixels for the fit at the half scale
    # Padded pixels per tensor pass; None: 1 Mpx on CPU (arrays stay cache-sized: measured
    # faster per image than bigger passes), 16 Mpx on GPU (enough work per kernel launch).
    max_pixels_per_pass: int | None = None
    shape_table: tuple[float, float, int] = (0.05, 20.0, 2048)  # alpha lookup: min, max, points
    newton_steps: int = 4  # refinements of the looked-up alpha (see models/aggd.py)
    # How a CPU model computes the coefficient maps: "opencv", one image at a time with OpenCV's
    # separable filter and resize (1.9x less CPU than the torch passes), or "torch", the batched
    # passes every other device runs.
    cpu_kernels: Literal["opencv", "torch"] = "opencv"


@dataclass(frozen=True)
class FeatureScaling:
    """Per-feature range of the training set; features are mapped to -1..1 with it."""

    minimum: np.ndarray  # (36,) float64
    maximum: np.ndarray  # (36,) float64


class NormalisationError(ValueError):
    pass


class _NoGlobalsUnpickler(pickle.Unpickler):
    """normalize.pickle is a dict of two lists of floats: unpickling it needs no class or
    function at all, so none is allowed. (If the file ever held numpy arrays, numpy's
    `_reconstruct`, `ndarray` and `dtype` would be the names to allow here, and nothing else.)
    The file is sha256-checked too, but a pickle can call anything it names: refuse all."""

    allowed: frozenset[tuple[str, str]] = frozenset()

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"normalisation pickle refers to {module}.{name}; only plain containers are allowed"
        )


def load_normalisation(path: Path) -> FeatureScaling:
    with path.open("rb") as handle:
        try:
            data = _NoGlobalsUnpickler(handle).load()
        except pickle.UnpicklingError as error:
            raise NormalisationError(f"{path}: {error}") from None
    if not isinstance(data, dict) or set(data) != {"min_", "max_"}:
        raise NormalisationError(f"{path}: expected a dict with keys min_ and max_")
    bounds = []
    for key in ("min_", "max_"):
        values = data[key]
        if (not isinstance(values, list | tuple) or len(values) != N_FEATURES
                or not all(isinstance(v, float | int) and not isinstance(v, bool) for v in values)):
            raise NormalisationError(f"{path}: {key} must be {N_FEATURES} numbers")
        bounds.append(np.asarray(values, dtype=np.float64))
    minimum, maximum = bounds
    if not (np.isfinite(minimum).all() and np.isfinite(maximum).all()
            and (maximum > minimum).all()):
        raise NormalisationError(f"{path}: every feature needs finite min_ < max_")
    return FeatureScaling(minimum=minimum, maximum=maximum)


class Brisque(nn.Module):
    """Scores batches of RGB uint8 images; parameters live in float64 buffers on `device`."""

    window: Tensor  # (7,) 1-D Gaussian taps, sum 1
    reference_window: Tensor  # (49,) the reference's 2-D window, row-major, bit for bit
    feature_min: Tensor  # (36,) training-set minimum of each feature
    feature_max: Tensor  # (36,) and maximum: features are mapped to -1..1
    support_vectors: Tensor  # (n_sv, 36)
    coefficients: Tensor  # (n_sv,) dual coefficients

    def __init__(
        self,
        svr: SvrModel,
        scaling: FeatureScaling,
        config: BrisqueConfig = BrisqueConfig(),
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        if svr.n_features != N_FEATURES:
            raise ValueError(f"SVR expects {svr.n_features} features, BRISQUE makes {N_FEATURES}")
        if config.window_size % 2 != 1:
            raise ValueError(f"window_size {config.window_size} must be odd")
        self.config = config

        def buffer(values: np.ndarray) -> Tensor:
            return torch.as_tensor(values, dtype=torch.float64)

        radius = config.window_size // 2
        taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * config.window_sigma**2))
        self.register_buffer("window", buffer(taps / taps.sum()))  # 1-D; the 2-D window is its
        # outer product, as the reference's normalised 2-D Gaussian is.
        self.register_buffer("reference_window", buffer(_reference_window(config).ravel()))
        self.register_buffer("feature_min", buffer(scaling.minimum))
        self.register_buffer("feature_max", buffer(scaling.maximum))
        self.register_buffer("support_vectors", buffer(svr.support_vectors))
        self.register_buffer("coefficients", buffer(svr.coefficients))
        self.gamma, self.rho = svr.gamma, svr.rho
        self.aggd = AggdFit(*config.shape_table, newton_steps=config.newton_steps)
        self.to(device or torch.device("cpu"))

    @classmethod
    def from_artifacts(
        cls,
        device: torch.device | None = None,
        config: BrisqueConfig = BrisqueConfig(),
    ) -> Brisque:
        """The shipped model, sha256-checked; loud if a file is missing, altered or malformed."""
        for artifact in (artifacts.BRISQUE_SVR, artifacts.BRISQUE_NORMALISATION):
            artifact.verify()
        svr = load_svr_model(artifacts.BRISQUE_SVR.path(), n_features=N_FEATURES)
        scaling = load_normalisation(artifacts.BRISQUE_NORMALISATION.path())
        logger.info("BRISQUE SVR: %d support vectors, gamma %g, rho %g, on %s",
                    len(svr.coefficients), svr.gamma, svr.rho, device or "cpu")
        return cls(svr, scaling, config, device)

    @property
    def device(self) -> torch.device:
        return self.window.device

    # --- public API ----------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """BRISQUE points, one per image (float64 numpy), in input order."""
        return self.predict(self.features(images)).cpu().numpy()

    @property
    def pixels_per_pass(self) -> int:
        """The most padded pixels one tensor pass holds: what bounds this model's working
        memory, whatever the batch."""
        return self.config.max_pixels_per_pass or (2**20 if self.device.type == "cpu" else 2**24)

    @torch.no_grad()
    def features(self, images: Sequence[np.ndarray]) -> Tensor:
        """(n, 36) float64 BRISQUE features, in input order: image by image with OpenCV on the
        CPU, else in size-sorted torch passes."""
        sizes = [_checked_size(image, self.config.min_side_px) for image in images]
        if self.device.type == "cpu" and self.config.cpu_kernels == "opencv":
            moments = torch.from_numpy(np.stack([self._opencv_moments(image) for image in images]))
            return torch.cat([self._fit_features(moments[:, scale]) for scale in (0, 1)], dim=1)
        result = torch.empty(len(images), N_FEATURES, dtype=torch.float64, device=self.device)
        for chunk in _passes(sizes, self.pixels_per_pass):
            rgb, heights, widths = _padded_batch([images[i] for i in chunk], self.device)
            index = torch.as_tensor(chunk, device=self.device)
            result[index] = self._batch_features(rgb, heights, widths)
        return result

    @torch.no_grad()
    def predict(self, features: Tensor) -> Tensor:
        """The ε-SVR on (n, 36) features: Σ coef_i exp(-γ |x - sv_i|²) - ρ."""
        span = self.feature_max - self.feature_min
        scaled = -1 + 2.0 / span * (features - self.feature_min)
        distance = ((scaled[:, None, :] - self.support_vectors[None, :, :]) ** 2).sum(dim=2)
        return torch.exp(-self.gamma * distance) @ self.coefficients - self.rho

    # --- features ------------------------------------------------------------------------------

    def _batch_features(self, rgb: Tensor, heights: Tensor, widths: Tensor) -> Tensor:
        r, g, b = self.config.luma_weights
        pixels = rgb.to(torch.float64) * (1 / 255)  # as skimage scales uint8: same bits
        luminance = pixels[..., 0] * r + pixels[..., 1] * g + pixels[..., 2] * b  # pads stay 0
        full = self._scale_features(luminance, heights, widths)
        half, half_heights, half_widths = _halve(luminance, heights, widths)
        return torch.cat([full, self._scale_features(half, half_heights, half_widths)], dim=1)

    def _scale_features(self, luminance: Tensor, heights: Tensor, widths: Tensor) -> Tensor:
        """(B, 18) features of one scale of zero-padded luminance (B, H, W)."""
        valid = _valid_mask(luminance.shape, heights, widths)
        mscn = self._mscn(luminance, valid)
        maps = [
            (mscn, heights * widths),
            (mscn[:, :, :-1] * mscn[:, :, 1:], heights * (widths - 1)),  # right neighbour
            (mscn[:, :-1, :] * mscn[:, 1:, :], (heights - 1) * widths),  # lower neighbour
            (mscn[:, :-1, :-1] * mscn[:, 1:, 1:], (heights - 1) * (widths - 1)),  # lower right
            (mscn[:, 1:, :-1] * mscn[:, :-1, 1:], (heights - 1) * (widths - 1)),  # upper right
        ]
        # Outside the valid area every map is exactly 0: it adds nothing to the sums and is not
        # negative; the analytic counts above leave those pixels out of the right side too.
        return self._fit_features(
            torch.stack([side_moments(values, count) for values, count in maps], dim=1))

    def _fit_features(self, moments: Tensor) -> Tensor:
        """(B, 18) features of one scale from its (B, 5, 5) side moments: per map (the MSCN
        coefficients, then their four neighbour products) the rows of `side_moments`."""
        shape, mean, left_var, right_var = self.aggd(moments)
        mscn_features = torch.stack([shape[:, 0], (left_var[:, 0] + right_var[:, 0]) / 2], dim=1)
        product_features = torch.stack(
            [shape[:, 1:], mean[:, 1:], left_var[:, 1:], right_var[:, 1:]], dim=2
        ).flatten(1)  # per map: shape, mean, left variance, right variance
        return torch.cat([mscn_features, product_features], dim=1)

    def _mscn(self, luminance: Tensor, valid: Tensor) -> Tensor:
        """Mean-subtracted contrast-normalised coefficients, 0 outside `valid`.

        Separable Gaussian in two passes. I - mu is accumulated as Σ w (neighbour - centre) so it
        is exactly 0 where the window is flat (see the module docstring); E[I^2] is a plain
        weighted sum. Zero fill outside the image, as the reference's convolve2d.
        """
        radius = self.config.window_size // 2
        height, width = luminance.shape[1:]
        weights = self.window.tolist()
        padded = luminance.new_zeros((luminance.shape[0], height + 2 * radius,
                                      width + 2 * radius))  # zero fill, as F.pad, in half its time
        padded[:, radius:radius + height, radius:radius + width] = luminance
        squared = padded * padded
        centre = padded[:, :, radius:radius + width]
        row_offset = torch.zeros_like(centre)
        row_square = torch.zeros_like(centre)
        scratch = torch.empty_like(centre)  # one buffer for every difference, not one per tap
        for tap, weight in enumerate(weights):
            row_square.add_(squared[:, :, tap:tap + width], alpha=weight)
            if tap != radius:  # the centre tap adds w * (c - c) = 0 exactly: skipped
                row_offset.add_(torch.sub(padded[:, :, tap:tap + width], centre, out=scratch),
                                alpha=weight)
        row_mean = centre + row_offset  # == centre exactly where the row window is flat

        offset = torch.zeros_like(luminance)  # mu - I
        mean_square = torch.zeros_like(luminance)  # E[I^2]
        scratch = torch.empty_like(luminance)
        for tap, weight in enumerate(weights):
            offset.add_(torch.sub(row_mean[:, tap:tap + height], luminance, out=scratch),
                        alpha=weight)
            mean_square.add_(row_square[:, tap:tap + height], alpha=weight)
        local_mean = luminance + offset
        deviation = (mean_square - local_mean * local_mean).abs().sqrt()
        mscn = -offset / (deviation + self.config.stabiliser)
        mscn.masked_fill_(~valid, 0.0)  # in place: where() with a scalar took 2.5x longer
        flat = valid & (offset == 0)
        if bool(flat.any()):
            mscn[flat] = _INFINITESIMAL * self._flat_residue_sign(luminance[flat])
        return mscn

    def _opencv_moments(self, image: np.ndarray) -> np.ndarray:
        """(2, 5, 5) side moments of one image at both scales, with OpenCV on the CPU: what the
        torch passes compute, without padding or batching. The second scale is the reference's
        own call, cv2.resize(fx=fy=1/2, INTER_CUBIC)."""
        r, g, b = self.config.luma_weights
        pixels = image.astype(np.float64) * (1 / 255)  # as skimage scales uint8: same bits
        luminance = pixels[..., 0] * r + pixels[..., 1] * g + pixels[..., 2] * b
        half = cv2.resize(luminance, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
        return np.stack([_map_moments(self._opencv_mscn(scale)) for scale in (luminance, half)])

    def _opencv_mscn(self, luminance: np.ndarray) -> np.ndarray:
        """MSCN coefficients of one (H, W) float64 luminance map. OpenCV's separable filter with a
        zero border is the reference's convolve2d(mode="same"); its I - mu keeps a rounding
        residue where the window is flat, which is replaced by the reference's residue sign as
        in `_mscn` (see _FLAT_COEFFICIENT)."""
        window = self.window.cpu().numpy()
        local_mean = cv2.sepFilter2D(luminance, cv2.CV_64F, window, window,
                                     borderType=cv2.BORDER_CONSTANT)
        mean_square = cv2.sepFilter2D(luminance * luminance, cv2.CV_64F, window, window,
                                      borderType=cv2.BORDER_CONSTANT)
        offset = local_mean - luminance
        deviation = np.sqrt(np.abs(mean_square - local_mean * local_mean))
        mscn = offset
        np.divide(offset, deviation + self.config.stabiliser, out=mscn)
        np.negative(mscn, out=mscn)
        flat = np.abs(mscn) <= _FLAT_COEFFICIENT
        if flat.any():
            signs = self._flat_residue_sign(torch.from_numpy(luminance[flat])).numpy()
            mscn[flat] = _INFINITESIMAL * signs
        return mscn

    def _flat_residue_sign(self, levels: Tensor) -> Tensor:
        """Sign of v - Σ_i v * k_i summed in row-major order over the reference's 2-D window: what
        the reference's convolution leaves of I - mu where the window is flat at level v."""
        unique, inverse = torch.unique(levels, return_inverse=True)
        # 49 multiply-adds over a few hundred levels: in numpy, whose small-array calls cost a
        # tenth of torch's (the same IEEE products and sums, in the same order).
        values = unique.cpu().numpy()
        total = np.zeros_like(values)
        for weight in self.reference_window.tolist():
            total = total + values * weight
        signs = torch.from_numpy(np.sign(values - total)).to(unique.device)
        return signs[inverse]


# --- helpers -----------------------------------------------------------------------------------


def _map_moments(mscn: np.ndarray) -> np.ndarray:
    """(5, 5) `side_moments` rows of one image's MSCN map and its four neighbour products, in
    numpy: a count, the left count, the left and right sums of squares, the sum of |x|."""
    maps = (mscn,
            mscn[:, :-1] * mscn[:, 1:],  # right neighbour
            mscn[:-1, :] * mscn[1:, :],  # lower neighbour
            mscn[:-1, :-1] * mscn[1:, 1:],  # lower right
            mscn[1:, :-1] * mscn[:-1, 1:])  # upper right
    rows = []
    for values in maps:
        flat = values.ravel()
        left = np.minimum(flat, 0.0)
        right = np.maximum(flat, 0.0)
        # einsum's own loop, not BLAS: a BLAS dot wakes OpenBLAS's threads, whose spinning cost
        # as much CPU as the rest of BRISQUE where OPENBLAS_NUM_THREADS was not 1.
        rows.append((flat.size, np.count_nonzero(left), np.einsum("i,i->", left, left),
                     np.einsum("i,i->", right, right), right.sum() - left.sum()))
    return np.asarray(rows, dtype=np.float64)


def _reference_window(config: BrisqueConfig) -> np.ndarray:
    """The reference's 2-D window, computed as it does (numpy, normalised by np.sum), so that the
    residues of its sums can be reproduced bit for bit on flat windows."""
    radius = config.window_size // 2
    ys, xs = np.indices((config.window_size, config.window_size)) - radius
    sigma = config.window_sigma
    window = 1 / (2 * np.pi * sigma**2) * np.exp(-(xs**2 + ys**2) / (2 * sigma**2))
    return window / np.sum(window)


def _halve(luminance: Tensor, heights: Tensor, widths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """OpenCV's bicubic resize by 1/2 of each image in the padded batch; pads stay 0."""
    half_heights = torch.round(heights / 2).long()  # round half to even, like cvRound
    half_widths = torch.round(widths / 2).long()
    rows = _halve_axis(luminance, heights, int(half_heights.max()), dim=1)
    both = _halve_axis(rows, widths, int(half_widths.max()), dim=2)
    valid = _valid_mask(both.shape, half_heights, half_widths)
    return both.masked_fill_(~valid, 0.0), half_heights, half_widths


def _halve_axis(values: Tensor, lengths: Tensor, out_length: int, dim: int) -> Tensor:
    """Output i = Σ_t tap_t · x[clamp(2i - 1 + t, 0, length - 1)]: each image clamps to its own
    edge (OpenCV replicates the border), so padding never enters."""
    first = 2 * torch.arange(out_length, device=values.device) - 1
    result = torch.zeros((), dtype=values.dtype, device=values.device)
    for tap, weight in enumerate(_DOWNSCALE_TAPS):
        index = torch.minimum((first + tap).clamp(min=0)[None, :], lengths[:, None] - 1)
        if dim == 1:
            index = index[:, :, None].expand(-1, -1, values.shape[2])
        else:
            index = index[:, None, :].expand(-1, values.shape[1], -1)
        result = result + weight * torch.gather(values, dim, index)
    return result


def _valid_mask(shape: torch.Size, heights: Tensor, widths: Tensor) -> Tensor:
    _, height, width = shape
    rows = torch.arange(height, device=heights.device)[None, :, None] < heights[:, None, None]
    cols = torch.arange(width, device=widths.device)[None, None, :] < widths[:, None, None]
    return rows & cols


def _checked_size(image: np.ndarray, min_side: int) -> tuple[int, int]:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        raise ValueError("BRISQUE takes RGB uint8 arrays of shape H x W x 3, got "
                         f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    height, width = image.shape[:2]
    if min(height, width) < min_side:
        raise ValueError(f"image {height}x{width} is smaller than {min_side} px on a side")
    return height, width


def _passes(sizes: list[tuple[int, int]], max_pixels: int) -> list[list[int]]:
    """Indices grouped into passes: largest first, each pass's padded area within `max_pixels`
    (a single larger image gets a pass of its own)."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i][0] * sizes[i][1], sizes[i]),
                   reverse=True)
    passes: list[list[int]] = []
    current: list[int] = []
    height = width = 0
    for index in order:
        h, w = max(height, sizes[index][0]), max(width, sizes[index][1])
        if current and (len(current) + 1) * h * w > max_pixels:
            passes.append(current)
            current, h, w = [], sizes[index][0], sizes[index][1]
        current.append(index)
        height, width = h, w
    if current:
        passes.append(current)
    return passes


def _padded_batch(
    images: Sequence[np.ndarray], device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """(B, H, W, 3) uint8 zero-padded at the bottom and right, and each image's height/width.
    Built on the host in uint8 so the device transfer is small."""
    heights = [image.shape[0] for image in images]
    widths = [image.shape[1] for image in images]
    batch = np.zeros((len(images), max(heights), max(widths), 3), dtype=np.uint8)
    for slot, image in enumerate(images):
        batch[slot, :image.shape[0], :image.shape[1]] = image
    return (torch.from_numpy(batch).to(device),
            torch.as_tensor(heights, device=device), torch.as_tensor(widths, device=device))
