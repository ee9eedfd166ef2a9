"""ClickHouse cluster DDL, derived statement by statement from the single-node migrations.

A cluster runs the same versioned migrations as one server, each statement rewritten: every
DDL gets ``ON CLUSTER``, every MergeTree-family engine becomes its Replicated form (same
ordering key, partitioning and settings; ``non_replicated_deduplication_window`` becomes
``replicated_deduplication_window`` so the sink's deduplication tokens keep working). A table
with a ``brand`` column is sharded: its data lives in ``<table>_local`` (replicated within a
shard) and a Distributed table under the analyst-facing name spreads rows by
``cityHash64(brand)``, so one brand's rows, counts and alerts sit on one shard. A table without
``brand`` (the label reference, migration and sink bookkeeping) is replicated to every node
under its own name. Materialized views read the local source and write the local target, and
ALTERs reach the local table (and, for column changes, the Distributed one). A statement of a
form this module does not know raises ``ClusterDDLError`` instead of being guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.ddl import Migration, migrations, migrations_table, retention_statements

SHARDING_COLUMN = "brand"
SHARDING_KEY = f"cityHash64({SHARDING_COLUMN})"
LOCAL_SUFFIX = "_local"
SHARD_PATH = "/clickhouse/tables/{shard}/{database}/"
GLOBAL_PATH = "/clickhouse/tables/all/{database}/"
REPLICA = "{replica}"

_FLAGS = re.I | re.S
_CREATE_DATABASE = re.compile(
    r"\s*CREATE\s+DATABASE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<db>\w+)\s*$", _FLAGS
)
_CREATE_TABLE = re.compile(
    r"\s*CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.]+)\s*\(", _FLAGS
)
_CREATE_VIEW = re.compile(
    r"\s*CREATE\s+MATERIALIZED\s+VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.]+)"
    r"\s+TO\s+(?P<target>[\w.]+)\s+(?P<rest>.*)$",
    _FLAGS,
)
_ALTER = re.compile(r"\s*ALTER\s+TABLE\s+(?P<name>[\w.]+)\s+(?P<ops>.+)$", _FLAGS)
_INSERT = re.compile(r"\s*INSERT\s+INTO\s+(?P<name>[\w.]+)", _FLAGS)
_DROP = re.compile(
    r"\s*DROP\s+(?P<kind>TABLE|VIEW)\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>[\w.]+)\s*$", _FLAGS
)
_ENGINE = re.compile(r"\s*ENGINE\s*=\s*(?P<engine>\w+)", _FLAGS)
_SOURCE = re.compile(r"\b(?:FROM|JOIN)\s+(?P<name>[\w.]+)(?P<call>\s*\()?", _FLAGS)
_COLUMN_OP = re.compile(r"(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", _FLAGS)
_DROP_COLUMN = re.compile(r"DROP\s+COLUMN\b", _FLAGS)
_TTL = re.compile(r"\bTTL\b", _FLAGS)
_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b")


class ClusterDDLError(ValueError):
    """A single-node statement has no known cluster form; extend this module for it."""


class Executor(Protocol):
    """What applying migrations needs of a store (``stream_jobs.store.Store`` fits)."""

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> Any: ...

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        settings: dict[str, Any] | None = None,
    ) -> None: ...


def _depths(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth after it) of every character outside quotes and
    backticks; what is inside them (escapes included) is skipped."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        else:
            depth += (ch == "(") - (ch == ")")
            yield i, ch, depth
        i += 1


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at ``start`` (quotes and backticks skipped)."""
    for i, ch, depth in _depths(text, start):
        if ch == ")" and depth == 0:
            return i
    raise ClusterDDLError(f"unbalanced parentheses in: {text.strip()[:80]}")


