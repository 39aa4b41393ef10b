"""The job system as a web process runs it: broker, dispatcher and, in the embedded default, a
dramatiq worker and the scheduler loop inside the process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from dramatiq import Worker

from core.clock import Clock
from core.notify.dispatch import BlockingSender
from core.notify.policy import DeliveryPolicy
from jobs.actors import declare_actors
from jobs.broker import broker_kind, build_broker, enqueue_sends
from jobs.dispatcher import BrokerDispatcher
from jobs.runtime import WorkerRuntime
from jobs.scheduler import DueWorkScheduler

log = logging.getLogger(__name__)

# How often idle worker threads wake to check for shutdown, in ms. dramatiq's default of 1 s
# would make every stop of the web process take that long.
WORKER_WAKE_MS: Final = 100


@dataclass(frozen=True)
class JobsConfig:
    database_url: str
    broker_url: str | None
    broker_namespace: str
    policy: DeliveryPolicy
    worker_threads: int
    build_senders: Callable[[], Mapping[str, BlockingSender]]

    @property
    def embedded(self) -> bool:
        return not self.broker_url


class JobSystem:
    """Broker, dispatcher and scheduler of one process, plus a worker when `run_worker`."""

    def __init__(
        self, config: JobsConfig, *, database: object, clock: Clock, run_worker: bool
    ) -> None:
        self.config = config
        self.broker = build_broker(config.broker_url, namespace=config.broker_namespace)
        self.runtime = WorkerRuntime(
            database_url=config.database_url,
            clock=clock,
            policy=config.policy,
            build_senders=config.build_senders,
            enqueue=functools.partial(enqueue_sends, self.broker),
        )
        self.send_actor = declare_actors(self.broker, self.runtime)
        self.worker = (
            Worker(
                self.broker,
                worker_threads=config.worker_threads,
                worker_timeout=WORKER_WAKE_MS,
            )
            if run_worker
            else None
        )
        self.dispatcher = BrokerDispatcher(
            database=database, clock=clock, broker=self.broker, worker=self.worker
        )
        self.scheduler = DueWorkScheduler(
            database=database, clock=clock, policy=config.policy, enqueue=self.dispatcher.enqueue
        )
        self._scheduler_task: asyncio.Task[None] | None = None

    def start(self, *, run_scheduler: bool) -> None:
        """Start the worker threads and, when asked, the scheduler loop on the running loop."""
        if self.worker is not None:
            self.worker.start()
        if run_scheduler:
            self._scheduler_task = asyncio.get_running_loop().create_task(
                self.scheduler.run_forever()
            )
        log.info(
            "job system started",
            extra={
                "broker": broker_kind(self.config.broker_url),
                "worker_threads": self.config.worker_threads if self.worker else 0,
                "scheduler": run_scheduler,
            },
        )

    async def stop(self) -> None:
        """Stop the scheduler, let hand-overs finish, stop the worker threads, close the broker.

        Jobs still queued in the embedded broker are dropped; their rows stay `queued` and the
        next start's scheduler hands them over again.
        """
        if self._scheduler_task is not None:
            self._scheduler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler_task
        await self.dispatcher.settle()
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        self.broker.close()
