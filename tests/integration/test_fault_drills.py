"""Fault drills (issue 13 part 4), on real Ray Serve, real HTTP, real ONNX models and a real
SQLite store:

- a model batch with one poisoned item: only that item fails (`stage_failed`), and the rest of
  the batch is answered by batches without it;
- the AttributeExtractor replica is killed (SIGKILL) while a stream of listings is in flight:
  no listing gets a 5xx, only images get `stage_failed`, Serve starts a new replica and the
  stream recovers; the test prints how long that took;
- an ingress replica is killed while its decisions wait in its outbox (the store is locked):
  the outbox file survives and its successor drains it, 0 decisions lost;
- PostgreSQL, the store, is stopped for 30 s under a stream of listings: every listing is still
  answered, and once it is back every decision answered is in it, 0 lost, the outbox empty.

They run on an application of their own ("drills": the full graph with one detector, NanoDet),
so that the replicas they kill serve no other test; the PostgreSQL drill on the technical graph
("drills-pg"). Slow (about a minute each), and in CI.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import ray
import requests
from ray import serve

from curator.core.measured import MeasuredImage, measure_locally
from curator.core.pipeline import extract_stage
from deployments.extractor import AttributeExtractor
from graphs.online import build_graph
from models.extractor import AttributeExtractor as Extractor
from models.runtime.request import RuntimeRequest
from tests.experiments.postgres_server import PostgresServer
from tests.integration.conftest import TEST_LIMITS, store_args
from tests.support import synthetic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = "drills"
ROUTE = "/drills"
MODELS = ["objects"]  # one detector: the drills are about replicas, not about what they see
PHOTOS = [synthetic.to_jpeg_bytes(synthetic.render_product(size=(500, 500), seed=seed))
          for seed in range(6)]


def listing(url: str, listing_id: str, seeds: tuple[int, ...] = (0, 1)) -> requests.Response:
    body = {"listing_id": listing_id, "category": "home", "marketplace": "US",
            "images": [{"image_id": f"p{seed}", "data": _b64(PHOTOS[seed])} for seed in seeds]}
    return requests.post(f"{url}/v1/assess", json=body, timeout=300)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def replica_pids(deployment: str, app: str = APP) -> set[int]:
    """Process ids of the deployment's live replicas in this test's Ray (asked of each replica
    actor itself: other Rays run on the same host, and the state API may answer for another)."""
    pids = set()
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if not actor["name"].startswith(f"SERVE_REPLICA::{app}#{deployment}#"):
            continue
        try:
            handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
            pid = ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=10)
        except (ray.exceptions.RayError, ValueError):
            continue  # gone, or still starting
        # The very process: a Serve replica of this deployment and this app.
        if f"ServeReplica:{app}:{deployment}" in " ".join(psutil.Process(pid).cmdline()):
            pids.add(int(pid))
    return pids


def wait_for(condition: Any, timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


@pytest.fixture(scope="module")
def drills_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("drills"))


@pytest.fixture(scope="module")
def drills(service_url: str, drills_data: Path) -> Iterator[str]:
    args = {"limits": TEST_LIMITS, "store": store_args(drills_data),
            "models": {"extractor_models": MODELS, "cpu_threads": 1}}
    # No load shedding: a 429 in the stream would hide what the drills look for.
    serve.run(build_graph(args, {"admission": {"enabled": False}}), name=APP, route_prefix=ROUTE)
    url = f"{service_url}{ROUTE}"
    answer = listing(url, "L-warm")
    assert answer.status_code == 200, answer.text
    yield url
    serve.delete(APP)


# --- a poisoned batch ---------------------------------------------------------------------------


def poisoned(item: MeasuredImage) -> MeasuredImage:
    """The image with model inputs the detectors refuse (float pixels): an input that crashes
    the model, wherever it comes from."""
    assert item.model_inputs is not None
    bad = np.full(item.model_inputs.rgb.shape, np.nan, np.float32)
    return replace(item, image_id="poison", model_inputs=replace(item.model_inputs, rgb=bad))


@pytest.fixture(scope="module")
def preprocessed() -> list[MeasuredImage]:
    return [measure_locally(data, f"g{index}", keep_model_inputs=True)
            for index, data in enumerate(PHOTOS[:4])]


def test_a_poisoned_item_fails_alone_in_process(preprocessed: list[MeasuredImage]) -> None:
    extractor = Extractor.create(MODELS, RuntimeRequest(8, cpu_threads=1))
    batch = [*preprocessed[:2], poisoned(preprocessed[0]), *preprocessed[2:]]
    with pytest.raises(ValueError):
        extractor.extract([item.model_inputs for item in batch])  # type: ignore[misc]
    done = extract_stage(extractor, batch)
    assert [item.image_id for item in done] == ["g0", "g1", "poison", "g2", "g3"]
    assert done[2].error is not None and done[2].error["code"] == "stage_failed"
    alone = extract_stage(extractor, preprocessed)
    for item, reference in zip([*done[:2], *done[3:]], alone, strict=True):
        assert item.ok and item.batch_sizes is not None
        assert item.batch_sizes["extractor"] < len(batch)  # run again without the poison
        assert item.attributes is not None and reference.attributes is not None
        assert item.attributes["people.body_count"] == reference.attributes["people.body_count"]


def test_a_poisoned_item_fails_alone_in_a_served_batch(
    service_url: str, preprocessed: list[MeasuredImage]
) -> None:
    """A served extractor that waits a whole second to fill its batches: the five images sent
    together form one batch, as the control shows; with a poisoned one among them, only that one
    fails and the others come back answered by batches without it."""
    lab = AttributeExtractor.options(  # type: ignore[attr-defined]
        name="PoisonLabExtractor",
        user_config={"max_batch_size": 8, "batch_wait_timeout_s": 1.0},
    ).bind(MODELS, RuntimeRequest(8, cpu_threads=1))
    handle = serve.run(lab, name="poison-lab", route_prefix=None)
    try:
        control = [response.result(timeout_s=120) for response in
                   [handle.extract.remote(item) for item in [*preprocessed, preprocessed[0]]]]
        assert [item.batch_sizes["extractor"] for item in control] == [5] * 5  # type: ignore[index]

        batch = [*preprocessed[:2], poisoned(preprocessed[0]), *preprocessed[2:]]
        done = [response.result(timeout_s=120) for response in
                [handle.extract.remote(item) for item in batch]]
    finally:
        serve.delete("poison-lab")
    assert [item.image_id for item in done] == ["g0", "g1", "poison", "g2", "g3"]
    assert done[2].error == {"code": "stage_failed", "image_id": "poison",
                             "message": "the image could not be assessed; retry later"}
    for item, reference in zip([*done[:2], *done[3:]], control[:4], strict=True):
        assert item.ok, item.error
        assert item.batch_sizes is not None and item.batch_sizes["extractor"] < 5
        assert item.attributes is not None and reference.attributes is not None
        assert set(item.attributes) == set(reference.attributes)


# --- the extractor replica killed under a stream of listings -----------------------------------


@dataclass
class Sent:
    index: int
    sent: float
    done: float = 0.0
    status: int = 0
    codes: list[str] = field(default_factory=list)  # per image: "ok" or its error code
    decision_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and all(code == "ok" for code in self.codes)


def stream(url: str, stop: threading.Event, sent: list[Sent], lock: threading.Lock,
           worker: int) -> None:
    """Listings one after another until `stop`; two of these run side by side."""
    index = 0
    while not stop.is_set():
        record = Sent(index=worker * 10_000 + index, sent=time.monotonic())
        index += 1
        try:
            answer = listing(url, f"L-stream-{record.index}", (index % 6, (index + 3) % 6))
            record.status = answer.status_code
            if answer.status_code == 200:
                record.decision_id = answer.json()["decision_id"]
                record.codes = [image["status"] if image["status"] == "ok"
                                else image["error"]["code"] for image in answer.json()["images"]]
        except requests.RequestException as error:
            record.codes = [f"transport: {error}"]
        record.done = time.monotonic()
        with lock:
            sent.append(record)


def test_killing_the_extractor_replica_fails_only_its_images_and_the_stream_recovers(
    drills: str,
) -> None:
    (victim,) = replica_pids("AttributeExtractor")
    stop = threading.Event()
    lock = threading.Lock()
    sent: list[Sent] = []
    with ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(stream, drills, stop, sent, lock, worker) for worker in (0, 1)]
        try:
            wait_for(lambda: sum(record.ok for record in sent) >= 4, 120, "a steady stream")
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            successor = wait_for(lambda: replica_pids("AttributeExtractor") - {victim}, 180,
                                 "Serve starting a new AttributeExtractor replica")
            replaced_at = time.monotonic()

            def recovered() -> bool:
                with lock:
                    after = [record for record in sent if record.sent > replaced_at]
                return len(after) >= 6 and all(record.ok for record in after[-6:])

            wait_for(recovered, 180, "six listings in a row answered in full after the restart")
        finally:
            stop.set()
            for future in workers:
                future.result(timeout=300)

    statuses = {record.status for record in sent}
    codes = {code for record in sent for code in record.codes}
    failed = [record for record in sent if not record.ok]
    first_ok_after = min(record.done for record in sent
                         if record.sent > killed_at and record.ok)
    print(f"\nextractor replica {victim} killed; replica {sorted(successor)} up after "
          f"{replaced_at - killed_at:.1f} s; first listing sent after the kill answered in full "
          f"{first_ok_after - killed_at:.1f} s after it; {len(sent)} listings, "
          f"{sum(len(r.codes) - r.codes.count('ok') for r in failed)} images failed in "
          f"{len(failed)} listings")
    assert statuses == {200}, statuses  # never a 5xx, never a refused listing
    assert codes <= {"ok", "stage_failed"}, codes
    # Only images that were on their way when the replica died fail: every failed listing was
    # sent before the new replica was up.
    assert all(record.sent < replaced_at for record in failed), [
        (record.sent - killed_at, record.codes) for record in failed]


# --- an ingress replica killed with decisions in its outbox ------------------------------------


def stored_decisions(database: Path) -> set[str]:
    with sqlite3.connect(database, timeout=30) as connection:
        try:
            return {row[0] for row in connection.execute("SELECT decision_id FROM decisions")}
        except sqlite3.OperationalError as error:
            # The store makes its tables with its first write, after the outbox's first drain.
            if "no such table" in str(error):
                return set()
            raise


def outbox_pending(outbox_dir: Path) -> int:
    total = 0
    for path in outbox_dir.glob("ingress-*.db"):
        with sqlite3.connect(path, timeout=30) as connection:
            total += connection.execute("SELECT count(*) FROM pending").fetchone()[0]
    return total


def test_killing_an_ingress_replica_loses_no_decision(drills: str, drills_data: Path) -> None:
    database = drills_data / "decisions.db"
    outbox_dir = drills_data / "outbox"
    warm = listing(drills, "L-ingress-warm").json()["decision_id"]
    wait_for(lambda: warm in stored_decisions(database), 60, "the store taking a decision")
    (victim,) = replica_pids("Curator")

    # The database is locked: the outbox can take decisions but not hand them on.
    lock = sqlite3.connect(database, timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        answers = [listing(drills, f"L-ingress-{index}") for index in range(5)]
        assert [answer.status_code for answer in answers] == [200] * 5
        decisions = {answer.json()["decision_id"] for answer in answers}
        assert outbox_pending(outbox_dir) >= len(decisions)
        files_before = sorted(path.name for path in outbox_dir.glob("ingress-*.db"))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: replica_pids("Curator") - {victim}, 180,
                 "Serve starting a new ingress replica")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert sorted(path.name for path in outbox_dir.glob("ingress-*.db")) == files_before
    started = time.monotonic()
    wait_for(lambda: decisions <= stored_decisions(database), 120,
             "the successor draining its predecessor's outbox")
    print(f"\ningress replica {victim} killed with {len(decisions)} decisions in its outbox; "
          f"all in the store {time.monotonic() - started:.1f} s after the database came back")
    wait_for(lambda: outbox_pending(outbox_dir) == 0, 60, "an empty outbox")
    assert requests.get(f"{drills}/healthz", timeout=30).status_code == 200


# --- the store's PostgreSQL stopped under load ---------------------------------------------------

OUTAGE_S = 30.0


@pytest.fixture(scope="module")
def pg_drills(service_url: str, postgres_server: PostgresServer,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The technical graph with its store on PostgreSQL; (base URL, store URL, outbox folder)."""
    store_url = postgres_server.create_database("drills")
    data = Path(tmp_path_factory.mktemp("drills-pg"))
    args = {"limits": TEST_LIMITS, "models": None, "store": store_args(data, store_url)}
    serve.run(build_graph(args, {"admission": {"enabled": False}}), name="drills-pg",
              route_prefix="/drills-pg")
    yield f"{service_url}/drills-pg", store_url, data / "outbox"
    serve.delete("drills-pg")


