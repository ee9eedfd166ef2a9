"""File connectors and the presets for the shipped real data: good rows and dead letters."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ingest import ColumnMapping, read_file, read_preset
from schemas import DeadLetter, Envelope, Kind, Role

MAPPING = ColumnMapping(
    text="body",
    id="msg_id",
    brand="company",
    created_at="ts",
    source="shop",
    time_format="%Y-%m-%d %H:%M",
)


def split(records: list) -> tuple[list[Envelope], list[DeadLetter]]:
    return (
        [r for r in records if isinstance(r, Envelope)],
        [r for r in records if isinstance(r, DeadLetter)],
    )


def test_csv_with_a_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "msg_id,company,ts,body\n1,Acme,2024-01-02 03:04,where is my parcel\n"
        '2,Acme,2024-01-02 03:05,"multi\nline, with comma"\n'
    )
    good, bad = split(list(read_file(path, MAPPING)))
    assert not bad
    assert [e.id for e in good] == ["shop:1", "shop:2"]
    assert good[1].text == "multi\nline, with comma"
    assert good[0].created_at.isoformat() == "2024-01-02T03:04:00+00:00"


def test_malformed_csv_rows_become_dead_letters_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"msg_id,company,ts,body\n"
        b"1,Acme,2024-01-02 03:04,fine\n"
        b"2,Acme,2024-01-02 03:04\n"  # short row
        b"3,Acme,not a date,text\n"
        b"4,,2024-01-02 03:04,no brand\n"
        b"5,Acme,2024-01-02 03:04,\n"  # empty text
        b"6,Acme,2024-01-02 03:04,bad \xff bytes\n"
        b"1,Acme,2024-01-02 03:04,duplicate id\n"
        b"7,Acme,2024-01-02 03:04,also fine\n"
    )
    good, bad = split(list(read_file(path, MAPPING)))
    assert [e.id for e in good] == ["shop:1", "shop:7"]
    reasons = [d.reason for d in bad]
    assert len(bad) == 6
    assert "fields" in reasons[0]
    assert "not a timestamp" in reasons[1]
    assert "brand" in reasons[2]
    assert "text" in reasons[3]
    assert "UTF-8" in reasons[4]
    assert "duplicate id shop:1" in reasons[5]
    assert all(d.location and d.location.startswith("bad.csv:") for d in bad)


def test_jsonl_with_defaults_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"id": "a", "text": "hi", "created_at": 1714557600}\n'
        b"not json\n[1, 2]\n\xff\n"
        b'{"id": "b", "text": "yo", "created_at": "2024-05-01T10:00:00Z", "brand": "Z"}\n'
    )
    mapping = ColumnMapping(source="feed", default_brand="Acme")
    good, bad = split(list(read_file(path, mapping)))
    assert [(e.id, e.brand) for e in good] == [("feed:a", "Acme"), ("feed:b", "Z")]
    assert [
        "invalid JSON" in bad[0].reason,
        "object" in bad[1].reason,
        "UTF-8" in bad[2].reason,
    ] == [True] * 3


def test_mapping_from_cli_pairs() -> None:
    m = ColumnMapping.from_pairs(["text=body", "brand=company"], source="x")
    assert (m.text, m.brand, m.source) == ("body", "company", "x")
    with pytest.raises(ValueError, match="bad mapping"):
        ColumnMapping.from_pairs(["colour=red"])


def test_airline_preset_reads_every_row() -> None:
    good, bad = split(list(read_preset("airline")))
    assert len(good) + len(bad) == 14_318
    assert all("duplicate id" in d.reason for d in bad)  # the dataset repeats ~155 tweet ids
    brands = Counter(e.brand for e in good)
    assert "Delta" not in brands and brands["JetBlue"] > 2000  # the README's Delta quirk
    assert all(e.kind is Kind.social_post for e in good)


def test_twcs_preset_rebuilds_threads() -> None:
    good, bad = split(list(read_preset("twcs")))
    assert len(good) + len(bad) == 4_960
    assert len(good) > 4_800
    agents = [e for e in good if e.role is Role.agent]
    assert agents and all(e.brand == e.author for e in agents)
    by_conv: dict[str, list[Envelope]] = {}
    for e in good:
        by_conv.setdefault(e.conversation_id or "", []).append(e)
    threads = [v for v in by_conv.values() if len(v) > 1]
    assert len(threads) > 500
    for turns in threads[:200]:
        customer_brands = {e.brand for e in turns if e.role is Role.customer}
        agent_brands = {e.brand for e in turns if e.role is Role.agent}
        if agent_brands:
            assert customer_brands <= agent_brands
        assert sorted(e.turn_index or 0 for e in turns) == list(range(len(turns)))


def test_ibm_preset_gives_support_turns() -> None:
    good, bad = split(list(read_preset("ibm")))
    assert not bad
    assert all(e.kind is Kind.support_turn and e.conversation_id for e in good)
    roles = Counter(e.role for e in good)
    assert roles[Role.customer] > 1000 and roles[Role.agent] > 800
    assert len({e.brand for e in good}) >= 20


def test_unknown_preset_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        read_preset("myspace")


def test_dead_letters_serialise(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("oops\n")
    [letter] = list(read_file(path, ColumnMapping(default_brand="A")))
    assert isinstance(letter, DeadLetter)
    assert json.loads(letter.to_bytes())["reason"].startswith("invalid JSON")
