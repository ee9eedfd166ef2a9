"""Cluster DDL: derived from the single-node migrations, parsed and run by embedded ClickHouse.

Three checks. Every statement `relradar db migrate --cluster` would send parses in chdb
(``formatQuery``). Each cluster statement, once its cluster parts are taken out again (no
``ON CLUSTER``, no Replicated engine, no ``_local`` suffix), formats to exactly a statement of
the same single-node migration, so names, columns, ordering keys and settings cannot drift.
And the cluster layout runs: a child process opens chdb with a config that defines the
``relradar`` cluster (one local shard) and the ``{shard}``/``{replica}`` macros, applies the
plan through the real ``apply_plan`` with only ``ON CLUSTER`` and replication taken out (chdb
has no Keeper and no distributed DDL queue), writes the same batch through the product's sink
into the Distributed tables and into a single-node database, and answers reports, alerts and
the dashboards' queries the same way from both. It is a child process because chdb keeps its
first configuration for the life of the process, and the other tests' engines must not see
a cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from schemas import Label, migrations
from schemas.cluster_ddl import (
    ClusterDDL,
    ClusterDDLError,
    apply_plan,
    cluster_plan,
    pending_versions,
    plan_script,
    single_plan,
    split_top_level,
)

CLUSTER = "relradar"
DB = "relradar"
REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 240
CHDB_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <macros><shard>01</shard><replica>replica-1</replica></macros>
  <remote_servers>
    <relradar>
      <shard><replica><host>localhost</host><port>9000</port></replica></shard>
    </relradar>
  </remote_servers>
</clickhouse>
"""


