"""Settings are documented and validated; the public names stay exported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

import ingest
import models
import schemas
import stream_jobs
from schemas import Settings
from stream_jobs.cli import COMMON

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [n for n in Settings.model_fields if f"`RELRADAR_{n.upper()}`" not in text]
    assert not missing, f"document these in docs/settings.md: {missing}"


def test_docs_name_no_setting_that_does_not_exist() -> None:
    named = set(re.findall(r"`RELRADAR_([A-Z_]+)`", DOC.read_text()))
    assert named <= {n.upper() for n in Settings.model_fields}


def test_cli_options_read_real_settings() -> None:
    for option in COMMON:
        decorated = option(lambda **kw: None)
        [param] = decorated.__click_params__  # type: ignore[attr-defined]
        assert param.envvar.removeprefix("RELRADAR_").lower() in Settings.model_fields


def test_environment_is_read_and_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELRADAR_HTTP_PORT", "9999")
    monkeypatch.setenv("RELRADAR_API_TOKEN", "s3cret")
    settings = Settings()
    assert settings.http_port == 9999
    assert "s3cret" not in repr(settings)
    with pytest.raises(ValidationError):
        settings.http_port = 1  # type: ignore[misc]
    monkeypatch.setenv("RELRADAR_HTTP_PORT", "not a port")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            schemas,
            [
                "Label",
                "Envelope",
                "ClassifiedMessage",
                "DeadLetter",
                "Settings",
                "Topics",
                "migrations",
                "parse_envelope",
                "resolve",
                "PROBLEM_LABELS",
            ],
        ),
        (
            ingest,
            ["Publisher", "ColumnMapping", "read_file", "read_preset", "parse_push", "replay"],
        ),
        (models, ["Classifier", "Prediction", "LexiconClassifier", "classify_envelopes"]),
        (stream_jobs, ["ClickHouseSink", "SinkBackpressure", "Store", "StoreError", "create_app"]),
    ],
)
def test_public_names_stay_exported(module: object, names: list[str]) -> None:
    exported = module.__all__  # type: ignore[attr-defined]
    for name in names:
        assert name in exported and hasattr(module, name)


def test_imports_go_one_way() -> None:
    root = Path(__file__).resolve().parents[2]
    allowed = {
        "schemas": set(),
        "ingest": {"schemas"},
        "models": {"schemas"},
        "stream_jobs": {"schemas", "ingest", "models"},
    }
    for package, may_import in allowed.items():
        for path in (root / package).rglob("*.py"):
            imported = set(
                re.findall(
                    r"^\s*(?:from|import) (schemas|ingest|models|stream_jobs)\b",
                    path.read_text(),
                    re.M,
                )
            )
            assert imported - {package} <= may_import, f"{path} imports {imported}"
