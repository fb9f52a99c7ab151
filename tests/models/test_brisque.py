"""BRISQUE port: parity with the brisque 0.2.0 package, the libsvm parser, the normalisation
loader, the batch rules (no leaks between images of different sizes) and the fit's pieces."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models import artifacts
from models.aggd import log_moment_ratio, side_moments
from models.brisque import (
    N_FEATURES,
    Brisque,
    BrisqueConfig,
    NormalisationError,
    _halve,
    load_normalisation,
)
from models.libsvm import LibsvmFormatError, load_svr_model, parse_svr_model
from tools.brisque_reference import pixels_md5, render

REFERENCE = Path(__file__).parent / "data" / "brisque_reference.json"
PARITY_POINTS = 2.0  # |ours - reference| allowed per image, BRISQUE points
FEATURE_TOLERANCE = 0.02  # |ours - reference| per feature, as a share of its training range


@pytest.fixture(scope="module", params=["opencv", "torch"])
def model(request: pytest.FixtureRequest) -> Brisque:
    """Both ways a CPU model computes its maps: each must meet the reference on its own."""
    return Brisque.from_artifacts(torch.device("cpu"), BrisqueConfig(cpu_kernels=request.param))


@pytest.fixture(scope="module")
def reference() -> tuple[list[dict], list[np.ndarray]]:
    entries = json.loads(REFERENCE.read_text())["entries"]
    images = []
    for entry in entries:
        pixels = render(entry)
        if pixels_md5(pixels) != entry["pixels_md5"]:
            pytest.fail(f"{entry['id']}: the recipe no longer gives the reference's pixels "
                        "(tests/support/synthetic.py changed?); re-run tools/brisque_reference.py")
        images.append(pixels)
    return entries, images


# --- parity with the reference package ---------------------------------------------------------


@pytest.fixture(scope="module")
def our_features(model: Brisque, reference) -> torch.Tensor:
    return model.features(reference[1])  # one call: every size mixed in one batch


def test_scores_match_the_reference_package(model: Brisque, reference, our_features) -> None:
    entries, _ = reference
    ours = model.predict(our_features).numpy()
    theirs = np.array([entry["score"] for entry in entries])
    errors = np.abs(ours - theirs)
    summary = (f"BRISQUE parity on {len(entries)} images: max |error| {errors.max():.3f}, "
               f"mean {errors.mean():.4f} points")
    print(summary)
    worst = sorted(zip(errors.round(3), [e["id"] for e in entries], strict=True))[-3:]
    assert errors.max() <= PARITY_POINTS, f"{summary}; worst {worst}"


def test_features_match_the_reference_package(model: Brisque, reference, our_features) -> None:
    entries, _ = reference
    ours = our_features.numpy()
    theirs = np.array([entry["features"] for entry in entries])
    assert ours.shape == theirs.shape == (len(entries), N_FEATURES)
    span = (model.feature_max - model.feature_min).numpy()
    relative = np.abs(ours - theirs) / span
    exact = int((np.abs(ours - theirs).max(axis=1) < 1e-8).sum())
    print(f"features: max |error| {relative.max():.4f} of range; {exact}/{len(entries)} images "
          "agree to 1e-8 (the rest have flat windows; see models/brisque.py)")
    assert relative.max() <= FEATURE_TOLERANCE
    # Pictures without flat windows (Gaussian noise everywhere) must agree to rounding.
    noisy = [i for i, e in enumerate(entries) if e["distortions"]
             and all(step["kind"] == "noise" for step in e["distortions"])]
    assert noisy and np.abs(ours[noisy] - theirs[noisy]).max() < 1e-8


# --- batching --------------------------------------------------------------------------------


def test_scores_do_not_depend_on_the_batch(model: Brisque, reference) -> None:
    _, images = reference
    crops = [images[0][:123, :77], images[15][40:300, 10:301], images[30], images[8][::2, ::3]]
    crops = [np.ascontiguousarray(crop) for crop in crops]
    alone = np.array([model.score([crop])[0] for crop in crops])
    together = model.score(crops)
    reordered = model.score(crops[::-1])[::-1]
    one_per_pass = Brisque.from_artifacts(config=BrisqueConfig(max_pixels_per_pass=1)).score(crops)
    for batched in (together, reordered, one_per_pass):
        assert np.abs(batched - alone).max() < 1e-3


def test_opencv_and_torch_kernels_agree(reference) -> None:
    """The two CPU paths differ only where a window is nearly flat (which side a residue of
    ~1e-14 falls on): within a few hundredths of a point on the reference's pictures, and on
    photo-like ones with flat backgrounds, odd sizes and a constant image."""
    _, images = reference
    rng = np.random.default_rng(3)
    white_card = np.full((301, 417, 3), 255, np.uint8)
    white_card[60:240, 90:330] = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
    grey = np.full((64, 9, 3), 128, np.uint8)
    pictures = [*images, white_card, grey]
    opencv = Brisque.from_artifacts(config=BrisqueConfig(cpu_kernels="opencv"))
    torch_kernels = Brisque.from_artifacts(config=BrisqueConfig(cpu_kernels="torch"))
    ours, theirs = opencv.score(pictures), torch_kernels.score(pictures)
    assert np.isfinite(ours).all()
    assert np.abs(ours - theirs).max() < 0.05


def test_halving_matches_opencv_per_image() -> None:
    rng = np.random.default_rng(0)
    sizes = [(10, 10), (11, 13), (101, 103), (9, 30), (64, 17)]
    images = [rng.random(size) for size in sizes]
    batch = torch.zeros(len(sizes), 101, 103, dtype=torch.float64)
    for slot, image in enumerate(images):
        batch[slot, :image.shape[0], :image.shape[1]] = torch.from_numpy(image)
    heights = torch.tensor([s[0] for s in sizes])
    widths = torch.tensor([s[1] for s in sizes])
    halves, half_heights, half_widths = _halve(batch, heights, widths)
    for slot, image in enumerate(images):
        expected = cv2.resize(image, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
        assert (int(half_heights[slot]), int(half_widths[slot])) == expected.shape
        got = halves[slot, :expected.shape[0], :expected.shape[1]].numpy()
        assert np.abs(got - expected).max() < 1e-12
        assert float(halves[slot].abs().sum()) == pytest.approx(float(np.abs(got).sum()))


# --- pieces of the fit -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [0.1, 0.3, 0.8, 1.0, 2.0, 3.7, 9.5])
def test_shape_lookup_inverts_the_moment_ratio(model: Brisque, shape: float) -> None:
    ratio = log_moment_ratio(torch.tensor([shape], dtype=torch.float64)).exp()
    assert float(model.aggd.shape_for_ratio(ratio)[0]) == pytest.approx(shape, rel=1e-9)


def test_aggd_fit_of_gaussian_samples(model: Brisque) -> None:
    samples = torch.from_numpy(np.random.default_rng(1).normal(0.0, 0.5, (1, 400, 500)))
    moments = side_moments(samples, torch.tensor([400 * 500]))[:, None, :]
    shape, mean, left_var, right_var = model.aggd(moments)
    assert float(shape) == pytest.approx(2.0, abs=0.03)
    assert float(mean) == pytest.approx(0.0, abs=0.01)
    assert float(left_var) == pytest.approx(0.25, rel=0.02)
    assert float(right_var) == pytest.approx(0.25, rel=0.02)


def test_side_moments_are_the_masked_sums() -> None:
    """The split-and-dot sums equal the definition (masked sums over x < 0 and x >= 0) to
    rounding, with the padding's zeros, signed infinitesimals and exact zeros of real maps."""
    rng = np.random.default_rng(5)
    values = torch.from_numpy(rng.laplace(0.0, 0.3, (3, 61, 47)))
    values[1, 40:, :] = 0.0  # padding
    values[2, :5, :5] = 1e-100
    values[2, 5:9, :5] = -1e-100
    values[0, 10, 10] = -0.0
    count = torch.tensor([61 * 47, 40 * 47, 61 * 47])
    got = side_moments(values, count)
    negative = values < 0
    squares = values * values
    expected = torch.stack([
        count.to(torch.float64),
        negative.sum(dim=(1, 2)).to(torch.float64),
        torch.where(negative, squares, 0.0).sum(dim=(1, 2)),
        torch.where(negative, 0.0, squares).sum(dim=(1, 2)),
        values.abs().sum(dim=(1, 2)),
    ], dim=1)
    assert torch.equal(got[:, :2], expected[:, :2])  # counts exactly
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0.0)


