"""A real webhook receiver on a free local port: what an SMS gateway's adapter would be."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from minqing.shared.service.settings import Settings


def answering_to(settings: Settings, receiver: Receiver, **more: Any) -> Settings:
    """``settings`` (a test's own, so their actors are still checked at its end) with the
    reporters' answers sent to ``receiver``, tried once each, the reply worker quick."""
    return settings.model_copy(
        update={
            "notifier_kind": "webhook",
            "notifier_webhook_url": receiver.url,
            "notifier_attempts": 1,
            "notifier_timeout_seconds": 2,
            "reply_poll_seconds": 0.1,
            "reply_retry_max_seconds": 0.2,
            **more,
        }
    )


@dataclass
class Receiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    down: bool = False  # answer 503 to everything

    def by_reply(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for body in self.received:
            counts[body["reply_id"]] = counts.get(body["reply_id"], 0) + 1
        return counts


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if receiver.down:
                self.send_response(503)
            else:
                receiver.received.append(json.loads(body))
                receiver.keys.append(self.headers.get("Idempotency-Key", ""))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/sms"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
