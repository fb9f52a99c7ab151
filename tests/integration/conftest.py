"""A real local Ray, the real graph under `serve.run`, and real HTTP."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray import serve

from benchmarks.service import free_port
from graphs.online import build_app, build_graph

pytestmark = pytest.mark.integration

# Small limits so the limit paths can be exercised with small requests.
TEST_LIMITS = {
    "max_request_bytes": 6 * 2**20,
    "max_images_per_listing": 6,
    "max_image_bytes": 3 * 2**20,
    "max_image_pixels": 30_000_000,
    # Decoding memory a replica holds at once (issue 13): small, so that bombs stay cheap.
    "decode_memory_bytes": 256 * 2**20,
}




@pytest.fixture(scope="package")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on loopback that serves files the tests put in a folder."""
    root = tmp_path_factory.mktemp("served")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


# Where Ray exports the replicas' metrics in Prometheus format (`metrics_url`).
METRICS_PORT = free_port()


@pytest.fixture(scope="package")
def metrics_url(service_url: str) -> str:
    return f"http://127.0.0.1:{METRICS_PORT}/metrics"


OUTCOME_KEY = "integration-test-key"
OUTCOME_KEY_SHA256 = hashlib.sha256(OUTCOME_KEY.encode()).hexdigest()


def store_args(directory: Path, url: str | None = None) -> dict[str, object]:
    """Where an app of the tests keeps its decisions: its own SQLite file unless `url`."""
    directory.mkdir(parents=True, exist_ok=True)
    return {"url": url or f"sqlite:///{directory / 'decisions.db'}",
            "outbox_dir": str(directory / "outbox")}


@pytest.fixture(scope="package")
def service_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the applications of `service_url` keep their stores and outboxes."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="package")
def curator_store_url(service_data: Path) -> str:
    """The decision store of the main "curator" application (the review tests read it)."""
    return str(store_args(service_data / "curator")["url"])


@pytest.fixture(scope="package")
def service_url(service_data: Path) -> Iterator[str]:
    data = service_data
    port = free_port()
    # Logical CPUs (scheduling labels): room for every test application on a 2-core host.
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False,
             _metrics_export_port=METRICS_PORT)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_graph(
        {
            "limits": TEST_LIMITS,
            # The loopback image server above may be fetched; nothing else private may.
            "url_fetch": {"allow_private": ["127.0.0.1/32"], "timeout_s": 3},
            "store": store_args(data / "curator"),
            "outcome_key_sha256": [OUTCOME_KEY_SHA256],
        },
        # No load shedding here: on a slow CI host the concurrency tests' bursts would meet
        # 429s. test_admission_http.py tests it on an application of its own.
        {"admission": {"enabled": False}},
    )
    serve.run(app, name="curator", route_prefix="/")
    # The technical-only tier: Preprocess alone, no model stages.
    serve.run(build_app({"limits": TEST_LIMITS, "models": None,
                         "store": store_args(data / "technical")}),
              name="technical", route_prefix="/technical")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()
