"""`curator_model_runtime`: what each model runs on, as a metric (an "info" gauge).

One series per model and (runtime, device, precision), at 1 for the choice in force and 0 for
one it replaced: a replica that starts on ONNX Runtime while its TensorRT engine builds
(models.runtime.deferred) switches once the engine is ready, and dashboards should see when.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from ray.serve.metrics import Gauge

from models.runtime.base import RuntimeInfo

# Ray's metrics agent drops a gauge series that has not been set again for about two export
# intervals; the choice is set again this often, traffic or not, so it never goes missing.
REFRESH_INTERVAL_S = 5.0


class RuntimeChoiceMetric:
    """Serve adds the deployment, replica and application tags itself."""

    def __init__(self, refresh_interval_s: float | None = REFRESH_INTERVAL_S) -> None:
        self._gauge = Gauge(
            "curator_model_runtime",
            description="1 for the runtime, device and precision each model runs on now; 0 for "
                        "one it has replaced",
            # Ray annotates tag_keys as a 1-tuple (Tuple[str]); any length works.
            tag_keys=("model", "runtime", "device", "precision"),  # type: ignore[arg-type]
        )
        self._current: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        if refresh_interval_s is not None:
            threading.Thread(target=self._refresh_forever, args=(refresh_interval_s,),
                             name="runtime-metric", daemon=True).start()

    def update(self, infos: Mapping[str, RuntimeInfo]) -> None:
        """Cheap when nothing changed: called after every batch, so a switch shows at once."""
        with self._lock:
            for name, info in infos.items():
                tags = {"model": info.model, "runtime": info.runtime, "device": info.device,
                        "precision": info.precision}
                previous = self._current.get(name)
                if previous == tags:
                    continue
                if previous is not None:
                    self._gauge.set(0, tags=previous)
                self._gauge.set(1, tags=tags)
                self._current[name] = tags

    @property
    def current(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return dict(self._current)

    def refresh(self) -> None:
        with self._lock:
            for tags in self._current.values():
                self._gauge.set(1, tags=tags)

    def _refresh_forever(self, interval_s: float) -> None:
        stop = threading.Event()  # never set: the thread ends with the replica's process
        while not stop.wait(interval_s):
            self.refresh()
