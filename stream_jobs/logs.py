"""Structured logs: one JSON object per line on stderr, quiet (warnings and up) by default.

The faust worker, the sink and the connectors all log through the standard library; this
module installs the JSON formatter so operators can ship the lines to any log store as-is.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

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
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level_name(level), "handlers": ["stderr"]},
        "loggers": {"kafka": {"level": "ERROR"}, "aiokafka": {"level": "ERROR"}},
    }


def setup(level: str) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level))
