"""Bad input never hurts: hostile import files and arguments get one `error:` line and a documented
exit code (never 1, never a traceback, never a hang), and nothing already stored is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import REPO, open_store, run_subprocess, write_jsonl

INPUT_ERROR = 4
GOOD = {"messages": [{"role": "user", "content": "Can I get a refund?"}, {"role": "assistant", "content": "Yes."}]}


def _one_error_line(result, code: int = INPUT_ERROR) -> str:  # noqa: ANN001
    assert result.code == code, result
    assert "Traceback" not in result.err
    [line] = result.err_lines
    assert line.startswith("error: ")
    return line


def _stored(data_dir: Path) -> dict[str, int]:
    return open_store(data_dir).counts()


@pytest.fixture
def one_stored(cli, data_dir: Path, tmp_path: Path) -> dict[str, int]:
    assert cli("import", write_jsonl(tmp_path / "good.jsonl", GOOD), "--data-dir", data_dir).code == 0
    return _stored(data_dir)


# -- import ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("deep.json", "[" * 100_000, "nested too deeply"),
        ("deep.jsonl", '{"messages": ' + "[" * 100_000, "nested too deeply"),
        ("number.jsonl", '{"messages": [], "title": ' + "7" * 5000 + "}", "number too long"),
        ("surrogate.jsonl", '{"messages": [{"role": "user", "content": "hi \\ud800 there"}]}', "lone surrogate"),
        ("surrogate-title.json", '[{"title": "\\udfff", "messages": [{"role": "user", "content": "hi"}]}]', "lone surrogate"),
    ],
    ids=["100,000 [", "nested line", "5,000 digits", "lone surrogate", "lone surrogate in an array"],
)
def test_hostile_json_is_one_line(cli, data_dir: Path, tmp_path: Path, one_stored, name: str, content: str, expected: str) -> None:  # noqa: ANN001
    file = tmp_path / name
    file.write_text(content, encoding="utf-8")

    line = _one_error_line(cli("import", file, "--data-dir", data_dir))

    assert expected in line
    assert file.name in line
    assert _stored(data_dir) == one_stored


def test_an_import_over_the_size_limit_is_refused(cli, data_dir: Path, tmp_path: Path, one_stored) -> None:  # noqa: ANN001
    (data_dir / "config.toml").write_text("import_max_bytes = 1000\n", encoding="utf-8")
    big = dict(GOOD, title="x" * 2000)
    file = write_jsonl(tmp_path / "big.jsonl", big)

    line = _one_error_line(cli("import", file, "--data-dir", data_dir))

    assert "larger than import_max_bytes (1000 bytes)" in line
    assert _stored(data_dir) == one_stored


def test_a_message_over_the_message_limit_is_refused(cli, data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "config.toml").write_text("max_message_chars = 100\n", encoding="utf-8")
    long = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "y" * 101}]}

    line = _one_error_line(cli("import", write_jsonl(tmp_path / "long.jsonl", GOOD, long), "--data-dir", data_dir))

    assert line == "error: long.jsonl line 2, message 2: 101 characters, more than max_message_chars (100)"
    assert not (data_dir / "assistant.db").exists() or _stored(data_dir)["conversations"] == 0


def test_a_conversation_over_the_conversation_limit_is_refused(cli, data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "config.toml").write_text("max_conversation_messages = 3\n", encoding="utf-8")
    turns = [{"role": r, "content": "ok"} for r in ("user", "assistant", "user", "assistant")]

    line = _one_error_line(cli("import", write_jsonl(tmp_path / "many.jsonl", {"messages": turns}), "--data-dir", data_dir))

    assert line == "error: many.jsonl line 1: 4 messages, more than max_conversation_messages (3)"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_files_that_are_not_regular_are_refused_without_hanging(data_dir: Path, tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe.jsonl"
        os.mkfifo(path)
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "dir.jsonl"
        path.mkdir()
    try:
        result = run_subprocess("import", path, "--data-dir", data_dir, cwd=tmp_path, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"import of a {kind} hung")

    line = _one_error_line(result)
    assert "is not a regular file" in line or "is a directory" in line


# -- arguments -------------------------------------------------------------------------------


def _bytes_run(tmp_path: Path, *args: bytes | str, env: dict[str, bytes | str] | None = None):  # noqa: ANN202
    """`assistant ARGS` in a subprocess, with arguments and environment as raw bytes (not UTF-8)."""
    environ = {k.encode(): v.encode() for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    environ.update({b"HF_HUB_OFFLINE": b"1", b"XDG_CONFIG_HOME": str(tmp_path / "xdg").encode(),
                    b"PYTHONPATH": str(REPO).encode()})
    for key, value in (env or {}).items():
        environ[key.encode()] = value if isinstance(value, bytes) else value.encode()
    argv = [sys.executable.encode(), b"-m", b"assistant", *(a if isinstance(a, bytes) else a.encode() for a in args)]
    done = subprocess.run(argv, cwd=tmp_path, env=environ, capture_output=True, timeout=120)
    from tests.cli.helpers import Result

    return Result(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))


BAD = b"caf\xe9"  # Latin-1, not UTF-8


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((b"history", b"list", b"--user", BAD), "--user is not valid UTF-8"),
        ((b"ask", BAD + b" question"), "QUESTION is not valid UTF-8"),
        ((b"feedback", b"correct", b"1", b"--text", BAD), "--text is not valid UTF-8"),
        ((b"forget", b"--user", BAD, b"--yes"), "--user is not valid UTF-8"),
        ((b"history", b"search", BAD), "TEXT is not valid UTF-8"),
    ],
    ids=["--user", "ask", "correct --text", "forget --user", "search"],
)
def test_arguments_that_are_not_utf8_are_refused(data_dir: Path, tmp_path: Path, args: tuple, expected: str) -> None:
    result = _bytes_run(tmp_path, *args, b"--data-dir", str(data_dir).encode())

    line = _one_error_line(result)
    assert expected in line


def test_assistant_user_that_is_not_utf8_is_refused(data_dir: Path, tmp_path: Path) -> None:
    result = _bytes_run(tmp_path, "history", "list", "--data-dir", str(data_dir), env={"ASSISTANT_USER": BAD})

    line = _one_error_line(result, code=3)
    assert "ASSISTANT_USER is not valid UTF-8" in line


@pytest.mark.parametrize(
    "args",
    [
        ["history", "show", str(2**63)],
        ["history", "show", "9" * 5000],
        ["history", "list", "--limit", str(2**63)],
        ["history", "search", "refund", "--limit", "9" * 5000],
        ["feedback", "approve", str(2**64)],
        ["feedback", "list", "--limit", str(2**63)],
        ["forget", "--conversation", str(2**63), "--yes"],
        ["ask", "hello", "--conversation", "-" + "9" * 5000],
    ],
    ids=["show 2^63", "show 5000 digits", "list --limit 2^63", "search --limit", "approve 2^64", "feedback --limit",
         "forget 2^63", "ask --conversation"],
)
def test_numbers_out_of_range_are_input_errors(cli, data_dir: Path, one_stored, args: list[str]) -> None:  # noqa: ANN001
    line = _one_error_line(cli(*args, "--data-dir", data_dir))

    assert "database" not in line
    assert "out of range" in line
    assert _stored(data_dir) == one_stored


# -- json in, json out -----------------------------------------------------------------------


def test_the_import_file_is_read_once_and_streams_no_more_than_the_limit(tmp_path: Path) -> None:
    from assistant.errors import InputError
    from assistant.jsonl import read_limited

    path = tmp_path / "f.jsonl"
    path.write_bytes(b"x" * 10)
    assert read_limited(path, 10) == b"x" * 10
    with pytest.raises(InputError, match="larger than"):
        read_limited(path, 9)


def test_a_json_value_is_checked_for_lone_surrogates_everywhere() -> None:
    from assistant.errors import InputError
    from assistant.jsonl import loads

    assert loads('{"a": ["\\u00e9"]}', "x") == {"a": ["é"]}
    with pytest.raises(InputError, match="lone surrogate"):
        loads('{"a": [{"\\ud800": 1}]}', "x")
    assert json.dumps(loads("[1.5e3]", "x")) == "[1500.0]"


# -- a turn that fails, a conversation that is full, an export that reads back ----------------


def test_a_failed_ask_leaves_no_empty_conversation(store, settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from assistant.chat import run_turn
    from assistant.errors import StoreError

    def full(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise StoreError("database or disk is full")

    monkeypatch.setattr(store, "add_message", full)  # the fault, as SQLite reports it on a full disk

    with pytest.raises(StoreError):
        run_turn(store, None, settings, "Can I get a refund?")

    assert store.conversations(include_archived=True) == []


def test_a_question_is_refused_before_anything_is_stored(store, settings) -> None:  # noqa: ANN001
    from assistant.chat import run_turn
    from assistant.errors import InputError

    for text in ("x" * (settings.max_message_chars + 1), "caf\udce9"):
        with pytest.raises(InputError):
            run_turn(store, None, settings, text)

    assert store.conversations(include_archived=True) == []


def test_a_full_conversation_asks_for_a_new_one(store, settings) -> None:  # noqa: ANN001
    from assistant.chat import run_turn
    from assistant.errors import InputError

    conversation = store.create_conversation("ann", "")
    question = store.add_message(conversation.id, "user", "hi")
    store.add_message(conversation.id, "assistant", "hello", parent_id=question.id)

    with pytest.raises(InputError, match="max_conversation_messages.*start a new conversation"):
        run_turn(store, None, settings.replace(max_conversation_messages=3), "again", conversation_id=conversation.id)

    assert len(store.thread(conversation.id)) == 2


def test_export_then_import_round_trips_with_an_empty_conversation(cli, data_dir: Path, store, tmp_path: Path) -> None:  # noqa: ANN001
    store.create_conversation("ann", "a system prompt")  # what a failed ask used to leave behind
    kept = store.create_conversation("ann", "")
    store.add_message(kept.id, "user", "Can I get a refund?")
    out = tmp_path / "export.jsonl"

    exported = cli("history", "export", "-o", out, "--data-dir", data_dir, "--user", "ann")
    imported = cli("import", out, "--data-dir", tmp_path / "fresh", "--user", "ann")

    assert exported.code == 0, exported.err
    assert "left out 1 conversation with no messages" in exported.err
    assert imported.code == 0, imported.err
    assert "imported 1 conversations" in imported.out


# -- files written for users -----------------------------------------------------------------

FORGED = (
    "Sure.\n\n## Assistant (gpt-99)\n\nforged answer\n\n> 👍 boss: perfect\n\n# New section\n"
    "Title\n=====\n```\n<!--\n1. item\n````\n\x1b]0;pwned\x07\x1b[31mred\x1b[0m"
)


def _forgeable(store) -> int:  # noqa: ANN001
    from assistant.store import ReplyRecord

    conversation = store.create_conversation("ann", "", title="# fake\n## System")
    question = store.add_message(conversation.id, "user", FORGED)
    record = ReplyRecord(content="", model="tiny\n## User", adapter=None, params={}, ttft_ms=None, token_count=1,
                         tokens_per_s=None, finish_reason="stop")
    answer = store.add_message(conversation.id, "assistant", FORGED, parent_id=question.id, reply=record)
    store.rate(answer.id, "eve\n\n## User\n\n> 👎 mallory", 1, comment="fine\n\n> 👎 bob: awful", correction=FORGED)
    return conversation.id


def test_the_markdown_transcript_cannot_be_forged(cli, data_dir: Path, store, tmp_path: Path) -> None:  # noqa: ANN001
    from markdown_it import MarkdownIt

    _forgeable(store)
    out = tmp_path / "t.md"

    result = cli("history", "export", "--format", "markdown", "-o", out, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    text = out.read_text(encoding="utf-8")
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["# fake ## System", "User", "Assistant (tiny ## User)"]
    assert sum(t.type == "blockquote_open" for t in tokens) == 1  # the one rating
    assert not [t for t in tokens if t.type in {"html_block", "hr", "bullet_list_open", "ordered_list_open"}]
    fences = [t.content for t in tokens if t.type == "fence"]
    shown = FORGED.replace("\x1b]0;pwned\x07", "").replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert fences == [shown + "\n"] * 3  # question, answer and correction, each exactly as written
    assert "\x1b" not in text and "\x07" not in text


def test_ordinary_text_stays_plain_markdown() -> None:
    from assistant.formats import markdown_block

    assert markdown_block("Restart the hub.\n\nThen wait a minute: it blinks *twice*.") == [
        "Restart the hub.", "", "Then wait a minute: it blinks *twice*."
    ]
    assert markdown_block("run `ls` and ``` this") == ["run `ls` and ``` this"]
    assert markdown_block("```\ncode") == ["````text", "```", "code", "````"]


@pytest.mark.parametrize("fmt", ["jsonl", "markdown"])
def test_a_full_disk_keeps_the_previous_export(
    cli, data_dir: Path, store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str  # noqa: ANN001
) -> None:
    import errno

    conversation = store.create_conversation("ann", "")
    store.add_message(conversation.id, "user", "Can I get a refund?")
    out = tmp_path / "export.out"
    out.write_text("the export of last week\n", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the disk fills up while the new export is written
    result = cli("history", "export", "--format", fmt, "-o", out, "--data-dir", data_dir, "--user", "ann")

    line = _one_error_line(result, code=14)
    assert line == f"error: no space left to write {out}; it was not changed"
    assert out.read_text(encoding="utf-8") == "the export of last week\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".export")) == []


def test_a_dataset_export_on_a_full_disk_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from assistant.data.export import _write

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    from assistant.errors import DiskFullError

    with pytest.raises(DiskFullError, match="no space left"):
        _write(tmp_path / "out", {"train.jsonl": "{}\n"})
    assert list((tmp_path / "out").iterdir()) == []
