"""Open311 GeoReport v2 over HTTP under ``/open311/v2``: parse, call one use case, render.

Parameters are read from the query string and, for POST, the form body too (url-encoded
or multipart); errors are answered in the spec's format (a list of code and description)
in the format the path asks for, including the edge's own (413, 404, 405, 503).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from minqing.services.intake.channels.open311 import domain, formats
from minqing.services.intake.channels.open311.domain import Open311Error, bad_request, not_found
from minqing.services.intake.channels.open311.errors import Open311ErrorFormat
from minqing.services.intake.channels.open311.keys import (
    PAGE_KEY,
    PAGE_KEY_NAME,
    PAGE_SOURCE,
    key_hash,
)
from minqing.services.intake.channels.open311.store import (
    ApiKey,
    Open311Reports,
    active_key,
    ensure_key,
    find_media,
    find_requests,
)
from minqing.services.intake.deps import (
    ClockDep,
    PolicyDep,
    Reference,
    SessionsDep,
    SettingsDep,
)
from minqing.services.intake.handlers import (
    IdempotencyKeyReused,
    ServiceRequest,
    report_service_request,
)
from minqing.shared.contract.reference import ReferenceData
from minqing.shared.domain.ids import new_id
from minqing.shared.domain.text import Line
from minqing.shared.persistence.db import Sessions
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.service.settings import Settings
from minqing.shared.web.deps import from_state

PREFIX = "/open311/v2"
# Uploaded photos: image types a browser shows, never SVG (it can carry script); the bytes
# must be of the declared type (domain.check_photo).
MEDIA_TYPES = domain.PHOTO_TYPES
MAX_FIELDS = 100
CHANGESET = "2026-11-25T00:00:00Z"
MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "public, max-age=86400, immutable",
}


def _raw_query(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


def _query(request: Request) -> dict[str, list[str]]:
    """The query string's parameters, empty ones dropped."""
    return domain.present(_raw_query(request))


async def _form_params(
    request: Request, *, max_form: int
) -> tuple[dict[str, list[str]], UploadFile | None]:
    """Query string and form fields, by name, and the ``media`` file if any. Only a
    multipart body (with a photo) may be larger than ``max_form`` bytes."""
    params = _raw_query(request)
    multipart = request.headers.get("content-type", "").startswith("multipart/")
    length = request.headers.get("content-length", "")
    if not multipart and length.isdigit() and int(length) > max_form:
        raise Open311Error(413, f"a form without a photo is limited to {max_form} bytes")
    try:
        body = await request.form(
            max_files=1, max_fields=MAX_FIELDS, max_part_size=domain.MAX_DESCRIPTION * 4
        )
    except StarletteHTTPException as exc:
        if exc.status_code == 413:
            raise
        raise bad_request(f"the form body cannot be read: {exc.detail}") from None
    upload: UploadFile | None = None
    for name, field in body.multi_items():
        if isinstance(field, UploadFile):
            if name != "media":
                raise bad_request(f"{name}: only the media field may be a file")
            upload = field
        else:
            params.setdefault(name, []).append(field)
    return params, upload


# Units of work on intake's reports and Open311's request tables.
Units = Annotated[UowFactory[Open311Reports], Depends(from_state("open311"))]

# The spec's errors, a list of code and description, in the format the path asks for (XML
# for a format it does not know): documented on every route, as every route answers them.
_ERROR_LIST = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
        "required": ["code", "description"],
    },
}
_IN_SPEC_FORMAT = {"application/json": {"schema": _ERROR_LIST}, "text/xml": {}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A bad request: an unknown format, jurisdiction or parameter"},
    403: {"description": "No valid api_key (creating a request)"},
    404: {"description": "No such service, request, token or media"},
    409: {"description": "The Idempotency-Key was used for another request"},
    413: {"description": "The body is too large"},
}
ERRORS = {code: {**answer, "content": _IN_SPEC_FORMAT} for code, answer in ERRORS.items()}
ERRORS[200] = {"content": {"text/xml": {}}}  # beside JSON: each answer as the path asks
router = APIRouter(prefix=PREFIX, tags=["open311"], responses=ERRORS)


