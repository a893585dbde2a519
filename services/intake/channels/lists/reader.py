"""Lists are read in a child process, one at a time, with a memory and a time limit.

The checks in ``workbooks`` bound what a file may hold before it is parsed; this is the
second wall. Whatever a list costs to read (memory that Python keeps once it has grown,
CPU that would hold intake's interpreter lock), a child process pays it, and it ends with
the read: intake's own memory and its other requests do not feel it. The child is a fresh
interpreter (``python -P -m minqing.services.intake.channels.lists.reader``, about 0.15 s to start):
it inherits none of intake's threads or connections. The file goes in on its stdin; the
sheet (or the refusal) comes back as JSON on its stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import warnings
from dataclasses import asdict
from typing import Any

from minqing.services.intake.channels.lists.sheets import (
    ListLimits,
    ListRefused,
    ListTooLarge,
    Row,
    Sheet,
    TooManyRows,
    UnreadableList,
    UnsupportedFormat,
    read_list,
)
from minqing.services.intake.channels.lists.workbooks import WorkbookLimits

log = logging.getLogger(__name__)
MiB = 1024 * 1024
_REFUSALS: dict[str, type[ListRefused]] = {
    cls.__name__: cls
    for cls in (ListRefused, ListTooLarge, TooManyRows, UnreadableList, UnsupportedFormat)
}


class ListReader:
    """Reads one list at a time in a child process bounded in memory and time."""

    def __init__(
        self, max_rows: int, limits: ListLimits, *, memory_bytes: int, seconds: float
    ) -> None:
        self.max_rows = max_rows
        self.limits = limits
        self.memory_bytes = memory_bytes
        self.seconds = seconds
        self.slots = asyncio.Semaphore(1)

    async def read(self, data: bytes, filename: str | None) -> Sheet:
        """The list as read, or ``ListRefused`` saying why (a limit passed names it)."""
        async with self.slots:
            return await self._read(data, filename)

    async def _read(self, data: bytes, filename: str | None) -> Sheet:
        header = {
            "filename": filename,
            "max_rows": self.max_rows,
            "limits": asdict(self.limits),
            "memory_bytes": self.memory_bytes,
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # not the working directory's modules: the installed reader
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await asyncio.wait_for(
                child.communicate(json.dumps(header).encode() + b"\n" + data), self.seconds
            )
        except TimeoutError:
            raise ListTooLarge(
                f"reading the list took longer than {self.seconds:g} s "
                "(MINQING_IMPORT_READER_SECONDS)"
            ) from None
        finally:
            if child.returncode is None:
                child.kill()  # timed out, or the request was cancelled
                await child.wait()
        try:
            answer = json.loads(out)
        except ValueError:
            raise UnreadableList(
                f"the list's reader stopped before it finished (exit code {child.returncode})"
            ) from None
        if "refused" in answer:
            raise _REFUSALS.get(answer["refused"], UnreadableList)(answer["reason"])
        return _sheet(answer["sheet"])


def _sheet(fields: dict[str, Any]) -> Sheet:
    rows = [Row(r["number"], r["cells"]) for r in fields.pop("rows")]
    return Sheet(rows=rows, **fields)


def _read_in_child(request: bytes) -> bytes:
    """In the child: cap its memory, read the list; the answer for the parent, as JSON."""
    head, _, data = request.partition(b"\n")
    header = json.loads(head)
    # openpyxl warns about what it does not keep (data validation, a missing stylesheet):
    # nothing a list needs, and a new child would say it again for every list.
    warnings.filterwarnings("ignore", module="openpyxl")
    _limit_memory(header["memory_bytes"])
    answer: dict[str, Any]
    try:
        sheet = read_list(
            data,
            header["filename"],
            max_rows=header["max_rows"],
            limits=_limits(header["limits"]),
        )
        return json.dumps({"sheet": asdict(sheet)}, ensure_ascii=False).encode()
    except ListRefused as exc:
        answer = {"refused": type(exc).__name__, "reason": str(exc)}
    except MemoryError:
        answer = {
            "refused": ListTooLarge.__name__,
            "reason": f"reading the list needs more than {header['memory_bytes'] // MiB:,} MiB "
            "of memory (MINQING_IMPORT_READER_MEMORY_BYTES)",
        }
    except Exception as exc:  # whatever a hostile file makes the parser raise
        log.warning("a list could not be read", exc_info=True)
        answer = {"refused": "UnreadableList", "reason": f"the list cannot be read ({exc!r})"[:300]}
    return json.dumps(answer, ensure_ascii=False).encode()


def _limits(fields: dict[str, Any]) -> ListLimits:
    return ListLimits(WorkbookLimits(**fields["workbook"]), fields["max_text_chars"])


def _limit_memory(memory_bytes: int) -> None:
    """At most ``memory_bytes`` of address space more than the child has now."""
    if sys.platform == "win32":
        return
    import resource

    import psutil  # type: ignore[import-untyped]

    limit = int(psutil.Process().memory_info().vms) + memory_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):  # a platform that does not enforce it: the time limit holds
        log.warning("the list reader's memory could not be limited", exc_info=True)


if __name__ == "__main__":
    sys.stdout.buffer.write(_read_in_child(sys.stdin.buffer.read()))
