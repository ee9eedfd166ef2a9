"""The read-only guard of the SQL endpoint: one read statement, nothing that escapes the store.

Two layers. ``check_read_only`` reads the statement the way ClickHouse's lexer does (string
literals, heredocs, quoted identifiers, ``--``/``#``/nested ``/* */`` comments, in one pass) and
refuses anything but a single SELECT/WITH/SHOW/DESCRIBE/EXPLAIN/EXISTS, any call of a function
that reaches files, the network, other databases or the host process, and ``INTO OUTFILE``. Both
layers matter: the embedded engine runs ``file()`` (a scalar function that reads local files)
and ``INTO OUTFILE`` even in read-only mode, runs every statement of a ``;``-separated text, and
takes zero-width and other Unicode spaces as whitespace. What it cannot read with certainty (an
unterminated literal or comment, an escape inside a quoted identifier, a control character) it
refuses. Then the statement runs with ``readonly=1``, which makes the engine refuse writes, DDL
and any change of settings (``SETTINGS`` clauses included: the engine answers those itself, with
its own error code).
"""

from __future__ import annotations

import re

MAX_QUERY_CHARS = 262_144  # ClickHouse's own max_query_size
LEADING = re.compile(r"^\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)
# Functions (table or scalar) that read or write outside the product's tables.
_ESCAPES = (
    r"file\w*|filesystem\w*|url\w*|s3\w*|gcs\w*|cosn|oss|azure\w*|hdfs\w*|remote\w*|cluster\w*"
    r"|mysql\w*|postgresql\w*|mongodb\w*|redis|sqlite|jdbc|odbc|bigquery|ytsaurus|executable\w*"
    r"|python|eval|input|iceberg\w*|deltalake\w*|hudi\w*|paimon\w*|prometheus\w*|arrow\w*|hive"
    r"|dictionary|getserversetting\w*|getmacro|currentprofiles|timeseries\w*|catboost\w*"
    r"|modelevaluate|loop"
)
_ESCAPE_CALL = re.compile(rf"\b({_ESCAPES})\s*\(", re.I)
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
_PLAIN = re.compile(r"[^'\"`#$/\-]+")
_HEREDOC = re.compile(r"\$(\w*)\$")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


class QueryRefused(ValueError):
    """The SQL endpoint only runs single read statements that stay inside the store."""


def _quoted_end(sql: str, start: int) -> int:
    """Index just past the literal or quoted identifier opening at ``start``."""
    quote, i, n = sql[start], start + 1, len(sql)
    while i < n:
        char = sql[i]
        if char == "\\":
            i += 2
        elif char == quote:
            if i + 1 < n and sql[i + 1] == quote:  # a doubled quote stands for itself
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise QueryRefused(f"unterminated {quote}...{quote} in the query")


def _comment_end(sql: str, start: int) -> int:
    """Index just past the (possibly nested) /* */ comment opening at ``start``."""
    depth, i = 1, start + 2
    closing = sql.find("*/", i)
    while True:
        if closing < 0:
            raise QueryRefused("unterminated /* comment in the query")
        # Openers are looked for only up to the next closer: the scan stays linear.
        opening = sql.find("/*", i, closing + 1)
        if opening >= 0:
            depth, i = depth + 1, opening + 2
            if closing < i:
                closing = sql.find("*/", i)
        else:
            depth, i = depth - 1, closing + 2
            if depth == 0:
                return i
            closing = sql.find("*/", i)


def skeleton(sql: str) -> str:
    """The statement as printable ASCII: literals blanked to '', comments and any other
    character to a space, quoted identifiers unquoted (so `file`( is still a call of file)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        plain = _PLAIN.match(sql, i)
        if plain:
            out.append(_NOT_PRINTABLE.sub(" ", plain.group(0)))
            i = plain.end()
            continue
        char = sql[i]
        if char == "'":
            i = _quoted_end(sql, i)
            out.append("''")
        elif char in '"`':
            end = _quoted_end(sql, i)
            inner = sql[i + 1 : end - 1]
            if "\\" in inner:
                raise QueryRefused("escapes inside quoted identifiers are not accepted")
            out.append(" " + re.sub(r"\W", " ", inner, flags=re.A) + " ")
            i = end
        elif sql.startswith("--", i) or sql.startswith("# ", i) or sql.startswith("#!", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif sql.startswith("/*", i):
            i = _comment_end(sql, i)
            out.append(" ")
        elif char == "$" and (tag := _HEREDOC.match(sql, i)):
            end = sql.find(tag.group(0), tag.end())
            if end < 0:
                raise QueryRefused("unterminated $$ heredoc in the query")
            i = end + len(tag.group(0))
            out.append("''")
        else:
            out.append(char)
            i += 1
    return "".join(out)


def check_read_only(sql: str) -> str:
    """Return the statement to run if it is one safe read; raise ``QueryRefused`` otherwise."""
    if len(sql) > MAX_QUERY_CHARS:
        raise QueryRefused(f"query of {len(sql)} characters; at most {MAX_QUERY_CHARS}")
    if _CONTROL.search(sql):
        raise QueryRefused("control characters are not accepted in a query")
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
