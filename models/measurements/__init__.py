"""Technical measurements of a decoded image: small pure functions, one module per concern.

`models.preprocess.Preprocessor` runs them in order; every threshold lives in `thresholds.py`.
"""

from models.measurements.thresholds import MeasurementThresholds

__all__ = ["MeasurementThresholds"]
