"""deploy/ checked offline: schemas, settings, secrets, topics, images and the dashboards' SQL.

Nothing here needs Docker or a cluster. The compose file is validated with check-jsonschema's
bundled compose-spec schema; every built-in Kubernetes object with kubernetes-validate's
bundled schemas (strict: unknown fields fail); Strimzi and KEDA resources with the validators
the @kubernetes-models npm packages compile from those operators' CRDs (deploy/validate/);
the Altinity resources with JSON Schemas derived from that operator's CRDs and vendored in
deploy/validate/altinity/ (README there). Every RELRADAR_* variable must be a real setting,
secrets must come from secrets, and every ClickHouse query of the Grafana dashboards runs
against an embedded store migrated by the product's own migrations.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from schemas import ClassifiedMessage, Label, Settings, Topics
from stream_jobs.alerts import Alert, store_alerts
from stream_jobs.metrics import Metrics
from stream_jobs.sink import ClickHouseSink
from stream_jobs.store import Store

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
VALIDATE = DEPLOY / "validate"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
# The oldest Kubernetes Strimzi 1.0 supports, and the newest kubernetes-validate bundles.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
CRD_GROUPS = {"kafka.strimzi.io", "keda.sh"}
ALTINITY = {
    "ClickHouseInstallation": "clickhouseinstallation.schema.json",
    "ClickHouseKeeperInstallation": "clickhousekeeperinstallation.schema.json",
}
SETTINGS_ENV = {f"RELRADAR_{name.upper()}": name for name in Settings.model_fields}
SECRET_ENV = {
    env
    for env, name in SETTINGS_ENV.items()
    if "SecretStr" in str(Settings.model_fields[name].annotation)
}


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every object of every manifest in deploy/k8s (the kustomization is not an object)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The containers and init containers of a workload, or of an operator's pod templates."""
    spec = doc.get("spec", {})
    pods = [spec.get("template", {}).get("spec", {})]
    pods += [t.get("spec", {}) for t in spec.get("templates", {}).get("podTemplates", [])]
    for pod in pods:
        yield from pod.get("initContainers", [])
        yield from pod.get("containers", [])


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines())
    return {k.strip(): v for k, v in (p for p in pairs if len(p) == 2) if not k.startswith("#")}


def config_map() -> dict[str, str]:
    [data] = [d["data"] for _, d in k8s_documents() if d["kind"] == "ConfigMap"]
    return {k: str(v) for k, v in data.items()}


