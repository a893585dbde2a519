"""A shutdown ends every task, even one whose first cancellation is swallowed on its way
(a client library that turns it into its own timeout error, caught by a retry loop)."""

from __future__ import annotations

import asyncio

from minqing.shared.service.runtime import cancel_and_wait


class _LibraryTimeout(Exception):
    """What a client library raises instead of the CancelledError it was given."""


async def _library_call(never: asyncio.Event) -> None:
    try:
        await never.wait()
    except asyncio.CancelledError:
        raise _LibraryTimeout() from None


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0
    never = asyncio.Event()

    async def retry_forever() -> None:  # like a relay: every failure is retried after a pause
        nonlocal swallowed
        while True:
            try:
                await _library_call(never)
            except _LibraryTimeout:
                swallowed += 1
            await asyncio.sleep(3600)

    quiet = asyncio.create_task(asyncio.sleep(3600))
    stubborn = asyncio.create_task(retry_forever())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.02)

    await asyncio.wait_for(cancel_and_wait([quiet, stubborn, finished], every=0.05), 5)

    assert swallowed >= 1  # the first cancellation was lost on its way...
    assert stubborn.cancelled() and quiet.cancelled()  # ...and a later one ended it
    assert finished.done() and not finished.cancelled()


async def test_a_task_that_failed_is_waited_for_without_raising() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait([task])
    assert isinstance(task.exception(), RuntimeError)
