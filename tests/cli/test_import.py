"""`assistant import`: OpenAI chat JSONL in, validated line by line, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import REPO, open_store, write_jsonl

RATED = {
    "messages": [
        {"role": "system", "content": "You answer questions about Nimbus thermostats."},
        {"role": "user", "content": "My thermostat shows E4."},
        {
            "role": "assistant",
            "content": "Replace the batteries.",
            "feedback": {"rating": -1, "comment": "wrong code", "correction": "E4 means the wiring is loose."},
        },
    ]
}
PLAIN = {
    "title": "Refund question",
    "messages": [
        {"role": "user", "content": "Can I get a refund?"},
        {"role": "assistant", "content": "Yes, within 30 days."},
    ],
}


def test_import_stores_conversations_prompts_and_feedback(cli, data_dir: Path, tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "good.jsonl", RATED, "", PLAIN)

    result = cli("import", file, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert result.out.strip() == f"imported 2 conversations (1 rated replies) from {file}"
    store = open_store(data_dir)
    newest_first = store.conversations(user="ann")
    assert {c.title for c in newest_first} == {"My thermostat shows E4.", "Refund question"}
    rated = next(c for c in newest_first if c.title == "My thermostat shows E4.")
    plain = next(c for c in newest_first if c.title == "Refund question")
    assert rated.system_prompt == "You answer questions about Nimbus thermostats."
    assert plain.system_prompt.startswith("You are the support assistant of Nimbus Home")  # the default
    user, assistant = store.thread(rated.id)
    assert (user.role, user.content) == ("user", "My thermostat shows E4.")
    assert (assistant.role, assistant.content, assistant.parent_id) == ("assistant", "Replace the batteries.", user.id)
    [feedback] = store.feedback_for(assistant.id)
    assert (feedback.rating, feedback.comment, feedback.correction, feedback.user) == (
        -1, "wrong code", "E4 means the wiring is loose.", "ann"
    )
    assert [m.content for m in store.thread(plain.id)] == ["Can I get a refund?", "Yes, within 30 days."]
    assert store.counts() == {"conversations": 2, "messages": 4, "feedback": 1}


def _with(message_changes: dict | None = None, **changes) -> dict:
    record = {"messages": [dict(m) for m in PLAIN["messages"]], **changes}
    if message_changes:
        index, values = message_changes["index"], message_changes["values"]
        record["messages"][index].update(values)
    return record


BAD_LINES = {
    "invalid JSON": ('{"messages": [', "not valid JSON"),
    "no messages": ({"conversation": []}, '"messages" list'),
    "unknown role": (_with({"index": 0, "values": {"role": "robot"}}), "role must be one of"),
    "content not a string": (_with({"index": 1, "values": {"content": ["Yes"]}}), "content must be a string"),
    "feedback on a user message": (
        _with({"index": 0, "values": {"feedback": {"rating": 1}}}),
        "only assistant messages can carry feedback",
    ),
    "rating 3": (_with({"index": 1, "values": {"feedback": {"rating": 3}}}), "rating must be 1 or -1"),
    "unknown feedback key": (
        _with({"index": 1, "values": {"feedback": {"rating": 1, "stars": 5}}}),
        "unknown feedback field 'stars'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_a_bad_line_after_good_ones_stores_nothing(cli, data_dir: Path, tmp_path: Path, case: str) -> None:
    bad, message = BAD_LINES[case]
    file = write_jsonl(tmp_path / "mixed.jsonl", RATED, PLAIN, bad, PLAIN)

    result = cli("import", file, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 4
    assert result.out == ""
    [line] = result.err_lines
    assert line.startswith("error: mixed.jsonl line 3")
    assert message in line
    assert open_store(data_dir).counts() == {"conversations": 0, "messages": 0, "feedback": 0}


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("empty file", b"\n  \n", "holds no conversations"),
        ("not UTF-8", b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n', "is not UTF-8 text"),
    ],
)
def test_unreadable_files_are_refused(cli, data_dir: Path, tmp_path: Path, case: str, content: bytes, message: str) -> None:
    file = tmp_path / "in.jsonl"
    file.write_bytes(content)

    result = cli("import", file, "--data-dir", data_dir)

    assert result.code == 4
    [line] = result.err_lines
    assert line.startswith("error: ") and message in line
    assert open_store(data_dir).counts()["conversations"] == 0


def test_missing_file_is_refused(cli, data_dir: Path, tmp_path: Path) -> None:
    result = cli("import", tmp_path / "nope.jsonl", "--data-dir", data_dir)

    assert result.code == 4
    assert result.err_lines == [f"error: no such file: {tmp_path / 'nope.jsonl'}"]


def test_import_of_the_sample_file(cli, data_dir: Path) -> None:
    sample = REPO / "conversations" / "samples" / "billing.jsonl"

    result = cli("import", sample, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert result.out.startswith("imported 40 conversations (")
    store = open_store(data_dir)
    assert store.counts()["conversations"] == 40
    assert len(store.conversations(user="ann")) == 40


def test_line_separators_inside_json_strings_are_text(cli, data_dir: Path, tmp_path: Path) -> None:
    """U+2028, U+0085 and friends may stand raw inside JSON strings; only "\\n" ends a line."""
    import json

    content = "first\u2028second\u0085third\x0cfourth"
    file = tmp_path / "odd.jsonl"
    file.write_text(
        json.dumps({"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "ok"}]},
                   ensure_ascii=False) + "\r\n",
        encoding="utf-8",
    )
    result = cli("import", file, "--data-dir", data_dir, "--user", "ann")
    assert result.code == 0, result.err
    store = open_store(data_dir)
    assert store.thread(store.conversations()[0].id)[0].content == content
