"""Staff's photos over HTTP: upload one, read one, list a matter's. Private: never public,
never cached, served as the type stored (checked against its bytes at upload)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Response, UploadFile, status
from pydantic import BaseModel

from minqing.services.intake.deps import SettingsDep
from minqing.services.intake.photos.domain import (
    PHOTO_TYPES,
    NoSuchPhoto,
    NotAPhoto,
    Photo,
    PhotoPruned,
    PhotosRefused,
    PhotoTooLarge,
    PhotoTypeNotAccepted,
)
from minqing.services.intake.photos.handlers import (
    Photos,
    Viewer,
    open_photo,
    photos_of_issue,
    upload_photo,
)
from minqing.shared.identity.web import CallerDep, GrantDep
from minqing.shared.persistence.uow import UowFactory
from minqing.shared.web.deps import from_state
from minqing.shared.web.edge import ULID_PATTERN, IssueId
from minqing.shared.web.errors import unprocessable

PREFIX = "/api/v1/photos"
# A photo is private: no cache keeps it, no browser guesses another type for it, and it
# runs nothing (an image opened on its own).
PRIVATE = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}

ERRORS: dict[type[Exception], int] = {
    PhotoTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    PhotoTypeNotAccepted: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    NotAPhoto: status.HTTP_422_UNPROCESSABLE_CONTENT,
    PhotosRefused: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NoSuchPhoto: status.HTTP_404_NOT_FOUND,
    PhotoPruned: status.HTTP_410_GONE,
}
"""The photo store's errors as HTTP statuses (registered on the app by ``app.py``)."""

PhotoId = Annotated[
    str, Path(pattern=ULID_PATTERN, description="The photo's id, as its upload answered")
]
PhotoUnits = Annotated[UowFactory[Photos], Depends(from_state("photos"))]  # put by app.py

router = APIRouter(prefix="/api/v1", tags=["photos"])


class PhotoStored(BaseModel):
    """What a step names the photo by (``photos: [{photo_id, sha256}]``), its type and size."""

    photo_id: str
    sha256: str
    content_type: str
    size: int


class PhotoListed(BaseModel):
    """A photo on a matter: when it was taken up, at which step, and whether the retention
    rule has removed its bytes (its id and SHA-256 stay)."""

    photo_id: str
    sha256: str
    content_type: str
    size: int
    stage: str | None
    uploaded_at: datetime
    attached_at: datetime | None
    pruned: bool
    pruned_at: datetime | None

    @classmethod
    def of(cls, photo: Photo) -> PhotoListed:
        return cls(
            photo_id=photo.photo_id,
            sha256=photo.sha256,
            content_type=photo.content_type,
            size=photo.size,
            stage=photo.stage,
            uploaded_at=photo.uploaded_at,
            attached_at=photo.attached_at,
            pruned=photo.pruned_at is not None,
            pruned_at=photo.pruned_at,
        )


def _viewer(grant: GrantDep) -> Viewer:
    return Viewer(grant.principal.id, grant.town, grant.reaches)


ViewerDep = Annotated[Viewer, Depends(_viewer)]


@router.post(
    "/photos",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PhotoStored, "description": "The same photo uploaded before"},
        413: {"description": "Larger than MINQING_PHOTO_MAX_BYTES"},
        415: {"description": f"Not a photo type ({', '.join(PHOTO_TYPES)})"},
        **unprocessable("Empty, or the bytes are not of the declared type"),
    },
)
async def post_photo(
    photo: Annotated[
        UploadFile,
        File(description=f"The photo: {', '.join(PHOTO_TYPES)}, its bytes of that type"),
    ],
    response: Response,
    units: PhotoUnits,
    settings: SettingsDep,
    caller: CallerDep,
) -> PhotoStored:
    """Upload a photo taken on the spot; then name it (``photo_id`` and ``sha256``) in the
    report, resolution or look-back it documents. Unattached photos are removed after
    ``MINQING_PHOTO_ORPHAN_HOURS``."""
    limit = settings.photo_max_bytes
    content = await photo.read(limit + 1)
    uploaded = await upload_photo(
        units, photo.content_type, content, uploader=caller.id, limit=limit
    )
    if not uploaded.created:
        response.status_code = status.HTTP_200_OK
    stored = uploaded.photo
    return PhotoStored(
        photo_id=stored.photo_id,
        sha256=stored.sha256,
        content_type=stored.content_type,
        size=stored.size,
    )


_IMAGES: dict[str, Any] = {kind: {} for kind in PHOTO_TYPES}


@router.get(
    "/photos/{photo_id}",
    response_class=Response,
    responses={
        200: {"content": _IMAGES, "description": "The photo, as the type it was stored"},
        404: {"description": "No such photo, or one the caller may not see"},
        410: {"description": "Removed by the retention rule (the detail says when)"},
    },
)
async def get_photo(photo_id: PhotoId, units: PhotoUnits, viewer: ViewerDep) -> Response:
    """A photo: to its uploader, town-wide roles, and the staff of the unit its matter is
    assigned to."""
    photo, content = await open_photo(units, photo_id, viewer)
    return Response(content, media_type=photo.content_type, headers=PRIVATE)


@router.get(
    "/issues/{issue_id}/photos",
    responses={404: {"description": "No such matter, or one the caller does not reach"}},
)
async def get_issue_photos(
    issue_id: IssueId, units: PhotoUnits, viewer: ViewerDep
) -> list[PhotoListed]:
    """The photos on a matter, in the order they were attached (``stage``: reported,
    resolution, lookback, revisit)."""
    return [PhotoListed.of(p) for p in await photos_of_issue(units, issue_id, viewer)]
