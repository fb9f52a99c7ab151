"""The served API fuzzed from its own OpenAPI schema (schemathesis), over real HTTP: every
operation, with bodies, headers and paths that fit the schema and that do not. Whatever is sent,
no answer is a 5xx, every error body is an `ErrorResponse`, and /healthz stays 200.

The "fuzz-lab" application is the technical tier (no model stages, the cheapest graph) with
outcome events enabled. Image URLs in generated bodies are replaced by hostile forms of
loopback and malformed URLs, so the fuzzer never makes the service reach past this machine.

Bounded in examples and seconds: at most EXAMPLES cases per operation and generation mode, and
the whole run stops sending after BUDGET_S. Every input that once failed is kept below as an
explicit case (the regression corpus).
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from ray import serve
from schemathesis import GenerationMode

from curator.contracts.schemas import ErrorResponse
from graphs.online import build_graph
from tests.integration.conftest import OUTCOME_KEY, OUTCOME_KEY_SHA256, TEST_LIMITS, store_args
from tests.support import synthetic

pytestmark = pytest.mark.integration

ROUTE = "/fuzz-lab"
EXAMPLES = 80  # per operation and generation mode
BUDGET_S = 45.0  # for all operations together; the cases left after it send nothing

# What a generated `images[].url` becomes: loopback written every way the client normalises,
# and URLs that do not parse. None may be fetched; none leaves this machine.
HOSTILE_URLS = [
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:8000/healthz",
    "http://\u2460\u2461\u2466.0.0.1:8000/healthz",
    "http://127\u30020\u30020\u30021:8000/healthz",
    "http://2130706433:8000/healthz",
    "http://0x7f.1:8000/healthz",
    "http://127.1:8000/healthz",
    "http://[::ffff:127.0.0.1]:8000/healthz",
    "http://[::7f00:1]:8000/healthz",
    "http://[64:ff9b::7f00:1]:8000/healthz",
    "http://localhost:8000/healthz",
    "http://127.0.0.1./healthz",
    "http://[::1/x",
    "http://host\uff1a80/x.jpg",
    "http://a:99999/x.jpg",
    "ftp://127.0.0.1/x.jpg",
]


JPEG = synthetic.to_jpeg_bytes(synthetic.render_product(size=(200, 200), seed=3))
JPEG_B64 = base64.b64encode(JPEG).decode()


@pytest.fixture(scope="module")
def fuzz_lab(service_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    args = {"limits": TEST_LIMITS, "models": None,
            "store": store_args(Path(tmp_path_factory.mktemp("fuzz-lab"))),
            "outcome_key_sha256": [OUTCOME_KEY_SHA256]}
    serve.run(build_graph(args, {"admission": {"enabled": False}}), name="fuzz-lab",
              route_prefix=ROUTE)
    yield f"{service_url}{ROUTE}"
    serve.delete("fuzz-lab")


def assert_well_formed(response: requests.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        ErrorResponse.model_validate(response.json())


def _steer(case: Any, rng: random.Random) -> Any:
    """Keeps the service off the network, and steers most images past the schema's
    "exactly one of data or url" rule so that the fetcher and decoder see them: any generated
    URL becomes a hostile one, and an image with both sources or none mostly gets one."""
    body = case.body
    if not (isinstance(body, dict) and isinstance(body.get("images"), list)):
        return case
    for image in body["images"]:
        if not isinstance(image, dict):
            continue
        if isinstance(image.get("url"), str):
            image["url"] = rng.choice(HOSTILE_URLS)
        if ("url" in image) == ("data" in image) and rng.random() < 0.8:
            image.pop("url", None)
            image.pop("data", None)
            if rng.random() < 0.5:
                image["url"] = rng.choice(HOSTILE_URLS)
            else:
                image["data"] = rng.choice([JPEG_B64, JPEG_B64[:100], "data:image/png;base64,"
                                            + JPEG_B64, "not base64!"])
    return case


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, session: requests.Session,
          deadline: float, sent: dict[str, int], reached: dict[str, int]) -> None:
    """Up to EXAMPLES cases of one operation in one generation mode, until `deadline`."""
    label = f"{operation.method.upper()} {operation.path}"
    headers = {"X-API-Key": OUTCOME_KEY} if operation.path == "/v1/outcomes" else None
    strategy = st.tuples(operation.as_strategy(mode, headers=headers),
                         st.randoms(use_true_random=False))

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(drawn=strategy)
    def run(drawn: tuple[Any, random.Random]) -> None:
        if time.monotonic() > deadline:
            return
        case = _steer(*drawn)
        response = case.call(base_url=base_url, session=session, timeout=30)
        sent[label] = sent.get(label, 0) + 1
        what = f"{label} ({mode}): {response.status_code} {response.text[:300]}"
        assert response.status_code < 500, f"{what}\n{case.as_curl_command()}"
        if response.status_code == 200 and label.startswith("POST /v1/assess"):
            for image in response.json()["images"]:
                key = (image.get("error") or {}).get("code", image["status"])
                reached[key] = reached.get(key, 0) + 1
        if response.status_code >= 400:
            content_type = response.headers.get("content-type") or [""]  # schemathesis: lists
            assert content_type[0].startswith("application/json"), what
            ErrorResponse.model_validate(response.json())

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has nothing to make invalid.
        assert mode == GenerationMode.NEGATIVE, label


def test_no_input_from_the_schema_makes_a_5xx(fuzz_lab: str) -> None:
    raw = requests.get(f"{fuzz_lab}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    started = time.monotonic()
    sent: dict[str, int] = {}
    reached: dict[str, int] = {}  # per-image outcomes of the listings answered
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()  # an Err (a broken schema) has no ok(): the test fails on it
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, fuzz_lab, session, started + BUDGET_S, sent, reached)
        assert_well_formed(requests.get(f"{fuzz_lab}/healthz", timeout=10), "healthz")
        assert requests.get(f"{fuzz_lab}/healthz", timeout=10).status_code == 200
    print(f"schemathesis sent {sum(sent.values())} requests in "
          f"{time.monotonic() - started:.1f} s: {sent}; images: {reached}")
    assert sum(sent.values()) >= 50  # the budget let it do real work
    assert {"POST /v1/assess", "POST /v1/assess/upload", "POST /v1/outcomes"} <= set(sent)


# --- The regression corpus: each of these answered 500 or fetched loopback before. -----------


def _assess(url: str, images: list[dict[str, Any]]) -> requests.Response:
    return requests.post(f"{url}/v1/assess", timeout=60, json={
        "listing_id": "L-fuzz", "category": "home", "marketplace": "US", "images": images})


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/healthz", "url_refused"),
        ("http://\u2460\u2461\u2466.0.0.1:{port}/healthz", "url_refused"),
        ("http://127\u30020\u30020\u30021:{port}/healthz", "url_refused"),
        ("http://[::7f00:1]:{port}/healthz", "url_refused"),
        ("http://[64:ff9b::7f00:1]:{port}/healthz", "url_refused"),
        ("http://[::1/x", "invalid_url"),
        ("http://host\uff1a{port}/healthz", "invalid_url"),
    ],
    ids=["fullwidth", "circled", "ideographic-stop", "ipv4-compatible", "nat64",
         "unbalanced-bracket", "fullwidth-colon"],
)
def test_hostile_urls_are_per_image_errors(fuzz_lab: str, url: str, code: str) -> None:
    port = fuzz_lab.rsplit(":", 1)[1].split("/", 1)[0]
    answer = _assess(fuzz_lab, [{"image_id": "u", "url": url.format(port=port)},
                                {"image_id": "ok", "data": base64.b64encode(JPEG).decode()}])
    assert answer.status_code == 200, answer.text
    images = {image["image_id"]: image for image in answer.json()["images"]}
    assert images["u"]["error"]["code"] == code
    assert images["ok"]["status"] == "ok"


@pytest.mark.parametrize(
    ("form", "field"),
    [({"listing_id": "not an id"}, "listing_id"), ({"category": "Home!"}, "category"),
     ({"marketplace": "usa"}, "marketplace"),
     ({"listing_id": ":"}, "listing_id")],  # found by schemathesis: 500 before
    ids=["listing-id", "category", "marketplace", "colon-listing-id"],
)
def test_invalid_upload_form_fields_are_422(fuzz_lab: str, form: dict[str, str],
                                            field: str) -> None:
    data = {"listing_id": "L-up", "category": "home", "marketplace": "US", **form}
    answer = requests.post(f"{fuzz_lab}/v1/assess/upload", data=data, timeout=30,
                           files=[("images", ("a.jpg", JPEG, "image/jpeg"))])
    assert answer.status_code == 422, answer.text
    error = ErrorResponse.model_validate(answer.json()).error
    assert (error.code, error.field) == ("invalid_request", field)


def _outcomes(url: str, body: bytes, key: str | None = OUTCOME_KEY) -> requests.Response:
    headers = {"content-type": "application/json"} | ({"X-API-Key": key} if key else {})
    return requests.post(f"{url}/v1/outcomes", data=body, headers=headers, timeout=30)


def _event(**changes: Any) -> bytes:
    event = {"event_id": "fz-1", "type": "purchase", "time": "2026-11-25T12:00:00Z",
             "unit_id": "L-fuzz", "value": 1.5, **changes}
    return json.dumps({"events": [event]}).encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_event(time="9999-12-31T23:00:00-14:00"), "events[0].time"),
        (_event().replace(b"1.5", b"1e999"), "events[0].value"),
        (_event().replace(b"1.5", b"NaN"), "events[0].value"),
    ],
    ids=["datetime-overflow", "1e999", "nan"],
)
def test_outcome_values_out_of_range_are_422(fuzz_lab: str, body: bytes, field: str) -> None:
    answer = _outcomes(fuzz_lab, body)
    assert answer.status_code == 422, answer.text
    assert ErrorResponse.model_validate(answer.json()).error.field == field


def test_outcomes_check_the_key_before_reading_the_body(fuzz_lab: str) -> None:
    for body in (b"{not json", _event(time="9999-12-31T23:00:00-14:00")):
        answer = _outcomes(fuzz_lab, body, key=None)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "unauthorized"
    assert _outcomes(fuzz_lab, b"{not json").json()["error"]["code"] == "invalid_json"
    assert _outcomes(fuzz_lab, _event()).status_code == 202


def test_the_openapi_schema_still_describes_the_outcome_body(fuzz_lab: str) -> None:
    spec = requests.get(f"{fuzz_lab}/openapi.json", timeout=10).json()
    body = spec["paths"]["/v1/outcomes"]["post"]["requestBody"]["content"]["application/json"]
    assert "events" in body["schema"]["properties"]
    assert body["schema"]["properties"]["events"]["items"]["properties"]["time"]


def _multipart(boundary: bytes) -> bytes:
    parts = [
        b'Content-Disposition: form-data; name="listing_id"\r\n\r\nL-mp',
        b'Content-Disposition: form-data; name="category"\r\n\r\nhome',
        b'Content-Disposition: form-data; name="images"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + JPEG[:600],
    ]
    return b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts) + (
        b"--" + boundary + b"--\r\n")


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_multipart_streams_are_4xx_or_answered(fuzz_lab: str, data: st.DataObject) -> None:
    """The multipart parser and the upload route's reading of the form, below the schema:
    a valid stream with bytes set, inserted and cut anywhere (boundaries, headers, names)."""
    boundary = b"fuzzboundary"
    body = bytearray(_multipart(boundary))
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        at = data.draw(st.integers(0, len(body) - 1), label="at")
        edit = data.draw(st.sampled_from(["set", "insert", "cut"]), label="edit")
        if edit == "set":
            body[at] = data.draw(st.sampled_from(b'\r\n-"=;:\x00\xff a'))
        elif edit == "insert":
            body[at:at] = data.draw(st.sampled_from(
                [b"\r\n", b"--" + boundary, b'; filename="', b"\xff\xfe", b"\x00", b'name="x"']))
        else:
            del body[at:at + data.draw(st.integers(1, 40))]
    answer = requests.post(f"{fuzz_lab}/v1/assess/upload", data=bytes(body), timeout=30,
                           headers={"content-type": "multipart/form-data; boundary=fuzzboundary"})
    assert_well_formed(answer, f"mutated multipart {bytes(body)!r}")
