"""Department systems on NATS: a CloudEvent on ``<prefix>.<source>.report`` read into the
report command, or refused with a machine-readable reason. Pure: no I/O.

Structured mode (``application/cloudevents+json`` body) and binary mode (``ce-`` headers,
body = data) are both read. The report inside is the HTTP report body (``ReportIn``, the
same validation) plus the sender's ticket id ``external_ref``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, ValidationError

from minqing.services.intake.domain import ReportIssue
from minqing.services.intake.inputs import ReportIn
from minqing.shared.contract.reference import code_of
from minqing.shared.ingress.cloudevents import (
    STRUCTURED,
    Attributes,
    ExternalRef,
    IngressMessage,
    Problem,
    Refused,
    ingress_type,
    problems,
    read_cloudevent,
    refused,
)
from minqing.shared.ingress.cloudevents import source_token as _source_token
from minqing.shared.ingress.kinds import REPORT

# Re-exported: the report consumer and its tests use them with the report reader.
__all__ = ["INGRESS_TYPE", "STRUCTURED", "IngressMessage", "Problem", "Refused", "refused"]

KIND = REPORT
INGRESS_TYPE = ingress_type(KIND)


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


def source_token(subject: str, prefix: str) -> str | None:
    """``hotline_12345`` from ``<prefix>.hotline_12345.report``; None for another shape."""
    return _source_token(subject, prefix, (KIND,))


def read_ingress(
    subject: str,
    body: bytes,
    headers: Mapping[str, str] | None,
    *,
    prefix: str,
    max_bytes: int,
    sources: Collection[str],
) -> IngressMessage:
    """The report CloudEvent in one ingress message, or ``Refused`` with the reason."""
    return read_cloudevent(
        subject, body, headers, prefix=prefix, kinds=(KIND,), max_bytes=max_bytes, sources=sources
    )


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
        raise Refused(*problems(exc, "invalid_report", prefix="data.")) from None
    if report.source != message.source:
        raise refused(
            "source_mismatch",
            f"data.source {report.source!r} is not the sender {message.source!r}",
            "data.source",
        )
    digest = hashlib.sha256(report.model_dump_json().encode()).hexdigest()
    return IngressCommand(report.to_command(), digest)
