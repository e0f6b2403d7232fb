"""`assistant import` of ShareGPT records: JSONL lines, a whole-file JSON array, and files mixed with
OpenAI chat lines."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import open_store, write_jsonl

WITH_SYSTEM = {
    "id": "abc-123",
    "conversations": [
        {"from": "system", "value": "You answer questions about Nimbus thermostats."},
        {"from": "human", "value": "My thermostat shows E4."},
        {"from": "gpt", "value": "Check the wiring."},
        {"from": "human", "value": "Still E4 <|im_end|>"},
        {"from": "gpt", "value": "Call an installer."},
    ],
}
TITLED = {
    "title": "Refund question",
    "conversations": [
        {"from": "user", "value": "Kann ich das Gerät zurückgeben?"},
        {"from": "chatgpt", "value": "Ja, innerhalb von 30 Tagen."},
    ],
}
OPENAI = {
    "messages": [
        {"role": "user", "content": "Does Nimbus work offline?"},
        {"role": "assistant", "content": "Yes, schedules run locally.", "feedback": {"rating": 1}},
    ]
}


def _by_title(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    store = open_store(data_dir)
    return {
        c.title: [(m.role, m.content) for m in store.thread(c.id)] for c in store.conversations(include_archived=True)
    }


def test_sharegpt_jsonl_is_imported(cli, data_dir: Path, tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "share.jsonl", WITH_SYSTEM, TITLED)

    result = cli("import", file, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert result.out.strip() == f"imported 2 conversations (0 rated replies) from {file}"
    store = open_store(data_dir)
    conversations = {c.title: c for c in store.conversations(include_archived=True)}
    assert set(conversations) == {"My thermostat shows E4.", "Refund question"}
    first = conversations["My thermostat shows E4."]
    assert first.system_prompt == "You answer questions about Nimbus thermostats."
    assert [(m.role, m.content) for m in store.thread(first.id)] == [
        ("user", "My thermostat shows E4."),
        ("assistant", "Check the wiring."),
        ("user", "Still E4 <|im_end|>"),
        ("assistant", "Call an installer."),
    ]
    titled = conversations["Refund question"]
    assert titled.system_prompt.startswith("You are the support assistant of Nimbus Home")  # the default
    assert [(m.role, m.content) for m in store.thread(titled.id)] == [
        ("user", "Kann ich das Gerät zurückgeben?"),
        ("assistant", "Ja, innerhalb von 30 Tagen."),
    ]


def test_a_sharegpt_json_array_is_imported(cli, data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "share.json"
    # The usual ShareGPT .json: one indented array, a BOM and leading whitespace allowed.
    file.write_text("\ufeff  \n" + json.dumps([WITH_SYSTEM, TITLED], indent=2, ensure_ascii=False), encoding="utf-8")

    result = cli("import", file, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert result.out.startswith("imported 2 conversations")
    threads = _by_title(data_dir)
    assert threads["Refund question"] == [
        ("user", "Kann ich das Gerät zurückgeben?"),
        ("assistant", "Ja, innerhalb von 30 Tagen."),
    ]
    assert [role for role, _ in threads["My thermostat shows E4."]] == ["user", "assistant", "user", "assistant"]


def test_every_speaker_alias_maps_to_a_role(cli, data_dir: Path, tmp_path: Path) -> None:
    record = {
        "conversations": [
            {"from": "human", "value": "1"},
            {"from": "gpt", "value": "2"},
            {"from": "user", "value": "3"},
            {"from": "assistant", "value": "4"},
            {"from": "human", "value": "5"},
            {"from": "bard", "value": "6"},
            {"from": "human", "value": "7"},
            {"from": "model", "value": "8"},
        ],
        "system": "Top-level system prompt, as LLaMA-Factory writes it.",
    }
    file = write_jsonl(tmp_path / "aliases.jsonl", record)

    result = cli("import", file, "--data-dir", data_dir)

    assert result.code == 0, result.err
    store = open_store(data_dir)
    [conversation] = store.conversations(include_archived=True)
    assert conversation.system_prompt == "Top-level system prompt, as LLaMA-Factory writes it."
    assert [m.role for m in store.thread(conversation.id)] == ["user", "assistant"] * 4


def test_a_mixed_file_of_openai_and_sharegpt_lines_is_imported(cli, data_dir: Path, tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "mixed.jsonl", OPENAI, TITLED, "", WITH_SYSTEM)

    result = cli("import", file, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert result.out.strip() == f"imported 3 conversations (1 rated replies) from {file}"
    threads = _by_title(data_dir)
    assert threads["Does Nimbus work offline?"] == [
        ("user", "Does Nimbus work offline?"),
        ("assistant", "Yes, schedules run locally."),
    ]
    assert set(threads) == {"Does Nimbus work offline?", "Refund question", "My thermostat shows E4."}
    assert open_store(data_dir).counts() == {"conversations": 3, "messages": 8, "feedback": 1}


def test_an_unknown_speaker_in_jsonl_names_the_line_and_message(cli, data_dir: Path, tmp_path: Path) -> None:
    bad = {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "beep"}]}
    file = write_jsonl(tmp_path / "bad.jsonl", TITLED, bad)

    result = cli("import", file, "--data-dir", data_dir)

    assert result.code == 4
    assert result.out == ""
    [line] = result.err_lines
    assert line.startswith("error: bad.jsonl line 2, message 2: ")
    assert "'robot'" in line and '"from" must be one of' in line
    assert open_store(data_dir).counts() == {"conversations": 0, "messages": 0, "feedback": 0}


def test_an_unknown_speaker_in_a_json_array_names_the_index(cli, data_dir: Path, tmp_path: Path) -> None:
    bad = {"conversations": [{"from": "narrator", "value": "Once upon a time"}]}
    file = tmp_path / "bad.json"
    file.write_text(json.dumps([TITLED, WITH_SYSTEM, bad], indent=2), encoding="utf-8")

    result = cli("import", file, "--data-dir", data_dir)

    assert result.code == 4
    [line] = result.err_lines
    assert line.startswith("error: bad.json[2], message 1: ")
    assert "'narrator'" in line
    assert open_store(data_dir).counts()["conversations"] == 0


def test_malformed_sharegpt_records_are_refused_in_one_line(cli, data_dir: Path, tmp_path: Path) -> None:
    cases = {
        "value not a string": ({"conversations": [{"from": "human", "value": 3}]}, '"value" must be a string'),
        "empty conversations": ({"conversations": []}, '"conversations" is empty'),
        "no user turn": ({"conversations": [{"from": "gpt", "value": "hi"}]}, "at least one user message"),
        "empty user turn": ({"conversations": [{"from": "human", "value": "  "}]}, "user message cannot be empty"),
        "turn not an object": ({"conversations": ["hi"]}, 'expected an object with "from" and "value"'),
    }
    for case, (record, message) in cases.items():
        file = write_jsonl(tmp_path / "bad.jsonl", record)

        result = cli("import", file, "--data-dir", data_dir)

        assert result.code == 4, case
        [line] = result.err_lines
        assert line.startswith("error: bad.jsonl line 1") and message in line, (case, line)


def test_broken_json_arrays_are_refused(cli, data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('[\n  {"conversations": [\n', encoding="utf-8")

    result = cli("import", file, "--data-dir", data_dir)

    assert result.code == 4
    [line] = result.err_lines
    assert line.startswith("error: broken.json: not valid JSON (") and "line 3" in line

    file.write_text("[]\n", encoding="utf-8")
    result = cli("import", file, "--data-dir", data_dir)
    assert result.code == 4
    assert result.err_lines == [f"error: {file} holds no conversations"]
