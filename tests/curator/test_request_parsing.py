"""Reading requests: whatever a client sends, the parsers answer with the request or a 4xx
`CuratorError` with a stable code, never another exception (which the ingress would turn into a
500). Property-based (hypothesis); every input that once failed is kept as an explicit example."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curator.contracts.errors import CuratorError
from curator.contracts.schemas import AssessRequest, ImageInput, OutcomeEvent, OutcomesRequest
from curator.core.image_jobs import job_from_input, upload_request
from curator.http.shared import parse_json_body, reading_request
from experiments.records import OutcomeRecord

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
MAX_BYTES = 4096


def outcome_body(**event: object) -> bytes:
    base = {"event_id": "e-1", "type": "purchase", "time": "2026-11-25T12:00:00Z",
            "unit_id": "L-1", "value": 3}
    return json.dumps({"events": [{**base, **event}]}).encode()


# --- base64 -------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=MAX_BYTES + 16), st.booleans())
def test_base64_round_trips_or_is_refused_by_size(data: bytes, as_data_url: bool) -> None:
    encoded = base64.b64encode(data).decode()
    if as_data_url:
        encoded = "data:image/png;base64," + encoded
    job = job_from_input(0, ImageInput(image_id="a", data=encoded), MAX_BYTES)
    if len(data) <= MAX_BYTES:
        assert job.data == data and job.error is None
    else:
        assert job.error is not None and job.error.code == "image_too_large"


@FUZZ
@given(st.text(max_size=200))
@example("\ud800")
@example("data:image/png;base64,====")
@example("QUJD\n")
def test_any_text_as_base64_is_data_or_an_image_error(text: str) -> None:
    job = job_from_input(3, ImageInput(image_id="a", data=text), MAX_BYTES)
    if job.error is not None:
        assert job.error.code in ("invalid_base64", "image_too_large")
        assert job.error.field == "images[3].data"
    else:
        assert isinstance(job.data, bytes)


# --- the multipart form -----------------------------------------------------------------------

_FORM_TEXT = st.one_of(st.text(max_size=80), st.sampled_from(["L-1", "home", "US", "", "us"]))


@FUZZ
@given(_FORM_TEXT, _FORM_TEXT, _FORM_TEXT,
       st.lists(st.one_of(st.none(), st.text(max_size=300)), min_size=0, max_size=8))
@example("bad id!", "home", "US", ["a.jpg"])
@example("L-1", "Not A Category", "US", ["a.jpg"])
@example("L-1", "home", "usa", ["a.jpg"])
@example("L-1", "home", "US", ["a.jpg", "a.jpg"])
@example("L-1", "home", "US", [])
def test_upload_form_is_a_request_or_a_4xx(
    listing_id: str, category: str, marketplace: str, filenames: list[str | None]
) -> None:
    try:
        with reading_request("upload"):
            request = upload_request(listing_id, category, marketplace, filenames, max_images=6)
    except CuratorError as error:
        assert 400 <= error.status < 500 and error.code in (
            "invalid_request", "too_many_images", "duplicate_image_id")
        return
    assert isinstance(request, AssessRequest) and len(request.images) == len(filenames)


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"listing_id": "has space"}, "listing_id"),
        ({"category": "UPPER"}, "category"),
        ({"marketplace": "usa"}, "marketplace"),
    ],
)
def test_invalid_form_fields_are_422_with_the_field(form: dict[str, str], field: str) -> None:
    fields = {"listing_id": "L-1", "category": "home", "marketplace": "US", **form}
    with pytest.raises(CuratorError) as caught, reading_request("upload"):
        upload_request(fields["listing_id"], fields["category"], fields["marketplace"],
                       ["a.jpg"], max_images=6)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        422, "invalid_request", field)


# --- outcome bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (outcome_body(time="9999-12-31T23:00:00-14:00"), 422, "events[0].time"),
        (outcome_body(time="0001-01-01T00:00:00+14:00"), 422, "events[0].time"),
        (outcome_body(time="1970-01-01T00:00:00Z"), 422, "events[0].time"),
        (outcome_body().replace(b'"value": 3', b'"value": 1e999'), 422, "events[0].value"),
        (outcome_body().replace(b'"value": 3', b'"value": NaN'), 422, "events[0].value"),
        (outcome_body().replace(b'"value": 3', b'"value": Infinity'), 422, "events[0].value"),
        (outcome_body(decision_id="\ud800"), 422, "events[0].decision_id"),
        (b"[" * 100_000, 400, None),
        (b"\xff\xfe", 400, None),
        (b"{not json", 400, None),
    ],
    ids=["year-9999-west", "year-1-east", "before-window", "1e999", "nan", "infinity",
         "surrogate", "deep-nesting", "not-utf8", "not-json"],
)
def test_hostile_outcome_bodies_are_4xx(body: bytes, status: int, field: str | None) -> None:
    with pytest.raises(CuratorError) as caught:
        parse_json_body(OutcomesRequest, body)
    assert caught.value.status == status
    assert caught.value.field == field


@FUZZ
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.builds(lambda minutes: timezone(timedelta(minutes=minutes)),
                                        st.integers(-24 * 60 + 1, 24 * 60 - 1))))
@example(datetime(9999, 12, 30, 23, tzinfo=timezone(timedelta(hours=-23, minutes=59))))
def test_any_aware_time_is_in_the_window_or_refused(when: datetime) -> None:
    try:
        event = OutcomeEvent(event_id="e", type="click", time=when, unit_id="u")
    except ValidationError as error:
        assert error.errors()[0]["loc"] == ("time",)
        return
    assert event.time.utcoffset() == timedelta(0)
    assert datetime(2000, 1, 1, tzinfo=UTC) <= event.time < datetime(2100, 1, 1, tzinfo=UTC)
    OutcomeRecord(event_id="e", type="click", occurred_at=event.time, unit_id="u")


@FUZZ
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=20)),
        lambda children: st.one_of(st.lists(children, max_size=4),
                                   st.dictionaries(st.text(max_size=10), children, max_size=4)),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({
        "event_id": st.text(max_size=10), "type": st.sampled_from(["click", "purchase", "x"]),
        "time": st.text(max_size=30), "unit_id": st.text(max_size=10),
        "value": st.one_of(st.floats(), st.text(max_size=5)),
    }).map(lambda event: json.dumps({"events": [event]}).encode()),
))
def test_any_body_is_outcomes_or_a_4xx(body: bytes) -> None:
    try:
        request = parse_json_body(OutcomesRequest, body)
    except CuratorError as error:
        assert error.status in (400, 422)
        return
    for event in request.events:  # what validates also makes a record
        OutcomeRecord(event_id=event.event_id, type=event.type, occurred_at=event.time,
                      unit_id=event.unit_id, decision_id=event.decision_id, value=event.value)


def test_assess_request_refuses_non_finite_numbers() -> None:
    # No float field takes them today; the shared config keeps any future one honest.
    assert AssessRequest.model_config.get("allow_inf_nan") is False
    assert OutcomeEvent.model_config.get("allow_inf_nan") is False


def test_reading_request_turns_the_unexpected_into_a_400() -> None:
    with pytest.raises(CuratorError) as caught, reading_request("upload"):
        raise KeyError("something no rule names")
    assert (caught.value.status, caught.value.code) == (400, "unreadable_request")
