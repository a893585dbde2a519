"""Structured logs: one JSON object per line on stderr, rendered by structlog.

Every log record, ours (``logging.getLogger(__name__)``) and uvicorn's, goes through one
``structlog.stdlib.ProcessorFormatter`` on the root logger, so the existing ``logging`` calls
keep working and come out as::

    {"timestamp": "2026-12-07T21:03:13.123Z", "level": "info", "logger": "minqing.access",
     "message": "POST /api/v1/reports 201", "service": "intake", "issue_id": "01M...",
     "event_id": "01M...", "correlation_id": "01M...", "trace_id": "4bf9...", ...}

Context is bound where it is known, never looked up: the event a consumer is applying
(``event_id``, ``issue_id``, ``correlation_id``; ``tracing.handling`` sets ``EVENT``), the
request being answered (``AccessLog``: the matter in its path, the events it recorded) and
the current OpenTelemetry span (``trace_id``, ``span_id``). ``console`` renders the same for people.

What is never logged: the request's raw path and query (the route template is logged, so a
feedback token in a path or a search text never is), and as a last guard every message and
traceback is passed through a mask of mobile numbers and feedback links. Names, addresses
and descriptions are kept out by the code that logs (``services/intake/residents/notifier.py``
masks the name); ``tests/e2e/test_closed_loop.py`` greps a run's logs for them.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import MutableMapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

import structlog
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minqing.shared.domain.text import mask_phone

if TYPE_CHECKING:
    from minqing.shared.contract.envelope import Envelope

LogFormat = Literal["json", "console"]
EventDict = MutableMapping[str, Any]

# The event a consumer is applying now, and what the request being answered did.
EVENT: ContextVar[Envelope | None] = ContextVar("minqing_log_event", default=None)
REQUEST: ContextVar[dict[str, object] | None] = ContextVar("minqing_log_request", default=None)

_MOBILE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d){8}(?!\d)")
_FEEDBACK = re.compile(r"(/feedback/)[^\s/?#\"']+")
access = logging.getLogger("minqing.access")
MAX_EVENT_IDS = 10  # named on one access line; ``event_count`` counts them all
# Probes and scrapes, answered every few seconds: their access lines are DEBUG.
QUIET_ROUTES = ("/healthz", "/readyz", "/metrics")
# Fields a record may carry in ``extra=`` that become fields of the line.
EXTRAS = ("http_method", "http_route", "http_status", "duration_ms", "event_id", "correlation_id")


def note_recorded(envelopes: Sequence[Envelope]) -> None:
    """The request being answered recorded these events: its access line names the first
    ``MAX_EVENT_IDS`` of them (``event_count`` says how many there were)."""
    request = REQUEST.get()
    if request is None or not envelopes:
        return
    first = envelopes[0]
    request.setdefault("issue_id", first.subject)
    request.setdefault("correlation_id", first.correlationid)
    named = str(request.get("event_id", ""))
    ids = named.split(",") if named else []
    ids += [e.id for e in envelopes[: max(MAX_EVENT_IDS - len(ids), 0)]]
    request["event_id"] = ",".join(ids)
    request["event_count"] = int(str(request.get("event_count", 0))) + len(envelopes)


def _context(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """The bound ids: the event being applied, the request, the current span."""
    envelope = EVENT.get()
    if envelope is not None:
        event_dict.setdefault("event_id", envelope.id)
        event_dict.setdefault("issue_id", envelope.subject)
        event_dict.setdefault("correlation_id", envelope.correlationid)
    request = REQUEST.get()
    if request is not None:
        for key, value in request.items():
            event_dict.setdefault(key, value)
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event_dict.setdefault("trace_id", format(span.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span.span_id, "016x"))
    return event_dict


def _service(service: str) -> structlog.types.Processor:
    def add(_: Any, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def masked(text: str) -> str:
    """A line as it may be written: mobile numbers and feedback tokens masked."""
    text = _MOBILE.sub(lambda m: mask_phone(m.group()) or "", text)
    return _FEEDBACK.sub(r"\1***", text)


def _guard(key: str) -> structlog.types.Processor:
    def guard(_: Any, __: str, event_dict: EventDict) -> EventDict:
        for name in (key, "exception"):
            value = event_dict.get(name)
            if isinstance(value, str):
                event_dict[name] = masked(value)
        return event_dict

    return guard


FIRST = ("timestamp", "level", "logger", "message", "service")


def _ordered(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """The fixed fields first, in the same order on every line; the bound ones after."""
    return {**{k: event_dict[k] for k in FIRST if k in event_dict}, **event_dict}


def _level_name(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict["level"] = str(event_dict.get("level", "")).lower()
    return event_dict


def formatter(service: str, fmt: LogFormat) -> structlog.stdlib.ProcessorFormatter:
    """The formatter every record goes through: JSON lines, or a console rendering."""
    before: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(allow=EXTRAS),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _service(service),
        _context,
    ]
    rendered: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _level_name,
        structlog.processors.format_exc_info,
    ]
    if fmt == "json":
        rendered += [
            structlog.processors.EventRenamer("message"),
            _guard("message"),
            _ordered,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        rendered += [_guard("event"), structlog.dev.ConsoleRenderer(colors=False)]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=before, processors=rendered)


def configure(service: str, fmt: LogFormat, level: str) -> None:
    """Send every log record of this process to stderr through ``formatter``; structlog's
    own loggers (``structlog.get_logger()``) end up in the same handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(service, fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):  # the root's
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)  # a library's warning is a line like the others
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class AccessLog:
    """ASGI middleware: one line per HTTP request, with the route template (never the path
    or query: they can hold a token or a search text), status and time, the matter the
    path names and the events the request recorded. It replaces uvicorn's access log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request: dict[str, object] = {}
        token = REQUEST.set(request)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            issue_id = (scope.get("path_params") or {}).get("issue_id")
            if isinstance(issue_id, str):
                request["issue_id"] = issue_id[:64]  # the matter it is about
            method = scope["method"]
            took = round((time.perf_counter() - started) * 1000, 1)
            fields: dict[str, object] = {
                "http_method": method,
                "http_route": route,
                "http_status": status,
            }
            level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
            fields["duration_ms"] = took
            access.log(level, "%s %s %d", method, route, status, extra=fields)
            REQUEST.reset(token)