# -- schema validation ---------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
             str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    done = check(DEPLOY / "compose.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    # The validator is not vacuous: a misspelled service key fails it.
    broken = compose()
    broken["services"]["worker"]["deploi"] = broken["services"]["worker"].pop("deploy")
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    assert check(tmp_path / "compose.yaml").returncode == 1


def test_every_kubernetes_object_has_a_validator_and_passes_it() -> None:
    docs = k8s_documents()
    builtin = [(f, d) for f, d in docs if d["apiVersion"].split("/")[0] not in CRD_GROUPS
               and d["kind"] not in ALTINITY]  # fmt: skip
    for version in K8S_VERSIONS:
        for name, doc in builtin:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except SchemaNotFoundError as error:
                pytest.fail(f"{name}: {doc['kind']} is no Kubernetes {version} kind: {error}")
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {error.message}")
    kinds = {d["kind"] for _, d in builtin}
    assert {"Namespace", "ConfigMap", "Job", "Deployment", "Service"} <= kinds
    bad = next(d for _, d in builtin if d["kind"] == "Deployment")
    bad = json.loads(json.dumps(bad))
    bad["spec"]["template"]["spec"]["containers"][0]["envFrmo"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def node_validator(items: list[dict[str, Any]]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (VALIDATE / "node_modules").is_dir():
        pytest.skip("the CRD validators are not installed: run `make validators`")
    done = subprocess.run(
        [node, str(VALIDATE / "validate.mjs")],
        input=json.dumps(items), capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_strimzi_and_keda_resources_pass_their_crd_schemas() -> None:
    items = [{"source": f, "doc": d} for f, d in k8s_documents()
             if d["apiVersion"].split("/")[0] in CRD_GROUPS]  # fmt: skip
    kinds = {i["doc"]["kind"] for i in items}
    assert kinds == {"Kafka", "KafkaNodePool", "KafkaTopic", "ScaledObject"}
    bad = json.loads(json.dumps(next(i for i in items if i["doc"]["kind"] == "KafkaTopic")))
    bad["doc"]["spec"]["partitions"] = "twelve"
    out = node_validator([*items, bad])
    *results, refused = out["results"]
    failures = [r for r in results if not r["ok"]]
    assert failures == [], failures
    assert len(results) == len(items)
    assert not refused["ok"] and "partitions" in refused["errors"][0]
    assert out["packages"] == {
        "@kubernetes-models/strimzi-kafka-operator": "1.0.1",
        "@kubernetes-models/keda": "2.0.0",
    }


def test_altinity_resources_pass_the_schemas_derived_from_their_crds() -> None:
    docs = [d for _, d in k8s_documents() if d["kind"] in ALTINITY]
    assert {d["kind"] for d in docs} == set(ALTINITY)
    for doc in docs:
        schema = json.loads((VALIDATE / "altinity" / ALTINITY[doc["kind"]]).read_text())
        validator = jsonschema.Draft202012Validator(schema)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], f"{doc['kind']}: {errors}"
        typo = json.loads(json.dumps(doc))
        typo["spec"]["configuration"]["clusters"][0]["layout"]["replicaCount"] = 2
        assert not validator.is_valid(typo)


def test_kustomization_lists_every_manifest_and_generates_the_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert kustomization["namespace"] == "relradar"
    [generator] = kustomization["secretGenerator"]
    assert generator["name"] == "relradar-secrets" and generator["envs"] == ["secrets.env"]
    assert (K8S / "secrets.env.example").is_file()
    assert (
        not (K8S / "secrets.env").exists() or "secrets.env" in (DEPLOY / ".gitignore").read_text()
    )


# -- settings and secrets ------------------------------------------------------------------


def compose_env() -> dict[str, dict[str, str]]:
    """Each service's environment (list or mapping form), by service."""
    out = {}
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        out[name] = {k: str(v) for k, v in env.items()}
    return out


def relradar_names_in(text: str) -> set[str]:
    return set(re.findall(r"\bRELRADAR_[A-Z0-9_]+", text))


def test_every_relradar_variable_is_a_real_setting() -> None:
    names: set[str] = set()
    for env in compose_env().values():
        names |= {k for k in env if k.startswith("RELRADAR_")}
    names |= relradar_names_in(json.dumps(compose()["services"]))
    for _, doc in k8s_documents():
        names |= relradar_names_in(json.dumps(doc))
    names |= relradar_names_in((K8S / "secrets.env.example").read_text())
    # deploy/.env.example holds compose's secret sources, named like the settings they feed.
    names |= relradar_names_in((DEPLOY / ".env.example").read_text())
    assert names, "no settings found: the checks below would be vacuous"
    unknown = sorted(names - SETTINGS_ENV.keys())
    assert unknown == [], f"not fields of schemas.settings.Settings: {unknown}"


def test_configured_values_are_valid_settings() -> None:
    for values in (config_map(), compose_env()["worker"]):
        fields = {SETTINGS_ENV[k]: v for k, v in values.items() if k.startswith("RELRADAR_")}
        settings = Settings(**fields)
        assert settings.broker and settings.clickhouse_url  # no embedded broker or store
        assert settings.http_host == "0.0.0.0"


def test_retention_is_set_on_the_cluster_migration_only() -> None:
    """A worker's start-up migration would aim the TTL at the Distributed table, which refuses
    it, and the worker would not start (docs/deploy.md)."""
    retention = {"RELRADAR_RETENTION_DAYS", "RELRADAR_TEXT_RETENTION_DAYS"}
    assert not retention & config_map().keys()
    for _, doc in k8s_documents():
        for container in containers(doc):
            named = {e["name"] for e in container.get("env", [])}
            if container.get("args", [])[:2] == ["db", "migrate"]:
                assert retention <= named
            else:
                assert not retention & named, container["name"]


def test_secrets_come_only_from_secrets() -> None:
    assert {"RELRADAR_CLICKHOUSE_PASSWORD", "RELRADAR_API_TOKEN"} <= SECRET_ENV
    # Kubernetes: no secret in the ConfigMap or as a literal env value; the Secret has them.
    assert not SECRET_ENV & config_map().keys()
    for name, doc in k8s_documents():
        for container in containers(doc):
            literal = {e["name"] for e in container.get("env", []) if "value" in e}
            assert not literal & SECRET_ENV, f"{name}: {container['name']}"
            refs = [r.get("secretRef") for r in container.get("envFrom", [])]
            if doc["kind"] in ("Deployment", "Job"):
                assert {"name": "relradar-secrets"} in refs, f"{name}: {container['name']}"
    secret_keys = env_file(K8S / "secrets.env.example").keys()
    assert {"RELRADAR_CLICKHOUSE_PASSWORD", "RELRADAR_API_TOKEN"} <= secret_keys <= SECRET_ENV
    [chi] = [d for _, d in k8s_documents() if d["kind"] == "ClickHouseInstallation"]
    users = chi["spec"]["configuration"]["users"]
    assert users["relradar/password"] == {
        "valueFrom": {
            "secretKeyRef": {"name": "relradar-secrets", "key": "RELRADAR_CLICKHOUSE_PASSWORD"}
        }
    }
    assert not [k for k, v in users.items() if "password" in k and isinstance(v, str)]
    # Compose: secrets are files under /run/secrets, filled from deploy/.env, never inline.
    spec = compose()
    for service, env in compose_env().items():
        assert not env.keys() & SECRET_ENV, service
        for key, value in env.items():
            if re.search("PASSWORD|TOKEN|SECRET", key):
                assert value.startswith("/run/secrets/"), f"{service}: {key}"
    for name, secret in spec["secrets"].items():
        assert set(secret) == {"environment"}, name
        assert secret["environment"] in env_file(DEPLOY / ".env.example"), name
    assert all(v == "" for k, v in env_file(DEPLOY / ".env.example").items() if k != "WORKERS")
    script = " ".join(spec["x-relradar"]["entrypoint"])
    for env in ("RELRADAR_CLICKHOUSE_PASSWORD", "RELRADAR_API_TOKEN"):
        assert re.search(rf'{env}="\$\$\(cat /run/secrets/\w+\)"', script), env
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


# -- topics, scaling, cluster --------------------------------------------------------------


def test_topics_exist_in_both_deployments_with_the_configured_partitions() -> None:
    wanted = set(Topics(config_map()["RELRADAR_TOPIC_PREFIX"]).all())
    partitions = int(config_map()["RELRADAR_PARTITIONS"])
    assert partitions >= 12
    topics = {d["spec"]["topicName"]: d["spec"] for _, d in k8s_documents()
              if d["kind"] == "KafkaTopic"}  # fmt: skip
    assert set(topics) == wanted
    assert {t["partitions"] for t in topics.values()} == {partitions}
    assert topics[Topics().conversations_changelog]["config"]["cleanup.policy"] == "compact"
    script = compose()["services"]["kafka-topics"]["entrypoint"][-1]
    assert set(re.findall(r"^\s*create (\S+)", script, re.M)) == wanted
    assert f"--partitions {partitions}" in script
    assert int(compose_env()["worker"]["RELRADAR_PARTITIONS"]) == partitions


def test_workers_scale_on_the_lag_of_their_own_consumer_group() -> None:
    docs = [d for _, d in k8s_documents()]
    [scaler] = [d for d in docs if d["kind"] == "ScaledObject"]
    [worker] = [d for d in docs if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]]
    [ingest] = [d for d in docs if d["kind"] == "Deployment" and "ingest" in d["metadata"]["name"]]
    assert scaler["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"]  # the autoscaler owns it
    settings = config_map()
    triggers = scaler["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == settings["RELRADAR_APP_ID"] == Settings().app_id
        assert meta["bootstrapServers"] == settings["RELRADAR_BROKER"]
        assert meta["offsetResetPolicy"] == "earliest"  # what the faust consumers use
    topics = Topics(settings["RELRADAR_TOPIC_PREFIX"])
    assert {t["metadata"]["topic"] for t in triggers} == {topics.raw, topics.classified}
    consumers = scaler["spec"]["maxReplicaCount"] + ingest["spec"]["replicas"]
    assert consumers <= int(settings["RELRADAR_PARTITIONS"])


def test_the_cluster_the_migrations_name_is_the_one_clickhouse_runs() -> None:
    docs = [d for _, d in k8s_documents()]
    [chi] = [d for d in docs if d["kind"] == "ClickHouseInstallation"]
    [chk] = [d for d in docs if d["kind"] == "ClickHouseKeeperInstallation"]
    [cluster] = chi["spec"]["configuration"]["clusters"]
    assert cluster["name"] == "relradar"
    assert cluster["layout"]["shardsCount"] >= 2 and cluster["layout"]["replicasCount"] >= 2
    assert chk["spec"]["configuration"]["clusters"][0]["layout"]["replicasCount"] >= 3
    [node] = chi["spec"]["configuration"]["zookeeper"]["nodes"]
    assert node["host"] == f"keeper-{chk['metadata']['name']}"
    profile = chi["spec"]["configuration"]["profiles"]
    assert profile["relradar/distributed_product_mode"] == "global"
    [job] = [d for d in docs if d["kind"] == "Job"]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["db", "migrate", "--cluster", cluster["name"]]
    waits = [c for d in docs if d["kind"] == "Deployment"
             for c in d["spec"]["template"]["spec"]["initContainers"]]  # fmt: skip
    assert len(waits) == 2
    for container in waits:
        assert f"db migrate --cluster {cluster['name']} --check" in container["command"][-1]
    service = chi["spec"]["templates"]["serviceTemplates"][0]
    assert service["spec"]["type"] == "ClusterIP"
    url = config_map()["RELRADAR_CLICKHOUSE_URL"]
    assert url == f"http://{service['generateName'].replace('{chi}', chi['metadata']['name'])}:8123"


def test_images_are_pinned() -> None:
    images = [s["image"] for s in compose()["services"].values() if "image" in s]
    images += [c["image"] for _, d in k8s_documents() for c in containers(d)]
    assert len(images) >= 10
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, image
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all(i["newTag"] != "latest" for i in kustomization["images"])
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert (
        "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in dockerfile
    )
    assert 'pip install ".[ml]"' in dockerfile
    assert 'ENTRYPOINT ["relradar"]' in dockerfile
    # The shipped model is package data copied with models/; the context must keep it.
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "!models" in ignored and not any(p.startswith("models/artifacts") for p in ignored)


def test_prometheus_scrapes_the_service_metrics_with_the_token() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"] == "/run/secrets/api_token"
    [sd] = job["dns_sd_configs"]
    assert sd["port"] == int(compose_env()["worker"]["RELRADAR_HTTP_PORT"])
    assert set(sd["names"]) == {"relradar", "worker"}
    assert "api_token" in compose()["services"]["prometheus"]["secrets"]


# -- the dashboards ------------------------------------------------------------------------

# From the test data's first day to tomorrow: rows' inserted_at is the time the test runs.
FROM = "2026-03-01 00:00:00"
TO = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
BRANDS = "'Acme', 'Globex'"


def grafana_sql(sql: str) -> str:
    """A panel's SQL with the ClickHouse datasource's macros and the variables filled in."""
    time_filter = (
        rf"\1 >= toDateTime64('{FROM}', 3, 'UTC') AND \1 <= toDateTime64('{TO}', 3, 'UTC')"
    )
    sql = re.sub(r"\$__timeFilter\(([\w.]+)\)", time_filter, sql)
    sql = re.sub(
        r"\$__timeInterval\(([\w.]+)\)",
        r"toStartOfInterval(toDateTime(\1), INTERVAL 3600 second)",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime64('{FROM}', 3, 'UTC')")
    sql = sql.replace("$__toTime", f"toDateTime64('{TO}', 3, 'UTC')")
    sql = sql.replace("${brand:singlequote}", BRANDS)
    assert "$" not in sql, f"a macro or variable the test does not know: {sql}"
    return sql


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def dashboard_targets(kind: str) -> list[tuple[str, str]]:
    """(where, query) for every panel target and template variable of datasource ``kind``."""
    out = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == kind:
                    out.append(
                        (f"{name}: {panel['title']}", target.get("rawSql") or target["expr"])
                    )
        for var in board["templating"]["list"]:
            if var["datasource"]["type"] == kind:
                out.append((f"{name}: ${var['name']}", var["query"]))
    return out


def dashboard_sql() -> list[tuple[str, str]]:
    """Every ClickHouse query of the dashboards, ready to run (used by test_cluster_ddl too)."""
    return [
        (where, grafana_sql(sql))
        for where, sql in dashboard_targets("grafana-clickhouse-datasource")
    ]


def test_dashboards_cover_the_four_views_and_use_provisioned_datasources() -> None:
    boards = dashboards()
    assert set(boards) == {
        "relationship-mix.json", "problem-share.json", "alerts.json", "pipeline-health.json"
    }  # fmt: skip
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "relradar.yaml").read_text()
    )
    sources = {(d["type"], d["uid"]) for d in provisioned["datasources"]}
    for name, board in boards.items():
        assert board["uid"] and board["panels"], name
        for panel in board["panels"]:
            assert (panel["datasource"]["type"], panel["datasource"]["uid"]) in sources, name
            for target in panel["targets"]:
                assert (target["datasource"]["type"], target["datasource"]["uid"]) in sources
    [clickhouse] = [d for d in provisioned["datasources"] if d["uid"] == "relradar-clickhouse"]
    assert clickhouse["jsonData"]["username"] == "grafana"  # the read-only user
    users = (DEPLOY / "clickhouse" / "users.d" / "grafana.xml").read_text()
    assert "<grafana>" in users and "<readonly>1</readonly>" in users
    assert clickhouse["secureJsonData"]["password"].startswith("$__file{/run/secrets/")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("chdb-dashboards")
    opened = Store.open(Settings(data_dir=path, database="relradar"))
    opened.migrate()
    start = datetime(2026, 3, 1, 6, tzinfo=UTC)
    batch = [
        ClassifiedMessage(
            id=f"d{i}",
            source="t",
            kind="social_post",
            brand=("Acme", "Globex")[i % 2],
            author=f"u{i % 5}",
            text=f"message {i}",
            created_at=start + timedelta(minutes=7 * i),
            label=label,
            scores={label: 0.8},
            model_version="test",
        )
        for i, label in enumerate([Label.enemies, Label.buddies, Label.captive, Label.fling] * 30)
    ]
    ClickHouseSink(opened).write(batch)
    hour = datetime(2026, 3, 1, 9, tzinfo=UTC)
    alert = Alert("a1", "Acme", "enemies", hour, hour + timedelta(hours=1), 40, 12, 0.3, 0.05,
                  6.0, 1e-6, "binomial", ["message 0"])  # fmt: skip
    store_alerts(opened, [alert])
    yield opened
    opened.close()  # one embedded engine per process: free the path for the next module


def test_every_dashboard_query_runs_against_the_migrated_tables(store: Store) -> None:
    queries = dashboard_sql()
    assert len(queries) >= 12
    answered = 0
    for where, sql in queries:
        try:
            rows = store.rows(sql)
        except Exception as error:
            pytest.fail(f"{where}: {error}")
        answered += bool(rows)
    assert answered == len(queries)  # every query found the test data it reads


def promql_metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(relradar_[a-z0-9_]+)\b", expr))


def test_prometheus_panels_use_series_the_service_exports() -> None:
    metrics = Metrics(process=False)
    series: dict[str, tuple[str, ...]] = {}
    for wrapper in vars(metrics).values():
        name, kind = getattr(wrapper, "_name", None), getattr(wrapper, "_type", None)
        if name is None or kind is None:
            continue
        labels = tuple(getattr(wrapper, "_labelnames", ()))
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(kind, [""]):
            series[name + suffix] = labels + (("le",) if suffix == "_bucket" else ())
    exported = metrics.exposition()[0].decode()
    assert "relradar_messages_total" in exported and "relradar_consumer_lag" in exported
    used: set[str] = set()
    for where, expr in dashboard_targets("prometheus"):
        names = promql_metric_names(expr)
        assert names or "up{" in expr, where
        unknown = names - series.keys()
        assert not unknown, f"{where}: {unknown} not exported by stream_jobs.metrics"
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in (g.strip() for g in group.split(",")):
                assert all(label in series[n] for n in names), f"{where}: no label {label}"
        used |= names
    assert {
        "relradar_messages_total",
        "relradar_consumer_lag",
        "relradar_classify_batch_seconds_bucket",
        "relradar_sink_errors_total",
        "relradar_sink_retries_total",
        "relradar_dead_letters_total",
    } <= used
