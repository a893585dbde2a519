"""Intake's rules: what a new report becomes. Pure: no I/O, time comes in as an argument."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import IssueReported


@dataclass(frozen=True)
class ReportIssue:
    """Command: put a matter on the list. Codes are already checked against reference data."""

    title: str
    description: str
    category: str
    village: str
    source: str
    reporter_name: str | None = None
    reporter_phone: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    recorded_by: str | None = None

    @property
    def has_reporter(self) -> bool:
        return bool(self.reporter_name or self.reporter_phone)

    @property
    def actor(self) -> str:
        """Who put it on the list: the staff member who recorded it, else the channel."""
        return self.recorded_by or self.source


def decide_report(command: ReportIssue, reporter_ref: str | None) -> IssueReported:
    """The fact that the matter was accepted; never the reporter's name or phone."""
    return IssueReported(
        title=command.title,
        description=command.description,
        category=command.category,
        village=command.village,
        source=command.source,
        reporter_ref=reporter_ref,
        address=command.address,
        lat=command.lat,
        lon=command.lon,
    )
