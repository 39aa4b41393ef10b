"""Structured logging: stdlib loggers everywhere, rendered by structlog as JSON lines."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what the per-request lines say, with client addresses.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Bot API request URLs contain the Telegram bot token: httpx logs each request's URL at INFO,
    # and python-telegram-bot logs its base URL at DEBUG.
    threshold = root.getEffectiveLevel()
    logging.getLogger("httpx").setLevel(max(threshold, logging.WARNING))
    logging.getLogger("telegram").setLevel(max(threshold, logging.INFO))
