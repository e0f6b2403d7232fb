"""`assistant history`: list, show, search and export the conversation log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.store import ReplyRecord, Store
from tests.cli.helpers import open_store

HOSTILE = "red \x1b[31mALERT\x1b[0m and \x9b2J cleared screen"


def _reply(content: str, model: str = "tiny-model") -> ReplyRecord:
    return ReplyRecord(
        content=content, model=model, adapter=None, params={"temperature": 0.0},
        ttft_ms=12.5, token_count=7, tokens_per_s=40.0, finish_reason="stop",
    )


def _turn(store: Store, user: str, question: str, answer: str, *, system: str = "Be brief.") -> tuple[int, int]:
    conversation = store.create_conversation(user, system)
    q = store.add_message(conversation.id, "user", question)
    a = store.add_message(conversation.id, "assistant", answer, parent_id=q.id, reply=_reply(answer))
    return conversation.id, a.id


def _seed(store: Store) -> dict[str, int]:
    ids = {}
    ids["first"], _ = _turn(store, "ann", "first thermostat question", "Check the batteries.")
    ids["bob"], _ = _turn(store, "bob", "bob asks about the doorbell", "Press the button.")
    ids["second"], answer = _turn(store, "ann", "second question about refunds", "Within 30 days.")
    store.rate(answer, "ann", -1, reasons=["incomplete"], comment="too short", correction="Refunds take 30 days\nto arrive.")
    ids["archived"], _ = _turn(store, "ann", "archived camera question", "Restart it.")
    store.set_archived(ids["archived"], True)
    return ids


def test_list_shows_own_conversations_newest_first(cli, data_dir: Path, store: Store) -> None:
    ids = _seed(store)

    result = cli("history", "list", "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [int(line.split()[0]) for line in lines] == [ids["second"], ids["first"]]
    assert "second question about refunds" in lines[0] and "ann" in lines[0]


def test_list_all_users_archived_and_json(cli, data_dir: Path, store: Store) -> None:
    ids = _seed(store)

    everyone = cli("history", "list", "--data-dir", data_dir, "--user", "ann", "--all-users", "--json")
    with_archived = cli("history", "list", "--data-dir", data_dir, "--user", "ann", "--archived", "--json")

    assert everyone.code == 0 and with_archived.code == 0
    rows = [json.loads(line) for line in everyone.out.splitlines()]
    assert [r["id"] for r in rows] == [ids["second"], ids["bob"], ids["first"]]
    assert rows[1]["user"] == "bob" and rows[1]["title"] == "bob asks about the doorbell"
    rows = [json.loads(line) for line in with_archived.out.splitlines()]
    assert [(r["id"], r["archived"]) for r in rows] == [(ids["archived"], True), (ids["second"], False), (ids["first"], False)]


def test_list_when_empty(cli, data_dir: Path) -> None:
    result = cli("history", "list", "--data-dir", data_dir, "--user", "ann")
    assert (result.code, result.out) == (0, "")
    assert "no conversations yet" in result.err


def test_show_prints_markdown_with_model_rating_and_correction(cli, data_dir: Path, store: Store) -> None:
    ids = _seed(store)

    result = cli("history", "show", str(ids["second"]), "--data-dir", data_dir)

    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("# second question about refunds\n")
    for expected in [
        "## System\n\nBe brief.",
        "## User\n\nsecond question about refunds",
        "## Assistant (tiny-model)\n\nWithin 30 days.",
        "> 👎 ann: too short",
        "> Better answer:",
        "> Refunds take 30 days\n> to arrive.",
    ]:
        assert expected in out
    assert out.index("## User") < out.index("## Assistant")


def test_show_prints_every_answer_of_a_regenerated_turn_and_every_raters_feedback(cli, data_dir: Path, store: Store) -> None:
    conversation = store.create_conversation("ann", "Be brief.")
    asked = store.add_message(conversation.id, "user", "how long do refunds take?")
    first = store.add_message(conversation.id, "assistant", "No idea.", parent_id=asked.id)
    store.rate(first.id, "ann", -1, comment="useless", correction="Up to 30 days.")
    store.rate(first.id, "bob", -1, correction="Refunds take 5 to 10 working days.")
    second = store.add_message(conversation.id, "assistant", "About a week.", parent_id=asked.id)  # regenerated
    store.rate(second.id, "ann", 1)

    result = cli("history", "show", str(conversation.id), "--data-dir", data_dir)

    assert result.code == 0, result.err
    out = result.out
    shown, other = out.index("## Assistant"), out.index("### Another answer to the same question (1 of 1, message")
    assert out.index("About a week.") < other < out.index("No idea.")  # the current answer first, then the other
    assert "> 👍 ann" in out[shown:other]
    assert "> 👎 ann: useless" in out[other:] and "> Up to 30 days." in out[other:]
    assert "> 👎 bob" in out[other:] and "> Refunds take 5 to 10 working days." in out[other:]

    record = json.loads(cli("history", "show", str(conversation.id), "--json", "--data-dir", data_dir).out)
    (alternative,) = record["messages"][2]["alternatives"]
    assert alternative["metadata"]["id"] == first.id
    assert [f["correction"] for f in alternative["all_feedback"]] == ["Up to 30 days.", "Refunds take 5 to 10 working days."]


def test_show_json_is_the_record(cli, data_dir: Path, store: Store) -> None:
    ids = _seed(store)

    result = cli("history", "show", str(ids["second"]), "--json", "--data-dir", data_dir)

    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["id"] == ids["second"] and record["user"] == "ann"
    assert [(m["role"], m["content"]) for m in record["messages"]] == [
        ("system", "Be brief."), ("user", "second question about refunds"), ("assistant", "Within 30 days."),
    ]
    answer = record["messages"][2]
    assert answer["metadata"]["model"] == "tiny-model" and answer["metadata"]["token_count"] == 7
    assert answer["feedback"] == {
        "rating": -1, "reasons": ["incomplete"], "comment": "too short",
        "correction": "Refunds take 30 days\nto arrive.", "user": "ann",
    }


def test_show_unknown_conversation(cli, data_dir: Path) -> None:
    result = cli("history", "show", "999", "--data-dir", data_dir)
    assert result.code == 7
    assert result.err_lines == ["error: no conversation with id 999"]


def test_search_finds_a_word_in_a_message(cli, data_dir: Path, store: Store) -> None:
    ids = _seed(store)

    found = cli("history", "search", "batteries", "--data-dir", data_dir, "--user", "ann")
    as_json = cli("history", "search", "batteries", "--json", "--data-dir", data_dir, "--user", "ann")
    others = cli("history", "search", "doorbell", "--data-dir", data_dir, "--user", "ann")
    everyone = cli("history", "search", "doorbell", "--all-users", "--json", "--data-dir", data_dir, "--user", "ann")

    assert found.code == 0
    [line] = found.out.splitlines()
    assert int(line.split()[0]) == ids["first"] and "first thermostat question" in line
    assert json.loads(as_json.out)["conversation_id"] == ids["first"]
    assert (others.code, others.out) == (0, "")  # bob's conversation is not ann's
    assert [json.loads(line)["conversation_id"] for line in everyone.out.splitlines()] == [ids["bob"]]


def test_search_with_no_hits(cli, data_dir: Path, store: Store) -> None:
    _seed(store)

    result = cli("history", "search", "zeppelin", "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0
    assert result.out == ""
    assert result.err_lines == ["nothing found for 'zeppelin'"]


def _conversation_shape(store: Store) -> list:
    """What an export carries: the conversations' prompts, threads and current ratings."""
    shape = []
    for conversation in reversed(store.conversations(user=None)):
        thread = []
        for m in store.thread(conversation.id):
            ratings = [(f.user, f.rating, f.reasons, f.comment, f.correction) for f in store.feedback_for(m.id)]
            thread.append((m.role, m.content, ratings))
        shape.append((conversation.title, conversation.system_prompt, thread))
    return shape


