"""Open311 in Minqing's terms: form fields to a report command, filters, the request view,
and the XML the spec names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from xml.etree import ElementTree

import pytest

from minqing.services.intake import status_notes
from minqing.services.intake.channels.open311 import domain, formats
from minqing.services.intake.channels.open311.domain import Open311Error, StoredRequest
from minqing.services.intake.channels.open311.keys import key_hash, new_key
from minqing.shared.contract import reference
from minqing.shared.service.settings import REFERENCE_DIR

REF = reference.load(REFERENCE_DIR)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FORM = {
    "service_code": ["101"],
    "attribute[village]": ["戚庄"],
    "address_string": ["Bus stop"],
    "api_key": ["o311_x"],
    "jurisdiction_id": [""],
}


def refused(call: object) -> list[str]:
    assert callable(call)
    with pytest.raises(Open311Error) as caught:
        call()
    return list(caught.value.descriptions)


def test_a_form_becomes_the_same_report_command_every_channel_builds() -> None:
    form = {
        **FORM,
        "description": ["Light out at the bus stop\nsince Monday"],
        "first_name": ["Qi"],
        "last_name": ["Lan"],
        "phone": ["13912345678"],
        "email": ["qi@example.cn"],
        "device_id": ["dev-1"],
        "lat": ["31.5"],
        "long": ["120.25"],
    }
    command, extras = domain.parse_request(form, REF, "online")
    assert (command.category, command.village, command.source) == (
        "street_lights",
        "qizhuang",
        "online",
    )
    assert command.title == "Light out at the bus stop"
    assert command.description == "Light out at the bus stop\nsince Monday"
    assert (command.reporter_name, command.reporter_phone) == ("Qi Lan", "13912345678")
    assert (command.lat, command.lon, command.address) == (31.5, 120.25, "Bus stop")
    assert (extras.email, extras.device_id, extras.media_url) == ("qi@example.cn", "dev-1", None)


def test_without_a_description_the_service_name_stands_in_and_titles_are_shortened() -> None:
    command, _ = domain.parse_request(FORM, REF, "online")
    assert command.title == command.description == "路灯 Street lights"
    long_line = "word " * 40
    command, _ = domain.parse_request({**FORM, "description": [long_line]}, REF, "online")
    assert len(command.title) == domain.TITLE_FROM_DESCRIPTION and command.title.endswith("…")
    titled = {**FORM, "attribute[title]": ["Bus stop light"]}
    assert domain.parse_request(titled, REF, "online")[0].title == "Bus stop light"


def test_limits_are_the_documented_ones() -> None:
    at_limits = {
        **FORM,
        "description": ["d" * domain.MAX_DESCRIPTION],
        "address_string": ["a" * domain.MAX_ADDRESS],
        "first_name": ["n" * 50],
        "last_name": ["m" * 49],
    }
    command, _ = domain.parse_request(at_limits, REF, "online")
    assert len(command.address or "") == domain.MAX_ADDRESS
    over = {
        **FORM,
        "description": ["d" * (domain.MAX_DESCRIPTION + 1)],
        "address_string": ["a" * (domain.MAX_ADDRESS + 1)],
        "device_id": ["x" * (domain.MAX_ID + 1)],
        "attribute[title]": ["t" * (domain.MAX_TITLE + 1)],
    }
    named = {text.split(":")[0] for text in refused(lambda: domain.parse_request(over, REF, "o"))}
    assert named == {"description", "address_string", "device_id", "attribute[title]"}
    names = {**FORM, "first_name": ["n" * 60], "last_name": ["m" * 60]}
    assert "together exceed" in refused(lambda: domain.parse_request(names, REF, "o"))[0]


@pytest.mark.parametrize(
    ("fields", "fault"),
    [
        ({"lat": ["31.5"]}, "lat and long must be sent together"),
        ({"address_string": [""]}, "a location is required"),
        ({"lat": ["nan"], "long": ["1"]}, "lat"),
        ({"lat": ["inf"], "long": ["1"]}, "lat"),
        ({"attribute[village]": ["Atlantis"]}, "unknown village 'Atlantis'"),
        ({"service_code": ["12"]}, "service_code '12' not found"),
        ({"description": ["bad \x00 byte"]}, "control character"),
        ({"media_url": ["ftp://x/y.jpg"]}, "media_url"),
        ({"address_string": ["two\nlines"]}, "must be one line"),
    ],
)
def test_a_bad_form_is_refused_naming_the_fault(fields: dict[str, list[str]], fault: str) -> None:
    assert fault in " ".join(refused(lambda: domain.parse_request({**FORM, **fields}, REF, "o")))


def test_a_form_without_village_or_location_names_both() -> None:
    nowhere = {k: v for k, v in FORM.items() if k not in ("attribute[village]", "address_string")}
    assert refused(lambda: domain.parse_request(nowhere, REF, "o")) == [
        "attribute[village]: is required",
        "a location is required: lat and long, address_string or address_id",
    ]
    atlantis = {**nowhere, "attribute[village]": ["Atlantis"]}
    faults = refused(lambda: domain.parse_request(atlantis, REF, "o"))
    assert [f.split(":")[0] for f in faults] == ["attribute[village]", "a location is required"]
    half = {**nowhere, "lat": ["95"], "description": ["d" * (domain.MAX_DESCRIPTION + 1)]}
    faults = refused(lambda: domain.parse_request(half, REF, "o"))
    assert {f.split(":")[0] for f in faults} == {
        "attribute[village]",
        "lat",
        "description",
        "lat and long must be sent together",
    }


PHOTOS = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/gif": b"GIF89a\x01\x00\x01\x00",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "image/heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",
}


def test_a_photo_is_of_the_type_it_declares() -> None:
    assert set(PHOTOS) == set(domain.PHOTO_TYPES)
    for declared, content in PHOTOS.items():
        domain.check_photo(declared, content)
        assert domain.photo_type(content) == declared
        for other in set(PHOTOS) - {declared}:
            [fault] = refused(lambda o=other, c=content: domain.check_photo(o, c))
            assert fault == f"media: declared {other}, but the bytes are {declared}"
    for stranger in (b"<svg/>", b"%PDF-1.7", b"", b"\xff\xd8", b"RIFF\x00\x00\x00\x00WAVE"):
        [fault] = refused(lambda s=stranger: domain.check_photo("image/png", s))
        assert "none of the accepted types" in fault


def test_the_request_window_defaults_to_90_days_and_never_exceeds_it() -> None:
    default = domain.parse_query({}, REF, NOW)
    assert (default.start, default.end) == (NOW - timedelta(days=90), NOW)
    since = domain.parse_query({"start_date": ["2026-11-01T00:00:00+08:00"]}, REF, NOW)
    assert since.end == NOW
    until = domain.parse_query({"end_date": ["2026-06-01T00:00:00Z"]}, REF, NOW)
    assert until.start == datetime(2026, 3, 3, tzinfo=UTC)
    listed = domain.parse_query({"service_code": ["101,102", "401"], "status": ["open"]}, REF, NOW)
    assert listed.categories == ("street_lights", "roads", "health")
    assert listed.statuses == ("open",)
    assert listed.limit == domain.MAX_REQUESTS
    ids = domain.parse_query({"service_request_id": ["a,b"], "status": ["bogus"]}, REF, NOW)
    assert ids.ids == ("A", "B") and ids.statuses == ()  # ids override every other filter
    assert (
        "90 days"
        in refused(
            lambda: domain.parse_query(
                {"start_date": ["2026-01-01T00:00:00Z"], "end_date": ["2026-05-01T00:00:00Z"]},
                REF,
                NOW,
            )
        )[0]
    )
    assert "status" in refused(lambda: domain.parse_query({"status": ["pending"]}, REF, NOW))[0]
    many = {"service_request_id": [",".join(["x"] * (domain.MAX_IDS + 1))]}
    assert "at most" in refused(lambda: domain.parse_query(many, REF, NOW))[0]


def test_another_jurisdiction_is_not_found_and_an_empty_one_is_absent() -> None:
    domain.check_jurisdiction(domain.present({"jurisdiction_id": [""]}), "minqing")
    domain.check_jurisdiction({"jurisdiction_id": ["MinQing"]}, "minqing")
    with pytest.raises(Open311Error) as caught:
        domain.check_jurisdiction({"jurisdiction_id": ["sfgov.org"]}, "minqing")
    assert caught.value.status == 404


def stored(**changes: object) -> StoredRequest:
    values: dict[str, object] = {
        "report_id": "01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6",
        "issue_id": "01KB1Y8ZQ4J7ZKQ1V2S3T4W5X6",
        "category": "roads",
        "description": "Pothole",
        "address": None,
        "lat": 31.0,
        "lon": 120.0,
        "received_at": datetime(2026, 11, 25, 1, 0, tzinfo=UTC),
        "status": "open",
        "status_notes": "已交由三岐村党支部办理",
        "unit": "sanqi_branch",
        "deadline": date(2026, 12, 1),
        "updated_at": datetime(2026, 11, 25, 2, 0, tzinfo=UTC),
    }
    values.update(changes)
    return StoredRequest(**values)  # type: ignore[arg-type]


def test_a_request_shows_status_agency_deadline_in_the_town_time() -> None:
    view = domain.request_view(REF, stored(), timezone="Asia/Shanghai", media_base="http://m")
    assert view["agency_responsible"] == "三岐村 Sanqi Village party branch"
    assert view["requested_datetime"] == "2026-11-25T09:00:00+08:00"
    assert view["updated_datetime"] == "2026-11-25T10:00:00+08:00"
    assert view["expected_datetime"] == "2026-12-01T23:59:59+08:00"
    assert (view["service_code"], view["media_url"]) == ("102", None)
    merged = stored(issue_id="01KB1Y8ZQ4J7ZKQ1V2S3T4W5X7", media_id="M1")
    view = domain.request_view(REF, merged, timezone="Asia/Shanghai", media_base="http://m")
    assert view["status_notes"].startswith("已并入服务请求 01KB1Y8ZQ4J7ZKQ1V2S3T4W5X7（同一事项）")
    assert view["media_url"] == "http://m/M1"


def test_xml_repeats_the_spec_element_names_and_escapes_text() -> None:
    response = formats.render(
        "xml",
        "service_requests",
        [{"service_request_id": "1", "description": "<b>&", "lat": None, "ok": True}],
    )
    root = ElementTree.fromstring(response.body)
    [request] = root
    assert (root.tag, request.tag) == ("service_requests", "request")
    assert request.findtext("description") == "<b>&"
    assert request.findtext("lat") == "" and request.findtext("ok") == "true"
    errors = formats.error("json", Open311Error(403, "invalid api_key"))
    assert (errors.status_code, errors.body) == (
        403,
        b'[{"code": 403, "description": "invalid api_key"}]',
    )


def test_keys_are_random_and_only_their_hash_is_kept() -> None:
    first, second = new_key(), new_key()
    assert first != second and first.startswith("o311_") and len(first) >= 45
    assert key_hash(first) == key_hash(first) != key_hash(second)
    assert len(key_hash(first)) == 64 and first not in key_hash(first)


def test_status_notes_are_in_chinese_and_name_the_unit_never_its_code() -> None:
    branch = status_notes.assigned(REF, "sanqi_branch", date(2026, 12, 1), "cn-official")
    assert branch == "已交由三岐村党支部办理，办结期限 2026-12-01（按国家法定工作日计）"
    office = status_notes.resolved(REF, "water_station", "管道已修复", date(2026, 12, 8))
    assert office == "水务站已办结：管道已修复；2026-12-08 前将回访核实（回头看）"
    assert status_notes.unit_name(REF, "no_such_unit") == "责任单位"
