"""The photos a step names, as a request body gives them: ``photos: [{photo_id, sha256}]``,
as intake's ``POST /api/v1/photos`` answered (intake, followup)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from minqing.shared.contract.events import MAX_PHOTOS, PhotoRef
from minqing.shared.web.edge import ULID_PATTERN


class PhotoIn(BaseModel):
    """A photo uploaded to ``POST /api/v1/photos``, by the id and SHA-256 it answered."""

    model_config = ConfigDict(extra="forbid")

    photo_id: Annotated[str, StringConstraints(pattern=ULID_PATTERN)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def _once_each(photos: list[PhotoIn]) -> list[PhotoIn]:
    if len({p.photo_id for p in photos}) != len(photos):
        raise ValueError("a photo is named more than once")
    return photos


PhotosIn = Annotated[
    list[PhotoIn],
    Field(
        max_length=MAX_PHOTOS,
        description="Photos uploaded first (POST /api/v1/photos), by their id and SHA-256",
    ),
    AfterValidator(_once_each),
]


def photo_refs(photos: Sequence[PhotoIn]) -> tuple[PhotoRef, ...]:
    """The photos as the event names them."""
    return tuple(PhotoRef(photo_id=p.photo_id, sha256=p.sha256) for p in photos)