def single_host_variant(statement: str) -> str:
    """A cluster statement as one server without Keeper runs it: no ON CLUSTER, engines not
    replicated (the ``_local`` and Distributed tables stay)."""
    s = statement.replace(f" ON CLUSTER {CLUSTER}", "")
    s = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?", r"\1(", s)
    s = re.sub(
        r"(?<!non_)replicated_deduplication_window", "non_replicated_deduplication_window", s
    )
    s = re.sub(r" SYNC$", "", s.rstrip())
    return re.sub(r"MergeTree\(\)", "MergeTree", s)


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path = tmp_path_factory.mktemp("chdb-cluster-ddl")
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    yield client
    client.close()  # one embedded engine per process: free it for the next module


def formatted(client: Client, sql: str) -> str:
    return str(
        client.query("SELECT formatQuery({q:String})", parameters={"q": sql}).result_rows[0][0]
    )


def test_every_migration_has_a_cluster_form_with_the_same_versions() -> None:
    plan = cluster_plan(DB, CLUSTER, (30, 7))
    assert [(m.version, m.name) for m in plan.migrations] == [
        (m.version, m.name) for m in migrations(DB)
    ]
    assert all(f"ON CLUSTER {CLUSTER}" in s for m in plan.migrations for s in m.statements
               if not s.startswith("INSERT"))  # fmt: skip
    assert plan.retention and all("messages_local ON CLUSTER" in s for s in plan.retention)


def test_tables_with_a_brand_are_sharded_and_others_are_everywhere() -> None:
    ddl = ClusterDDL(DB, CLUSTER)
    for m in migrations(DB):
        for statement in m.statements:
            ddl.translate(statement)
    sharded = {t.name for t in ddl.tables.values() if t.sharded}
    everywhere = {t.name for t in ddl.tables.values() if not t.sharded}
    assert {"messages", "counts_minute", "counts_hour", "counts_day", "alerts"} <= sharded
    assert {"author_labels", "conversations", "transitions"} <= sharded
    assert {"labels", "sink_batches"} <= everywhere
    text = plan_script(cluster_plan(DB, CLUSTER))
    for table in sharded:
        assert (
            f"CREATE TABLE IF NOT EXISTS {DB}.{table} ON CLUSTER {CLUSTER} AS {DB}.{table}_local\n"
            f"ENGINE = Distributed({CLUSTER}, {DB}, {table}_local, cityHash64(brand))"
        ) in text
        assert f"'/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'" in text
    for table in everywhere:
        assert f"'/clickhouse/tables/all/{{database}}/{table}', '{{replica}}'" in text
        assert f"{DB}.{table}_local" not in text
    # Views read the local source and write the local target.
    assert re.search(r"counts_hour_mv ON CLUSTER relradar TO relradar.counts_hour_local\s", text)
    assert "FROM relradar.messages_local\nGROUP BY" in text
    assert "FROM relradar.messages\n" not in text


def test_every_cluster_statement_parses_in_clickhouse(chdb: Client) -> None:
    plan = cluster_plan(DB, CLUSTER, (30, 7))
    statements = [*plan.database, *plan.migrations_table, *plan.retention]
    statements += [s for m in plan.migrations for s in m.statements]
    for statement in statements:
        assert formatted(chdb, statement), statement
    [(ast,)] = chdb.query("EXPLAIN AST " + plan.migrations[0].statements[1]).result_rows[:1]
    assert ast.startswith("CreateQuery relradar messages_local")


def test_cluster_statements_are_the_single_node_ones_plus_cluster_parts(chdb: Client) -> None:
    single = {m.version: m for m in migrations(DB)}
    for m in cluster_plan(DB, CLUSTER, (30, 7)).migrations:
        expected = {formatted(chdb, s) for s in single[m.version].statements}
        derived = {
            formatted(chdb, single_host_variant(s).replace("_local", ""))
            for s in m.statements
            if "ENGINE = Distributed(" not in s
        }
        assert derived == expected, f"migration {m.version}"
    retention_single = single_plan(DB, (30, 7)).retention
    retention_cluster = cluster_plan(DB, CLUSTER, (30, 7)).retention
    assert [formatted(chdb, s) for s in retention_single] == [
        formatted(chdb, single_host_variant(s).replace("_local", "")) for s in retention_cluster
    ]


def test_alters_reach_the_local_table_and_columns_the_distributed_one() -> None:
    ddl = ClusterDDL(DB, CLUSTER)
    for m in migrations(DB):
        for statement in m.statements:
            ddl.translate(statement)
    added = ddl.translate(
        f"ALTER TABLE {DB}.messages ADD COLUMN x UInt8, ADD INDEX i x TYPE set(0)"
    )
    assert added == [
        f"ALTER TABLE {DB}.messages_local ON CLUSTER {CLUSTER} ADD COLUMN x UInt8, "
        "ADD INDEX i x TYPE set(0)",
        f"ALTER TABLE {DB}.messages ON CLUSTER {CLUSTER} ADD COLUMN x UInt8",
    ]
    dropped = ddl.translate(f"ALTER TABLE {DB}.messages DROP COLUMN x")
    assert dropped[0].startswith(f"ALTER TABLE {DB}.messages ON CLUSTER")  # Distributed first
    assert dropped[1].startswith(f"ALTER TABLE {DB}.messages_local ON CLUSTER")
    ttl = ddl.translate(
        f"ALTER TABLE {DB}.messages MODIFY COLUMN text String TTL toDate(created_at)"
    )
    assert len(ttl) == 1 and "messages_local" in ttl[0]
    assert ddl.translate(f"ALTER TABLE {DB}.labels ADD COLUMN y UInt8") == [
        f"ALTER TABLE {DB}.labels ON CLUSTER {CLUSTER} ADD COLUMN y UInt8"
    ]
    assert ddl.translate(f"DROP VIEW IF EXISTS {DB}.counts_day_mv") == [
        f"DROP VIEW IF EXISTS {DB}.counts_day_mv ON CLUSTER {CLUSTER} SYNC"
    ]


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("CREATE VIEW relradar.v AS SELECT 1", "no cluster form"),
        ("CREATE TABLE relradar.t (brand String) ENGINE = Memory", "no replicated form"),
        (
            "CREATE TABLE relradar.t (brand String) ENGINE = ReplicatedMergeTree ORDER BY brand",
            "no replicated form",
        ),
        ("CREATE TABLE other.t (x UInt8) ENGINE = MergeTree ORDER BY x", "database 'relradar'"),
        ("CREATE TABLE relradar.t_local (x UInt8) ENGINE = MergeTree ORDER BY x", "suffix"),
        ("ALTER TABLE relradar.nowhere ADD COLUMN x UInt8", "not a table"),
        (
            "CREATE MATERIALIZED VIEW relradar.v TO relradar.messages AS SELECT * FROM labels",
            "expected a name in database",
        ),
        (
            "CREATE MATERIALIZED VIEW relradar.v TO relradar.counts_day AS "
            "SELECT * FROM relradar.labels",
            "fed from labels",
        ),
        ("TRUNCATE TABLE relradar.messages", "no cluster form"),
    ],
)
def test_statements_without_a_known_cluster_form_are_refused(statement: str, reason: str) -> None:
    ddl = ClusterDDL(DB, CLUSTER)
    for m in migrations(DB):
        for s in m.statements:
            ddl.translate(s)
    with pytest.raises(ClusterDDLError, match=reason):
        ddl.translate(statement)


def test_a_bad_cluster_name_is_refused() -> None:
    with pytest.raises(ClusterDDLError):
        cluster_plan(DB, "relradar; DROP TABLE x")


