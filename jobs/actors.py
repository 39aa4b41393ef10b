"""The dramatiq actors. Each takes ids only and is safe to run twice: the database row decides
whether there is anything left to do."""

from __future__ import annotations

from typing import Final

import dramatiq
from dramatiq import Broker

from jobs.broker import QUEUE_NAME, SEND_ACTOR_NAME
from jobs.runtime import ThreadResourceCleanup, WorkerRuntime

# Provider errors are retried through the outbox row (status back to `queued` with a later
# `not_before`), which survives a broker restart. dramatiq's own retries cover what the row
# cannot record, chiefly a database that is briefly unreachable. Once they run out, the scheduler
# finds the row again, because it is queued and was handed over long ago, or `sending` with an
# expired lease.
SEND_OPTIONS: Final = {
    "max_retries": 5,
    "min_backoff": 1_000,  # ms
    "max_backoff": 60_000,  # ms
    # Above the SDK's 3 s connect + 9 s read timeout and the two short transactions around it.
    "time_limit": 60_000,  # ms
}


def declare_actors(broker: Broker, runtime: WorkerRuntime) -> dramatiq.Actor:  # type: ignore[type-arg]
    """Register the send actor on `broker`, running on `runtime`, and return it."""

    def send_outbox_message(message_id: int, attempts: int) -> None:
        """Send outbox row `message_id` if it is still queued after `attempts` attempts."""
        runtime.send(message_id, attempts)

    broker.add_middleware(ThreadResourceCleanup(runtime))
    return dramatiq.Actor(
        send_outbox_message,
        broker=broker,
        actor_name=SEND_ACTOR_NAME,
        queue_name=QUEUE_NAME,
        priority=0,
        options=dict(SEND_OPTIONS),
    )
