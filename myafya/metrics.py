"""Prometheus metrics, kept in a registry of the app's own so tests can build many apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
