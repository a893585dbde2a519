"""Department systems on NATS: a CloudEvent on ``<prefix>.<source>.report`` read into the
report command, or refused with a machine-readable reason. Pure: no I/O.

Structured mode (``application/cloudevents+json`` body) and binary mode (``ce-`` headers,
body = data) are both read. The report inside is the HTTP report body (``ReportIn``, the
same validation) plus the sender's ticket id ``external_ref``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
)

from services.intake.api import ExternalRef, ReportIn
from services.intake.domain import ReportIssue
from shared.envelope import UnreadableEvent
from shared.reference import UnknownCode, code_of

INGRESS_TYPE = "minqing.ingress.report"
STRUCTURED = "application/cloudevents+json"
RESUBMIT_HEADER = "Minqing-Resubmit-Of"
REASON_CODE_HEADER = "Minqing-Dead-Reason-Code"
REASON_HEADER = "Minqing-Dead-Reason"

# The sender's CloudEvent id: printable ASCII, no spaces at the ends.
IngressId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[!-~](?:[ -~]*[!-~])?$")
]


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


class IngressReport(ReportIn):
    """The report a department system sends: the HTTP report body with its own ticket id
    required; ``source`` may be left out (it is the CloudEvent's source)."""

    source: Annotated[str, AfterValidator(code_of("sources"))] | None = None  # type: ignore[assignment]
    external_ref: ExternalRef


class IngressCloudEvent(Attributes):
    """A report from a department system: a CloudEvent of type ``minqing.ingress.report``
    whose ``source`` is ``/<source code>`` (a longer path below it is fine)."""

    type: Literal["minqing.ingress.report"]
    data: IngressReport


@dataclass(frozen=True)
class IngressMessage:
    """A readable ingress CloudEvent: who sent it, its id, and the report data (unchecked)."""

    source: str
    ingress_id: str
    data: Any
    fingerprint: str  # of the bytes and CloudEvents headers: an identical copy is a copy
    resubmit_of: str | None = None

    @property
    def key(self) -> str:
        """What the consumer's inbox remembers: an identical redelivery is skipped, a
        re-submitted or changed message with the same id is processed (and answered)."""
        again = f"/resubmit/{self.resubmit_of}" if self.resubmit_of else ""
        return f"ingress/{self.source}/{self.ingress_id}/{self.fingerprint}{again}"


def source_token(subject: str, prefix: str) -> str | None:
    """``hotline_12345`` from ``<prefix>.hotline_12345.report``; None for another shape."""
    rest = subject.removeprefix(prefix + ".")
    parts = rest.split(".")
    if rest == subject or len(parts) != 2 or parts[1] != "report":
        return None
    return parts[0]


def read_ingress(
    subject: str,
    body: bytes,
    headers: Mapping[str, str] | None,
    *,
    prefix: str,
    max_bytes: int,
    sources: Collection[str],
) -> IngressMessage:
    """The CloudEvent in one ingress message, or ``Refused`` with the reason."""
    token = source_token(subject, prefix)
    if token is None:
        raise refused("wrong_subject", f"reports go to {prefix}.<source>.report, not {subject}")
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
    _check(event, token, sources)
    return IngressMessage(
        source=token,
        ingress_id=event.id,
        data=data,
        fingerprint=_fingerprint(body, lower),
        resubmit_of=lower.get(RESUBMIT_HEADER.lower()),
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
        raise Refused(*_problems(exc, "not_a_cloudevent", codes={})) from None


def _check(event: Attributes, token: str, sources: Collection[str]) -> None:
    if event.type != INGRESS_TYPE:
        raise refused("wrong_type", f"type must be {INGRESS_TYPE}, not {event.type!r}", "type")
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


def _fingerprint(body: bytes, headers: Mapping[str, str]) -> str:
    digest = hashlib.sha256(body)
    for key in sorted(k for k in headers if k.startswith("ce-") or k == "content-type"):
        digest.update(f"\n{key}:{headers[key]}".encode())
    return digest.hexdigest()[:24]


# ------------------------------------------------------------------------ the report inside


@dataclass(frozen=True)
class IngressCommand:
    """The report command and the hash that tells a retry from a different report."""

    command: ReportIssue
    request_hash: str


def report_command(message: IngressMessage) -> IngressCommand:
    """The report in ``data``, checked as the HTTP body is; its ``source``, if given, must be
    the sender's."""
    if not isinstance(message.data, dict):
        raise refused("invalid_report", "data must be a JSON object: the report", "data")
    try:
        report = IngressReport.model_validate({"source": message.source, **message.data})
    except ValidationError as exc:
        raise Refused(*_problems(exc, "invalid_report", prefix="data.")) from None
    if report.source != message.source:
        raise refused(
            "source_mismatch",
            f"data.source {report.source!r} is not the sender {message.source!r}",
            "data.source",
        )
    digest = hashlib.sha256(report.model_dump_json().encode()).hexdigest()
    return IngressCommand(report.to_command(), digest)


_SINGULAR = {"category": "category", "village": "village", "source": "source"}
_CODES = {"missing": "missing_field", "extra_forbidden": "unknown_field"}


def _problems(
    exc: ValidationError, default: str, prefix: str = "", codes: Mapping[str, str] = _CODES
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        field = prefix + ".".join(str(p) for p in error["loc"]) if error["loc"] else None
        code = codes.get(error["type"], default)
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, UnknownCode) and error["loc"]:
            code = f"unknown_{_SINGULAR.get(str(error['loc'][-1]), 'code')}"
        problems.append(Problem(code, str(error["msg"])[:500], field))
    return problems
