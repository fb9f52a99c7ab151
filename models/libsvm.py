"""Our own reader for libsvm's text model format, limited to what BRISQUE ships: an ε-SVR with an
RBF kernel.

A libsvm model file is a header of `key value...` lines, a line `SV`, then one line per support
vector: its dual coefficient followed by sparse `index:value` pairs (1-based indices, increasing,
absent indices are 0). We parse it ourselves rather than depend on the `libsvm-official` C
extension, and we refuse anything we would not evaluate correctly: another SVM type or kernel, an
unknown or repeated header key, a support-vector count that disagrees with the header, malformed
or out-of-order indices, non-finite numbers. A model that half-loads scores silently wrong.

The decision function of an ε-SVR with kernel exp(-γ‖x - y‖²) is

    f(x) = Σ_i coef_i · exp(-γ ‖x - sv_i‖²) - ρ

which is what libsvm's `svm_predict` returns for regression (its `svm_predict_probability`
falls back to it: `probA`, the Laplace noise scale fitted for regression, does not enter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_SVM_TYPE = "epsilon_svr"
SUPPORTED_KERNEL = "rbf"
# Header keys libsvm writes for an ε-SVR with an RBF kernel; any other key means a model we do
# not evaluate (classification labels, polynomial degree, ...).
_REQUIRED_KEYS = ("svm_type", "kernel_type", "gamma", "nr_class", "total_sv", "rho")
_OPTIONAL_KEYS = ("probA",)


class LibsvmFormatError(ValueError):
    """The file is not an ε-SVR/RBF libsvm text model we can evaluate exactly."""


@dataclass(frozen=True)
class SvrModel:
    gamma: float  # RBF kernel width: k(x, y) = exp(-gamma * |x - y|^2)
    rho: float  # bias, subtracted from the kernel expansion
    coefficients: np.ndarray  # (n_sv,) float64 dual coefficients (alpha_i - alpha_i*)
    support_vectors: np.ndarray  # (n_sv, n_features) float64, dense: absent indices are 0
    laplace_scale: float | None = None  # probA, kept for the record; prediction ignores it

    @property
    def n_features(self) -> int:
        return int(self.support_vectors.shape[1])

    def decision(self, features: np.ndarray) -> np.ndarray:
        """f(x) for rows of `features` (n, n_features), in float64 numpy (the reference path)."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        squared = ((features[:, None, :] - self.support_vectors[None, :, :]) ** 2).sum(axis=2)
        return np.exp(-self.gamma * squared) @ self.coefficients - self.rho


def load_svr_model(path: Path, n_features: int | None = None) -> SvrModel:
    return parse_svr_model(path.read_text(encoding="ascii"), n_features, source=str(path))


def parse_svr_model(text: str, n_features: int | None = None, source: str = "<text>") -> SvrModel:
    """Parse libsvm text; `n_features`, when given, is the exact width the caller will feed."""
    lines = text.splitlines()
    header, body_start = _parse_header(lines, source)
    total_sv = header["total_sv"]
    rows = [(number, line) for number, line in enumerate(lines[body_start:], body_start + 1)
            if line.strip()]
    if len(rows) != total_sv:
        raise LibsvmFormatError(
            f"{source}: header says total_sv {total_sv} but {len(rows)} support vector lines follow"
        )
    coefficients = np.empty(total_sv, dtype=np.float64)
    sparse_rows: list[dict[int, float]] = []
    for row, (number, line) in enumerate(rows):
        coefficients[row], entries = _parse_support_vector(line, f"{source}:{number}")
        sparse_rows.append(entries)

    widest = max((max(entries) for entries in sparse_rows if entries), default=0)
    width = widest if n_features is None else n_features
    if widest > width:
        raise LibsvmFormatError(
            f"{source}: support vectors use feature index {widest}, the model expects {width}"
        )
    support_vectors = np.zeros((total_sv, width), dtype=np.float64)
    for row, entries in enumerate(sparse_rows):
        for index, value in entries.items():
            support_vectors[row, index - 1] = value
    return SvrModel(
        gamma=header["gamma"],
        rho=header["rho"],
        coefficients=coefficients,
        support_vectors=support_vectors,
        laplace_scale=header.get("probA"),
    )