def test_the_command_prints_the_plan_and_needs_a_server_to_apply_it() -> None:
    from click.testing import CliRunner

    from stream_jobs.cli import main

    env = {
        "RELRADAR_CLICKHOUSE_URL": None,
        "RELRADAR_DATABASE": DB,
        "RELRADAR_RETENTION_DAYS": "30",
    }
    runner = CliRunner()
    printed = runner.invoke(main, ["db", "migrate", "--cluster", CLUSTER, "--print"], env=env)
    assert printed.exit_code == 0, printed.output
    assert printed.output == plan_script(cluster_plan(DB, CLUSTER, (30, 0)))
    single = runner.invoke(main, ["db", "migrate", "--print"], env=env)
    assert single.output == plan_script(single_plan(DB, (30, 0)))
    assert "ON CLUSTER" not in single.output and "ENGINE = MergeTree" in single.output
    refused = runner.invoke(main, ["db", "migrate", "--cluster", CLUSTER], env=env)
    assert refused.exit_code == 2 and "RELRADAR_CLICKHOUSE_URL" in refused.output
    bad = runner.invoke(main, ["db", "migrate", "--cluster", "no good", "--print"], env=env)
    assert bad.exit_code == 1 and "no cluster DDL" in bad.output


# -- the cluster layout, run in a child process (see the module docstring) ---------------


