"""Re-submit an ingress dead letter, as it was or corrected: it goes back through the outbox
to the subject it came on, and the letter is marked ``resubmitted`` in the same transaction."""

from __future__ import annotations

from sqlalchemy import select, update

from minqing.shared.ingress.cloudevents import RESUBMIT_HEADER
from minqing.shared.messaging.outbox import Message, Outbox
from minqing.shared.persistence.db import Sessions
from minqing.shared.persistence.tables import Plumbing


class LetterNotFound(Exception):
    """No dead letter has this id."""


class NotResubmittable(Exception):
    """The letter is not a dead ingress message (another consumer's, or already re-sent)."""


async def resubmit(
    sessions: Sessions,
    outbox: Outbox,
    plumbing: Plumbing,
    consumer: str,
    stream: str,
    letter_id: int,
    body: bytes | None,
) -> dict[str, object]:
    """Queue the letter's message (or ``body`` in its place) for its original subject; only
    a dead letter of ``consumer`` (the service's ingress consumer) is re-submitted."""
    t = plumbing.dead_letters
    async with sessions() as session:
        query = select(t).where(t.c.id == letter_id).with_for_update()
        row = (await session.execute(query)).first()
        if row is None:
            raise LetterNotFound(f"no dead letter {letter_id}")
        if row.consumer != consumer:
            raise NotResubmittable(
                f"dead letter {letter_id} is {row.consumer}'s, not an ingress message"
            )
        if row.status != "dead":
            raise NotResubmittable(f"dead letter {letter_id} is {row.status}")
        headers = {k: v for k, v in row.headers.items() if not k.lower().startswith("nats-")}
        headers[RESUBMIT_HEADER] = str(letter_id)
        message = Message(
            message_id=f"resubmit/{letter_id}",
            stream=stream,
            subject=row.subject,
            body=row.raw if body is None else body,
            headers=headers,
        )
        await outbox.send(session, [message])
        await session.execute(update(t).where(t.c.id == letter_id).values(status="resubmitted"))
        await session.commit()
    outbox.wake_if_added()
    return {"id": letter_id, "status": "resubmitted", "subject": row.subject}
