"""Open311 GeoReport v2 in Minqing's terms. Pure: reference data and time come in as arguments.

- The category catalogue is the service list (``service_code`` from reference data).
- A POSTed service request becomes one ``ReportIssue`` (the same command every channel
  builds); its Open311-only fields (email, device, media) stay in intake's own tables.
- A stored report with its matter's status becomes an Open311 ``request``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from minqing.services.intake import status_notes
from minqing.services.intake.domain import Extras, ReportIssue
from minqing.shared.contract.reference import ReferenceData, UnknownCode
from minqing.shared.domain import photos
from minqing.shared.domain.photos import IMAGE_TYPES
from minqing.shared.domain.text import Line, Text

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = {"json": "application/json", "xml": "text/xml"}
Format = Literal["json", "xml"]

# Limits (README "Open311"): the spec's 4,000 characters for a description; the rest ours.
MAX_DESCRIPTION = 4000
MAX_TITLE = 200
MAX_ADDRESS = 500
MAX_NAME = 100
MAX_ID = 200  # device_id, account_id, address_id
MAX_URL = 2000
MAX_IDS = 100  # service_request_id values in one GET requests
MAX_REQUESTS = 1000  # requests in one GET requests answer, newest first (the spec's default)
WINDOW = timedelta(days=90)  # the default and the widest date range of GET requests
TITLE_FROM_DESCRIPTION = 80  # characters of the description's first line used as the title


class Open311Error(Exception):
    """An answer in the spec's error format: HTTP status, and one or more (code, text)."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions or ("error",)

    def body(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": text} for text in self.descriptions]


def bad_request(*descriptions: str) -> Open311Error:
    return Open311Error(400, *descriptions)


def not_found(description: str) -> Open311Error:
    return Open311Error(404, description)


# ------------------------------------------------------------------------- parameters


Params = Mapping[str, Sequence[str]]


def present(params: Params) -> dict[str, list[str]]:
    """Parameters with empty values dropped: the spec says an empty optional argument is
    the same as an absent one (clients send ``jurisdiction_id=`` and the like)."""
    kept = {k: [v for v in vs if v.strip()] for k, vs in params.items()}
    return {k: vs for k, vs in kept.items() if vs}


def single(params: dict[str, list[str]], name: str) -> str | None:
    """The parameter's value; given twice with different values is an error."""
    values = params.get(name, [])
    if len(set(values)) > 1:
        raise bad_request(f"{name} was given more than once with different values")
    return values[0] if values else None


def listed(params: dict[str, list[str]], name: str) -> list[str]:
    """A parameter that may be declared several times and comma-delimited."""
    return [part.strip() for v in params.get(name, []) for part in v.split(",") if part.strip()]


def check_jurisdiction(params: dict[str, list[str]], jurisdiction_id: str) -> None:
    """This endpoint serves one jurisdiction: absent is fine, another one is a 404."""
    given = single(params, "jurisdiction_id")
    if given is not None and given.strip().casefold() != jurisdiction_id.casefold():
        raise not_found(f"jurisdiction_id {given[:100]!r} not found; this is {jurisdiction_id!r}")


# --------------------------------------------------------------------------- services


def services(ref: ReferenceData) -> list[dict[str, Any]]:
    """The service list: one service per category, each with the attributes of
    ``service_definition`` (so ``metadata`` is true)."""
    return [
        {
            "service_code": cat.service_code,
            "service_name": cat.name,
            "description": cat.description,
            "metadata": True,
            "type": "realtime",
            "keywords": ", ".join(cat.aliases),
            "group": ref.groups[cat.group].name,
        }
        for cat in ref.categories.values()
    ]


def category_of(ref: ReferenceData, service_code: str) -> str:
    """The category with this service code, else a 404."""
    code = ref.by_service_code(service_code)
    if code is None:
        valid = ", ".join(c.service_code for c in ref.categories.values())
        raise not_found(f"service_code {service_code[:100]!r} not found; valid: {valid}")
    return code


def service_definition(ref: ReferenceData, service_code: str) -> dict[str, Any]:
    """The attributes a request of this service takes: the village (matters are routed by
    village, so it is required) and an optional short title."""
    category_of(ref, service_code)
    return {
        "service_code": service_code,
        "attributes": [
            {
                "variable": True,
                "code": "village",
                "datatype": "singlevaluelist",
                "required": True,
                "datatype_description": "One of the listed villages and communities",
                "order": 1,
                "description": "Which village or community is it in?",
                "values": [{"key": k, "name": v.name} for k, v in ref.villages.items()],
            },
            {
                "variable": True,
                "code": "title",
                "datatype": "string",
                "required": False,
                "datatype_description": f"Up to {MAX_TITLE} characters, one line",
                "order": 2,
                "description": "A short title; the description's first line if not given",
                "values": [],
            },
        ],
    }


# ---------------------------------------------------------------------- POST requests

Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{4,24}$")]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Url = Annotated[str, StringConstraints(max_length=MAX_URL, pattern=r"^https?://[^\s]+$")]
Short = Annotated[Line, StringConstraints(max_length=MAX_ID)]


def _one_line(value: str) -> str:
    if any(c in value for c in "\t\r\n"):
        raise ValueError("must be one line")
    return value


# ``Line`` stops at 200 characters (its own constraint holds beside a wider one): an
# address may be longer.
Address = Annotated[Text, StringConstraints(max_length=MAX_ADDRESS), AfterValidator(_one_line)]


def _number(value: str) -> float:
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return number


class RequestForm(BaseModel):
    """The fields of POST requests, as sent (strings); unknown fields are ignored, as
    clients send extras."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    service_code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    village: Annotated[Line, StringConstraints(min_length=1)] = Field(alias="attribute[village]")
    title: Annotated[Line, StringConstraints(max_length=MAX_TITLE)] | None = Field(
        None, alias="attribute[title]"
    )
    description: Annotated[Text, StringConstraints(max_length=MAX_DESCRIPTION)] | None = None
    lat: Annotated[float, AfterValidator(_number), Field(ge=-90, le=90)] | None = None
    long: Annotated[float, AfterValidator(_number), Field(ge=-180, le=180)] | None = None
    address_string: Address | None = None
    address_id: Short | None = None
    email: Email | None = None
    device_id: Short | None = None
    account_id: Short | None = None
    first_name: Annotated[Line, StringConstraints(max_length=MAX_NAME)] | None = None
    last_name: Annotated[Line, StringConstraints(max_length=MAX_NAME)] | None = None
    phone: Phone | None = None
    media_url: Url | None = None

    @model_validator(mode="after")
    def _names_fit(self) -> Self:
        name = " ".join(n for n in (self.first_name, self.last_name) if n)
        if len(name) > MAX_NAME:
            raise ValueError(f"first_name and last_name together exceed {MAX_NAME} characters")
        return self


def _location_faults(values: Mapping[str, str]) -> list[str]:
    """What is wrong with where the request is, read from the fields as sent: checked
    beside the fields' own faults (an ``after`` validator would run only once every field
    is valid, so a form missing both the village and the location would name only one)."""
    if ("lat" in values) != ("long" in values):
        return ["lat and long must be sent together"]
    if not {"lat", "address_string", "address_id"} & values.keys():
        return ["a location is required: lat and long, address_string or address_id"]
    return []


# The photo types a request's ``media`` may be (shared/domain/photos.py checks the bytes).
PHOTO_TYPES = IMAGE_TYPES
photo_type = photos.photo_type


def check_photo(content_type: str, content: bytes) -> None:
    """A photo is stored and served as the type its client declared: refuse bytes of
    another type (a renamed file, or a page or script posing as an image)."""
    if problem := photos.photo_mismatch(content_type, content, PHOTO_TYPES):
        raise bad_request(f"media: {problem}")


ALIASES = {"attribute[village]": "village", "attribute[title]": "title"}


def parse_request(params: Params, ref: ReferenceData, source: str) -> tuple[ReportIssue, Extras]:
    """The command and the extras of a POST requests; every fault as a 400 listing all."""
    given = present(params)
    # Only the last value of a repeated field counts, as an HTML form would send it.
    values = {name: vs[-1] for name, vs in given.items()}
    faults = _location_faults(values)
    try:
        form = RequestForm.model_validate(values)
    except ValidationError as exc:
        raise bad_request(*(_describe(e) for e in exc.errors()), *faults) from None
    category = category_of(ref, form.service_code)
    try:
        village = ref.resolve("villages", form.village)
    except UnknownCode as exc:
        faults.insert(0, f"attribute[village]: {exc}")
    if faults:
        raise bad_request(*faults)
    service_name = ref.categories[category].name
    description = form.description or service_name
    reporter = " ".join(n for n in (form.first_name, form.last_name) if n) or None
    command = ReportIssue(
        title=form.title or _title(description),
        description=description,
        category=category,
        village=village,
        source=source,
        reporter_name=reporter,
        reporter_phone=form.phone,
        address=form.address_string,
        lat=form.lat,
        lon=form.long,
    )
    extras = Extras(form.email, form.device_id, form.account_id, form.address_id, form.media_url)
    return command, extras


def _title(description: str) -> str:
    first = description.strip().splitlines()[0].strip() if description.strip() else ""
    if len(first) <= TITLE_FROM_DESCRIPTION:
        return first
    return first[: TITLE_FROM_DESCRIPTION - 1].rstrip() + "…"


_FIELD = {"village": "attribute[village]", "title": "attribute[title]"}


def _describe(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    name = ".".join(_FIELD.get(part, part) for part in loc)
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "is required"
    return f"{name}: {message}" if name else message


def service_notice(ref: ReferenceData, command: ReportIssue, duplicate_of: str | None) -> str:
    """What happens next: the unit it is routed to and its time limit, or the matter
    already on the list that it joined."""
    if duplicate_of:
        return (
            f"Already reported as service request {duplicate_of}: this report joins it, "
            "and its status is that matter's."
        )
    route = ref.route(command.category, command.village)
    return (
        f"Routed to {unit_name(ref, route.unit)}; to be handled within "
        f"{route.working_days} working days."
    )


def unit_name(ref: ReferenceData, unit: str) -> str:
    """A unit's name: a town office's, or '<village name> party branch'."""
    if unit in ref.units:
        return ref.units[unit].name
    for code, village in ref.villages.items():
        if village.branch(code) == unit:
            return f"{village.name} party branch"
    return unit


# ----------------------------------------------------------------------- GET requests

_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class RequestQuery:
    """Which requests GET requests lists: ids alone, or categories, a window and statuses."""

    ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # A listing (not a lookup by id) shows only public channels' and categories' matters.
    public_sources: tuple[str, ...] | None = None
    public_categories: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] = ()
    limit: int = MAX_REQUESTS


def parse_query(params: Params, ref: ReferenceData, now: datetime) -> RequestQuery:
    """The filters of GET requests. ``service_request_id`` overrides all others; without
    it, the window is the last 90 days unless dates are given, and never wider."""
    given = present(params)
    ids = listed(given, "service_request_id")
    if ids:
        if len(ids) > MAX_IDS:
            raise bad_request(f"service_request_id: at most {MAX_IDS} ids at once")
        return RequestQuery(ids=tuple(i.upper() for i in ids))
    categories = tuple(category_of(ref, code) for code in listed(given, "service_code"))
    statuses = tuple(listed(given, "status"))
    if bad := [s for s in statuses if s not in ("open", "closed")]:
        raise bad_request(f"status: {bad[0][:50]!r} is not one of open, closed")
    start, end = (_w3(given, name) for name in ("start_date", "end_date"))
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        start = end - WINDOW
    if end is None:
        end = min(start + WINDOW, now)
    if end < start:
        raise bad_request("end_date is before start_date")
    if end - start > WINDOW:
        raise bad_request("start_date to end_date may not span more than 90 days")
    return RequestQuery(
        categories=categories,
        start=start,
        end=end,
        statuses=statuses,
        public_sources=ref.public("sources"),
        public_categories=ref.public("categories"),
    )


def _w3(params: dict[str, list[str]], name: str) -> datetime | None:
    value = single(params, name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad_request(f"{name}: use the w3 format with a time zone, e.g. 2010-01-01T00:00:00Z")
    return moment


def is_request_id(value: str) -> bool:
    return bool(_ID.fullmatch(value.upper()))


@dataclass(frozen=True)
class StoredRequest:
    """A report as GET requests shows it, with its matter's status."""

    report_id: str
    issue_id: str
    category: str
    description: str
    address: str | None
    lat: float | None
    lon: float | None
    received_at: datetime
    status: str
    status_notes: str
    unit: str | None
    deadline: date | None
    updated_at: datetime
    address_id: str | None = None
    media_url: str | None = None
    media_id: str | None = None


