"""`assistant ask`: one turn without the UI, streamed or as JSON, stored like a chat turn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.helpers import open_store

pytestmark = pytest.mark.usefixtures("fast_model")


def _ask(cli, data_dir: Path, model: Path, *args: str):
    return cli("ask", *args, "--data-dir", data_dir, "--model", model, "--user", "ann")


def test_ask_streams_the_reply_and_stores_the_turn(cli, data_dir: Path, tiny_model_dir: Path) -> None:
    result = _ask(cli, data_dir, tiny_model_dir, "How do I cancel Nimbus Plus?")

    assert result.code == 0, result.err
    summary = result.err_lines[-1]
    assert re.fullmatch(r"\[conversation 1, message 2, \d+ tokens(, [\d.]+ tokens/s)?\]", summary), result.err
    store = open_store(data_dir)
    [conversation] = store.conversations(user="ann")
    question, answer = store.thread(conversation.id)
    assert (question.role, question.content) == ("user", "How do I cancel Nimbus Plus?")
    assert answer.role == "assistant" and answer.parent_id == question.id
    assert answer.content.strip(), "the tiny model answers something"
    assert result.out == answer.content + "\n"
    assert answer.model == tiny_model_dir.name
    assert 1 <= answer.token_count <= 24
    assert f"{answer.token_count} tokens" in summary
    assert answer.ttft_ms is not None and answer.ttft_ms > 0
    assert answer.finish_reason in {"stop", "length"}
    assert answer.params["max_new_tokens"] == 24 and answer.params["temperature"] == 0


def test_ask_json_prints_one_object_and_continues_a_conversation(
    cli, data_dir: Path, tiny_model_dir: Path
) -> None:
    first = _ask(cli, data_dir, tiny_model_dir, "What does Nimbus Plus cost?", "--json")

    assert first.code == 0, first.err
    [line] = first.out.splitlines()
    reply = json.loads(line)
    assert set(reply) == {
        "conversation_id", "message_id", "reply", "model", "adapter",
        "ttft_ms", "token_count", "tokens_per_s", "finish_reason",
    }
    store = open_store(data_dir)
    stored = store.message(reply["message_id"])
    assert stored.conversation_id == reply["conversation_id"]
    assert reply["reply"] == stored.content
    assert reply["model"] == tiny_model_dir.name and reply["adapter"] is None
    assert reply["token_count"] == stored.token_count and reply["finish_reason"] == stored.finish_reason
    assert reply["ttft_ms"] == stored.ttft_ms

    second = _ask(cli, data_dir, tiny_model_dir, "And per year?", "--json", "--conversation", str(reply["conversation_id"]))

    assert second.code == 0, second.err
    follow_up = json.loads(second.out)
    assert follow_up["conversation_id"] == reply["conversation_id"]
    thread = store.thread(reply["conversation_id"])
    assert [m.role for m in thread] == ["user", "assistant", "user", "assistant"]
    assert thread[2].content == "And per year?"
    assert thread[2].parent_id == reply["message_id"]
    assert thread[3].id == follow_up["message_id"]
    assert len(store.conversations(user="ann")) == 1


def test_ask_unknown_conversation_fails_before_loading_a_model(cli, data_dir: Path) -> None:
    # A model path that does not exist would fail with exit 5 if the model were resolved first.
    result = cli("ask", "hello", "--conversation", "999", "--data-dir", data_dir, "--model", "/does/not/exist")

    assert result.code == 7
    assert result.out == ""
    assert result.err_lines == ["error: no conversation with id 999"]
    assert open_store(data_dir).counts() == {"conversations": 0, "messages": 0, "feedback": 0}


def test_ask_empty_question_is_refused(cli, data_dir: Path, tiny_model_dir: Path) -> None:
    result = _ask(cli, data_dir, tiny_model_dir, "   ")

    assert result.code == 4
    assert result.err_lines == ["error: a message cannot be empty"]
    assert open_store(data_dir).counts()["messages"] == 0


def test_ask_with_a_missing_model_path(cli, data_dir: Path) -> None:
    result = cli("ask", "hello", "--data-dir", data_dir, "--model", "/does/not/exist")

    assert result.code == 5
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("error: model path not found: /does/not/exist")
    assert open_store(data_dir).counts()["messages"] == 0


TOO_LONG = "Here is my whole router log, please read it: " + "zebra quartz 1234 " * 1500


def test_ask_refuses_a_question_too_long_for_the_model_and_stores_nothing(
    cli, data_dir: Path, tiny_model_dir: Path
) -> None:
    result = _ask(cli, data_dir, tiny_model_dir, TOO_LONG)

    assert result.code == 4
    assert result.out == ""
    [line] = [line for line in result.err_lines if line.startswith("error:")]
    assert re.fullmatch(r"error: the message is too long for the model \(\d+ tokens; at most 4072 fit\)", line)
    assert open_store(data_dir).conversations(include_archived=True) == []  # no empty conversation left behind


def test_ask_refuses_a_too_long_follow_up_and_the_conversation_stays_as_it_was(
    cli, data_dir: Path, tiny_model_dir: Path
) -> None:
    first = _ask(cli, data_dir, tiny_model_dir, "What does Nimbus Plus cost?", "--json")
    conversation_id = json.loads(first.out)["conversation_id"]

    result = _ask(cli, data_dir, tiny_model_dir, TOO_LONG, "--conversation", str(conversation_id))

    assert result.code == 4 and "too long for the model" in result.err
    assert [m.role for m in open_store(data_dir).thread(conversation_id)] == ["user", "assistant"]
