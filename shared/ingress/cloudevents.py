"""Reading a CloudEvent sent on ``<prefix>.<source>.<kind>``, or refusing it with a
machine-readable reason. Pure: no I/O.

Structured mode (``application/cloudevents+json`` body) and binary mode (``ce-`` headers,
body = data) are both read. The type must be ``minqing.ingress.<kind>`` and the source
``/<source code>`` of the subject's source; what ``data`` means is the consumer's business.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints, ValidationError

from minqing.shared.contract.envelope import UnreadableEvent
from minqing.shared.contract.reference import UnknownCode

STRUCTURED = "application/cloudevents+json"
RESUBMIT_HEADER = "Minqing-Resubmit-Of"
REASON_CODE_HEADER = "Minqing-Dead-Reason-Code"
REASON_HEADER = "Minqing-Dead-Reason"
TYPE_PREFIX = "minqing.ingress."

# The sender's CloudEvent id, and its own ticket id of a matter (``external_ref``):
# printable ASCII, no spaces at the ends.
ID_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
ID_MAX_LENGTH = 200
IngressId = Annotated[
    str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
]
ExternalRef = IngressId


def ingress_type(kind: str) -> str:
    """The CloudEvent type of a message on ``<prefix>.<source>.<kind>``."""
    return TYPE_PREFIX + kind


@dataclass(frozen=True)
class Problem:
    """One reason a message cannot be accepted: ``code`` for machines, ``message`` for people."""

    code: str
    message: str
    field: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "message": self.message}


class Refused(UnreadableEvent):
    """The message cannot be accepted; ``problems[0].code`` is the dead letter's reason code."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(_line(p) for p in problems))
        self.problems = problems
        self.code = problems[0].code


def _line(problem: Problem) -> str:
    return f"{problem.field}: {problem.message}" if problem.field else problem.message


def refused(code: str, message: str, field: str | None = None) -> Refused:
    return Refused(Problem(code, message, field))


class Attributes(BaseModel):
    """CloudEvents 1.0 context attributes; extension attributes are allowed and ignored."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: IngressId
    source: Annotated[str, StringConstraints(max_length=500, pattern=r"^/[^/\s]+(/\S*)?$")]
    type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    time: AwareDatetime | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None


@dataclass(frozen=True)
class IngressMessage:
    """A readable ingress CloudEvent: who sent it, its id, and the data (unchecked)."""

    source: str
    ingress_id: str
    data: Any
    fingerprint: str  # of the bytes and CloudEvents headers: an identical copy is a copy
    resubmit_of: str | None = None
    kind: str = "report"

    @property
    def key(self) -> str:
        """What the consumer's inbox remembers: an identical redelivery is skipped, a
        re-submitted or changed message with the same id is processed (and answered)."""
        again = f"/resubmit/{self.resubmit_of}" if self.resubmit_of else ""
        return f"ingress/{self.source}/{self.ingress_id}/{self.fingerprint}{again}"


def subject_parts(subject: str, prefix: str) -> tuple[str, str] | None:
    """``("hotline_12345", "report")`` from ``<prefix>.hotline_12345.report``; None for
    another shape."""
    rest = subject.removeprefix(prefix + ".")
    parts = rest.split(".")
    if rest == subject or len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def source_token(subject: str, prefix: str, kinds: Collection[str] = ("report",)) -> str | None:
    """``hotline_12345`` from ``<prefix>.hotline_12345.<kind>``; None for another shape."""
    parts = subject_parts(subject, prefix)
    return parts[0] if parts is not None and parts[1] in kinds else None


def read_cloudevent(
    subject: str,
    body: bytes,
    headers: Mapping[str, str] | None,
    *,
    prefix: str,
    kinds: Collection[str],
    max_bytes: int,
    sources: Collection[str],
) -> IngressMessage:
    """The CloudEvent in one ingress message, or ``Refused`` with the reason."""
    parts = subject_parts(subject, prefix)
    if parts is None or parts[1] not in kinds:
        shapes = " or ".join(f"{prefix}.<source>.{k}" for k in sorted(kinds))
        raise refused("wrong_subject", f"messages go to {shapes}, not {subject}")
    token, kind = parts
    if len(body) > max_bytes:
        raise refused(
            "too_large", f"the message body is {len(body)} bytes; the limit is {max_bytes}"
        )
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    if "ce-specversion" in lower:
        attributes = {k[3:]: v for k, v in lower.items() if k.startswith("ce-")}
        if "content-type" in lower:
            attributes["datacontenttype"] = lower["content-type"]
        data = _json(body, "data") if body else None
    else:
        content_type = lower.get("content-type", STRUCTURED)
        if _media_type(content_type) != STRUCTURED:
            raise refused(
                "unsupported_content_type",
                f"content-type {content_type[:100]!r}: send {STRUCTURED} (structured mode) "
                "or ce- headers (binary mode)",
            )
        attributes = _json(body, None)
        if not isinstance(attributes, dict):
            raise refused("not_a_cloudevent", "the body must be a JSON object (a CloudEvent)")
        data = attributes.pop("data", None)
        attributes.pop("data_base64", None)
    event = _attributes(attributes)
    _check(event, token, ingress_type(kind), sources)
    return IngressMessage(
        source=token,
        ingress_id=event.id,
        data=data,
        fingerprint=_fingerprint(body, lower),
        resubmit_of=lower.get(RESUBMIT_HEADER.lower()),
        kind=kind,
    )


def _json(body: bytes, field: str | None) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the body is not UTF-8 ({exc.reason} at byte {exc.start})"
        raise refused("not_utf8", message, field) from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise refused("not_json", f"the body is not JSON: {str(exc)[:200]}", field) from None


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _attributes(attributes: dict[str, Any]) -> Attributes:
    try:
        return Attributes.model_validate(attributes)
    except ValidationError as exc:
        raise Refused(*problems(exc, "not_a_cloudevent", codes={})) from None


def _check(event: Attributes, token: str, expected: str, sources: Collection[str]) -> None:
    if event.type != expected:
        raise refused("wrong_type", f"type must be {expected}, not {event.type!r}", "type")
    if event.datacontenttype and _media_type(event.datacontenttype) != "application/json":
        raise refused(
            "unsupported_content_type",
            f"datacontenttype must be application/json, not {event.datacontenttype[:100]!r}",
            "datacontenttype",
        )
    code = event.source.split("/")[1]
    if code != token:
        raise refused(
            "source_mismatch",
            f"source {event.source!r} does not match the subject's source {token!r}",
            "source",
        )
    if code not in sources:
        raise refused("unknown_source", f"unknown source {code!r}", "source")


def outcome_id(body: bytes, headers: Mapping[str, str] | None, stream: str, seq: int) -> str:
    """What a message's outcome is kept under, so that its sender finds it even when the
    message is refused before it is read: its CloudEvent id (the ``ce-id`` header in binary
    mode; in structured mode the ``id`` of the JSON object, even when the JSON is broken
    after it); else the ``Nats-Msg-Id`` its sender set; else its place in the stream,
    ``<stream>/<sequence>``, as the sender's publish ack gave it."""
    lower = {k.lower(): v for k, v in (headers or {}).items()}
    if "ce-specversion" in lower:
        candidates = [lower.get("ce-id")]
    else:
        candidates = [_body_id(body.decode("utf-8", errors="replace")), lower.get("ce-id")]
    candidates.append(lower.get("nats-msg-id"))
    for candidate in candidates:
        if candidate is not None and _is_id(candidate):
            return candidate
    return f"{stream}/{seq}"