def _base_url(request: Request, settings: Settings) -> str:
    return settings.open311_public_url or str(request.base_url).rstrip("/") + PREFIX


def _check(request: Request, settings: Settings) -> None:
    """The query string names this town's jurisdiction, or none."""
    domain.check_jurisdiction(_query(request), settings.open311_jurisdiction_id)


@router.get("/discovery.{fmt}")
async def discovery(request: Request, fmt: str, settings: SettingsDep) -> Response:
    """Service discovery: this endpoint, its specification and formats."""
    out = formats.format_of(fmt)
    endpoint = {
        "specification": domain.SPECIFICATION,
        "url": _base_url(request, settings),
        "changeset": CHANGESET,
        "type": "production",
        "formats": list(domain.FORMATS.values()),
    }
    return formats.render(
        out,
        "discovery",
        {
            "changeset": CHANGESET,
            "contact": f"Minqing intake for {settings.open311_jurisdiction_id}",
            "key_service": "Api keys are issued by the town (minqing open311-key create)",
            "endpoints": [endpoint],
        },
    )


@router.get("/services.{fmt}")
async def services(request: Request, fmt: str, ref: Reference, settings: SettingsDep) -> Response:
    """The service list: the town's category catalogue."""
    out = formats.format_of(fmt)
    _check(request, settings)
    return formats.render(out, "services", domain.services(ref))


@router.get("/services/{service_code}.{fmt}")
async def service_definition(
    request: Request, service_code: str, fmt: str, ref: Reference, settings: SettingsDep
) -> Response:
    """A service's attributes: the village (required) and a short title."""
    out = formats.format_of(fmt)
    _check(request, settings)
    return formats.render(out, "service_definition", domain.service_definition(ref, service_code))


@router.post("/requests.{fmt}")
async def post_request(
    request: Request,
    fmt: str,
    units: Units,
    sessions: SessionsDep,
    ref: Reference,
    policy: PolicyDep,
    settings: SettingsDep,
    clock: ClockDep,
    idempotency_key: Annotated[Line | None, Header(max_length=200)] = None,
) -> Response:
    """Create a service request (api_key required): a matter on the list at once."""
    out = formats.format_of(fmt)
    params, upload = await _form_params(request, max_form=settings.max_body_bytes)
    given = domain.present(params)
    domain.check_jurisdiction(given, settings.open311_jurisdiction_id)
    key = await _api_key(sessions, given, ref, clock())
    command, extras = domain.parse_request(params, ref, key.source)
    # The app that holds the key is who reports (Open311's own credential: the api_key).
    command = replace(command, actor_id=f"system:open311-{key.key_id.lower()}")
    photo = await _media(upload, settings.max_upload_bytes)
    # Scoped by api key: two apps reporting as the same source keep their keys apart.
    scoped = f"open311:{key.key_id}:{idempotency_key}" if idempotency_key else None
    try:
        accepted = await report_service_request(
            units,
            command,
            ServiceRequest(key.key_id, extras, photo),
            policy=policy,
            idempotency_key=scoped,
            request_hash=_request_hash(given, photo),
        )
    except IdempotencyKeyReused as exc:
        raise Open311Error(409, str(exc)) from exc
    notice = domain.service_notice(ref, command, accepted.duplicate_of)
    body = {"service_request_id": accepted.report_id, "service_notice": notice}
    return formats.render(out, "service_requests", [{**body, "account_id": extras.account_id}])


