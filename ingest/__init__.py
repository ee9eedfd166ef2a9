"""relradar's connectors: files, conversations, the shipped demo data and HTTP push, into Kafka.

Connectors turn outside data into ``Envelope`` records or ``DeadLetter`` records with the
reason; the ``Publisher`` writes both to their topics with kafka-python.
"""

from ingest.connectors import ColumnMapping, read_file
from ingest.http_push import PushError, PushResult, parse_push
from ingest.presets import DEMO_DATA, PRESETS, read_preset
from ingest.publisher import Publisher, PublishError, PublishStats
from ingest.redact import Redactor, redact_pii
from ingest.replay import ReplayStats, replay
from ingest.transcripts import read_conversations

__all__ = [
    "DEMO_DATA",
    "PRESETS",
    "ColumnMapping",
    "PublishError",
    "PublishStats",
    "Publisher",
    "PushError",
    "PushResult",
    "Redactor",
    "ReplayStats",
    "parse_push",
    "read_conversations",
    "read_file",
    "read_preset",
    "redact_pii",
    "replay",
]