class SingleHostVariant:
    """A store that runs each cluster statement as ``single_host_variant`` of it."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.sent: list[str] = []

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> Any:
        self.sent.append(sql)
        return self.store.command(single_host_variant(sql), settings)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.store.rows(sql, parameters)

    def insert(self, table: str, rows: Any, columns: Any, settings: Any = None) -> None:
        self.store.insert(table, rows, columns, settings)


def traffic() -> list[Any]:
    """Thirty hours of two brands' messages; Acme's enemies jump in hour 28."""
    from schemas import ClassifiedMessage

    start = datetime(2026, 3, 1, tzinfo=UTC)
    out = []
    for hour in range(30):
        for brand in ("Acme", "Globex"):
            for i in range(40):
                spike = brand == "Acme" and hour == 28
                label = Label.enemies if (i < 25 if spike else i < 2) else Label.buddies
                out.append(
                    ClassifiedMessage(
                        id=f"{brand}-{hour}-{i}",
                        source="t",
                        kind="social_post",
                        brand=brand,
                        author=f"u{i % 7}",
                        text=f"message {i}",
                        created_at=start + timedelta(hours=hour, minutes=i),
                        label=label,
                        scores={label: 0.9},
                        model_version="test",
                    )
                )
    return out


def run_cluster_child(workdir: str, queries: list[str]) -> dict[str, Any]:
    """Child process body: both layouts in one chdb, and what each answers."""
    from stream_jobs.alerts import AlertRule, evaluate
    from stream_jobs.sink import ClickHouseSink
    from stream_jobs.store import Store

    config = Path(workdir) / "config.xml"
    config.write_text(CHDB_CONFIG)
    client = clickhouse_connect.get_client(
        interface="chdb",
        path=str(Path(workdir) / "engine"),
        # What the ClickHouseInstallation's profile sets (deploy/k8s/clickhouse.yaml).
        chdb_options={"config-file": str(config), "distributed_product_mode": "global"},
    )
    out: dict[str, Any] = {}
    try:
        cluster, single = Store(client, DB), Store(client, "single_node")
        out["single_applied"] = single.migrate()
        variant = SingleHostVariant(cluster)
        out["cluster_applied"] = apply_plan(variant, cluster_plan(DB, CLUSTER))
        out["reapplied"] = apply_plan(variant, cluster_plan(DB, CLUSTER))
        out["pending"] = pending_versions(cluster, DB)
        out["clusters"] = cluster.rows("SELECT cluster, is_local FROM system.clusters")
        tables_sql = (
            "SELECT database, name, engine, sorting_key, partition_key, engine_full "
            "FROM system.tables WHERE database IN ('relradar', 'single_node') ORDER BY name"
        )
        out["tables"] = cluster.rows(tables_sql)
        out["columns"] = cluster.rows(
            "SELECT database, table, name, type FROM system.columns "
            "WHERE database IN ('relradar', 'single_node') ORDER BY table, position"
        )
        batch = traffic()
        for store in (single, cluster):
            ClickHouseSink(store).write(batch)
            ClickHouseSink(store).write(batch)  # a replay: deduplicated through both layouts
        answers: dict[str, Any] = {}
        for name, store in (("single", single), ("cluster", cluster)):
            db = store.database
            answers[name] = {
                "messages": store.rows(f"SELECT count() AS n FROM {db}.messages"),
                "counts": store.rows(
                    f"SELECT brand, toString(label) AS label, sum(messages) AS n "
                    f"FROM {db}.counts_hour GROUP BY brand, label ORDER BY brand, label"
                ),
                "authors": store.rows(f"SELECT count() AS n FROM {db}.author_labels"),
                "families": store.rows(
                    f"SELECT l.family AS family, sum(c.messages) AS n FROM {db}.counts_day AS c "
                    f"INNER JOIN {db}.labels AS l ON c.label = l.label "
                    "GROUP BY family ORDER BY family"
                ),
                "alerts": [
                    [a.brand, a.label, str(a.window_start), a.count]
                    for a in evaluate(store, AlertRule())
                ],
            }
        out["answers"] = answers
        failures = {}
        for sql in queries:
            try:
                cluster.rows(sql)
            except Exception as error:
                failures[sql] = str(error)[:300]
        out["query_failures"] = failures
        out["queries_run"] = len(queries)
    finally:
        client.close()
    return json.loads(json.dumps(out, default=str))


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.unit.test_deploy import dashboard_sql

    workdir = tmp_path_factory.mktemp("chdb-cluster")
    queries = [sql for _, sql in dashboard_sql()]
    (workdir / "queries.json").write_text(json.dumps(queries))
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.test_cluster_ddl", str(workdir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads((workdir / "result.json").read_text())
    return result


def test_cluster_migrations_apply_once_and_are_recorded(cluster_run: dict[str, Any]) -> None:
    versions = [m.version for m in migrations(DB)]
    assert cluster_run["clusters"] == [{"cluster": CLUSTER, "is_local": 1}]
    assert cluster_run["single_applied"] == versions
    assert cluster_run["cluster_applied"] == versions
    assert cluster_run["reapplied"] == []
    assert cluster_run["pending"] == []


def test_cluster_tables_keep_the_single_node_names_keys_and_columns(
    cluster_run: dict[str, Any],
) -> None:
    tables = {(t["database"], t["name"]): t for t in cluster_run["tables"]}
    columns: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for c in cluster_run["columns"]:
        columns.setdefault((c["database"], c["table"]), []).append((c["name"], c["type"]))
    single = {name for db, name in tables if db == "single_node"}
    assert {name for db, name in tables if db == DB and not name.endswith("_local")} == single
    for name in sorted(single):
        one = tables[("single_node", name)]
        if one["engine"] in ("MaterializedView",):
            continue
        local = tables.get((DB, f"{name}_local"))
        front = tables[(DB, name)]
        if local is None:  # an everywhere-table keeps its name and engine
            assert front["engine"] == one["engine"], name
            stored = front
        else:
            assert front["engine"] == "Distributed", name
            assert "cityHash64(brand)" in front["engine_full"], name
            assert local["engine"] == one["engine"], name
            stored = local
            assert columns[(DB, name)] == columns[("single_node", name)], name
        assert stored["sorting_key"] == one["sorting_key"], name
        assert stored["partition_key"] == one["partition_key"], name
        assert columns[(DB, stored["name"])] == columns[("single_node", name)], name


def test_the_cluster_layout_answers_like_one_server(cluster_run: dict[str, Any]) -> None:
    single, cluster = cluster_run["answers"]["single"], cluster_run["answers"]["cluster"]
    assert single["messages"] == [{"n": 30 * 2 * 40}]
    assert single["alerts"], "the spike should raise an alert"
    assert cluster == single


def test_dashboard_queries_run_on_the_cluster_layout(cluster_run: dict[str, Any]) -> None:
    assert cluster_run["queries_run"] > 0
    assert cluster_run["query_failures"] == {}


if __name__ == "__main__":
    # The child process of ``cluster_run``: its argument is a work folder holding queries.json.
    work = Path(sys.argv[1])
    result = run_cluster_child(str(work), json.loads((work / "queries.json").read_text()))
    (work / "result.json").write_text(json.dumps(result))


def test_top_level_split_ignores_commas_in_parentheses_quotes_and_escapes() -> None:
    text = "a Map(String, UInt8), b String DEFAULT 'x, (y', c `odd,name` Int8, d 'it\\'s, ok'"
    assert split_top_level(text) == [
        "a Map(String, UInt8)",
        "b String DEFAULT 'x, (y'",
        "c `odd,name` Int8",
        "d 'it\\'s, ok'",
    ]
    assert split_top_level(" , a ,, ") == ["a"]
