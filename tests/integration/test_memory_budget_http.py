"""The decode memory budget over real HTTP against the served graphs (issue 13): a bomb under
the pixel limit is refused per image from its header, a listing of bombs is refused whole (413)
before any is decoded, whether uploaded or fetched, and a Preprocess replica never holds more
decoding memory than its budget however many listings arrive at once.

The test graphs run with `decode_memory_bytes` 256 MiB (conftest.TEST_LIMITS)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from ray import serve

from graphs.online import build_graph
from models.decode import DECODE_BYTES_PER_PIXEL
from tests.integration.conftest import TEST_LIMITS, store_args
from tests.support import synthetic

pytestmark = pytest.mark.integration

BUDGET = int(TEST_LIMITS["decode_memory_bytes"])
# 6 MP of 16-bit grey in ~12 KB: 114 MiB to decode, so two fit in the budget and three do not.
BOMB = synthetic.bomb_png(3000, 2000)
BOMB_COST = 3000 * 2000 * DECODE_BYTES_PER_PIXEL["I;16"]
GOOD = synthetic.to_jpeg_bytes(synthetic.render_product(size=(600, 600), seed=5))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assess(url: str, images: list[dict[str, Any]], listing_id: str = "L-mem") -> requests.Response:
    body = {"listing_id": listing_id, "category": "home", "marketplace": "US", "images": images}
    return requests.post(f"{url}/v1/assess", json=body, timeout=120)


@pytest.fixture(scope="module")
def budget_lab(service_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The technical graph (one Preprocess replica) without load shedding, so that concurrent
    listings all reach the replica: the package's technical app sheds at its admission limit."""
    args = {"limits": TEST_LIMITS, "models": None,
            "store": store_args(Path(tmp_path_factory.mktemp("budget-lab")))}
    serve.run(build_graph(args, {"admission": {"enabled": False}}), name="budget-lab",
              route_prefix="/budget-lab")
    yield f"{service_url}/budget-lab"
    serve.delete("budget-lab")


def test_the_bombs_fit_the_test_budget_as_intended() -> None:
    assert len(BOMB) < 20_000
    assert 2 * BOMB_COST <= BUDGET < 3 * BOMB_COST


def test_a_bomb_under_the_pixel_limit_is_refused_per_image(service_url: str) -> None:
    # 16 MP, under the 30 MP limit, but 16-bit: ~305 MiB to decode, more than the budget.
    bomb = synthetic.bomb_png(4000, 4000)
    answer = assess(service_url, [{"image_id": "bomb", "data": b64(bomb)},
                                  {"image_id": "good", "data": b64(GOOD)}])
    assert answer.status_code == 200, answer.text
    images = {image["image_id"]: image for image in answer.json()["images"]}
    error = images["bomb"]["error"]
    assert (images["bomb"]["status"], error["code"], error["image_id"]) == (
        "error", "too_many_pixels", "bomb")
    assert "MiB a replica decodes at once" in error["message"]
    assert images["good"]["status"] == "ok"
    assert answer.json()["selection"]["main_image_id"] == "good"


def test_a_listing_of_bombs_is_refused_whole_before_decoding(service_url: str) -> None:
    answer = assess(service_url, [{"image_id": f"b{i}", "data": b64(BOMB)} for i in range(4)])
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("listing_too_large", "images")
    assert "4 images" in error["message"]


def test_a_listing_of_bombs_is_refused_on_the_upload_route(budget_lab: str) -> None:
    files = [("images", (f"b{i}.png", BOMB, "image/png")) for i in range(3)]
    answer = requests.post(f"{budget_lab}/v1/assess/upload", files=files,
                           data={"listing_id": "L-up"}, timeout=60)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "listing_too_large"


def test_a_listing_of_fetched_bombs_is_refused_once_fetched(
    service_url: str, image_server: tuple[str, Path]
) -> None:
    base, root = image_server
    (root / "bomb.png").write_bytes(BOMB)
    answer = assess(service_url, [{"image_id": f"u{i}", "url": f"{base}/bomb.png"}
                                  for i in range(3)])
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "listing_too_large"


def test_a_replica_decodes_within_its_budget_under_concurrent_listings(budget_lab: str) -> None:
    """Five listings of two bombs each (each listing fits) at once, on one Preprocess replica:
    ten images that would take 1.1 GiB together are decoded at most two at a time, the rest
    wait their turn, and every image is assessed."""
    preprocess = serve.get_deployment_handle("Preprocess", app_name="budget-lab")
    before = preprocess.decode_budget.remote().result()
    assert before["capacity"] == BUDGET

    def listing(index: int) -> requests.Response:
        return assess(budget_lab, [{"image_id": f"b{i}", "data": b64(BOMB)} for i in range(2)],
                      listing_id=f"L-conc-{index}")

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(listing, range(5)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert [image["status"] for image in answer.json()["images"]] == ["ok", "ok"]
    after = preprocess.decode_budget.remote().result()
    print("decode budget of the Preprocess replica:", after)
    assert after["in_use"] == 0
    assert 2 * BOMB_COST <= after["peak"] <= BUDGET
    assert after["waits"] > before["waits"]
