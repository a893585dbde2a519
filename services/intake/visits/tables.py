"""Visits in intake's schema: each door-to-door visit a grid worker or cadre recorded that
found nothing to report (a visit that found a matter is that matter's report, source
``visit``). Not an event: the event contract keys every event by a matter (the envelope's
``subject`` is the issue id, the projection's history is per matter), and a visit that
found nothing is no matter. See docs/loop/visits.md."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
)

from minqing.services.intake.schema import metadata

visits = Table(
    "visits",
    metadata,
    Column("visit_id", Text, primary_key=True),
    Column("visitor", Text, nullable=False),  # who visited: the caller's principal id
    Column("visitor_name", Text, nullable=False),  # the name shown on the pages
    Column("village", Text, nullable=False),
    Column("households", Integer, nullable=False),
    Column("visited_at", DateTime(timezone=True), nullable=False),  # on the phone
    Column("recorded_at", DateTime(timezone=True), nullable=False),  # here
    Column("address", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    # A retry with the same key by the same visitor is the same visit.
    UniqueConstraint("visitor", "idempotency_key", name="visits_visitor_idempotency_key"),
)
Index("visits_village_visited_at", visits.c.village, visits.c.visited_at)
