"""Prometheus metrics, kept in a registry of the app's own so tests can build many apps."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "myafya_inbound_requests",
            "Inbound provider requests, by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "myafya_step_seconds",
            "Time to handle one inbound request, including its database transaction",
            ["channel"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

        self.outbox_messages = Gauge(
            "myafya_outbox_messages",
            "Outbound messages in the outbox, by status; read from the database per scrape",
            ["status"],
            registry=self.registry,
        )

    def set_outbox_counts(self, counts: Mapping[str, int]) -> None:
        for status, count in counts.items():
            self.outbox_messages.labels(status=status).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
