"""A report as every channel gives it, checked once: the same codes, aliases, lengths and
ranges whether it came as JSON over HTTP, a CloudEvent on NATS or a row of a list; then
the one command (``ReportIssue``) the use case takes."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from minqing.services.intake.domain import ReportIssue
from minqing.shared.contract.reference import code_of
from minqing.shared.domain.text import Finite, Line, Text
from minqing.shared.ingress.cloudevents import ExternalRef

# A sender's own ticket id: printable, no spaces at the ends.
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 \-]{4,24}$")
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReporterIn(Input):
    name: Annotated[Line, StringConstraints(max_length=100)] | None = None
    phone: Phone | None = None


class LocationIn(Input):
    address: Annotated[Line, StringConstraints(max_length=500)] | None = None
    lat: Annotated[Finite, Field(ge=-90, le=90)] | None = None
    lon: Annotated[Finite, Field(ge=-180, le=180)] | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self


class ReportIn(Input):
    """A matter as a department system, a staff member or a resident reports it."""

    title: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[Text, StringConstraints(min_length=1, max_length=5000)]
    category: Annotated[str, AfterValidator(code_of("categories"))]
    village: Annotated[str, AfterValidator(code_of("villages"))]
    source: Annotated[str, AfterValidator(code_of("sources"))]
    reporter: ReporterIn | None = None
    location: LocationIn | None = None
    recorded_by: Annotated[Line, StringConstraints(min_length=1, max_length=100)] | None = None
    external_ref: ExternalRef | None = None
    # small (solved on the spot) or major (a project); absent: the category's default
    scale: Literal["small", "major"] | None = None

    def to_command(self) -> ReportIssue:
        reporter = self.reporter or ReporterIn()
        location = self.location or LocationIn()
        return ReportIssue(
            title=self.title,
            description=self.description,
            category=self.category,
            village=self.village,
            source=self.source,
            reporter_name=reporter.name or None,
            reporter_phone=reporter.phone,
            address=location.address or None,
            lat=location.lat,
            lon=location.lon,
            recorded_by=self.recorded_by,
            external_ref=self.external_ref,
            scale=self.scale,
        )