def test_flat_and_degenerate_images_give_finite_scores(model: Brisque) -> None:
    white = np.full((40, 50, 3), 255, np.uint8)
    black = np.zeros((40, 50, 3), np.uint8)  # every coefficient 0: the reference gives NaN
    assert np.isfinite(model.score([white, black])).all()


@pytest.mark.parametrize("image", [
    np.zeros((20, 20), np.uint8), np.zeros((20, 20, 4), np.uint8),
    np.zeros((20, 20, 3), np.float32), np.zeros((7, 40, 3), np.uint8),
], ids=["grey", "rgba", "float", "too-small"])
def test_rejects_inputs_it_cannot_score(model: Brisque, image: np.ndarray) -> None:
    with pytest.raises(ValueError):
        model.features([image])


# --- libsvm model parser ---------------------------------------------------------------------

HEADER = ("svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\n"
          "rho 0.25\nprobA 1.5\nSV\n")
BODY = "1.5 1:0.1 2:-0.2 3:0.3\n-0.5 1:0.4 3:0.6\n"


def test_parses_the_shipped_model() -> None:
    svr = load_svr_model(artifacts.BRISQUE_SVR.path(), n_features=N_FEATURES)
    assert (len(svr.coefficients), svr.n_features) == (770, N_FEATURES)
    assert (svr.gamma, svr.rho, svr.laplace_scale) == (0.05, -155.845, 6.34795)
    assert np.isfinite(svr.support_vectors).all()


