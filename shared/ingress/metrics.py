"""Prometheus counters of the ingress channel, counted once a batch has committed.

Each process has its own registry (tests run several apps in one process), served at the
service's ``GET /metrics`` beside its own (``shared/service/metrics.py``). What a batch
did is noted by stream position while it is applied and counted after its commit; a batch
that is retried notes the same positions again, so it is not counted twice.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

Position = tuple[int, int]  # (stream epoch, stream sequence)


class IngressMetrics:
    """The counters of one ingress consumer (``consumer``: its durable name)."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.registry = CollectorRegistry()
        self._accepted = Counter(
            "minqing_ingress_accepted",
            "Ingress messages accepted (a new matter or step, or a repeat of one).",
            ["source"],
            registry=self.registry,
        )
        self._rejected = Counter(
            "minqing_ingress_rejected",
            "Ingress messages refused, by reason code (each is also a dead letter).",
            ["source", "reason"],
            registry=self.registry,
        )
        self._dead = Counter(
            "minqing_dead_letters",
            "Messages put on the dead-letter stream, by consumer and reason code.",
            ["consumer", "reason"],
            registry=self.registry,
        )
        self._noted: dict[Position, tuple[str, str | None]] = {}

    def accepted(self, source: str, at: Position) -> None:
        self._noted[at] = (source, None)

    def rejected(self, source: str, reason: str, at: Position) -> None:
        self._noted[at] = (source, reason)

    def commit(self) -> None:
        """The batch committed: count what it noted."""
        noted, self._noted = self._noted, {}
        for source, reason in noted.values():
            if reason is None:
                self._accepted.labels(source).inc()
            else:
                self._rejected.labels(source, reason).inc()
                self._dead.labels(self.consumer, reason).inc()
