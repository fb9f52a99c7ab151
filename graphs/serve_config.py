"""Where the serve config lives: the default file `curator serve`, `curator rules publish`,
`curator batch` and the benchmarks start from."""

from __future__ import annotations

from pathlib import Path

DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parent / "serve_config.yaml"
GPU_SERVE_CONFIG = Path(__file__).resolve().parent / "serve_config.gpu.yaml"
