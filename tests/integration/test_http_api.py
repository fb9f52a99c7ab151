"""The real graph over real HTTP: answers, selection, and every bad-input path."""

from __future__ import annotations

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from models import artifacts
from models.runtime.cpu_features import cpu_features
from models.runtime.select import choose_cpu_model, openvino_available
from tests.models.detectors.text_scenes import overlay_scene
from tests.support import synthetic

pytestmark = pytest.mark.integration

PEOPLE_PHOTOS = Path(__file__).resolve().parents[1] / "models" / "data" / "people"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jpeg(**kwargs: Any) -> bytes:
    return synthetic.to_jpeg_bytes(synthetic.render_product(**kwargs))


def assess(url: str, images: list[dict[str, Any]], **fields: Any) -> requests.Response:
    body = {"listing_id": "L-1", "category": "home", "marketplace": "US", "images": images}
    body.update(fields)
    return requests.post(f"{url}/v1/assess", json=body, timeout=60)


def by_id(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {image["image_id"]: image for image in answer["images"]}


def violated_attributes(image: dict[str, Any]) -> set[str]:
    return {v["attribute"] for v in image["verdict"]["violations"]}


def test_health_version_and_docs(service_url: str) -> None:
    health = requests.get(f"{service_url}/healthz", timeout=10).json()
    assert health["status"] == "ok" and len(health["policy_set_version"]) == 12
    version = requests.get(f"{service_url}/v1/version", timeout=10).json()
    assert version["policy"] == {"set_version": health["policy_set_version"]}
    assert version["replica_id"]
    assert version["ray_version"].startswith("2.60")
    backends = version["backends"]
    # No GPU here: each detector falls back to the runtime `auto` picks for it on this CPU
    # (OpenVINO bf16 for the models marked auto_bf16 where the CPU has native bf16, ONNX Runtime
    # otherwise), and says so.
    for model, artifact in [("text", artifacts.TEXT_DETECTOR),
                            ("objects", artifacts.OBJECT_DETECTOR),
                            ("faces_hands", artifacts.PALM_DETECTOR),
                            ("nudity", artifacts.NUDITY_DETECTOR)]:
        cpu_runtime = choose_cpu_model(artifact, "auto", cpu_features(),
                                       openvino_available()).runtime
        assert backends[f"extractor.{model}"].startswith(f"{cpu_runtime} on cpu"), backends
    assert backends["scorer"] == "torch on cpu (card-v1)"
    assert version["models"] == {"scorer_card": "card-v1", "scorer_cards": "card-v1",
                                 "extractor": "text,objects,faces_hands,nudity"}
    spec = requests.get(f"{service_url}/openapi.json", timeout=10).json()
    assert {"/v1/assess", "/v1/assess/upload", "/healthz", "/v1/version",
            "/v1/policies/{category}/{marketplace}"} <= set(spec["paths"])
    assert requests.get(f"{service_url}/docs", timeout=10).status_code == 200


def test_compliant_packshot_is_chosen_over_the_sellers_pick(service_url: str) -> None:
    white = jpeg(size=(1200, 1200), fill=0.85, background="white", seed=1)
    busy = jpeg(size=(1200, 1200), fill=0.85, background="busy", seed=2)
    framed = synthetic.to_jpeg_bytes(
        synthetic.add_border(synthetic.render_product(size=(1200, 1200), seed=3), 24, (20, 20, 20))
    )
    answer = assess(
        service_url,
        [
            {"image_id": "busy", "data": b64(busy), "role": "main"},
            {"image_id": "framed", "data": b64(framed)},
            {"image_id": "white", "data": b64(white)},
        ],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    images = by_id(body)
    assert body["selection"]["main_image_id"] == "white"
    assert body["selection"]["order"][0] == "white"
    assert body["selection"]["main_image_compliant"] is True
    assert images["white"]["action"] == "approve"
    assert images["white"]["eligible_as_main"] is True
    assert images["white"]["verdict"]["evaluated_as"] == "main"
    assert images["busy"]["eligible_as_main"] is False
    # The frame can be trimmed: eligible once fixed, but a compliant image beats a fixable one.
    assert images["framed"]["eligible_as_main"] is True
    # An alternate says why it could not be the main image.
    assert "main.frame.no_border" in {
        v["rule_id"] for v in images["framed"]["verdict_as_main"]["violations"]
    }
    assert images["framed"]["verdict"]["evaluated_as"] == "alternate"
    assert "verdict_as_main" not in images["white"]
    assert images["busy"]["attributes"]["background.white_fraction"] < 0.5
    assert images["framed"]["attributes"]["frame.border"] is True
    assert images["white"]["attributes"]["file.width"] == 1200
    assert 0.75 <= images["white"]["attributes"]["composition.fill_ratio"] <= 0.95
    assert body["policy_version"] and body["decision_id"] and body["variant"] == "control"
    assert body["policy_id"] == "base+us+home"


def test_model_stages_add_text_people_and_quality(service_url: str) -> None:
    scene = overlay_scene(0)  # a packshot on white with text stamped on the background
    overlay = synthetic.to_jpeg_bytes(scene.image)
    clean = jpeg(size=(1200, 1200), seed=12)
    answer = assess(service_url, [{"image_id": "promo", "data": b64(overlay), "role": "main"},
                                  {"image_id": "clean", "data": b64(clean)}])
    assert answer.status_code == 200, answer.text
    images = by_id(answer.json())
    promo, plain = images["promo"], images["clean"]
    assert promo["attributes"]["text.overlay"] is True
    assert promo["eligible_as_main"] is False
    assert any(d["kind"] == "text" and d["label"] == "overlay" for d in promo["detections"])
    assert plain["attributes"]["text.overlay"] is False
    assert answer.json()["selection"]["main_image_id"] == "clean"
    for image in (promo, plain):
        attributes = image["attributes"]
        assert attributes["people.person"] is False and attributes["people.nudity"] is False
        assert attributes["quality.scorer"] == "card-v1"
        assert 0 <= attributes["quality.score"] <= 1
        assert isinstance(attributes["quality.technical"], float)
        assert image["quality"] == {"score": attributes["quality.score"], "scorer": "card-v1"}
        assert set(image["timings_ms"]) == {"preprocess", "extractor", "scorer"}
        assert set(image["batch_sizes"]) == {"extractor", "scorer"}
    # Evaluated as an alternate, text on the background is allowed.
    assert "main.text.no_overlay" not in {v["rule_id"] for v in promo["verdict"]["violations"]}
    assert promo["verdict"]["evaluated_as"] == "alternate"


def test_technical_only_graph_reports_model_rules_not_evaluated(service_url: str) -> None:
    answer = requests.post(
        f"{service_url}/technical/v1/assess",
        json={"listing_id": "L-t", "images": [{"image_id": "a", "data": b64(jpeg(seed=13))}]},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    image = by_id(answer.json())["a"]
    assert image["attributes"]["quality.scorer"] == "card-v0"
    assert not any(name.startswith(("text.", "people.")) for name in image["attributes"])
    assert {"main.text.no_overlay", "main.people.none", "image.people.no_nudity"} <= set(
        image["verdict"]["not_evaluated"]
    )
    assert image["action"] == "approve" and set(image["timings_ms"]) == {"preprocess"}
    version = requests.get(f"{service_url}/technical/v1/version", timeout=10).json()
    assert version["backends"] == {"preprocess": "cpu: pillow + opencv + numpy"}


def test_each_violation_names_rule_value_and_threshold(service_url: str) -> None:
    small_busy = jpeg(size=(400, 400), background="busy", seed=4)
    answer = assess(service_url, [{"image_id": "a", "data": b64(small_busy), "role": "main"}])
    image = by_id(answer.json())["a"]
    # The only image is the main image however bad it is; its verdict is as main.
    assert image["verdict"]["evaluated_as"] == "main"
    assert image["action"] == "reject"
    assert {"background.white_fraction", "file.longest_side"} <= violated_attributes(image)
    for violation in image["verdict"]["violations"]:
        assert violation["rule_id"] and violation["message"] and violation["severity"]
    size = next(v for v in image["verdict"]["violations"] if v["rule_id"] == "image.size.minimum")
    assert size["measured"] == 400 and size["threshold"] == 500
    assert size["severity"] == "warn"  # about the file, not the picture


def test_one_bad_image_does_not_fail_the_listing(service_url: str) -> None:
    good = jpeg(seed=5)
    answer = assess(
        service_url,
        [
            {"image_id": "corrupt", "data": b64(b"\xff\xd8\xff\xe0 definitely not a jpeg")},
            {"image_id": "notb64", "data": "%%% not base64 %%%"},
            {"image_id": "text", "data": b64(b"hello")},
            {"image_id": "good", "data": b64(good)},
        ],
    )
    assert answer.status_code == 200, answer.text
    images = by_id(answer.json())
    assert images["good"]["status"] == "ok"
    assert answer.json()["selection"]["main_image_id"] == "good"
    assert answer.json()["selection"]["order"] == ["good"]
    assert images["corrupt"]["status"] == "error"
    assert images["corrupt"]["error"]["code"] in {"corrupt_image", "unsupported_format"}
    assert images["corrupt"]["error"]["image_id"] == "corrupt"
    assert images["notb64"]["error"] == {
        "code": "invalid_base64",
        "message": "data is not valid base64",
        "field": "images[1].data",
        "image_id": "notb64",
    }
    assert images["text"]["error"]["code"] == "unsupported_format"


def test_pixel_bomb_is_refused_per_image(service_url: str) -> None:
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000), 255).save(buffer, format="PNG")  # 36 MP > 30 MP test limit
    answer = assess(service_url, [{"image_id": "bomb", "data": b64(buffer.getvalue())}])
    error = by_id(answer.json())["bomb"]["error"]
    assert error["code"] == "too_many_pixels"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"listing_id": "L", "images": []}, 422, "invalid_request", "images"),
        ({"images": [{"image_id": "a", "data": "AA=="}]}, 422, "invalid_request", "listing_id"),
        ({"listing_id": "L", "images": [{"image_id": "a"}]}, 422, "invalid_request", "images[0]"),
        ({"listing_id": "L", "images": [{"image_id": "a", "data": "AA==", "url": "http://x/y"}]},
         422, "invalid_request", "images[0]"),
        ({"listing_id": "L", "marketplace": "usa", "images": [{"image_id": "a", "data": "AA=="}]},
         422, "invalid_request", "marketplace"),
        ({"listing_id": "L", "images": [{"image_id": "a", "data": "AA=="}] * 2},
         422, "duplicate_image_id", "images[1].image_id"),
        ({"listing_id": "L", "images": [{"image_id": f"i{n}", "data": "AA=="} for n in range(7)]},
         400, "too_many_images", "images"),
    ],
    ids=["no-images", "no-listing-id", "no-source", "two-sources", "bad-marketplace",
         "duplicate-id", "too-many-images"],
)
def test_bad_requests_get_clear_errors(
    service_url: str, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    answer = requests.post(f"{service_url}/v1/assess", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["field"] == field
    assert error["message"]


def test_invalid_json_and_oversized_body(service_url: str) -> None:
    answer = requests.post(f"{service_url}/v1/assess", data=b"{not json",
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    huge = b"{" + b" " * (7 * 2**20) + b"}"
    answer = requests.post(f"{service_url}/v1/assess", data=huge,
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request_too_large"
    # Chunked upload without Content-Length is counted while streaming.
    chunks = (b" " * 2**20 for _ in range(8))
    answer = requests.post(f"{service_url}/v1/assess", data=chunks,
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    # The service is still up and answering.
    assert requests.get(f"{service_url}/healthz", timeout=10).status_code == 200


def test_image_over_the_byte_limit_is_a_per_image_error(service_url: str) -> None:
    big = b"\xff\xd8" + bytes(3 * 2**20 + 10)  # over the 3 MiB test limit, under the body limit
    answer = assess(service_url, [{"image_id": "big", "data": b64(big)},
                                  {"image_id": "ok", "data": b64(jpeg(seed=6))}])
    images = by_id(answer.json())
    assert images["big"]["error"]["code"] == "image_too_large"
    assert images["ok"]["status"] == "ok"


def test_multipart_upload(service_url: str) -> None:
    files = [
        ("images", ("front.jpg", jpeg(seed=7), "image/jpeg")),
        ("images", ("side.jpg", jpeg(background="busy", seed=8), "image/jpeg")),
    ]
    answer = requests.post(
        f"{service_url}/v1/assess/upload",
        files=files,
        data={"listing_id": "L-up", "marketplace": "UK", "main": "side.jpg"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["marketplace"] == "UK"
    assert {image["image_id"] for image in body["images"]} == {"front.jpg", "side.jpg"}
    assert body["selection"]["main_image_id"] == "front.jpg"


def test_url_images_are_fetched_from_allowed_hosts(
    service_url: str, image_server: tuple[str, Path]
) -> None:
    base, root = image_server
    (root / "p.jpg").write_bytes(jpeg(seed=9))
    answer = assess(service_url, [
        {"image_id": "u", "url": f"{base}/p.jpg"},
        {"image_id": "missing", "url": f"{base}/nope.jpg"},
    ])
    images = by_id(answer.json())
    assert images["u"]["status"] == "ok"
    assert images["u"]["attributes"]["file.format"] == "JPEG"
    assert images["missing"]["error"]["code"] == "url_fetch_failed"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/a.jpg",
        "http://[::1]:8000/healthz",
        "http://user:pw@example.com/a.jpg",
    ],
    ids=["file", "ftp", "metadata", "private", "loopback-v6", "credentials"],
)
def test_unsafe_urls_are_refused(service_url: str, url: str) -> None:
    answer = assess(service_url, [{"image_id": "u", "url": url}])
    assert answer.status_code == 200, answer.text
    error = by_id(answer.json())["u"]["error"]
    assert error["code"] == "url_refused", error


def test_model_runtimes_are_exported_as_metrics(service_url: str, metrics_url: str) -> None:
    """curator_model_runtime: what each model runs on, scraped from Ray's Prometheus endpoint."""
    wanted = {("AttributeExtractor", "nanodet-coco-416"),
              ("AttributeExtractor", "mediapipe-palm-detection-full"),
              ("AttributeExtractor", "nudenet-320n"), ("QualityScorer", "brisque")}
    # Replicas report every few seconds; the test runs minutes after they started, so this also
    # checks that the series outlives Ray's gauge expiry without traffic.
    deadline = time.monotonic() + 120
    found: dict[tuple[str, str], dict[str, str]] = {}
    seen: set[str] = set()
    while time.monotonic() < deadline and not wanted <= found.keys():
        for family in text_string_to_metric_families(requests.get(metrics_url, timeout=10).text):
            seen.add(family.name)
            if family.name != "ray_curator_model_runtime":
                continue
            for sample in family.samples:
                if sample.value == 1.0 and sample.labels.get("application") == "curator":
                    found[(sample.labels["deployment"], sample.labels["model"])] = sample.labels
        time.sleep(2)
    assert wanted <= found.keys(), (found, sorted(name for name in seen if "curator" in name))
    # No GPU here: every model says it runs on the CPU, as /v1/version does, in the runtime and
    # precision cpu_precision auto picks for each on this host: bf16 in OpenVINO for the models
    # marked auto_bf16 on a CPU with native bf16, else FP32 in ONNX Runtime; BRISQUE in torch,
    # float64.
    for (_, model), labels in found.items():
        if model == "brisque":
            continue
        choice = choose_cpu_model(artifacts.get(model), "auto", cpu_features(),
                                  openvino_available())
        assert (labels["device"], labels["runtime"], labels["precision"]) == (
            "cpu", choice.runtime, choice.precision), labels
    assert (found[("QualityScorer", "brisque")]["runtime"],
            found[("QualityScorer", "brisque")]["precision"]) == ("torch", "fp64")


def test_concurrent_listings_give_identical_answers(service_url: str) -> None:
    image = jpeg(seed=10)
    listing = [{"image_id": "a", "data": b64(image)}, {"image_id": "b", "data": b64(jpeg(seed=11))}]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: assess(service_url, listing), range(16)))
    assert all(answer.status_code == 200 for answer in answers)
    # Under load the same image lands in model batches of different sizes and company; its
    # answer must not depend on that (floats within the batch-invariance tolerance).
    first = by_id(answers[0].json())["a"]["attributes"]
    for answer in answers[1:]:
        attributes = by_id(answer.json())["a"]["attributes"]
        assert attributes.keys() == first.keys()
        for name, value in first.items():
            if isinstance(value, float):
                assert attributes[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name
            else:
                assert attributes[name] == value, name
    batch_sizes = [by_id(a.json())["a"]["batch_sizes"]["extractor"] for a in answers]
    assert all(1 <= size <= 16 for size in batch_sizes)
    assert len({a.json()["decision_id"] for a in answers}) == 16


def test_people_in_real_photos_over_http(service_url: str) -> None:
    """The person judgement over HTTP on real photos: a model seen from behind, hands holding a
    bottle with no face in view, and a watch packshot (tests/models/data/people/)."""
    names = {"back": "magento_wb04-blue_back.jpg", "hands": "magento_gear-equipment.jpg",
             "watch": "magento_mg03-br-0.jpg"}
    listing = [{"image_id": key, "data": b64((PEOPLE_PHOTOS / name).read_bytes())}
               for key, name in names.items()]
    answer = assess(service_url, listing, category="jewelry")
    assert answer.status_code == 200, answer.text
    images = by_id(answer.json())
    back, hands, watch = images["back"], images["hands"], images["watch"]
    assert back["attributes"]["people.person"] is True
    assert back["attributes"]["people.body_count"] >= 1
    assert any((d["kind"], d["label"]) == ("person", "body") for d in back["detections"])
    assert hands["attributes"]["people.person"] is True
    assert hands["attributes"]["people.hand_count"] >= 1
    assert watch["attributes"]["people.person"] is False
    assert watch["attributes"]["people.on_product"] is False
    # Jewelry is shown without a model: the packshot is the main image, people block the rest.
    assert answer.json()["selection"]["main_image_id"] == "watch"
    assert "main.people.none" in {v["rule_id"] for v in back["verdict_as_main"]["violations"]}


def test_a_fixable_main_image_comes_back_fixed(service_url: str) -> None:
    small = jpeg(size=(2200, 2200), fill=0.5, background="white", seed=21)
    answer = assess(service_url, [{"image_id": "small", "data": b64(small)}])
    assert answer.status_code == 200, answer.text
    (image,) = answer.json()["images"]
    assert image["action"] == "fix"
    fix = image["fix"]
    assert fix["accepted"] and fix["applied"] == ["pad_to_fill"]
    assert set(fix["resolved"]) == {"main.fill.minimum", "main.fill.target"}
    assert fix["verdict"]["violations"] == []
    fixed = Image.open(io.BytesIO(base64.b64decode(fix["image"])))
    assert fixed.format == "JPEG" and fixed.size == (fix["width"], fix["height"])
    # The model stages ran on the fixed image too: its verdict has nothing "not evaluated"
    # beyond what the original had.
    assert set(fix["verdict"]["not_evaluated"]) <= set(image["verdict"]["not_evaluated"])


def test_effective_policy_endpoint(service_url: str) -> None:
    answer = requests.get(f"{service_url}/v1/policies/apparel/UK", timeout=10)
    assert answer.status_code == 200, answer.text
    policy = answer.json()
    assert policy["layers"] == ["base", "uk", "apparel", "apparel-uk"]
    rules = {rule["id"]: rule for rule in policy["rules"]}
    assert rules["main.size.zoom"]["require"]["value"] == 1600
    assert rules["main.size.zoom"]["sources"] == ["base", "apparel-uk"]
    assert "main.people.on_model" in rules
    kids = requests.get(f"{service_url}/v1/policies/kids_apparel/UK", timeout=10).json()
    assert "main.people.on_model" not in {rule["id"] for rule in kids["rules"]}
    assert kids["policy_set_version"] == policy["policy_set_version"]
    bad = requests.get(f"{service_url}/v1/policies/Apparel/uk", timeout=10)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"]
