"""The ClickHouse store: one client, embedded (chdb) or a server, and its migrations.

Embedded mode opens the in-process engine at a path on disk; only one process may hold it, so
the service owns it and serves other processes over HTTP. Server mode points the same code at
a ClickHouse server. All calls go through one lock because the embedded engine is a single
session shared by the sink and the web routes. Errors keep ClickHouse's code and name.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from tqdm import tqdm

from schemas import Settings, migrations, migrations_table
from schemas.ddl import retention_statements

log = logging.getLogger(__name__)
_CODE = re.compile(r"Code: (\d+)\. DB::Exception: (.*?)(?:\(([A-Z_]+)\))?(?:\s*\(version|$)", re.S)


class StoreError(Exception):
    """A ClickHouse call failed; ``code`` and ``name`` are ClickHouse's own, when it gave them."""

    def __init__(self, message: str, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name

    @classmethod
    def wrap(cls, error: Exception) -> StoreError:
        text = str(error)
        match = _CODE.search(text)
        if match:
            return cls(match.group(2).strip(), int(match.group(1)), match.group(3))
        return cls(text)


def connect(settings: Settings) -> Client:
    """A clickhouse-connect client for the configured store (embedded unless a URL is set)."""
    if settings.clickhouse_url:
        return clickhouse_connect.get_client(
            dsn=settings.clickhouse_url,
            username=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(),
            tz_mode="aware",
        )
    path = Path(settings.data_dir) / "chdb"
    path.mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(interface="chdb", path=str(path), tz_mode="aware")


class Store:
    """Thread-safe access to the product's database."""

    def __init__(self, client: Client, database: str, retention: tuple[int, int] = (0, 0)) -> None:
        self.client = client
        self.database = database
        self.retention = retention  # (row days, raw-text days); 0 keeps forever
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> Store:
        retention = (settings.retention_days, settings.text_retention_days)
        return cls(connect(settings), settings.database, retention)

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> Any:
        with self._lock:
            try:
                return self.client.command(sql, settings=settings)
            except ClickHouseError as error:
                raise StoreError.wrap(error) from error

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return list(self.client.query(sql, parameters=parameters).named_results())
            except ClickHouseError as error:
                raise StoreError.wrap(error) from error

    def raw(
        self,
        sql: str,
        fmt: str | None = None,
        settings: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
        database: str | None = None,
    ) -> bytes:
        """The query's output as bytes, in ClickHouse's ``fmt`` (the HTTP endpoint's path);
        ``database`` is the default database for unqualified table names in this query."""
        with self._lock:
            previous = self.client.database
            try:
                if database:
                    self.client.database = database
                result = self.client.raw_query(
                    sql, parameters=parameters or None, settings=settings, fmt=fmt
                )
                return bytes(result)
            except ClickHouseError as error:
                raise StoreError.wrap(error) from error
            finally:
                # An empty name never re-binds the session: name the default explicitly.
                self.client.database = previous or "default"

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        settings: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            try:
                self.client.insert(
                    table,
                    rows,
                    column_names=list(columns),
                    database=self.database,
                    settings=settings,
                )
            except ClickHouseError as error:
                raise StoreError.wrap(error) from error

    def migrate(self, progress: bool = False) -> list[int]:
        """Apply every migration not yet recorded; returns the versions applied now."""
        db = self.database
        self.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        self.command(migrations_table(db))
        done = {int(r["version"]) for r in self.rows(f"SELECT version FROM {db}.schema_migrations")}
        todo = [m for m in migrations(db) if m.version not in done]
        applied: list[int] = []
        for m in tqdm(todo, desc="migrations", unit="step", disable=not progress or not todo):
            for statement in m.statements:
                self.command(statement)
            self.insert("schema_migrations", [[m.version, m.name]], ["version", "name"])
            applied.append(m.version)
            log.info("applied migration %d: %s", m.version, m.name)
        engine = self.rows(
            "SELECT engine FROM system.tables WHERE database = {db:String} AND name = 'messages'",
            {"db": db},
        )
        if engine and engine[0]["engine"] == "Distributed":
            # On a cluster the TTLs belong on the local tables, where `db migrate --cluster`
            # sets them; a Distributed table refuses a TTL clause.
            return applied
        for statement in retention_statements(db, *self.retention):
            # A table without a TTL answers REMOVE TTL with an error; nothing to undo then.
            try:
                self.command(statement)
            except StoreError as error:
                if not statement.endswith("REMOVE TTL"):
                    raise
                log.debug("no TTL to remove: %s", error)
        return applied

    def reader(self, settings: Settings) -> Store:
        """A second store on its own session, locked to reads, for analysts' SQL.

        In the embedded engine, settings are per session and a query's settings are applied
        with SET; ``readonly`` then can't be undone, so the read-only session must be separate
        from the sink's. Output settings are fixed before the lock (numbers as JSON numbers).
        """
        client = connect(settings)
        limits = {
            "max_execution_time": settings.sql_max_seconds,
            "max_memory_usage": settings.sql_max_memory_bytes,
        }
        if settings.clickhouse_url:
            return ServerReader(client, self.database, limits=limits)
        client.command("SET output_format_json_quote_64bit_integers = 0")
        for name, value in limits.items():
            client.command(f"SET {name} = {int(value)}")
        client.command("SET readonly = 1")
        return Store(client, self.database)

    def close(self) -> None:
        with self._lock:
            self.client.close()


class ServerReader(Store):
    """A server's client with ``readonly=1`` and the query limits on every call (HTTP settings
    are per query)."""

    def __init__(self, client: Client, database: str, limits: dict[str, Any]) -> None:
        super().__init__(client, database)
        self.limits = limits

    def raw(
        self,
        sql: str,
        fmt: str | None = None,
        settings: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
        database: str | None = None,
    ) -> bytes:
        locked = {
            "output_format_json_quote_64bit_integers": 0,
            **(settings or {}),
            **self.limits,
            "readonly": 1,
        }
        return super().raw(sql, fmt, locked, parameters, database)
