"""Domain errors mapped to HTTP in one place: each service registers its table once.

A route lets through what its use case raises; the app answers ``{"detail": str(error)}``
with the status the service's table gives, the body an ``HTTPException`` would have had.
No route writes ``try``/``except`` for a domain error: the table is the whole mapping
(``edge`` does the same for the errors every service shares: validation, the database).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

ErrorStatuses = Mapping[type[Exception], int]


class FieldError(BaseModel):
    """One field that does not validate, as FastAPI reports it."""

    loc: list[str | int]
    msg: str
    type: str


class Unprocessable(BaseModel):
    """A 422: the fields that do not validate (a list), or, for a rule of the domain the
    request breaks (an unknown plan template, a bad cursor), one sentence saying which."""

    detail: list[FieldError] | str


def unprocessable(description: str) -> dict[int | str, dict[str, Any]]:
    """The 422 of a route whose use case may also refuse with a sentence (documented so
    that clients and schema checks expect either form)."""
    return {422: {"model": Unprocessable, "description": description}}


def map_errors(app: FastAPI, statuses: ErrorStatuses) -> None:
    """Answer each error in ``statuses`` (and its subclasses) with its status and message."""

    async def answer(request: Request, exc: Exception) -> JSONResponse:
        status = next(statuses[cls] for cls in type(exc).__mro__ if cls in statuses)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    for error in statuses:
        app.add_exception_handler(error, answer)
