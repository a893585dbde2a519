"""How answers reach reporters: a pluggable notifier (the service log, or a webhook that an
SMS gateway's adapter serves). Only intake calls it, because only intake holds contacts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpx

from minqing.services.intake.domain import mask_phone
from minqing.shared.domain.text import mask_name
from minqing.shared.service.settings import Settings

log = logging.getLogger("minqing.intake.notifier")


@dataclass(frozen=True)
class Message:
    """One answer to one reporter. ``reply_id`` is stable across retries: a receiver that
    sees it twice (a crash right after delivery) drops the copy."""

    reply_id: str
    issue_id: str
    stage: str
    name: str | None
    phone: str | None
    text: str
    feedback_url: str | None


class NotDelivered(Exception):
    """The notifier could not deliver the message; it is tried again later."""


class Notifier(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise ``NotDelivered``."""
        ...


class LogNotifier:
    """Writes each answer to the service log, the name and phone masked (a log is read by
    whoever runs the service, and kept): for a town without a gateway yet, and for
    development."""

    name = "log"

    async def send(self, message: Message) -> None:
        log.info(
            "reply %s to %s (%s) on matter %s: %s",
            message.reply_id,
            mask_name(message.name) if message.name else "reporter",
            mask_phone(message.phone) or "no phone",
            message.issue_id,
            message.text,
        )


class WebhookNotifier:
    """POSTs each answer as JSON, with ``Idempotency-Key: <reply_id>``; any 2xx is
    delivered. Tries ``attempts`` times with a short pause, each try bounded by the client's
    timeout."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, url: str, attempts: int) -> None:
        self._client = client
        self._url = url
        self._attempts = attempts

    async def send(self, message: Message) -> None:
        body = {
            "reply_id": message.reply_id,
            "issue_id": message.issue_id,
            "stage": message.stage,
            "to": {"name": message.name, "phone": message.phone},
            "text": message.text,
            "feedback_url": message.feedback_url,
        }
        headers = {"Idempotency-Key": message.reply_id}
        problem = "not tried"
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
            try:
                response = await self._client.post(self._url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return
            problem = f"HTTP {response.status_code}"
        raise NotDelivered(f"webhook {self._url}: {problem} after {self._attempts} tries")


@asynccontextmanager
async def open_notifier(settings: Settings) -> AsyncIterator[Notifier]:
    """The notifier the settings name (``notifier_kind``), open for as long as it is used."""
    if settings.notifier_kind == "log":
        yield LogNotifier()
        return
    assert settings.notifier_webhook_url is not None  # checked by Settings
    async with httpx.AsyncClient(timeout=settings.notifier_timeout_seconds) as client:
        yield WebhookNotifier(client, settings.notifier_webhook_url, settings.notifier_attempts)