def request_view(
    ref: ReferenceData, row: StoredRequest, *, timezone: str, media_base: str
) -> dict[str, Any]:
    """One Open311 ``request``; never the reporter's name, phone or email."""
    zone = ZoneInfo(timezone)
    category = ref.categories.get(row.category)
    merged = row.issue_id != row.report_id
    notes = row.status_notes
    if merged:
        notes = status_notes.merged(row.issue_id, notes)
    media = f"{media_base}/{row.media_id}" if row.media_id else row.media_url
    return {
        "service_request_id": row.report_id,
        "status": row.status,
        "status_notes": notes,
        "service_name": category.name if category else row.category,
        "service_code": category.service_code if category else None,
        "description": row.description,
        "agency_responsible": unit_name(ref, row.unit) if row.unit else None,
        "service_notice": None,
        "requested_datetime": w3(row.received_at, zone),
        "updated_datetime": w3(max(row.updated_at, row.received_at), zone),
        "expected_datetime": w3(_end_of(row.deadline, zone), zone) if row.deadline else None,
        "address": row.address,
        "address_id": row.address_id,
        "zipcode": None,
        "lat": row.lat,
        "long": row.lon,
        "media_url": media,
    }


def _end_of(day: date, zone: ZoneInfo) -> datetime:
    """A deadline date means: by the end of that day in the town's time zone."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=zone)


def w3(moment: datetime, zone: ZoneInfo) -> str:
    """The spec's date format: ISO 8601 to the second with the offset, e.g.
    2026-11-25T19:30:00+08:00."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).isoformat(timespec="seconds")
