"""Who did what is the product: every event on a test's stream names an authenticated
principal as its actor, never a name a caller typed.

An actor is ``kind:name``: a principal's kind (``person``, ``system``, ``service``: see
``minqing.shared.identity.principal``) or ``resident`` (a reporter or an invited
supervisor, who act with the token of a reply or an invitation). The ``settings`` fixture
checks every event a test leaves on its canonical stream, so each event type is checked
wherever a test makes one, and a full run of the suite fails if some registered event type
was checked nowhere (``tests/conftest.py``); tests/system/integration/test_shihu_article.py
also checks the article's own events and the types they cover.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nats
from nats.js.errors import NotFoundError

from minqing.shared.contract.envelope import Envelope
from minqing.shared.service.settings import Settings

PRINCIPAL = re.compile(r"(person|system|service|resident):[A-Za-z0-9._-]+")
# Where each process of a test session notes the event types it checked (tests/conftest.py
# sets it; a full run then fails if some registered event type was never checked).
SEEN_DIR = "MINQING_TEST_ACTORS_DIR"


def note_checked(types: set[str]) -> None:
    """Add ``types`` (checked: each event's actor a principal) to this process's note."""
    directory = os.environ.get(SEEN_DIR)
    if not directory or not types:
        return
    with (Path(directory) / f"{os.getpid()}.txt").open("a", encoding="utf-8") as note:
        note.write("".join(f"{t}\n" for t in sorted(types)))


def checked_types(directory: Path) -> set[str]:
    """Every event type the session's processes noted as checked."""
    return {
        line.strip()
        for note in directory.glob("*.txt")
        for line in note.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }


async def assert_actors_are_principals(settings: Settings) -> None:
    typed: set[tuple[str, str]] = set()
    checked: set[str] = set()
    nc = await nats.connect(settings.nats_servers)
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
            else:
                checked.add(event.short_type)
    finally:
        await nc.close()
    note_checked(checked)
    assert typed == set(), f"events whose actor is not a principal: {sorted(typed)}"
