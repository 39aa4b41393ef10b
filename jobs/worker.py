"""`myafya worker`: dramatiq worker processes with the due-work scheduler.

With `--processes N` above 1 this process supervises N child processes, each a one-process
worker, and restarts a child that exits unexpectedly. Only the first child runs the scheduler.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Final

from dramatiq import Broker, Worker

from core.clock import Clock
from core.notify.outbox import DueMessage
from jobs.actors import declare_actors
from jobs.broker import broker_kind, build_broker, enqueue_sends
from jobs.runtime import WorkerRuntime, open_thread_database
from jobs.scheduler import DueWorkScheduler
from jobs.system import JobsConfig

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS: Final = 1.0
STOP_TIMEOUT_MS: Final = 30_000


def run_worker_process(config: JobsConfig, *, clock: Clock, run_scheduler: bool) -> None:
    """Consume send jobs with `config.worker_threads` threads until SIGTERM or SIGINT."""
    if config.embedded:
        raise ValueError(
            "myafya worker needs MYAFYA_BROKER_URL (redis://… or amqp://…); without it the "
            "embedded worker runs inside myafya serve"
        )
    broker = build_broker(config.broker_url, namespace=config.broker_namespace)
    runtime = WorkerRuntime(
        database_url=config.database_url,
        clock=clock,
        policy=config.policy,
        build_senders=config.build_senders,
        enqueue=functools.partial(enqueue_sends, broker),
    )
    declare_actors(broker, runtime)
    worker = Worker(broker, worker_threads=config.worker_threads)
    stopping = threading.Event()
    _stop_on_signals(stopping)

    worker.start()
    scheduler_thread = None
    if run_scheduler:
        scheduler_thread = threading.Thread(
            target=_run_scheduler,
            args=(config, clock, broker, stopping),
            name="outbox-scheduler",
            daemon=True,
        )
        scheduler_thread.start()
    log.info(
        "worker started",
        extra={
            "broker": broker_kind(config.broker_url),
            "threads": config.worker_threads,
            "scheduler": run_scheduler,
        },
    )
    stopping.wait()
    log.info("worker stopping")
    if scheduler_thread is not None:
        scheduler_thread.join()
    worker.stop(timeout=STOP_TIMEOUT_MS)
    broker.close()
    log.info("worker stopped")


def _run_scheduler(
    config: JobsConfig, clock: Clock, broker: Broker, stopping: threading.Event
) -> None:
    asyncio.run(_schedule_until(config, clock, broker, stopping))


async def _schedule_until(
    config: JobsConfig, clock: Clock, broker: Broker, stopping: threading.Event
) -> None:
    async def enqueue(messages: Sequence[DueMessage]) -> None:
        await asyncio.to_thread(enqueue_sends, broker, messages)

    database = await open_thread_database(config.database_url)
    scheduler = DueWorkScheduler(
        database=database, clock=clock, policy=config.policy, enqueue=enqueue
    )
    try:
        while not stopping.is_set():
            try:
                await scheduler.tick()
            except Exception:
                log.exception("outbox scheduler tick failed; retrying")
            await asyncio.to_thread(stopping.wait, 1.0)
    finally:
        await database.close()


def _stop_on_signals(stopping: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def supervise(processes: int, threads: int, *, run_scheduler: bool = True) -> int:
    """Run `processes` one-process workers as children until SIGTERM or SIGINT; return 0."""
    stopping = threading.Event()
    _stop_on_signals(stopping)

    def spawn(index: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "myafya", "worker", "--processes", "1"]
        command += ["--threads", str(threads)]
        if index > 0 or not run_scheduler:
            command.append("--no-scheduler")
        return subprocess.Popen(command)  # noqa: S603  (our own interpreter and module)

    children = [spawn(index) for index in range(processes)]
    log.info("supervising worker processes", extra={"processes": processes, "threads": threads})
    while not stopping.wait(0.5):
        for index, child in enumerate(children):
            code = child.poll()
            if code is not None:
                log.warning(
                    "worker process exited; restarting it",
                    extra={"index": index, "pid": child.pid, "exit_code": code},
                )
                time.sleep(RESTART_DELAY_SECONDS)
                children[index] = spawn(index)
    for child in children:
        child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait()
    return 0