def test_parses_a_small_model_and_evaluates_it() -> None:
    svr = parse_svr_model(HEADER + BODY, n_features=3)
    np.testing.assert_array_equal(svr.support_vectors, [[0.1, -0.2, 0.3], [0.4, 0.0, 0.6]])
    x = np.array([0.2, 0.1, -0.1])
    expected = (1.5 * np.exp(-0.5 * np.sum((x - [0.1, -0.2, 0.3]) ** 2))
                - 0.5 * np.exp(-0.5 * np.sum((x - [0.4, 0.0, 0.6]) ** 2)) - 0.25)
    assert svr.decision(x)[0] == pytest.approx(expected)


def test_torch_decision_matches_the_parsed_model(model: Brisque) -> None:
    svr = load_svr_model(artifacts.BRISQUE_SVR.path(), n_features=N_FEATURES)
    features = np.random.default_rng(2).uniform(0.01, 0.6, (5, N_FEATURES))
    scaled = -1 + 2 * (features - model.feature_min.numpy()) / (
        model.feature_max - model.feature_min).numpy()
    np.testing.assert_allclose(model.predict(torch.from_numpy(features)).numpy(),
                               svr.decision(scaled), rtol=1e-12)


MALFORMED = {
    "c-svc": (HEADER.replace("epsilon_svr", "c_svc") + BODY, "svm_type"),
    "linear-kernel": (HEADER.replace("rbf", "linear") + BODY, "kernel_type"),
    "unknown-key": (HEADER.replace("SV\n", "degree 3\nSV\n") + BODY, "unexpected header key"),
    "repeated-key": (HEADER.replace("SV\n", "gamma 0.5\nSV\n") + BODY, "repeated"),
    "no-gamma": (HEADER.replace("gamma 0.5\n", "") + BODY, "lacks"),
    "negative-gamma": (HEADER.replace("gamma 0.5", "gamma -1") + BODY, "positive"),
    "two-rho": (HEADER.replace("rho 0.25", "rho 0.25 0.5") + BODY, "expected one"),
    "classifier-count": (HEADER.replace("nr_class 2", "nr_class 3") + BODY, "nr_class"),
    "no-sv-line": (HEADER.replace("SV\n", ""), "no 'SV' line"),
    "too-few-svs": (HEADER + BODY.splitlines()[0], "total_sv 2"),
    "too-many-svs": (HEADER + BODY + "0.1 1:0.5\n", "total_sv 2"),
    "not-a-number": (HEADER + BODY.replace("-0.2", "abc"), "not a number"),
    "infinite-value": (HEADER + BODY.replace("-0.2", "inf"), "not finite"),
    "nan-coefficient": (HEADER + BODY.replace("1.5 1:", "nan 1:"), "not finite"),
    "unordered-indices": (HEADER + BODY.replace("1:0.4 3:0.6", "3:0.6 1:0.4"), "increasing"),
    "zero-index": (HEADER + BODY.replace("1:0.4", "0:0.4"), "increasing"),
    "missing-colon": (HEADER + BODY.replace("1:0.4", "1=0.4"), "index:value"),
    "too-wide": (HEADER + BODY.replace("3:0.6", "4:0.6"), "expects 3"),
}


@pytest.mark.parametrize("text,message", MALFORMED.values(), ids=MALFORMED.keys())
def test_rejects_malformed_models(text: str, message: str) -> None:
    with pytest.raises(LibsvmFormatError, match=message):
        parse_svr_model(text, n_features=3)


# --- normalisation pickle ----------------------------------------------------------------------


def test_loads_the_shipped_normalisation() -> None:
    scaling = load_normalisation(artifacts.BRISQUE_NORMALISATION.path())
    assert scaling.minimum.shape == scaling.maximum.shape == (N_FEATURES,)
    assert (scaling.maximum > scaling.minimum).all()


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("payload", [
    _Exploit(),
    {"min_": np.zeros(N_FEATURES), "max_": np.ones(N_FEATURES)},
    {"min_": [0.0] * N_FEATURES, "max_": torch.ones(N_FEATURES)},
], ids=["os-system", "numpy-arrays", "torch-tensor"])
def test_normalisation_refuses_any_class(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "normalize.pickle"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(NormalisationError, match="only plain containers"):
        load_normalisation(path)


@pytest.mark.parametrize("payload", [
    [0.0] * N_FEATURES,
    {"min_": [0.0] * (N_FEATURES - 1), "max_": [1.0] * (N_FEATURES - 1)},
    {"min_": [0.0] * N_FEATURES, "max_": [0.0] * N_FEATURES},
    {"min_": [0.0] * N_FEATURES, "max_": ["1"] * N_FEATURES},
    {"min_": [0.0] * N_FEATURES, "max_": [1.0] * N_FEATURES, "extra": 1},
], ids=["list", "35-features", "empty-range", "strings", "extra-key"])
def test_normalisation_checks_its_shape(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "normalize.pickle"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(NormalisationError):
        load_normalisation(path)


# --- devices -----------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu(reference) -> None:
    _, images = reference
    on_gpu = Brisque.from_artifacts(torch.device("cuda"))
    torch_on_cpu = Brisque.from_artifacts(config=BrisqueConfig(cpu_kernels="torch"))
    np.testing.assert_allclose(on_gpu.score(images), torch_on_cpu.score(images), atol=1e-6)
