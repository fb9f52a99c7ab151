"""The ingress's core without Ray: the reconfigure rule (raise while starting, refuse while
running), assessment through admission into the decision log, outcomes, and what the
health, policy and version answers report. The stages run in this process (Preprocess only:
the technical tier)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from curator.contracts.errors import CuratorError
from curator.core.image_jobs import ImageJob
from curator.core.measured import FixedMeasurement, MeasuredImage, fix_locally, measure_locally
from curator.core.service import CuratorService, Replica
from curator.core.settings import CuratorAppArgs, StoreSettings
from experiments.live import EnsuredStore
from experiments.outbox import Outbox
from experiments.records import DecisionRecord, OutcomeRecord
from models.preprocess import Preprocessor
from models.scorer_cards import TECHNICAL_CARD
from rules import POLICY_DIR
from rules.loader import read_policy_texts
from rules.schema import FixRef
from tests.support import synthetic


class LocalStages:
    """The technical tier's stages in this process (what StageChain reaches over Serve)."""

    scorer_cards: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.preprocessor = Preprocessor()

    def card_for(self, requested: str | None) -> str:
        return TECHNICAL_CARD

    async def image_bytes(self, job: ImageJob) -> bytes:
        if job.error is not None:
            raise job.error
        assert job.data is not None
        return job.data

    async def measure(self, image_id: str, data: bytes, card: str) -> MeasuredImage:
        return measure_locally(data, image_id, self.preprocessor)

    async def fix(self, image_id: str, data: bytes, fixes: Sequence[FixRef], card: str
                  ) -> FixedMeasurement:
        fixed = fix_locally(data, [(f.name, dict(f.with_)) for f in fixes], self.preprocessor)
        if fixed.error is not None or fixed.data is None:
            return FixedMeasurement.failed(image_id, fixed)
        return FixedMeasurement.of(fixed, await self.measure(image_id, fixed.data, card))

    async def backends(self) -> dict[str, str]:
        return {"preprocess": "in-process"}


class MemoryStore:
    """A decision store in a list (EnsuredStore creates its schema on first use)."""

    def __init__(self) -> None:
        self.decisions: list[DecisionRecord] = []
        self.outcomes: list[OutcomeRecord] = []

    def create_schema(self) -> None:
        pass

    def write_decisions(self, records: Sequence[DecisionRecord]) -> int:
        self.decisions.extend(records)
        return len(records)

    def write_outcomes(self, records: Sequence[OutcomeRecord]) -> int:
        self.outcomes.extend(records)
        return len(records)


class RecordedMetrics:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def listing_assessed(self, latency_ms: float, actions: Sequence[str]) -> None:
        self.events.append(("listing", tuple(actions)))

    def policy_reload(self, outcome: str) -> None:
        self.events.append(("reload", outcome))

    def admission_refused(self) -> None:
        self.events.append(("refused", None))

    def admission_limit(self, limit: float) -> None:
        self.events.append(("limit", limit))

    def outbox_event(self, name: str, amount: float) -> None:
        pass


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.store = MemoryStore()
        self.metrics = RecordedMetrics()
        self.watched: list[list[dict[str, Any]]] = []
        self.outbox = Outbox(tmp_path / "outbox.db", EnsuredStore(self.store),
                             flush_interval_s=0.05)
        args = CuratorAppArgs(models=None, store=StoreSettings(url="sqlite://",
                                                               outbox_dir=tmp_path))
        self.service = CuratorService(args, LocalStages(), EnsuredStore(self.store),
                                      self.outbox, watch=self._watch, metrics=self.metrics,
                                      replica=Replica("replica-1", "2.60.0"))

    async def _watch(self, experiments: list[dict[str, Any]]) -> None:
        self.watched.append(experiments)

    def reloads(self) -> list[str]:
        return [value for name, value in self.metrics.events if name == "reload"]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.outbox.close()


BROKEN_POLICIES = {"base.yaml": "policy: base\nrules: [this is not a rule]\n"}


@pytest.mark.parametrize("config", [{"policies": BROKEN_POLICIES}, {"no_such_setting": 1}],
                         ids=["policy_error", "invalid_config"])
