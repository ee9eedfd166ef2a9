"""relradar's contracts: the label taxonomy, message envelopes, topics, settings and DDL.

Everything that crosses a boundary between the product's parts (a Kafka topic, a ClickHouse
table, the classifier interface) is defined here, and this package imports nothing else of
the product's, so every other package can depend on it.
"""

from schemas.ddl import LABEL_ENUM, MESSAGE_COLUMNS, Migration, migrations, migrations_table
from schemas.envelope import (
    ClassifiedMessage,
    DeadLetter,
    Envelope,
    Kind,
    Role,
    envelope_json_schema,
    parse_envelope,
)
from schemas.settings import Settings
from schemas.taxonomy import (
    FAMILIES,
    LABELS,
    PRECEDENCE,
    PROBLEM_LABELS,
    Family,
    Label,
    resolve,
    storage_number,
)
from schemas.topics import Topics

__all__ = [
    "FAMILIES",
    "LABELS",
    "LABEL_ENUM",
    "MESSAGE_COLUMNS",
    "PRECEDENCE",
    "PROBLEM_LABELS",
    "ClassifiedMessage",
    "DeadLetter",
    "Envelope",
    "Family",
    "Kind",
    "Label",
    "Migration",
    "Role",
    "Settings",
    "Topics",
    "envelope_json_schema",
    "migrations",
    "migrations_table",
    "parse_envelope",
    "resolve",
    "storage_number",
]