def test_export_jsonl_round_trips_through_import(cli, data_dir: Path, store: Store, tmp_path: Path) -> None:
    _seed(store)

    exported = cli("history", "export", "--format", "jsonl", "--data-dir", data_dir, "--user", "ann")

    assert exported.code == 0, exported.err
    lines = exported.out.splitlines()
    assert len(lines) == 2  # ann's unarchived conversations, oldest first
    assert [json.loads(line)["title"] for line in lines] == ["first thermostat question", "second question about refunds"]
    file = tmp_path / "export.jsonl"
    file.write_text(exported.out, encoding="utf-8")
    fresh = tmp_path / "fresh"

    imported = cli("import", file, "--data-dir", fresh, "--user", "ann")

    assert imported.code == 0, imported.err
    assert "imported 2 conversations (1 rated replies)" in imported.out
    original = [c for c in _conversation_shape(store) if c[0] in {"first thermostat question", "second question about refunds"}]
    assert _conversation_shape(open_store(fresh)) == original


def test_export_markdown_to_a_file(cli, data_dir: Path, store: Store, tmp_path: Path) -> None:
    _seed(store)
    target = tmp_path / "out.md"

    result = cli("history", "export", "--format", "markdown", "-o", target, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert result.out == ""
    assert result.err_lines == [f"exported 2 conversations to {target}"]
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# first thermostat question\n")
    assert "\n---\n\n# second question about refunds\n" in text
    assert "> 👎 ann: too short" in text


def _hostile(store: Store) -> tuple[int, int]:
    conversation = store.create_conversation("ann", "Be brief.")
    q = store.add_message(conversation.id, "user", HOSTILE)
    a = store.add_message(conversation.id, "assistant", "ok " + HOSTILE, parent_id=q.id, reply=_reply("ok"))
    return conversation.id, a.id


def test_terminal_output_has_no_raw_control_characters(cli, data_dir: Path, store: Store) -> None:
    cid, _ = _hostile(store)

    outputs = {
        "show": cli("history", "show", str(cid), "--data-dir", data_dir),
        "list": cli("history", "list", "--data-dir", data_dir, "--user", "ann"),
        "search": cli("history", "search", "cleared", "--data-dir", data_dir, "--user", "ann"),
        "export markdown": cli("history", "export", "--format", "markdown", "--data-dir", data_dir, "--user", "ann"),
    }

    for name, result in outputs.items():
        assert result.code == 0, (name, result.err)
        assert "cleared" in result.out, name
        assert "\x1b" not in result.out and "\x9b" not in result.out, (name, result.out)


def test_export_jsonl_escapes_control_characters_and_keeps_the_text(
    cli, data_dir: Path, store: Store, tmp_path: Path
) -> None:
    _hostile(store)

    exported = cli("history", "export", "--format", "jsonl", "--data-dir", data_dir, "--user", "ann")

    assert exported.code == 0
    assert "\x1b" not in exported.out and "\x9b" not in exported.out
    assert "\\u001b[31m" in exported.out and "\\u009b2J" in exported.out
    file = tmp_path / "hostile.jsonl"
    file.write_text(exported.out, encoding="utf-8")
    fresh = tmp_path / "fresh"
    assert cli("import", file, "--data-dir", fresh, "--user", "ann").code == 0
    back = open_store(fresh)
    [conversation] = back.conversations()
    assert [m.content for m in back.thread(conversation.id)] == [HOSTILE, "ok " + HOSTILE]


@pytest.mark.parametrize("command", ["show", "list", "search"])
def test_json_output_escapes_control_characters(cli, data_dir: Path, store: Store, command: str) -> None:
    """`--json` output goes to a terminal too: C1 controls such as 8-bit CSI (\\x9b) must be escaped."""
    cid, _ = _hostile(store)
    args = {"show": ["show", str(cid)], "list": ["list"], "search": ["search", "cleared"]}[command]

    result = cli("history", *args, "--json", "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert "\x1b" not in result.out and "\x9b" not in result.out, result.out
    decoded = [json.loads(line) for line in result.out.splitlines()] if command != "show" else [json.loads(result.out)]
    texts = [
        value
        for record in decoded
        for value in [record.get("title", ""), record.get("snippet", "")]
        + [m["content"] for m in record.get("messages", [])]
    ]
    if command == "list":
        # A title is derived from the first message, cleaned of control characters when it is made.
        from assistant.text import one_line

        assert decoded[0]["title"] == one_line(HOSTILE, 60)
    else:
        assert any(HOSTILE in text for text in texts), texts  # still the exact text once parsed
