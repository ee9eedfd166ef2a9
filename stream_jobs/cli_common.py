"""Shared pieces of the ``relradar`` command line: the common options and the settings.

Settings come from ``RELRADAR_*`` environment variables; the common options override them
(each option names its variable, datasette-style). The settings object is built here, once,
at the edge, and passed down.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from schemas import Settings

F = TypeVar("F", bound=Callable[..., Any])

COMMON = [
    click.option(
        "--data-dir",
        envvar="RELRADAR_DATA_DIR",
        type=click.Path(path_type=Path),
        help="Embedded data and runtime files [RELRADAR_DATA_DIR].",
    ),
    click.option(
        "--broker",
        envvar="RELRADAR_BROKER",
        help="Kafka bootstrap servers; unset uses the local broker [RELRADAR_BROKER].",
    ),
    click.option(
        "--clickhouse-url",
        envvar="RELRADAR_CLICKHOUSE_URL",
        help="ClickHouse server URL; unset is embedded [RELRADAR_CLICKHOUSE_URL].",
    ),
    click.option(
        "--http-port",
        envvar="RELRADAR_HTTP_PORT",
        type=int,
        help="Port of the service's HTTP endpoint [RELRADAR_HTTP_PORT].",
    ),
    click.option(
        "--classifier",
        envvar="RELRADAR_CLASSIFIER",
        help="'default', 'lexicon' or a model directory [RELRADAR_CLASSIFIER].",
    ),
]


def common_options(fn: F) -> F:
    for option in reversed(COMMON):
        fn = option(fn)
    return fn


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options the user gave on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
