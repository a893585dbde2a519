"""Errors the edge answers before Open311's routes run (body too large, no such path,
method not allowed, validation, database unavailable), rewritten in the spec's format."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minqing.services.intake.channels.open311.domain import Open311Error
from minqing.services.intake.channels.open311.formats import error, format_of_path

# The spec: 404 for what does not exist, 403 for the api_key, 400 for the rest; a body
# too large (413), a wrong method (405), too many requests (429, with Retry-After) and an
# outage (503, retry) keep their own codes.
KEPT = (403, 404, 405, 409, 413, 429, 503)


class Open311ErrorFormat:
    """ASGI middleware: a 4xx/5xx answer on ``prefix`` not already in the spec's format
    (a JSON list, or XML) is replaced by one, in the format the path asks for."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        body = bytearray()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    held.append(message)
                    return
            elif message["type"] == "http.response.body" and held:
                body.extend(message.get("body", b""))
                if message.get("more_body"):
                    return
                await _replace(scope, send, held[0], bytes(body))
                return
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def _replace(scope: Scope, send: Send, start: Message, body: bytes) -> None:
    headers = Headers(raw=start["headers"])
    content_type = headers.get("content-type", "")
    if _ours(content_type, body):
        await send(start)
        await send({"type": "http.response.body", "body": body})
        return
    status = start["status"]
    exc = Open311Error(status if status in KEPT or status >= 500 else 400, *_descriptions(body))
    response = error(format_of_path(scope.get("path", "")), exc)
    kept = MutableHeaders(raw=list(response.raw_headers))
    if retry := headers.get("retry-after"):
        kept["Retry-After"] = retry
    if allow := headers.get("allow"):
        kept["Allow"] = allow
    await send({"type": "http.response.start", "status": exc.status, "headers": kept.raw})
    await send({"type": "http.response.body", "body": response.body})


def _ours(content_type: str, body: bytes) -> bool:
    if content_type.startswith("text/xml"):
        return True
    return content_type.startswith("application/json") and body.lstrip().startswith(b"[")


def _descriptions(body: bytes) -> list[str]:
    try:
        detail: Any = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace").strip()
        return [text or "error"]
    if isinstance(detail, list):
        return [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', 'invalid')}"
            for e in detail
            if isinstance(e, dict)
        ] or ["invalid request"]
    return [str(detail)]