def split_top_level(text: str) -> list[str]:
    """``text`` split at commas outside parentheses and quotes, each part stripped."""
    cuts = [i for i, ch, depth in _depths(text) if ch == "," and depth == 0]
    bounds = zip([-1, *cuts], [*cuts, len(text)], strict=True)
    return [part for a, b in bounds if (part := text[a + 1 : b].strip())]


@dataclass(frozen=True)
class Table:
    """What the cluster form of a table depends on: is it sharded by brand or everywhere."""

    name: str
    sharded: bool


class ClusterDDL:
    """Rewrites single-node statements for ``cluster``, remembering the tables seen so far.

    Statements must come in migration order: a view or an ALTER is rewritten according to
    the tables created before it.
    """

    def __init__(self, db: str, cluster: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][\w-]*", cluster):
            raise ClusterDDLError(f"not a cluster name: {cluster!r}")
        self.db = db
        self.cluster = cluster
        self.tables: dict[str, Table] = {}
        self.views: set[str] = set()

    # -- names ---------------------------------------------------------------------------
    def _unqualify(self, name: str) -> str:
        db, dot, table = name.rpartition(".")
        if not dot or db != self.db:
            raise ClusterDDLError(f"expected a name in database {self.db!r}, got {name!r}")
        return table

    def _table(self, name: str) -> Table:
        table = self.tables.get(self._unqualify(name))
        if table is None:
            raise ClusterDDLError(f"{name} is not a table created by an earlier migration")
        return table

    def local_name(self, table: str) -> str:
        """Where a table's rows are stored on each node."""
        t = self.tables[table]
        return f"{table}{LOCAL_SUFFIX}" if t.sharded else table

    def _on(self) -> str:
        return f"ON CLUSTER {self.cluster}"

    # -- statements ----------------------------------------------------------------------
    def translate(self, statement: str) -> list[str]:
        """The cluster statements, in order, that do what ``statement`` does on one node."""
        for pattern, handler in (
            (_CREATE_DATABASE, self._create_database),
            (_CREATE_TABLE, self._create_table),
            (_CREATE_VIEW, self._create_view),
            (_ALTER, self._alter),
            (_INSERT, self._insert),
            (_DROP, self._drop),
        ):
            match = pattern.match(statement)
            if match:
                return handler(statement, match)
        first = statement.strip().splitlines()[0] if statement.strip() else "(empty)"
        raise ClusterDDLError(f"no cluster form for the statement starting {first!r}")

    def _create_database(self, _: str, m: re.Match[str]) -> list[str]:
        if m["db"] != self.db:
            raise ClusterDDLError(f"unexpected database {m['db']!r}")
        return [f"CREATE DATABASE {m['ine'] or ''}{self.db} {self._on()}"]

    def _create_table(self, statement: str, m: re.Match[str]) -> list[str]:
        name = self._unqualify(m["name"])
        if name.endswith(LOCAL_SUFFIX):
            raise ClusterDDLError(f"{name}: the {LOCAL_SUFFIX} suffix is the cluster's own")
        open_at = m.end() - 1
        close_at = _closing(statement, open_at)
        columns_sql = statement[open_at + 1 : close_at]
        columns = [part.split()[0].strip("`") for part in split_top_level(columns_sql)]
        engine_m = _ENGINE.match(statement, close_at + 1)
        if engine_m is None:
            raise ClusterDDLError(f"{name}: no ENGINE clause")
        engine = engine_m["engine"]
        if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
            raise ClusterDDLError(f"{name}: no replicated form for engine {engine}")
        args, rest_at = "", engine_m.end()
        after = statement[rest_at:]
        if after.lstrip().startswith("("):
            args_open = rest_at + len(after) - len(after.lstrip())
            args_close = _closing(statement, args_open)
            args = statement[args_open + 1 : args_close].strip()
            rest_at = args_close + 1
        rest = _DEDUP_WINDOW.sub("replicated_deduplication_window", statement[rest_at:].rstrip())
        sharded = SHARDING_COLUMN in columns
        self.tables[name] = Table(name, sharded)
        ine = m["ine"] or ""
        stored = self.local_name(name)
        path = (SHARD_PATH if sharded else GLOBAL_PATH) + stored
        engine_args = ", ".join(a for a in (f"'{path}'", f"'{REPLICA}'", args) if a)
        create = (
            f"CREATE TABLE {ine}{self.db}.{stored} {self._on()} ({columns_sql})\n"
            f"ENGINE = Replicated{engine}({engine_args}){rest}"
        )
        if not sharded:
            return [create]
        distributed = (
            f"CREATE TABLE {ine}{self.db}.{name} {self._on()} AS {self.db}.{stored}\n"
            f"ENGINE = Distributed({self.cluster}, {self.db}, {stored}, {SHARDING_KEY})"
        )
        return [create, distributed]

    def _local_references(self, sql: str) -> str:
        """``sql`` with every sharded table read through its local table."""
        for table in self.tables.values():
            if table.sharded:
                pattern = rf"(?<![\w.`]){re.escape(self.db)}\.{re.escape(table.name)}(?!\w)"
                sql = re.sub(pattern, f"{self.db}.{table.name}{LOCAL_SUFFIX}", sql)
        return sql

    def _create_view(self, _: str, m: re.Match[str]) -> list[str]:
        name = self._unqualify(m["name"])
        target = self._table(m["target"])
        sources = [s for s in _SOURCE.finditer(m["rest"]) if not s["call"]]
        if not sources:
            raise ClusterDDLError(f"{name}: no source table found")
        for source in sources:
            table = self._table(source["name"])
            # A view fires only on inserts on its own node; a sharded target fed from an
            # everywhere-table would put every row on whichever shard took the insert.
            if target.sharded and not table.sharded:
                raise ClusterDDLError(f"{name}: sharded {target.name} fed from {table.name}")
        self.views.add(name)
        rest = self._local_references(m["rest"].strip())
        return [
            f"CREATE MATERIALIZED VIEW {m['ine'] or ''}{self.db}.{name} {self._on()} "
            f"TO {self.db}.{self.local_name(target.name)}\n{rest}"
        ]

    def _alter(self, _: str, m: re.Match[str]) -> list[str]:
        table = self._table(m["name"])
        ops = split_top_level(m["ops"].strip())
        stored = f"ALTER TABLE {self.db}.{self.local_name(table.name)} {self._on()} "
        if not table.sharded:
            return [stored + ", ".join(ops)]
        # The Distributed table carries columns, not indexes, TTLs or mutations.
        column_ops = [op for op in ops if _COLUMN_OP.match(op) and not _TTL.search(op)]
        drops = [op for op in column_ops if _DROP_COLUMN.match(op)]
        others = [op for op in column_ops if op not in drops]
        front = f"ALTER TABLE {self.db}.{table.name} {self._on()} "
        out = [front + ", ".join(drops)] if drops else []
        out.append(stored + ", ".join(ops))
        if others:
            out.append(front + ", ".join(others))
        return out

    def _insert(self, statement: str, m: re.Match[str]) -> list[str]:
        self._table(m["name"])
        # Run once, on one node: a Distributed target spreads the rows, an everywhere-table
        # replicates them.
        return [statement.strip()]

    def _drop(self, _: str, m: re.Match[str]) -> list[str]:
        name = self._unqualify(m["name"])
        ie = m["ie"] or ""
        if m["kind"].upper() == "VIEW":
            self.views.discard(name)
            return [f"DROP VIEW {ie}{self.db}.{name} {self._on()} SYNC"]
        table = self._table(m["name"])
        del self.tables[name]
        out = [f"DROP TABLE {ie}{self.db}.{name} {self._on()} SYNC"]
        if table.sharded:
            out.append(f"DROP TABLE {ie}{self.db}.{name}{LOCAL_SUFFIX} {self._on()} SYNC")
        return out


