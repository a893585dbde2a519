"""Department systems report progress and resolution on NATS: a CloudEvent on
``<prefix>.<source>.progress`` or ``<prefix>.<source>.resolution`` read into followup's
commands, or refused with a machine-readable reason. Pure: no I/O.

The data is the HTTP body of the same step (``ProgressIn``, ``ResolutionIn``: the same
validation) plus the matter it is about: ``issue_id``, or the department's own ticket id
``external_ref`` it reported the matter with. A department acts as its own unit: the
source code is the unit that resolves or reports progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError, model_validator

from minqing.services.followup.api import ProgressIn, ResolutionIn
from minqing.services.followup.domain import ReportProgress, ResolveIssue
from minqing.shared.contract.reference import code_of
from minqing.shared.ingress.cloudevents import (
    Attributes,
    ExternalRef,
    IngressMessage,
    Refused,
    ingress_type,
    problems,
    refused,
)
from minqing.shared.ingress.kinds import RESOLUTION, read_by
from minqing.shared.web.edge import ULID_PATTERN

KINDS = read_by("followup")  # PROGRESS, RESOLUTION


class MatterRef(BaseModel):
    """The matter a message is about: Minqing's issue id or the sender's ticket id."""

    issue_id: Annotated[str, StringConstraints(pattern=ULID_PATTERN)] | None = None
    external_ref: ExternalRef | None = None

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.issue_id is None) == (self.external_ref is None):
            raise ValueError("name the matter by issue_id or by external_ref (one of them)")
        return self


class IngressResolution(ResolutionIn, MatterRef):
    """A department reports the matter solved: the HTTP resolution body, the matter, and
    ``unit`` left out (it is the sender)."""

    unit: Annotated[str, AfterValidator(code_of("units"))] | None = None  # type: ignore[assignment]


class IngressProgress(ProgressIn, MatterRef):
    """A department reports progress on one milestone: the HTTP progress body and the
    matter."""


class ResolutionCloudEvent(Attributes):
    """A resolution: type ``minqing.ingress.resolution``, ``source`` ``/<source code>``."""

    type: Literal["minqing.ingress.resolution"]
    data: IngressResolution


class ProgressCloudEvent(Attributes):
    """Progress on a milestone: type ``minqing.ingress.progress``."""

    type: Literal["minqing.ingress.progress"]
    data: IngressProgress


@dataclass(frozen=True)
class Step:
    """What a message asks: a command about a matter named by id or by ticket id."""

    command: ResolveIssue | ReportProgress
    issue_id: str | None
    external_ref: str | None


def read_step(message: IngressMessage) -> Step:
    """The command in a progress or resolution message, checked as the HTTP body is; the
    unit is the sender."""
    kind, source = message.kind, message.source
    # The actor: the department system itself, which alone may publish on its source's
    # subjects (NATS permissions, `minqing nats-config`).
    sender = f"system:{source}"
    if kind not in KINDS:
        raise refused("wrong_type", f"type must be one of {', '.join(map(ingress_type, KINDS))}")
    if not isinstance(message.data, dict):
        raise refused(f"invalid_{kind}", f"data must be a JSON object: the {kind}", "data")
    model: type[IngressResolution] | type[IngressProgress] = (
        IngressResolution if kind == RESOLUTION else IngressProgress
    )
    try:
        data = model.model_validate(message.data)
    except ValidationError as exc:
        raise Refused(*problems(exc, f"invalid_{kind}", prefix="data.")) from None
    if isinstance(data, IngressResolution):
        if data.unit is not None and data.unit != source:
            raise refused(
                "source_mismatch",
                f"data.unit {data.unit!r} is not the sender {source!r}: a department "
                "resolves as its own unit",
                "data.unit",
            )
        command: ResolveIssue | ReportProgress = data.model_copy(
            update={"unit": source}
        ).to_command(sender)
    else:
        command = data.to_command(sender, unit=source)
    return Step(command, data.issue_id, data.external_ref)
