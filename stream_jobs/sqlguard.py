"""The read-only guard of the SQL endpoint: one read statement, nothing that escapes the store.

Two layers. ``check_read_only`` reads the statement with string literals and comments blanked
out and refuses anything but a single SELECT/WITH/SHOW/DESCRIBE/EXPLAIN/EXISTS, and any call of
a function that reaches files, the network, other databases or the host process (ClickHouse's
``file()`` is also a *scalar* function that reads local files, and the embedded engine has a
``python()`` table function). Then the statement runs with ``readonly=1``, which makes the
engine itself refuse writes, DDL and any change of settings, including ``SETTINGS`` clauses.
"""

from __future__ import annotations

import re

LEADING = re.compile(r"^\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)
_LITERALS = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.S)
_COMMENTS = re.compile(r"--[^\n]*|#[^\n]*|/\*.*?\*/", re.S)
# Functions (table or scalar) that read or write outside the product's tables.
_ESCAPES = (
    r"file\w*|filesystem|url\w*|s3\w*|gcs|cosn|oss|azure\w*|hdfs\w*|remote\w*|cluster\w*"
    r"|mysql|postgresql|mongodb|redis|sqlite|jdbc|odbc|bigquery|ytsaurus|executable\w*"
    r"|python|eval|input|iceberg\w*|deltalake\w*|hudi\w*|paimon\w*|prometheus\w*|arrowstream"
    r"|dictionary|getserversetting|getmacro|currentprofiles|timeseries\w*"
)
_ESCAPE_CALL = re.compile(rf"\b({_ESCAPES})\s*\(", re.I)
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)


class QueryRefused(ValueError):
    """The SQL endpoint only runs single read statements that stay inside the store."""


def skeleton(sql: str) -> str:
    """The statement with comments removed and every quoted literal blanked."""
    return _LITERALS.sub("''", _COMMENTS.sub(" ", sql))


def check_read_only(sql: str) -> str:
    """Return the statement to run if it is one safe read; raise ``QueryRefused`` otherwise."""
    statement = sql.strip()
    shape = skeleton(statement).strip().rstrip(";").strip()
    if not shape:
        raise QueryRefused("empty query")
    if ";" in shape:
        raise QueryRefused("only one statement per request")
    if not LEADING.match(shape):
        raise QueryRefused("only read queries (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) are allowed")
    escape = _ESCAPE_CALL.search(shape)
    if escape:
        raise QueryRefused(f"function {escape.group(1)}() reaches outside the store; not allowed")
    if _INTO_OUTFILE.search(shape):
        raise QueryRefused("INTO OUTFILE is not allowed")
    return statement.rstrip().rstrip(";").rstrip()
