"""Structured logs: one JSON object per line on stderr, quiet (warnings and up) by default.

The faust worker, the sink and the connectors all log through the standard library; this
module installs the JSON formatter so operators can ship the lines to any log store as-is.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

_DIGITS = re.compile(r"\d+")

LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "crit": "CRITICAL",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RepeatFilter(logging.Filter):
    """Lets the same message (digits aside) through once per ``window_s`` per logger.

    A broker outage makes the Kafka clients log every reconnect attempt, thousands a minute;
    the first line says what is wrong, and the next one after the window says how many were
    held back, so an outage is reported without flooding the log store.
    """

    def __init__(self, window_s: float = 30.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, _DIGITS.sub("#", str(record.msg))[:200])
        now = time.monotonic()
        since, held = self._seen.get(key, (0.0, 0))
        if now - since < self.window_s:
            self._seen[key] = (since, held + 1)
            return False
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} like it in the last {self.window_s:.0f}s)"
        return True


def level_name(level: str) -> str:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}") from None


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict (also handed to the faust worker)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"repeats": {"()": RepeatFilter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["repeats"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level_name(level), "handlers": ["stderr"]},
        "loggers": {"kafka": {"level": "ERROR"}, "aiokafka": {"level": "ERROR"}},
    }


def setup(level: str) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level))