_ID = re.compile(ID_PATTERN)
# A JSON string or a bracket: enough to follow the nesting of broken JSON.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_COLON = re.compile(r"[ \t\n\r]*:[ \t\n\r]*")


def _is_id(value: object) -> bool:
    return isinstance(value, str) and len(value) <= ID_MAX_LENGTH and bool(_ID.match(value))


def _body_id(text: str) -> str | None:
    """The ``id`` member of the JSON object in ``text``: parsed when it is JSON, else
    followed token by token up to the first ``"id":`` at the object's top level."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        found = value.get("id") if isinstance(value, dict) else None
        return found if isinstance(found, str) else None
    depth = 0
    for token in _TOKEN.finditer(text):
        if token.group() in ("{", "["):
            depth += 1
        elif token.group() in ("}", "]"):
            depth -= 1
        elif depth == 1 and token.group() == '"id"' and (colon := _COLON.match(text, token.end())):
            try:
                found, _ = json.JSONDecoder().raw_decode(text, colon.end())
            except (ValueError, RecursionError):
                return None
            return found if isinstance(found, str) else None
    return None


def _fingerprint(body: bytes, headers: Mapping[str, str]) -> str:
    digest = hashlib.sha256(body)
    for key in sorted(k for k in headers if k.startswith("ce-") or k == "content-type"):
        digest.update(f"\n{key}:{headers[key]}".encode())
    return digest.hexdigest()[:24]


_SINGULAR = {"category": "category", "village": "village", "source": "source"}
_CODES = {"missing": "missing_field", "extra_forbidden": "unknown_field"}


def problems(
    exc: ValidationError, default: str, prefix: str = "", codes: Mapping[str, str] = _CODES
) -> list[Problem]:
    """The problems of a pydantic validation error, each with its reason code."""
    found = []
    for error in exc.errors():
        field = prefix + ".".join(str(p) for p in error["loc"]) if error["loc"] else None
        code = codes.get(error["type"], default)
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, UnknownCode) and error["loc"]:
            code = f"unknown_{_SINGULAR.get(str(error['loc'][-1]), 'code')}"
        found.append(Problem(code, str(error["msg"])[:500], field))
    return found
