"""Open311 api keys: created by the town, printed once, kept only as a hash.

A key is 32 random bytes from ``secrets`` (256 bits, URL-safe base64). Only its SHA-256 is
stored. A slow password hash (bcrypt, argon2) protects secrets people choose, which can be
guessed; a 256-bit random key cannot be, so a plain SHA-256 is as safe and lets intake
find a key by an indexed equality on each request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from minqing.services.intake.channels.open311.store import ApiKey, all_keys
from minqing.services.intake.channels.open311.tables import api_keys
from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.races import first_wins

PREFIX = "o311_"
# The public report page's key (services/intake/residents/static/residents.js). Public by
# design: it is in the page every browser loads, so it gives nothing the page does not. It
# names the channel (source ``online``), and its row, ``residents-page``, is made the first
# time the page reports; revoking it (``minqing open311-key revoke residents-page``) turns
# the page's reporting off.
PAGE_KEY = PREFIX + "residents-page"
PAGE_KEY_NAME = "residents-page"
PAGE_SOURCE = "online"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyProblem(Exception):
    """A key operation that cannot be done: the message says why."""


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    name: str
    source: str
    key: str  # shown once


async def create_key(engine: AsyncEngine, name: str, source: str, now: datetime) -> CreatedKey:
    """A new key named ``name`` (unique) whose requests are reported under ``source``."""
    key = new_key()
    created = CreatedKey(new_id(), name, source, key)

    async def insert() -> CreatedKey:
        async with async_sessionmaker(engine)() as session:
            await session.execute(
                api_keys.insert().values(
                    key_id=created.key_id,
                    name=name,
                    key_hash=key_hash(key),
                    source=source,
                    created_at=now,
                )
            )
            await session.commit()
        return created

    async def taken() -> NoReturn:
        raise KeyProblem(f"a key named {name!r} exists already; pick another name") from None

    return await first_wins(insert, constraints=["open311_api_keys_name_key"], then=taken)


async def list_keys(engine: AsyncEngine) -> list[ApiKey]:
    async with async_sessionmaker(engine)() as session:
        return await all_keys(session)


async def revoke_key(engine: AsyncEngine, name: str, now: datetime) -> None:
    """From now on the key named ``name`` is refused (403)."""
    async with async_sessionmaker(engine)() as session:
        query = select(api_keys.c.revoked_at).where(api_keys.c.name == name)
        row = (await session.execute(query)).first()
        if row is None:
            raise KeyProblem(f"no key named {name!r}")
        if row.revoked_at is not None:
            raise KeyProblem(f"the key named {name!r} was revoked already")
        await session.execute(
            update(api_keys).where(api_keys.c.name == name).values(revoked_at=now)
        )
        await session.commit()
