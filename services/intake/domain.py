"""Intake's rules: what a new report becomes. Pure: no I/O, time comes in as an argument.

Every channel (HTTP, department systems on NATS, Open311, compiled lists) turns its input
into one ``ReportIssue`` and calls the same use case; no channel holds rules of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, utils

from minqing.shared.contract.events import (
    Event,
    IssueDuplicateReported,
    IssueLookbackFailed,
    IssueReported,
    IssueRevisitRecorded,
    PhotoRef,
)
from minqing.shared.domain.text import mask_phone

__all__ = ["mask_phone"]  # where intake's residents take it from


@dataclass(frozen=True)
class ReportIssue:
    """Command: put a matter on the list. Codes are already checked against reference data.

    ``external_ref`` is the sending system's own ticket id: the same source and reference
    twice is the same matter.
    """

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
    external_ref: str | None = None
    scale: Literal["small", "major"] | None = None
    # The authenticated principal that put it on the list (a staff member's login, a
    # system's token, an Open311 key); None: the department system of ``source`` (NATS).
    actor_id: str | None = None
    # Photos the actor uploaded first (intake's photo store), attached with the report.
    photos: tuple[PhotoRef, ...] = ()

    @property
    def has_reporter(self) -> bool:
        return bool(self.reporter_name or self.reporter_phone)

    @property
    def actor(self) -> str:
        """Who put it on the list: the authenticated principal, else the department system
        that alone may publish on its source's subjects (``recorded_by`` is a name the
        actor gives, kept as ``on_behalf_of``)."""
        return self.actor_id or f"system:{self.source}"


def decide_report(command: ReportIssue, reporter_ref: str | None) -> IssueReported:
    """The fact that the matter was accepted; never the reporter's name or phone."""
    return IssueReported(
        title=command.title,
        description=command.description,
        category=command.category,
        village=command.village,
        source=command.source,
        reporter_ref=reporter_ref,
        reporter_phone_masked=mask_phone(command.reporter_phone),
        address=command.address,
        lat=command.lat,
        lon=command.lon,
        external_ref=command.external_ref,
        scale=command.scale,
        on_behalf_of=command.recorded_by,
        photos=command.photos,
    )


# ------------------------------------------------------------------------------ duplicates


@dataclass(frozen=True)
class OpenMatter:
    """A matter on the list that is not closed, as a candidate for a duplicate report."""

    issue_id: str
    title: str


@dataclass(frozen=True)
class DuplicateMatch:
    issue_id: str
    similarity: float


_CJK = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")


def comparable(text: str) -> str:
    """Lower case, punctuation gone, and every Chinese character a token of its own, so
    word-set similarity works for Chinese (no spaces between words) as for English."""
    return " ".join(_CJK.sub(r" \1 ", utils.default_process(text)).split())


def similarity(a: str, b: str) -> float:
    """0-100: how alike two titles are, as sets of words (or Chinese characters)."""
    return float(fuzz.token_set_ratio(comparable(a), comparable(b)))


def find_duplicate(
    title: str, candidates: Sequence[OpenMatter], threshold: float
) -> DuplicateMatch | None:
    """The open matter (same village and category: the caller's query) whose title is
    most alike, if it reaches ``threshold``; ties go to the first candidate given."""
    best: DuplicateMatch | None = None
    for candidate in candidates:
        score = similarity(title, candidate.title)
        if score >= threshold and (best is None or score > best.similarity):
            best = DuplicateMatch(candidate.issue_id, score)
    return best


def decide_duplicate(
    command: ReportIssue, report_id: str, reporter_ref: str | None, match: DuplicateMatch
) -> IssueDuplicateReported:
    """The fact that another reporter reported a matter already on the list."""
    return IssueDuplicateReported(
        report_id=report_id,
        source=command.source,
        title=command.title,
        description=command.description,
        similarity=round(match.similarity, 1),
        reporter_ref=reporter_ref,
        reporter_phone_masked=mask_phone(command.reporter_phone),
        external_ref=command.external_ref,
        on_behalf_of=command.recorded_by,
        photos=command.photos,
    )


@dataclass(frozen=True)
class Extras:
    """What an Open311 request brings beyond the report; kept by intake, never published."""

    email: str | None
    device_id: str | None
    account_id: str | None
    address_id: str | None
    media_url: str | None


def reopening_notes(event: Event) -> str | None:
    """What the visitor found, when ``event`` reopened the matter: a failed look-back, or a
    failed re-visit of a closed matter after a resident's low score; ``None`` otherwise.
    The one rule by which the channels' status and the residents' pages treat both alike."""
    if isinstance(event, IssueLookbackFailed):
        return event.notes
    if isinstance(event, IssueRevisitRecorded) and event.reopens:
        return event.notes
    return None