def test_a_starting_replica_raises_on_a_config_it_cannot_serve(
    harness: Harness, config: dict[str, Any]
) -> None:
    with pytest.raises((CuratorError, ValueError)):
        harness.service.reconfigure(config)
    assert harness.service.reload_error is None
    assert harness.reloads() == []


def test_a_running_replica_refuses_a_bad_config_and_keeps_serving_the_last_good_one(
    harness: Harness,
) -> None:
    service = harness.service
    service.reconfigure({"policies": read_policy_texts(POLICY_DIR)})
    live = service.live

    service.reconfigure({"policies": BROKEN_POLICIES})  # no raise: Serve would restart it

    assert service.live is live
    assert service.reload_error
    assert harness.reloads() == ["applied", "refused"]
    assert service.policy("default", "US").reload_error == service.reload_error
    version = asyncio.run(service.version())
    assert version.policy == {"set_version": live.policy_set_version,
                              "reload_error": service.reload_error}

    service.reconfigure({})  # the files again: a good config clears the error
    assert service.reload_error is None
    assert harness.reloads() == ["applied", "refused", "applied"]


def test_a_policy_set_from_user_config_replaces_the_files_whole(harness: Harness) -> None:
    service = harness.service
    texts = read_policy_texts(POLICY_DIR)
    started_with = service.live.policy_set_version
    del texts["marketplaces/jp.yaml"]  # a layer no other extends: another set
    service.reconfigure({"policies": texts})
    assert service.live.policy_set_version != started_with
    health = asyncio.run(service.health())
    assert health.policy_set_version == service.live.policy_set_version


def test_a_listing_is_assessed_admitted_and_logged(harness: Harness) -> None:
    white = synthetic.to_jpeg_bytes(synthetic.render_product(size=(1000, 1000), seed=1))

    async def assess() -> Any:
        answer = await harness.service.assess(
            "listing-1", "default", "US", [ImageJob("white", "main", data=white)])
        health = await harness.service.health()
        return answer, health

    answer, health = asyncio.run(assess())

    assert answer.selection.main_image_id == "white"
    assert answer.variant == "control"
    assert health.admission.admitted == 1 and health.admission.in_flight == 0
    listings = [value for name, value in harness.metrics.events if name == "listing"]
    assert listings == [(answer.images[0].action,)]
    assert harness.outbox.flush()
    (decision,) = harness.store.decisions
    assert (decision.decision_id, decision.unit_id, decision.scorer_version) == (
        answer.decision_id, "listing-1", TECHNICAL_CARD)


def test_an_image_that_cannot_be_read_fails_alone(harness: Harness) -> None:
    white = synthetic.to_jpeg_bytes(synthetic.render_product(size=(1000, 1000), seed=2))
    jobs = [ImageJob("white", None, data=white), ImageJob("broken", None, data=b"not an image")]
    answer = asyncio.run(harness.service.assess("listing-2", "default", "US", jobs))
    statuses = {image.image_id: image.status for image in answer.images}
    assert statuses["broken"] == "error" and statuses["white"] != "error"


def test_outcomes_go_to_the_store_through_the_outbox(harness: Harness) -> None:
    from datetime import UTC, datetime

    record = OutcomeRecord(event_id="e-1", type="click", occurred_at=datetime.now(UTC),
                           unit_id="listing-1", decision_id=None, value=None)
    harness.service.record_outcomes([record])
    assert harness.outbox.flush()
    assert [o.event_id for o in harness.store.outcomes] == ["e-1"]


def test_an_unknown_experiment_report_is_a_404(harness: Harness) -> None:
    with pytest.raises(CuratorError) as raised:
        asyncio.run(harness.service.experiment_report("nope"))
    assert raised.value.status == 404 and raised.value.code == "unknown_experiment"


def test_the_refresh_tells_the_canary_what_to_watch(harness: Harness) -> None:
    asyncio.run(harness.service.refresh())
    assert harness.watched == [[]]
    assert asyncio.run(harness.service.experiments()).experiments == []
    version = asyncio.run(harness.service.version())
    assert (version.replica_id, version.ray_version) == ("replica-1", "2.60.0")
    assert version.models == {"scorer_card": TECHNICAL_CARD, "extractor": ""}