@dataclass(frozen=True)
class ClusterPlan:
    """Every statement for one database, in order: the database, the migrations' bookkeeping
    table, the migrations and the retention ALTERs (``cluster`` is None for one server)."""

    db: str
    cluster: str | None
    database: tuple[str, ...]
    migrations_table: tuple[str, ...]
    migrations: tuple[Migration, ...]
    retention: tuple[str, ...]


def cluster_plan(db: str, cluster: str, retention: tuple[int, int] = (0, 0)) -> ClusterPlan:
    """The cluster form of ``migrations(db)``: same versions and names, rewritten statements."""
    ddl = ClusterDDL(db, cluster)
    database = tuple(ddl.translate(f"CREATE DATABASE IF NOT EXISTS {db}"))
    bookkeeping = tuple(ddl.translate(migrations_table(db)))
    converted = tuple(
        Migration(m.version, m.name, tuple(s for st in m.statements for s in ddl.translate(st)))
        for m in migrations(db)
    )
    kept = tuple(s for st in retention_statements(db, *retention) for s in ddl.translate(st))
    return ClusterPlan(db, cluster, database, bookkeeping, converted, kept)


def single_plan(db: str, retention: tuple[int, int] = (0, 0)) -> ClusterPlan:
    """The single-server statements, in the same shape as a cluster plan."""
    return ClusterPlan(
        db,
        None,
        (f"CREATE DATABASE IF NOT EXISTS {db}",),
        (migrations_table(db),),
        tuple(migrations(db)),
        tuple(retention_statements(db, *retention)),
    )


