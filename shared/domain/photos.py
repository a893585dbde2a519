"""Photos: is this file the image type its client declared? Pure.

A table of signatures, not a dependency (``filetype``, ``puremagic``): the question is
only "are these bytes the type the client declared", for these types exactly. Open311's
``media`` and staff's photo store (intake's ``photos``) both ask it; each keeps its own
list of the types it accepts (never SVG: it can carry script).
"""

from __future__ import annotations

from collections.abc import Callable

# What each image type's bytes begin with (the formats' own specifications). HEIC is an
# ISO base media file: a ``ftyp`` box whose major brand is one of HEIF's.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1")
_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "image/heic": lambda b: b[4:8] == b"ftyp" and b[8:12] in _HEIF_BRANDS,
}
IMAGE_TYPES = tuple(_SIGNATURES)


def photo_type(content: bytes, accepted: tuple[str, ...] = IMAGE_TYPES) -> str | None:
    """The accepted image type these bytes are, by their signature; None for any other."""
    return next((t for t in accepted if _SIGNATURES[t](content)), None)


def photo_mismatch(
    content_type: str, content: bytes, accepted: tuple[str, ...] = IMAGE_TYPES
) -> str | None:
    """Why these bytes may not be stored and served as ``content_type`` (a renamed file, or
    a page or script posing as an image); None when they are of that type."""
    found = photo_type(content, accepted)
    if found == content_type:
        return None
    actual = found or f"none of the accepted types ({', '.join(accepted)})"
    return f"declared {content_type}, but the bytes are {actual}"
