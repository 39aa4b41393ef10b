"""Build the dramatiq broker named by `MYAFYA_BROKER_URL`, and put send jobs on it.

No URL means the embedded default: dramatiq's in-memory StubBroker, consumed by a real dramatiq
`Worker` running threads inside `myafya serve`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from dramatiq import Broker, Message
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Middleware, Retries, ShutdownNotifications, TimeLimit

from core.notify.outbox import DueMessage

log = logging.getLogger(__name__)

QUEUE_NAME: Final = "outbox"
SEND_ACTOR_NAME: Final = "send_outbox_message"


def build_broker(
    url: str | None, *, namespace: str = "myafya", extra: Sequence[Middleware] = ()
) -> Broker:
    """Return a broker for `url`: redis://… (keys prefixed with `namespace`), amqp://… or None.

    The middleware list is explicit, so dramatiq's Prometheus middleware, which would open an
    HTTP port of its own, stays out.
    """
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Retries(),
        *extra,
    ]
    broker: Broker
    if not url:
        broker = StubBroker(middleware=middleware)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=url, namespace=namespace, middleware=middleware
        )
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # NOTE: RabbitMQ has no key namespace; give each deployment its own virtual host.
        broker = RabbitmqBroker(url=url, middleware=middleware)
    else:
        raise ValueError(f"unsupported broker URL scheme in {url.split(':', 1)[0]!r}")
    broker.declare_queue(QUEUE_NAME)
    return broker


def broker_kind(url: str | None) -> str:
    """Name the broker for logs without the URL, which may carry a password."""
    if not url:
        return "embedded"
    return url.split(":", 1)[0]


def enqueue_sends(broker: Broker, messages: Sequence[DueMessage]) -> None:
    """Put one send job per row on the broker. Blocking: call it from a thread."""
    for message in messages:
        broker.enqueue(
            Message(
                queue_name=QUEUE_NAME,
                actor_name=SEND_ACTOR_NAME,
                args=(message.id, message.attempts),
                kwargs={},
                options={},
            )
        )