def postgres_decisions(store_url: str) -> set[str]:
    """The decision ids in the store; none while it has no schema yet or is away."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT decision_id FROM decisions"))
            return {row[0] for row in rows}
    except DBAPIError:
        return set()
    finally:
        engine.dispose()


def test_postgres_stopped_under_load_loses_no_decision(
    pg_drills: tuple[str, str, Path], postgres_server: PostgresServer
) -> None:
    url, store_url, outbox_dir = pg_drills
    warm = listing(url, "L-pg-warm").json()["decision_id"]
    wait_for(lambda: warm in postgres_decisions(store_url), 60, "the store taking a decision")
    stop = threading.Event()
    lock = threading.Lock()
    sent: list[Sent] = []
    with ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(stream, url, stop, sent, lock, worker) for worker in (0, 1)]
        try:
            wait_for(lambda: sum(record.ok for record in sent) >= 4, 120, "a steady stream")
            postgres_server.stop()
            try:
                stopped_at = time.monotonic()
                time.sleep(OUTAGE_S)
                during = sum(1 for record in sent if record.sent > stopped_at)
            finally:
                postgres_server.start()
            back_at = time.monotonic()
            wait_for(lambda: sum(record.sent > back_at for record in sent) >= 4, 120,
                     "listings after PostgreSQL came back")
        finally:
            stop.set()
            for future in workers:
                future.result(timeout=300)
    assert {record.status for record in sent} == {200}  # an outage fails no assessment
    assert all(record.ok for record in sent), [r.codes for r in sent if not r.ok]
    answered = {record.decision_id for record in sent if record.decision_id}
    assert len(answered) == len(sent)
    wait_for(lambda: answered <= postgres_decisions(store_url), 180,
             "every decision answered in PostgreSQL")
    drained_s = time.monotonic() - back_at
    wait_for(lambda: outbox_pending(outbox_dir) == 0, 60, "an empty outbox")
    print(f"\nPostgreSQL stopped {OUTAGE_S:.0f} s under load: {len(sent)} listings answered, "
          f"{during} of them during the outage; all {len(answered)} decisions in PostgreSQL "
          f"{drained_s:.1f} s after it came back, 0 lost")
