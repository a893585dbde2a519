"""Whose fault a failure is, and an outage logged once rather than twice a second."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from shared import faults
from shared.faults import OutageLog, is_transient


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
