"""Who did what is the product: every event on a test's stream names an authenticated
principal as its actor, never a name a caller typed.

An actor is ``kind:name``: a principal's kind (``person``, ``system``, ``service``: see
``minqing.shared.identity.principal``) or ``resident`` (a reporter or an invited
supervisor, who act with the token of a reply or an invitation). The ``settings`` fixture
checks every event a test leaves on its canonical stream, so each event type is checked
wherever a test makes one; tests/system/integration/test_shihu_article.py also checks the
article's own events and the types they cover.
"""

from __future__ import annotations

import re

import nats
from nats.js.errors import NotFoundError

from minqing.shared.contract.envelope import Envelope
from minqing.shared.service.settings import Settings

PRINCIPAL = re.compile(r"(person|system|service|resident):[A-Za-z0-9._-]+")


async def assert_actors_are_principals(settings: Settings) -> None:
    typed: set[tuple[str, str]] = set()
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        try:
            state = (await js.stream_info(settings.stream_name)).state
        except NotFoundError:  # the test made no stream
            return
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            try:
                message = await js.get_msg(settings.stream_name, seq)
                event = Envelope.model_validate_json(message.data or b"")
            except (NotFoundError, ValueError):
                continue  # a message a test deleted, or made unreadable on purpose
            if not PRINCIPAL.fullmatch(event.actor):
                typed.add((event.type, event.actor))
    finally:
        await nc.close()
    assert typed == set(), f"events whose actor is not a principal: {sorted(typed)}"
