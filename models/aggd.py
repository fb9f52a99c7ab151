"""Asymmetric generalised Gaussian (AGGD) fit by moment matching, batched, as BRISQUE does it.

The AGGD with shape α and left/right scales σ_l, σ_r is fitted to a coefficient map from a few
sums (Lasmar, Stitou & Berthoumieu 2009, as used by BRISQUE):

    γ = σ_l / σ_r                 σ_l² = mean of x² over x < 0, σ_r² over x >= 0
    r = (mean |x|)² / mean x²     R = r (γ³ + 1)(γ + 1) / (γ² + 1)²
    α solves ρ(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)) = R          (ρ rises from 0 to 3/4)
    mean = (σ_r - σ_l) · sqrt(Γ(1/α) / Γ(3/α)) · Γ(2/α) / Γ(1/α)

α is looked up in a table of log ρ on a log-spaced grid, then polished by Newton steps kept inside
the table cell, so it lands on the root the reference's scipy root finder finds (to ~1e-12
rather than its 1.5e-8 tolerance). Everything works on (..., 5) moment tensors so a batch of
images and all their maps are fitted at once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class AggdFit(nn.Module):
    shape_grid: Tensor  # (points,) α, log-spaced over [low, high]
    log_ratio_grid: Tensor  # (points,) log ρ(α) at shape_grid, strictly increasing

    def __init__(self, low: float, high: float, points: int, newton_steps: int = 4) -> None:
        super().__init__()
        shapes = torch.logspace(math.log10(low), math.log10(high), points, dtype=torch.float64)
        ratios = log_moment_ratio(shapes)
        if not bool((ratios.diff() > 0).all()):
            raise ValueError(f"log moment ratio is not increasing on [{low}, {high}]")
        self.register_buffer("shape_grid", shapes)
        self.register_buffer("log_ratio_grid", ratios)
        self.newton_steps = newton_steps

    def forward(self, moments: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(shape α, mean, left variance, right variance) from `side_moments` rows.

        Degenerate maps get finite values where the reference returns NaN: an empty side has
        variance 0; an all-zero map gets the smallest α of the table.
        """
        count, left_count, left_sq, right_sq, abs_sum = moments.unbind(dim=-1)
        left_var = left_sq / left_count.clamp(min=1)
        right_var = right_sq / (count - left_count).clamp(min=1)
        left_sigma, right_sigma = left_var.sqrt(), right_var.sqrt()
        gamma = torch.where(right_sigma > 0, left_sigma / right_sigma.clamp(min=1e-300),
                            torch.where(left_sigma > 0, 1e8, 1.0)).clamp(max=1e8)
        mean_square = (left_sq + right_sq) / count
        r_hat = torch.where(mean_square > 0,
                            (abs_sum / count) ** 2 / mean_square.clamp(min=1e-300), 0.0)
        big_r = r_hat * (gamma**3 + 1) * (gamma + 1) / (gamma**2 + 1) ** 2
        shape = self.shape_for_ratio(big_r)
        scale = torch.exp(0.5 * (torch.lgamma(1 / shape) - torch.lgamma(3 / shape)))
        mean = ((right_sigma - left_sigma) * scale
                * torch.exp(torch.lgamma(2 / shape) - torch.lgamma(1 / shape)))
        return shape, mean, left_var, right_var

    def shape_for_ratio(self, ratio: Tensor) -> Tensor:
        """α with ρ(α) = ratio, clamped to the table's range: lookup, then Newton in the cell."""
        grid, table = self.shape_grid, self.log_ratio_grid
        target = ratio.clamp(min=1e-300).log().clamp(min=table[0], max=table[-1])
        upper = torch.searchsorted(table, target).clamp(min=1, max=len(table) - 1)
        low_shape, high_shape = grid[upper - 1], grid[upper]
        low_ratio, high_ratio = table[upper - 1], table[upper]
        shape = low_shape + (target - low_ratio) / (high_ratio - low_ratio) * (
            high_shape - low_shape)
        for _ in range(self.newton_steps):
            step = (log_moment_ratio(shape) - target) / _log_moment_ratio_slope(shape)
            shape = torch.minimum(torch.maximum(shape - step, low_shape), high_shape)
        return shape


def side_moments(values: Tensor, count: Tensor) -> Tensor:
    """(B, 5) sums over each (B, H, W) map: count, left count, left and right sums of squares,
    sum of |x|. Left is x < 0, right x >= 0, as the reference splits them. Pixels outside an
    image must be exactly 0 (they add nothing, and are not negative) and left out of `count`.

    The map is split once into its left part min(x, 0) and right part max(x, 0), and the sums of
    squares are dot products of each part with itself: five passes over the map where masked
    `where` sums took nine, and no temporary the size of the map but the two parts. The
    summation order differs from `Tensor.sum`'s, by a few units in the last place (float64)."""
    flat = values.reshape(values.shape[0], 1, -1)
    left = flat.clamp(max=0)
    right = flat.clamp(min=0)
    return torch.stack([
        count.to(values.dtype),
        torch.count_nonzero(left, dim=(1, 2)).to(values.dtype),
        torch.bmm(left, left.transpose(1, 2)).reshape(-1),
        torch.bmm(right, right.transpose(1, 2)).reshape(-1),
        right.sum(dim=(1, 2)) - left.sum(dim=(1, 2)),
    ], dim=1)


def log_moment_ratio(shape: Tensor) -> Tensor:
    """log ρ(α) = log Γ(2/α)² / (Γ(1/α)Γ(3/α)), increasing in α towards log(3/4)."""
    return 2 * torch.lgamma(2 / shape) - torch.lgamma(1 / shape) - torch.lgamma(3 / shape)


def _log_moment_ratio_slope(shape: Tensor) -> Tensor:
    """d log ρ / dα."""
    inverse = 1 / shape
    return -(inverse**2) * (4 * torch.digamma(2 * inverse) - torch.digamma(inverse)
                            - 3 * torch.digamma(3 * inverse))
