"""Whose fault a failure is, and an outage logged once rather than twice a second (by the
consumers, the relay, the import worker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from minqing.services.intake.imports import ImportWorker
from minqing.shared.messaging import faults
from minqing.shared.messaging.faults import OutageLog, is_transient


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        OperationalError("select 1", {}, _Orig("08006")),
        DBAPIError("select 1", {}, _Orig("57P01")),  # admin shutdown
    ],
    ids=["refused", "timeout", "operational", "shutdown"],
)
def test_an_unavailable_infrastructure_is_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad data"),
        DBAPIError("insert", {}, _Orig("22P05")),  # untranslatable character
        DBAPIError("insert", {}, _Orig("23505")),  # unique violation
    ],
    ids=["value", "untranslatable", "unique"],
)
def test_a_failure_of_the_work_itself_is_not_transient(exc: Exception) -> None:
    assert not is_transient(exc)


def test_an_outage_is_logged_once_then_once_a_minute_then_its_end(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(faults.time, "monotonic", lambda: now[0])
    outage = OutageLog(logging.getLogger("test.outage"), "relay")
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for _ in range(241):  # two minutes of failures every half second
            outage.failed(ConnectionRefusedError())
            now[0] += 0.5
        outage.recovered()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4  # the first (with traceback), two reminders, the end
    assert caplog.records[0].exc_info is not None
    assert all(r.exc_info is None for r in caplog.records[1:])
    assert messages[-1].startswith("relay recovered after 120 s")


async def test_the_import_worker_logs_a_database_outage_once_then_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    calls = 0
    recovered = asyncio.Event()

    async def process() -> int:  # the database is away for three minutes, tried every second
        nonlocal calls
        calls += 1
        now[0] += 1.0
        if calls <= 180:
            raise OperationalError("select", {}, _Orig("08006"))
        recovered.set()
        return 0

    worker = ImportWorker(process, poll_seconds=3600, retry_seconds=0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="minqing.services.intake.imports"):
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(recovered.wait(), 30)
            await asyncio.sleep(0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    records = [r for r in caplog.records if r.name == "minqing.services.intake.imports"]
    # The first failure with its traceback, a line a minute, and the end.
    assert len(records) == 4, [r.getMessage() for r in records]
    assert records[0].exc_info is not None
    assert all(r.exc_info is None for r in records[1:])
    assert all(r.levelno == logging.WARNING for r in records)
    assert records[-1].getMessage().startswith("import worker recovered after 180 s")
