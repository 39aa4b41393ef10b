"""Structured logging: stdlib loggers everywhere, rendered by structlog as JSON lines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import structlog

# Attributes that every LogRecord has. The others came from `extra=`, and structlog's
# ExtraAdder copies them into the event.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("name", 0, "pathname", 0, "msg", (), None).__dict__
)


def _json_fallback(value: Any) -> Any:
    # What structlog's JSONRenderer does with a value json cannot encode.
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


_ENCODER = json.JSONEncoder(default=_json_fallback)


class JsonLineFormatter(structlog.stdlib.ProcessorFormatter):
    """Render each record as the JSON line of the structlog chain in `configure_logging`.

    Records without an exception or a stack, such as the one line per request, are rendered
    here with the chain's keys, key order and values. On the project's 2-core VM that takes
    less than half the chain's 16-20 µs a line. Other records go through the chain.
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.stack_info or hasattr(record, "_logger"):
            return super().format(record)
        event = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                event[key] = value
        event["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return _ENCODER.encode(event)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter_class = JsonLineFormatter if fmt == "json" else structlog.stdlib.ProcessorFormatter
    formatter = formatter_class(
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
    # aiohttp's access log repeats the per-request lines and adds client addresses.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Bot API request URLs contain the Telegram bot token, and python-telegram-bot logs its base
    # URL at DEBUG. (Its requests go through aiohttp's client, which logs no URLs.)
    threshold = root.getEffectiveLevel()
    logging.getLogger("telegram").setLevel(max(threshold, logging.INFO))
