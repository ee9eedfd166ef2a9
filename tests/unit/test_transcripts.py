"""Conversation connectors: ticket exports, text transcripts and the presets' threads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import read_conversations, replay
from ingest.presets import DEMO_DATA, read_ibm, read_twcs
from ingest.transcripts import strip_html, ticket_records, transcript_records
from schemas import DeadLetter, Envelope, Kind, Role, parse_envelope
from stream_jobs.cli import main

SAMPLES = DEMO_DATA / "transcripts"
Records = list[Envelope | DeadLetter]


def split(records: Iterable[Envelope | DeadLetter]) -> tuple[list[Envelope], list[DeadLetter]]:
    items = list(records)
    return (
        [r for r in items if isinstance(r, Envelope)],
        [r for r in items if isinstance(r, DeadLetter)],
    )


def conversations(envelopes: list[Envelope]) -> dict[str, list[Envelope]]:
    out: dict[str, list[Envelope]] = {}
    for e in envelopes:
        out.setdefault(e.conversation_id or "", []).append(e)
    return out


def assert_well_formed(envelopes: list[Envelope]) -> None:
    for turns in conversations(envelopes).values():
        assert [e.turn_index for e in turns] == list(range(len(turns)))
        assert any(e.role is Role.customer for e in turns)
        assert all(e.kind is Kind.support_turn for e in turns)
        assert [e.created_at for e in turns] == sorted(e.created_at for e in turns)
        assert all(e.id == f"{e.conversation_id}:{e.turn_index}" for e in turns)


# --- The shipped samples ---------------------------------------------------------------------


def test_ticket_sample_gives_ordered_turns_per_ticket() -> None:
    good, bad = split(read_conversations(SAMPLES / "tickets_sample.json"))
    assert not bad
    convs = conversations(good)
    assert len(convs) == 7
    assert len({e.brand for e in good}) >= 5
    assert_well_formed(good)
    first = convs["ticket:48211"]
    assert [e.role for e in first] == [Role.customer, Role.agent, Role.customer, Role.agent]
    assert first[0].metadata["private_notes_skipped"] == 1
    assert not any("Tagged as product feedback" in e.text for e in good)  # the internal note
    html = convs["ticket:48230"][1]
    assert "<" not in html.text and "&amp;" not in html.text
    assert "Brightwave Mobile & for your suggestion" in html.text
    assert convs["ticket:48244"][0].brand == "Northwind Air"  # from "organization"
    assert convs["ticket:48230"][0].brand == "Brightwave Mobile"  # from {"name": ...}


def test_chat_sample_reads_every_prefix_style() -> None:
    good, bad = split(read_conversations(SAMPLES / "chats_sample.txt"))
    assert not bad
    convs = conversations(good)
    assert len(convs) == 6
    assert_well_formed(good)
    priya = convs["transcript:chat-1001"][1]
    assert (priya.role, priya.author) == (Role.agent, "Priya")
    assert priya.text.count("\n") == 2 and "10GB plan" in priya.text  # continuation lines
    assert priya.metadata["channel"] == "web-chat"
    coffee = convs["transcript:chat-1003"]  # C:/A: with no stamps: the header's start
    assert [e.role for e in coffee] == [Role.customer, Role.agent] * 2
    assert coffee[0].created_at == datetime(2025, 3, 6, 11, tzinfo=UTC)
    call = convs["transcript:call-2044"]  # [10:02 AM] at +01:00
    assert call[0].created_at == datetime(2025, 3, 7, 9, 2, tzinfo=UTC)
    night = convs["transcript:chat-1006"]  # [23:58] then [00:03]: past midnight
    assert night[1].created_at == datetime(2025, 3, 10, 0, 3, tzinfo=UTC)
    assert convs["transcript:chat-1005"][0].role is Role.agent  # Bot: is the brand's side


def test_ids_are_the_same_on_every_run() -> None:
    for name in ("tickets_sample.json", "chats_sample.txt"):
        first = [(e.id, e.created_at, e.text) for e in split(read_conversations(SAMPLES / name))[0]]
        again = [(e.id, e.created_at, e.text) for e in split(read_conversations(SAMPLES / name))[0]]
        assert first == again and len(set(first)) == len(first)


def test_output_goes_through_replay_and_the_wire_format_unchanged() -> None:
    class Sink:
        def __init__(self) -> None:
            self.sent: list[Envelope] = []
            self.dead: list[DeadLetter] = []

        def publish(self, envelope: Envelope) -> None:
            self.sent.append(envelope)

        def dead_letter(self, record: DeadLetter) -> None:
            self.dead.append(record)

    sink = Sink()
    stats = replay(read_conversations(SAMPLES / "chats_sample.txt"), sink, speedup=1e9)
    assert (stats.sent, stats.dead_letters) == (len(sink.sent), 0)
    for e in sink.sent:
        back = parse_envelope(e.to_bytes(), stage="test")
        assert isinstance(back, Envelope) and back == e


# --- Tickets -----------------------------------------------------------------------------------


def comment(i: int, role: str = "end-user", text: str = "hello", **over: Any) -> dict[str, Any]:
    return {
        "id": i,
        "author_id": 1 if role == "end-user" else 2,
        "author_role": role,
        "public": True,
        "plain_body": text,
        "created_at": f"2024-05-01T10:{i:02d}:00Z",
        **over,
    }


def ticket(tid: Any = 1, **over: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "brand": "Acme",
        "requester_id": 1,
        "created_at": "2024-05-01T10:00:00Z",
        "comments": [comment(0), comment(1, "agent", "hi, how can I help")],
        **over,
    }


def tickets(*items: Any) -> bytes:
    return json.dumps({"tickets": list(items)}).encode()


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("end-user", Role.customer),
        ("requester", Role.customer),
        ("Customer", Role.customer),
        ("agent", Role.agent),
        ("admin", Role.agent),
        ("staff", Role.agent),
        ("bot", Role.agent),
    ],
)
def test_ticket_author_roles(role: str, expected: Role) -> None:
    body = tickets(ticket(comments=[comment(0), comment(1, role, "a second turn")]))
    good, _ = split(ticket_records(body, "t.json"))
    assert good[1].role is expected


def test_ticket_roles_from_the_users_list_or_the_requester() -> None:
    doc = {
        "tickets": [
            ticket(
                comments=[
                    {"id": 1, "author_id": 1, "body": "mine", "created_at": "2024-05-01T10:00Z"},
                    {"id": 2, "author_id": 7, "body": "ours", "created_at": "2024-05-01T10:05Z"},
                ]
            )
        ],
        "users": [{"id": 7, "role": "agent", "name": "Kim"}],
    }
    good, bad = split(ticket_records(json.dumps(doc).encode(), "t.json"))
    assert not bad
    assert [(e.role, e.author) for e in good] == [(Role.customer, "1"), (Role.agent, "Kim")]


def test_private_notes_are_skipped_and_counted() -> None:
    note = comment(1, "agent", "internal: refund approved", public=False)
    good, _ = split(ticket_records(tickets(ticket(comments=[comment(0), note])), "t.json"))
    assert [e.text for e in good] == ["hello"]
    assert good[0].metadata["private_notes_skipped"] == 1


def test_comments_out_of_time_order_are_put_in_time_order() -> None:
    late, early = comment(5, text="second"), comment(1, "agent", "first")
    good, bad = split(ticket_records(tickets(ticket(comments=[late, early])), "t.json"))
    assert not bad
    assert [(e.turn_index, e.text) for e in good] == [(0, "first"), (1, "second")]
    assert good[0].metadata["reordered"] is True


def test_a_top_level_array_and_jsonl_are_read_too(tmp_path: Path) -> None:
    array = json.dumps([ticket(1), ticket(2)]).encode()
    jsonl = b"\n".join(json.dumps(t).encode() for t in (ticket(1), {"ticket": ticket(2)}))
    for data in (array, jsonl):
        good, bad = split(ticket_records(data, "t"))
        assert not bad and len(conversations(good)) == 2
    path = tmp_path / "export.jsonl"
    path.write_bytes(jsonl)
    assert len(split(read_conversations(path))[0]) == 4


def test_html_bodies_lose_tags_scripts_and_entities() -> None:
    html = "<p>Hi&nbsp;there &amp; welcome</p><script>x()</script><ul><li>one</li><li>two</li></ul>"
    assert strip_html(html) == "Hi there & welcome\none\ntwo"
    c = comment(0, body="<b>Bold</b> move<br>next line", plain_body=None)
    good, _ = split(ticket_records(tickets(ticket(comments=[c, comment(1, "agent")])), "t"))
    assert good[0].text == "Bold move\nnext line"
    c = comment(0, plain_body="press <tab> then &amp;")  # plain text stays as written
    good, _ = split(ticket_records(tickets(ticket(comments=[c, comment(1, "agent")])), "t"))
    assert good[0].text == "press <tab> then &amp;"


BAD_TICKETS = [
    (ticket(2, comments=[]), "no turns"),
    (ticket(2, comments=[comment(0, "agent"), comment(1, "agent")]), "no customer turn"),
    (ticket(2, comments=[comment(0, text="   "), comment(1, "agent")]), "turn 0 has empty text"),
    (ticket(2, brand=None), "missing brand"),
    (ticket(2, comments=[comment(0, created_at="next tuesday")]), "not a timestamp"),
    (ticket(2, comments=[comment(0, created_at=10**20)]), "not a timestamp"),
    (ticket(2, comments=[comment(0, created_at="1970-01-02T00:00Z")]), "before 1990"),
    (ticket(2, comments=[comment(0, author_role="manager")]), "unknown author_role 'manager'"),
    (ticket(2, comments=[{**comment(0), "author_role": None, "author_id": 9}]), "no author_role"),
    (ticket(tid=None), "ticket has no id"),
    (ticket(2, comments="none"), "no comments list"),
    (ticket(2, comments=[comment(0, plain_body=5)]), "not text"),
    ("not a ticket", "must be a JSON object"),
    (ticket(tid=1), "duplicate conversation id (first at t.json#0)"),
]


@pytest.mark.parametrize(("bad_ticket", "reason"), BAD_TICKETS)
def test_a_bad_ticket_is_one_dead_letter_and_the_rest_come_through(
    bad_ticket: Any, reason: str
) -> None:
    good, bad = split(ticket_records(tickets(ticket(1), bad_ticket, ticket(3)), "t.json"))
    assert {e.conversation_id for e in good} == {"ticket:1", "ticket:3"}
    assert len(bad) == 1 and reason in bad[0].reason, bad[0].reason
    assert bad[0].stage == "connector" and bad[0].location == "t.json#1"


def test_unparseable_json() -> None:
    good, bad = split(ticket_records(b'{"tickets": [ {"id": 1,,}', "t.json"))
    assert not good and len(bad) == 1 and "unparseable JSON" in bad[0].reason
    lines = [
        json.dumps(ticket(1)),
        '{"id": 2, oops',
        json.dumps(ticket(3)),
        "\xff",
        '{"id": ' + "9" * 5000 + "}",  # beyond the int parser's limit: an error, not a crash
        '{"id": 6, "id": 7}',  # a key twice: which one is meant?
    ]
    good, bad = split(ticket_records("\n".join(lines).encode("latin-1"), "t.jsonl"))
    assert {e.conversation_id for e in good} == {"ticket:1", "ticket:3"}
    assert [d.location for d in bad] == ["t.jsonl:2", "t.jsonl:4", "t.jsonl:5", "t.jsonl:6"]
    assert all("unparseable JSON" in d.reason for d in bad)


# --- Text transcripts --------------------------------------------------------------------------

GOOD = "### conversation ok-{n} brand=Acme start=2024-05-01T10:00:00Z\nCustomer: hi\nAgent: hello\n"


def transcript(middle: str) -> bytes:
    return (GOOD.format(n=1) + middle + GOOD.format(n=3)).encode()


BAD_TRANSCRIPTS = [
    ("### conversation x brand=Acme\nManager: hi\n", "line 5: unknown speaker 'Manager'"),
    ("### conversation x brand=Acme\nCustomer:\nAgent: hello\n", "turn 0 has empty text"),
    ("### conversation x brand=Acme\nAgent: hello\n", "no customer turn"),
    ("### conversation x\nCustomer: hi\n", "missing brand"),
    ("### conversation x brand=Acme\n[25:99] Customer: hi\n", "unparseable timestamp '25:99'"),
    ("### conversation x brand=Acme\n2024-13-45 10:00:00 Customer: hi\n", "unparseable"),
    ("### conversation x brand=Acme start=soon\nCustomer: hi\n", "unparseable timestamp"),
    (
        "### conversation x brand=Acme\n2024-05-01 10:05:00 Customer: hi\n"
        "2024-05-01 10:01:00 Agent: hello\n",
        "time goes backwards at turn 1",
    ),
    (
        "### conversation x brand=Acme start=2024-05-01T10:00Z\n[10:05] Customer: hi\n"
        "[10:02] Agent: hello\n",
        "time goes backwards at turn 1",
    ),
    ("### conversation x brand=Acme\n[10:05] Customer: hi\n", "clock time but no date"),
    ("### conversation x brand=Acme\nhello there\nCustomer: hi\n", "before the first speaker"),
    ("### conversation x brand=Acme\n[10:05] said nothing\n", "without a 'Speaker:' label"),
    ("### conversation x brand=Acme\n", "no turns"),
    ("### convo x\nCustomer: hi\n", "bad header"),
    ("### conversation ok-1 brand=Acme\nCustomer: hi\n", "duplicate conversation id"),
]


@pytest.mark.parametrize(("middle", "reason"), BAD_TRANSCRIPTS)
def test_a_bad_transcript_is_one_dead_letter_and_the_rest_come_through(
    middle: str, reason: str
) -> None:
    good, bad = split(transcript_records(transcript(middle), "chats.txt"))
    assert {e.conversation_id for e in good} == {"transcript:ok-1", "transcript:ok-3"}
    assert len(bad) == 1 and reason in bad[0].reason, bad[0].reason
    assert bad[0].stage == "connector" and bad[0].location == "chats.txt:4"
    assert bad[0].raw.startswith("###")


def test_invalid_utf8_spoils_only_its_conversation() -> None:
    data = transcript("### conversation x brand=Acme\nCustomer: caf\xe9\n").replace(
        "caf\xe9".encode(), b"caf\xe9"
    )
    good, bad = split(transcript_records(data, "chats.txt"))
    assert len(conversations(good)) == 2
    assert len(bad) == 1 and "line 5 is not valid UTF-8" in bad[0].reason


def test_prefix_forms_and_continuations() -> None:
    text = (
        "### conversation p brand=Acme start=2024-05-01T09:00:00Z\n"
        "[10:02] Agent (Sam): Welcome!\n"
        "2024-05-01 10:03:11 Customer: My order: 1234\n"
        "it never came.\n"
        "\n"
        "[image attached]\n"
        "C: Any news?\n"
        "A: Shipped today.\n"
        "Order number: 5678\n"
        "Client (Jo): thanks\n"
        "[10:30:05] Customer Service (Ida): bye\n"
    )
    good, bad = split(transcript_records(text.encode(), "p.txt"))
    assert not good and "unknown speaker 'Customer Service'" in bad[0].reason
    roles = {"Customer Service": "agent"}  # several words only after a timestamp
    good, bad = split(transcript_records(text.encode(), "p.txt", roles=roles))
    assert not bad
    assert [(e.role.value, e.author) for e in good] == [
        ("agent", "Sam"),
        ("customer", None),
        ("customer", None),
        ("agent", None),
        ("customer", "Jo"),
        ("agent", "Ida"),
    ]
    assert good[1].text == "My order: 1234\nit never came.\n[image attached]"
    assert good[3].text == "Shipped today.\nOrder number: 5678"  # two words: not a speaker
    assert good[0].created_at == datetime(2024, 5, 1, 10, 2, tzinfo=UTC)
    assert [e.metadata["time_from"] for e in good[:4]] == ["turn", "turn", "previous", "previous"]


def test_speaker_names_are_mapped_by_the_caller() -> None:
    text = b"Sam: hello, Acme support here\nPat: my router is dead\n"
    good, bad = split(transcript_records(text, "one.txt", brand="Acme", start=datetime(2024, 1, 1)))
    assert not good and "unknown speaker 'Sam'" in bad[0].reason
    roles = {"Sam": "agent", "pat": Role.customer}
    good, _ = split(
        transcript_records(text, "one.txt", brand="Acme", roles=roles, start=datetime(2024, 1, 1))
    )
    assert [(e.role, e.author) for e in good] == [(Role.agent, "Sam"), (Role.customer, "Pat")]
    with pytest.raises(ValueError, match="customer or agent"):
        list(transcript_records(text, "one.txt", roles={"sam": "manager"}))


def test_one_file_per_conversation_takes_the_callers_brand(tmp_path: Path) -> None:
    path = tmp_path / "call-77.txt"
    path.write_text("Caller: my bill is wrong\nAdvisor: let me look\n")
    good, bad = split(read_conversations(path, brand="Lumen Bank"))
    assert not bad
    assert {e.conversation_id for e in good} == {"transcript:call-77"}
    assert {e.brand for e in good} == {"Lumen Bank"}
    assert [e.metadata["time_from"] for e in good] == ["file", "previous"]  # no stamps or start
    good, bad = split(read_conversations(path))
    assert not good and "missing brand" in bad[0].reason
    good, _ = split(read_conversations(path, "transcript", "Acme", source="callcentre"))
    assert good[0].id == "callcentre:call-77:0"


def test_header_brand_beats_the_callers_and_text_before_the_first_header_is_reported() -> None:
    text = b"exported by the help desk\n" + GOOD.format(n=1).encode()
    good, bad = split(transcript_records(text, "c.txt", brand="Other"))
    assert {e.brand for e in good} == {"Acme"}
    assert len(bad) == 1 and "before the first '### conversation' header" in bad[0].reason


# --- Detection and the CLI ---------------------------------------------------------------------


def test_format_detection(tmp_path: Path) -> None:
    ibm = DEMO_DATA / "ibm_twitter_cdp"
    assert split(read_conversations(ibm / "dev.json"))[0][0].source == "ibm"
    assert split(read_conversations(ibm, "ibm"))[0][0].source == "ibm"
    twcs = DEMO_DATA / "twcs" / "twcs_excerpt_first5000.csv"
    assert split(read_conversations(twcs))[0][0].source == "twcs"
    rows = tmp_path / "rows.csv"
    rows.write_text("id,text\n1,hello\n")
    with pytest.raises(ValueError, match="CSV of rows"):
        read_conversations(rows)
    with pytest.raises(ValueError, match="unknown format"):
        read_conversations(rows, "pdf")


def test_replay_cli_takes_a_format(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,text\n1,hello\n")
    result = CliRunner().invoke(main, ["replay", str(path), "--format", "auto"])
    assert result.exit_code == 2 and "CSV of rows" in result.output
    args = ["replay", str(SAMPLES / "chats_sample.txt"), "--format", "transcript", "--map", "a=b"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--map is for --format rows only" in result.output


# --- The presets' conversations ----------------------------------------------------------------

TWCS_HEAD = "tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id\n"


def test_twcs_threads_number_turns_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        TWCS_HEAD + "1,115712,True,Tue Oct 31 22:08:27 +0000 2017,@acme hi,2,\n"
        "2,acme,False,Tue Oct 31 22:10:47 +0000 2017,@115712 hello,3,1\n"
        "3,115712,True,not a time,@acme thanks,4,2\n"
        "4,acme,False,Tue Oct 31 22:12:47 +0000 2017,@115712 bye,,3\n"
        "5,115800,maybe,Tue Oct 31 22:12:47 +0000 2017,@acme eh,,\n"
        "6,115900,True,Tue Oct 31 23:00:00 +0000 2017,@acme nobody answers,,\n"
    )
    good, bad = split(read_twcs(path))
    by_id = {e.id: e for e in good}
    assert [by_id[f"twcs:{i}"].turn_index for i in (1, 2, 4)] == [0, 1, 2]
    assert {by_id[f"twcs:{i}"].role for i in (2, 4)} == {Role.agent}
    assert by_id["twcs:1"].kind is Kind.support_turn  # the brand answered this thread
    assert by_id["twcs:6"].kind is Kind.social_post  # nobody answered
    assert sorted(d.reason.split(" ")[0] for d in bad) == ["created_at", "inbound"]


def test_twcs_and_ibm_presets_give_well_formed_conversations() -> None:
    for records in (
        read_twcs(DEMO_DATA / "twcs" / "twcs_excerpt_first5000.csv"),
        read_ibm(DEMO_DATA / "ibm_twitter_cdp" / "dev.json"),
    ):
        good, _ = split(records)
        for turns in conversations(good).values():
            turns.sort(key=lambda e: e.turn_index or 0)
            assert [e.turn_index for e in turns] == list(range(len(turns)))
            assert [e.created_at for e in turns] == sorted(e.created_at for e in turns)
            agents = [e for e in turns if e.role is Role.agent]
            assert all(e.brand == turns[0].brand for e in turns) or len(agents) > 1


def test_ibm_final_reply_is_dated_by_its_tweet_id() -> None:
    good, _ = split(read_ibm(DEMO_DATA / "ibm_twitter_cdp" / "dev.json"))
    convs = conversations(good)
    first = convs["ibm:LgwAXtbbEm0mBvDrGmjk"]  # one customer tweet, then the agent's answer
    assert [e.role for e in first] == [Role.customer, Role.agent]
    # Tweet 1245425308704149506: (id >> 22) + 1288834974657 = 1585767507135 ms since 1970.
    assert first[1].created_at == datetime(2020, 4, 1, 18, 58, 27, 135000, tzinfo=UTC)
    later = sum(t[-1].created_at > t[-2].created_at for t in convs.values() if len(t) > 1)
    assert later == len(convs)


# --- Properties -------------------------------------------------------------------------------
# One generator per format: clean, every conversation must come through whole; noisy (bad
# choices mixed in), every conversation must come out as envelopes or exactly one dead letter.

WORDS = st.from_regex(
    r"[A-Za-z0-9\u00e9\u20ac\U0001F600][A-Za-z0-9 ,.!?'\u00e9:-]{0,30}", fullmatch=True
)
NOISE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).filter(
    lambda s: not s.lstrip().startswith("###")
)
LABELS = ["Customer", "Agent", "C", "A", "Caller", "Rep (Sam)", "Bot", "Client", "advisor"]


def pick(draw: st.DrawFn, noisy: bool, good: Any, *bad: Any) -> Any:
    return draw(st.sampled_from([good, *bad])) if noisy else good


@st.composite
def transcript_text(draw: st.DrawFn, noisy: bool) -> tuple[str, list[int]]:
    blocks, turns = [], []
    for k in range(draw(st.integers(0 if noisy else 1, 5))):
        head = f"### conversation c{pick(draw, noisy, k, 0)}"
        head += pick(draw, noisy, " brand=Acme", ' brand="Big Co"', "")
        head += pick(draw, noisy, " start=2024-01-01T00:00:00Z", "", " start=no")
        lines, speakers = [head, f"Customer: {draw(WORDS)}"], 1
        for j in range(draw(st.integers(0, 6))):
            if draw(st.booleans()):
                speakers += 1
                label = draw(st.sampled_from(LABELS))
                stamp = pick(draw, noisy, f"[{10 + j}:00] ", "", "[25:61] ", "[9:00 PM] ")
                bad_label = pick(draw, noisy, label, "Manager", "Customer Care")
                lines.append(f"{stamp}{bad_label}: {draw(WORDS)}")
            else:  # a continuation line (noise may look like anything)
                lines.append(pick(draw, noisy, f"- {draw(WORDS)}", draw(NOISE)))
        blocks.append("\n".join(lines))
        turns.append(speakers)
    return "\n".join(blocks), turns


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transcript_text(noisy=False))
def test_clean_transcripts_come_through_whole(case: tuple[str, list[int]]) -> None:
    text, turns = case
    good, bad = split(transcript_records(text.encode(), "gen.txt", brand="Acme"))
    assert not bad, bad[0].reason
    convs = conversations(good)
    assert [len(convs[f"transcript:c{k}"]) for k in range(len(turns))] == turns
    assert_well_formed(good)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transcript_text(noisy=True))
def test_any_transcript_gives_envelopes_or_a_dead_letter_per_conversation(
    case: tuple[str, list[int]],
) -> None:
    text, turns = case
    good, bad = split(transcript_records(text.encode(), "gen.txt", brand="Acme"))
    if not turns:
        assert len(bad) == 1 and not good  # the whole text is one conversation without turns
        return
    assert len(conversations(good)) + len(bad) == len(turns)
    assert_well_formed(good)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    records: Records = [*transcript_records(data, "x.txt"), *ticket_records(data, "x.json")]
    assert records and all(isinstance(r, Envelope | DeadLetter) for r in records)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
TIMES = [f"2024-05-0{d}T10:00:00Z" for d in range(1, 8)] + ["2024-05-01T09:00:00+02:00"]


@st.composite
def ticket_like(draw: st.DrawFn, k: int, noisy: bool) -> tuple[Any, int]:
    if pick(draw, noisy, False, True):
        return draw(JSONISH), 0
    comments, public = [], 0
    for i in range(draw(st.integers(1, 5))):
        role = (
            "end-user" if i == 0 else draw(st.sampled_from(["end-user", "agent", "admin", "bot"]))
        )
        private = i > 0 and draw(st.booleans())
        public += not private
        c = {
            "id": i,
            "author_role": pick(draw, noisy, role, None, "x"),
            "public": pick(draw, noisy, not private, "false"),
            draw(st.sampled_from(["plain_body", "body", "html_body"])): pick(
                draw, noisy, draw(WORDS | st.just("<p>a &amp; <b>b</b></p>")), "", "<br>"
            ),
            "created_at": pick(draw, noisy, draw(st.sampled_from(TIMES)), "x", 1e30, -5),
        }
        comments.append({key: v for key, v in c.items() if v is not None})
    item = {
        "id": pick(draw, noisy, f"t-{k}", k, "", None, True),
        "brand": pick(draw, noisy, "Acme", "", None, {"name": "Big Co"}, 7),
        "requester_id": 1,
        "comments": pick(draw, noisy, comments, "oops"),
    }
    return item, public


def ticket_export(noisy: bool) -> st.SearchStrategy[tuple[tuple[Any, int], ...]]:
    return st.integers(0 if noisy else 1, 6).flatmap(
        lambda n: st.tuples(*(ticket_like(k, noisy) for k in range(n)))
    )


def encode_tickets(items: list[Any], as_jsonl: bool) -> bytes:
    if as_jsonl:
        return b"\n".join(json.dumps({"ticket": t}).encode() for t in items) + b"\n\n"
    return json.dumps({"tickets": items}).encode()


@settings(max_examples=100, deadline=None)
@given(ticket_export(noisy=False), st.booleans())
def test_clean_ticket_exports_come_through_whole(
    export: tuple[tuple[Any, int], ...], as_jsonl: bool
) -> None:
    items = [t for t, _ in export]
    good, bad = split(ticket_records(encode_tickets(items, as_jsonl), "gen.json"))
    assert not bad, bad[0].reason
    convs = conversations(good)
    assert [len(convs[f"ticket:t-{k}"]) for k in range(len(items))] == [n for _, n in export]
    assert_well_formed(good)


@settings(max_examples=150, deadline=None)
@given(ticket_export(noisy=True), st.booleans())
def test_any_ticket_export_gives_envelopes_or_a_dead_letter_per_ticket(
    export: tuple[tuple[Any, int], ...], as_jsonl: bool
) -> None:
    items = [t for t, _ in export]
    good, bad = split(ticket_records(encode_tickets(items, as_jsonl), "gen.json"))
    if not items and as_jsonl:
        assert not good and len(bad) == 1 and "empty" in bad[0].reason
        return
    assert len(conversations(good)) + len(bad) == len(items)
    assert_well_formed(good)