@router.get("/requests.{fmt}")
async def get_requests(
    request: Request,
    fmt: str,
    sessions: SessionsDep,
    ref: Reference,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    """Requests by id, or by service code, date window (90 days) and status."""
    out = formats.format_of(fmt)
    given = _query(request)
    domain.check_jurisdiction(given, settings.open311_jurisdiction_id)
    query = domain.parse_query(given, ref, clock())
    async with sessions() as session:
        rows = await find_requests(session, query)
    views = [_view(request, row, ref, settings) for row in rows]
    return formats.render(out, "service_requests", views)


@router.get("/requests/{service_request_id}.{fmt}")
async def get_request(
    request: Request,
    service_request_id: str,
    fmt: str,
    sessions: SessionsDep,
    ref: Reference,
    settings: SettingsDep,
) -> Response:
    """One request, as a list of one (as the spec shows it)."""
    out = formats.format_of(fmt)
    _check(request, settings)
    row = await _one(sessions, service_request_id)
    return formats.render(out, "service_requests", [_view(request, row, ref, settings)])


@router.get("/tokens/{token}.{fmt}")
async def get_token(
    request: Request, token: str, fmt: str, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    """Requests are created at once, so a token is the request's own id."""
    out = formats.format_of(fmt)
    _check(request, settings)
    row = await _one(sessions, token, what="token")
    body = [{"service_request_id": row.report_id, "token": token}]
    return formats.render(out, "service_requests", body)


@router.get("/media/{media_id}", responses={200: {"content": {kind: {} for kind in MEDIA_TYPES}}})
async def get_media(media_id: str, sessions: SessionsDep) -> Response:
    """A photo uploaded with a request."""
    async with sessions() as session:
        found = await find_media(session, media_id) if domain.is_request_id(media_id) else None
    if found is None:
        raise not_found(f"media {media_id[:40]!r} not found")
    return Response(found.content, media_type=found.content_type, headers=MEDIA_HEADERS)


async def _api_key(
    sessions: Sessions, given: dict[str, list[str]], ref: ReferenceData, now: datetime
) -> ApiKey:
    """The active api key the request came with, of a source still in the reference data."""
    api_key = domain.single(given, "api_key")
    if api_key is None:
        raise Open311Error(403, "api_key is required to create a service request")
    hashed = key_hash(api_key.strip())
    async with sessions() as session:
        if api_key.strip() == PAGE_KEY:  # the public report page's: its row made at first use
            page = ApiKey(new_id(), PAGE_KEY_NAME, PAGE_SOURCE, now, None)
            await ensure_key(session, page, hashed)
        key = await active_key(session, hashed)
    if key is None:
        raise Open311Error(403, "invalid api_key: unknown or revoked")
    if key.source not in ref.sources:
        raise bad_request(f"this api_key reports as {key.source!r}, no longer a source")
    return key


async def _one(
    sessions: Sessions, request_id: str, what: str = "service_request_id"
) -> domain.StoredRequest:
    rows = []
    if domain.is_request_id(request_id):
        query = domain.RequestQuery(ids=(request_id.upper(),), limit=1)
        async with sessions() as session:
            rows = await find_requests(session, query)
    if not rows:
        raise not_found(f"{what} {request_id[:40]!r} not found")
    return rows[0]


def _view(
    request: Request, row: domain.StoredRequest, ref: ReferenceData, settings: Settings
) -> dict[str, Any]:
    media_base = f"{_base_url(request, settings)}/media"
    return domain.request_view(ref, row, timezone=settings.timezone, media_base=media_base)


async def _media(upload: UploadFile | None, limit: int) -> tuple[str, bytes] | None:
    """The uploaded photo (type, bytes), within the upload limit and of an image type. An
    empty file is no photo (a form's file field left empty)."""
    if upload is None:
        return None
    content = await upload.read(limit + 1)
    if not content:
        return None
    if len(content) > limit:
        raise Open311Error(413, f"media: larger than {limit} bytes")
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type not in MEDIA_TYPES:
        raise bad_request(f"media: type {content_type[:50]!r} not accepted; use {MEDIA_TYPES}")
    domain.check_photo(content_type, content)
    return content_type, content


def _request_hash(given: dict[str, list[str]], photo: tuple[str, bytes] | None) -> str:
    digest = hashlib.sha256()
    for name in sorted(given):
        if name != "api_key":
            digest.update(repr((name, given[name])).encode())
    if photo:
        digest.update(hashlib.sha256(photo[1]).digest())
    return digest.hexdigest()


def install(app: FastAPI, units: UowFactory[Open311Reports]) -> None:
    """Serve Open311 on ``app``: the routes, and errors in the spec's format."""
    app.state.open311 = units  # what the routes depend on, beside minqing.services.intake.deps
    app.include_router(router)

    async def open311_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Open311Error)
        return formats.error(formats.format_of_path(request.url.path), exc)

    app.add_exception_handler(Open311Error, open311_error)
    app.add_middleware(Open311ErrorFormat, prefix=PREFIX)