def render(statements: Iterable[tuple[str, Iterable[str]]]) -> str:
    """SQL text for ``(heading, statements)`` groups, each statement ending in ``;``."""
    blocks = []
    for heading, group in statements:
        body = "\n\n".join(s.strip() + ";" for s in group)
        blocks.append(f"-- {heading}\n{body}")
    return "\n\n".join(blocks) + "\n"


def plan_script(plan: ClusterPlan) -> str:
    where = f" on cluster {plan.cluster}" if plan.cluster else " on one server"
    groups: list[tuple[str, Iterable[str]]] = [
        (f"database {plan.db}{where}", plan.database),
        ("applied migrations are recorded here", plan.migrations_table),
    ]
    groups += [(f"migration {m.version}: {m.name}", m.statements) for m in plan.migrations]
    groups.append(("retention (follows the settings; re-applied by every migrate)", plan.retention))
    return render(groups)


def pending_versions(store: Executor, db: str) -> list[int]:
    """Migration versions not yet recorded in ``db.schema_migrations`` (all when it is missing)."""
    wanted = [m.version for m in migrations(db)]
    exists = store.rows(f"EXISTS TABLE {db}.schema_migrations")
    if not exists or not int(next(iter(exists[0].values()))):
        return wanted
    done = {int(r["version"]) for r in store.rows(f"SELECT version FROM {db}.schema_migrations")}
    return [v for v in wanted if v not in done]


def apply_plan(store: Executor, plan: ClusterPlan) -> list[int]:
    """Apply the plan's pending migrations in order, recording each version as it completes
    (as ``Store.migrate`` does on one node); returns the versions applied now."""
    for statement in (*plan.database, *plan.migrations_table):
        store.command(statement)
    done = {
        int(r["version"]) for r in store.rows(f"SELECT version FROM {plan.db}.schema_migrations")
    }
    applied: list[int] = []
    for m in plan.migrations:
        if m.version in done:
            continue
        for statement in m.statements:
            store.command(statement)
        store.insert("schema_migrations", [[m.version, m.name]], ["version", "name"])
        applied.append(m.version)
    for statement in plan.retention:
        try:
            store.command(statement)
        except Exception:
            # A table without a TTL answers REMOVE TTL with an error: nothing to undo then.
            if not statement.rstrip().endswith("REMOVE TTL"):
                raise
    return applied
