"""relradar's connectors: files, the shipped demo datasets and HTTP push, into Kafka.

Connectors turn outside data into ``Envelope`` records or ``DeadLetter`` records with the
reason; the ``Publisher`` writes both to their topics with kafka-python.
"""

from ingest.connectors import ColumnMapping, read_file
from ingest.http_push import PushError, PushResult, parse_push
from ingest.presets import DEMO_DATA, PRESETS, read_preset
from ingest.publisher import Publisher, PublishError, PublishStats
from ingest.replay import ReplayStats, replay

__all__ = [
    "DEMO_DATA",
    "PRESETS",
    "ColumnMapping",
    "PublishError",
    "PublishStats",
    "Publisher",
    "PushError",
    "PushResult",
    "ReplayStats",
    "parse_push",
    "read_file",
    "read_preset",
    "replay",
]
