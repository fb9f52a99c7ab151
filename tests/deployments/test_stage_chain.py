"""The stage chain over the real stage deployments' classes (without Ray): a card that needs no
extractor attribute is scored beside the extractor, and the image comes out as when it is scored
after it; a failure of either stage fails that image only."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from curator.core.fetch import ImageFetcher
from curator.core.measured import MeasuredImage
from curator.core.settings import InputLimits, UrlFetchSettings
from deployments import stage_chain
from deployments.extractor import AttributeExtractor
from deployments.preprocess import Preprocess
from deployments.scorer import QualityScorer
from deployments.stage_chain import StageChain, merge_stages, needs_extractor
from models import scorer_cards
from models.extractor import EXTRACTOR_MODELS
from models.runtime.request import RuntimeRequest

DEVSET = Path(__file__).resolve().parents[2] / "benchmarks" / "devset" / "images"
PHOTOS = ("magento/wj08-gray_alternate.jpg", "shops/bagisto-p29-1.jpg")
CARD = "card-v1"
LIMITS = InputLimits()


class FakeMethod:
    """A deployment method behind `.remote()`: an awaitable that may be passed on to the next
    stage's `.remote()`, as a DeploymentResponse is; records the arguments it was given."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method
        self.calls: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        async def call() -> Any:
            resolved = [await arg if isinstance(arg, asyncio.Future) else arg for arg in args]
            self.calls.append(tuple(resolved))
            result = self._method(*resolved)
            return await result if inspect.isawaitable(result) else result

        return asyncio.ensure_future(call())


class FakeHandle:
    def __init__(self, deployment: Any) -> None:
        self._methods: dict[str, FakeMethod] = {}
        self._deployment = deployment

    def __getattr__(self, name: str) -> FakeMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._methods:
            self._methods[name] = FakeMethod(getattr(self._deployment, name))
        return self._methods[name]


def instance(deployment: Any, *args: Any) -> Any:
    """The deployment's own class, outside Serve."""
    return deployment.func_or_class(*args)


def unbatched(batch_method: Callable[[list[MeasuredImage]], list[MeasuredImage]]
              ) -> Callable[[MeasuredImage], Any]:
    """A `serve.batch` method as Serve calls it, one image in and out (serve.batch itself needs
    a replica): batches of one."""

    async def one(item: MeasuredImage) -> MeasuredImage:
        (done,) = batch_method([item])
        return done

    return one


@pytest.fixture(scope="module")
def stages() -> SimpleNamespace:
    extractor = instance(AttributeExtractor, list(EXTRACTOR_MODELS.in_order()),
                         RuntimeRequest(8, cpu_threads=1))
    extractor.extract = unbatched(extractor._extract_batch)
    scorer = instance(QualityScorer, CARD, 8)
    scorer.score = unbatched(scorer._score_batch)
    return SimpleNamespace(
        preprocess=instance(Preprocess, LIMITS.max_image_bytes, LIMITS.max_image_pixels),
        extractor=extractor,
        scorer=scorer,
    )


def chain_over(stages: SimpleNamespace, beside: bool = True
               ) -> tuple[StageChain, SimpleNamespace]:
    """The chain over fake handles; `beside`: whether it scores beside the extractor."""
    patch = pytest.MonkeyPatch()
    patch.setattr(stage_chain, "needs_extractor", lambda card: not beside)
    handles = SimpleNamespace(preprocess=FakeHandle(stages.preprocess),
                              extractor=FakeHandle(stages.extractor),
                              scorer=FakeHandle(stages.scorer))
    chain = StageChain(
        handles.preprocess, handles.extractor, {CARD: handles.scorer},
        default_card=CARD, fetcher=ImageFetcher(UrlFetchSettings(), LIMITS.max_image_bytes),
        max_image_bytes=LIMITS.max_image_bytes,
    )
    patch.undo()
    return chain, handles


@pytest.fixture()
def card_needing_people(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """card-v1 as if it also read people.face_count, an extractor attribute."""
    real = scorer_cards.get(CARD)
    needing = SimpleNamespace(needs=(*real.needs, "people.face_count"))
    monkeypatch.setattr(scorer_cards, "get", lambda name: needing if name == CARD else None)
    yield


def measure(chain: StageChain, name: str) -> MeasuredImage:
    return asyncio.run(chain.measure(name, (DEVSET / name).read_bytes(), CARD))


def test_the_released_cards_need_no_extractor_attribute() -> None:
    assert not any(needs_extractor(card) for card in scorer_cards.names())


def test_a_card_reading_extractor_attributes_is_scored_after_the_extractor(
    card_needing_people: None
) -> None:
    assert needs_extractor(CARD)


@pytest.mark.parametrize("name", PHOTOS)
def test_scoring_beside_the_extractor_answers_as_scoring_after_it(
    stages: SimpleNamespace, name: str
) -> None:
    after_chain, after_handles = chain_over(stages, beside=False)
    beside_chain, beside_handles = chain_over(stages, beside=True)
    after, beside = measure(after_chain, name), measure(beside_chain, name)
    assert after.ok and beside.ok
    # Beside: the scorer got the preprocessed image, and the extractor dropped the pixels.
    ((scored,),) = beside_handles.scorer.score.calls
    assert scored.timings_ms is not None and "extractor" not in scored.timings_ms
    assert len(beside_handles.extractor.extract_last.calls) == 1
    assert len(after_handles.extractor.extract.calls) == 1
    assert beside.attributes is not None and after.attributes is not None
    assert list(beside.attributes.items()) == list(after.attributes.items())
    assert beside.boxes == after.boxes
    assert list(beside.timings_ms or {}) == list(after.timings_ms or {}) == [
        "preprocess", "extractor", "scorer"]
    assert beside.batch_sizes == after.batch_sizes
    assert beside.model_inputs is None and after.model_inputs is None


def failing(*args: Any) -> Any:
    raise RuntimeError("replica died")


@pytest.mark.parametrize("beside", [True, False])
@pytest.mark.parametrize("stage", ["extractor", "scorer"])
def test_a_failed_stage_fails_the_image(
    stages: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, stage: str, beside: bool
) -> None:
    chain, _ = chain_over(stages, beside)
    # The model inside the replica raises, as a crashed inference does.
    model = getattr(stages, stage)._extractor if stage == "extractor" else stages.scorer._scorer
    monkeypatch.setattr(model, "extract" if stage == "extractor" else "score", failing)
    measured = measure(chain, PHOTOS[0])
    assert not measured.ok
    assert measured.error is not None and measured.error["code"] == "stage_failed"


def test_an_undecodable_image_keeps_its_own_error(stages: SimpleNamespace) -> None:
    chain, _ = chain_over(stages)
    measured = asyncio.run(chain.measure("junk", b"not an image", CARD))
    assert measured.error is not None and measured.error["code"] != "stage_failed"
    assert measured.model_inputs is None


def test_merging_keeps_either_stages_error() -> None:
    ok = MeasuredImage("a", attributes={"file.longest_side": 10}, timings_ms={"preprocess": 1.0})
    failed = MeasuredImage("a", error={"code": "stage_failed"})
    assert merge_stages(ok, failed) == failed
    assert merge_stages(failed, ok) == failed
