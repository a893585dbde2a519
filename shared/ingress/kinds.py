"""The kinds of message department systems send on ``<prefix>.<source>.<kind>``, and the
service that reads each: part of the ingress channel's contract. The consumer that also
answers every other subject of the stream (intake's) learns from this table what the
others read, without importing them."""

from __future__ import annotations

REPORT = "report"  # a matter reported (intake)
PROGRESS = "progress"  # progress on a milestone of the plan (followup)
RESOLUTION = "resolution"  # the matter reported solved (followup)

READ_BY: dict[str, str] = {REPORT: "intake", PROGRESS: "followup", RESOLUTION: "followup"}


def read_by(service: str) -> tuple[str, ...]:
    """The kinds ``service`` reads."""
    return tuple(kind for kind, reader in READ_BY.items() if reader == service)


def read_elsewhere(service: str) -> tuple[str, ...]:
    """The kinds the other services read."""
    return tuple(kind for kind, reader in READ_BY.items() if reader != service)