def _parse_header(lines: list[str], source: str) -> tuple[dict, int]:
    """(typed header values, index of the first line after `SV`)."""
    raw: dict[str, list[str]] = {}
    for number, line in enumerate(lines, 1):
        words = line.split()
        if not words:
            continue
        if words == ["SV"]:
            return _check_header(raw, source), number
        key, values = words[0], words[1:]
        if key not in _REQUIRED_KEYS and key not in _OPTIONAL_KEYS:
            raise LibsvmFormatError(
                f"{source}:{number}: unexpected header key {key!r} for an "
                f"{SUPPORTED_SVM_TYPE}/{SUPPORTED_KERNEL} model"
            )
        if key in raw:
            raise LibsvmFormatError(f"{source}:{number}: header key {key!r} repeated")
        if not values:
            raise LibsvmFormatError(f"{source}:{number}: header key {key!r} has no value")
        raw[key] = values
    raise LibsvmFormatError(f"{source}: no 'SV' line: not a libsvm model file")


def _check_header(raw: dict[str, list[str]], source: str) -> dict:
    missing = [key for key in _REQUIRED_KEYS if key not in raw]
    if missing:
        raise LibsvmFormatError(f"{source}: header lacks {missing}")
    svm_type = _single(raw, "svm_type", source)
    if svm_type != SUPPORTED_SVM_TYPE:
        raise LibsvmFormatError(f"{source}: svm_type {svm_type!r}, only {SUPPORTED_SVM_TYPE!r}")
    kernel = _single(raw, "kernel_type", source)
    if kernel != SUPPORTED_KERNEL:
        raise LibsvmFormatError(f"{source}: kernel_type {kernel!r}, only {SUPPORTED_KERNEL!r}")
    # libsvm writes nr_class 2 for regression models; anything else is a classifier's file.
    nr_class = _integer(_single(raw, "nr_class", source), "nr_class", source)
    if nr_class != 2:
        raise LibsvmFormatError(f"{source}: nr_class {nr_class}, a regression model has 2")
    total_sv = _integer(_single(raw, "total_sv", source), "total_sv", source)
    if total_sv < 1:
        raise LibsvmFormatError(f"{source}: total_sv {total_sv}, need at least one")
    gamma = _finite(_single(raw, "gamma", source), "gamma", source)
    if gamma <= 0:
        raise LibsvmFormatError(f"{source}: gamma {gamma} must be positive")
    header: dict = {
        "gamma": gamma,
        "total_sv": total_sv,
        # A regression model has one decision function, hence exactly one rho.
        "rho": _finite(_single(raw, "rho", source), "rho", source),
    }
    if "probA" in raw:
        header["probA"] = _finite(_single(raw, "probA", source), "probA", source)
    return header


def _parse_support_vector(line: str, where: str) -> tuple[float, dict[int, float]]:
    words = line.split()
    coefficient = _finite(words[0], "coefficient", where)
    entries: dict[int, float] = {}
    previous = 0
    for word in words[1:]:
        index_text, colon, value_text = word.partition(":")
        if not colon:
            raise LibsvmFormatError(f"{where}: {word!r} is not index:value")
        index = _integer(index_text, "feature index", where)
        if index <= previous:
            raise LibsvmFormatError(
                f"{where}: feature index {index} after {previous}: indices must be 1-based "
                "and strictly increasing"
            )
        entries[index] = _finite(value_text, f"feature {index}", where)
        previous = index
    return coefficient, entries


def _single(raw: dict[str, list[str]], key: str, source: str) -> str:
    values = raw[key]
    if len(values) != 1:
        raise LibsvmFormatError(f"{source}: {key} has {len(values)} values {values}, expected one")
    return values[0]


def _integer(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise LibsvmFormatError(f"{where}: {what} {text!r} is not an integer") from None


def _finite(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LibsvmFormatError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LibsvmFormatError(f"{where}: {what} {text!r} is not finite")
    return value
