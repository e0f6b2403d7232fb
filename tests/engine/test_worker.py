"""The model in its own process (what the chat app uses): the same replies, cancelling, errors, shutdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.engine.base import ChatMessage, GenerationParams
from assistant.engine.worker import ProcessBackend
from assistant.errors import InputError, ModelError

GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0)
# Greedy, the tiny model never ends a reply by itself: a long reply is over only when it is cancelled (sampling
# could draw an end of turn before a late cancel lands on a busy machine).


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage("system", "You help Nimbus Home customers."), ChatMessage("user", text)]


@pytest.fixture(scope="module")
def worker(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from assistant.settings import load_settings

    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("worker-data"), environ={}, overrides={"model": str(tiny_model_dir)}
    ).settings
    progress: list[str] = []
    backend = ProcessBackend.start(settings, lambda text, fraction: progress.append(text))
    backend.progress_seen = progress
    yield backend
    backend.close()


def test_loads_in_a_child_process_and_reports_progress(worker, tiny_model_dir: Path) -> None:  # noqa: ANN001
    assert worker._process.is_alive() and worker._process.pid is not None
    assert worker.identity.model == tiny_model_dir.name
    assert any(text.startswith("Loading") for text in worker.progress_seen)


def test_replies_match_the_in_process_engine(worker, tiny_backend) -> None:  # noqa: ANN001
    reply = worker.stream(ask("How do I reset my password?"), GREEDY)
    chunks = list(reply)
    assert len(chunks) > 1
    expected = "".join(tiny_backend.stream(ask("How do I reset my password?"), GREEDY))
    assert reply.text == expected
    assert reply.stats.token_count == 24 and reply.stats.finish_reason == "length"
    assert reply.stats.ttft_ms is not None


def test_cancel_stops_the_reply_and_the_next_one_starts_clean(worker) -> None:  # noqa: ANN001
    reply = worker.stream(ask("Tell me everything."), GenerationParams(max_new_tokens=3000, temperature=0.0))
    for count, _ in enumerate(reply, start=1):
        if count == 3:
            reply.cancel()
    assert reply.stats.finish_reason == "cancelled"
    assert reply.stats.token_count < 3000
    follow_up = worker.stream(ask("Where is my order?"), GREEDY)
    assert len("".join(follow_up)) > 0 and follow_up.stats.token_count == 24


def test_a_reader_that_walks_away_leaves_the_pipe_clean(worker) -> None:  # noqa: ANN001
    reply = worker.stream(ask("Tell me everything."), GenerationParams(max_new_tokens=3000, temperature=0.0))
    chunks = iter(reply)
    next(chunks)
    chunks.close()
    assert reply.stats.finish_reason == "cancelled"
    follow_up = worker.stream(ask("hello"), GREEDY)
    assert "".join(follow_up) and follow_up.stats.token_count == 24


def test_a_reply_never_read_does_not_block_the_next(worker) -> None:  # noqa: ANN001
    worker.stream(ask("Tell me everything."), GenerationParams(max_new_tokens=3000, temperature=0.0))
    follow_up = worker.stream(ask("Where is my order?"), GREEDY)
    assert "".join(follow_up) and follow_up.stats.token_count == 24


def test_errors_in_the_child_come_back_as_their_kind(worker) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="too long"):
        worker.stream(ask("word " * 9000), GREEDY)
    assert "".join(worker.stream(ask("hi"), GREEDY))  # and the worker keeps serving


def test_a_message_too_long_for_the_model_is_told_before_a_reply_is_asked_for(worker, tiny_backend) -> None:  # noqa: ANN001
    long = ask("word " * 9000)
    fit = 4096 - GREEDY.max_new_tokens  # the tiny model's context less room for the reply, as the engine counts
    with pytest.raises(InputError, match=rf"too long for the model \(\d+ tokens; at most {fit} fit\)"):
        worker.check_prompt(long, GREEDY)
    with pytest.raises(InputError, match=f"at most {fit} fit"):
        tiny_backend.check_prompt(long, GREEDY)
    worker.check_prompt(ask("word " * 100), GREEDY)
    assert "".join(worker.stream(ask("hi"), GREEDY))  # and the worker keeps serving


def test_a_missing_model_fails_fast_with_the_engines_message(tmp_path: Path) -> None:
    from assistant.settings import load_settings

    settings = load_settings(data_dir=tmp_path, environ={}, overrides={"model": str(tmp_path / "nowhere")}).settings
    with pytest.raises(ModelError, match="model path not found"):
        ProcessBackend.start(settings)


def test_close_ends_the_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    from assistant.settings import load_settings

    settings = load_settings(data_dir=tmp_path, environ={}, overrides={"model": str(tiny_model_dir)}).settings
    backend = ProcessBackend.start(settings)
    process = backend._process
    backend.close()
    assert not process.is_alive() and process.exitcode == 0
