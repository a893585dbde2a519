"""Domain errors are mapped to HTTP in one table per service (``shared/web/errors.py``)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from minqing.shared.web.errors import map_errors


class NotThere(Exception):
    """No such thing."""


class NotThereEither(NotThere):
    """A kind of not there."""


class Clash(Exception):
    """Wrong state."""


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    map_errors(app, {NotThere: 404, Clash: 409})

    @app.get("/thing")
    async def thing() -> None:
        raise error

    return app


async def answer(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/thing")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotThere("no such thing"), 404),
        (NotThereEither("no such thing"), 404),
        (Clash("no such thing"), 409),
    ],
)
async def test_a_mapped_error_is_its_status_with_its_message(error: Exception, status: int):
    response = await answer(app_raising(error))
    assert (response.status_code, response.json()) == (status, {"detail": "no such thing"})


async def test_an_error_not_in_the_table_stays_a_server_error():
    response = await answer(app_raising(ValueError("oops")))
    assert response.status_code == 500
