"""The sample conversations as training data for a pretrained fallback model, and the first version
a chat starts from them (assistant/demo/teach.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from assistant.data.builder import BuildPolicy
from assistant.data.snapshot import build_snapshot
from assistant.demo.samples import load_samples
from assistant.demo.teach import FirstVersion, run_progress, sample_conversations, samples_for, teaches_samples
from assistant.engine.resolve import ModelChoice
from assistant.store import MetricPoint, Store

SYSTEM = "You are the Nimbus Home support assistant."


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_model_dir: Path):  # noqa: ANN201
    from assistant.data.tokens import ChatTokenizer

    return ChatTokenizer.load(tiny_model_dir, "tiny")


def _choice(source: str) -> ModelChoice:
    return ModelChoice(Path("/models/x"), "SmolLM2-135M-Instruct", source)


@pytest.mark.parametrize(
    ("setting", "source", "expected"),
    [
        ("auto", "package index", True),
        ("auto", "package (converted)", True),
        ("auto", "local path", False),  # a model the team chose: its domain is not the demo's
        ("auto", "hub cache", False),
        ("on", "hub cache", True),
        ("off", "package (converted)", False),
    ],
)
def test_the_samples_are_taught_to_the_fallback_model_unless_the_setting_says_otherwise(settings, setting, source, expected) -> None:  # noqa: ANN001
    settings = dataclasses.replace(settings, sample_training=setting)
    choice = _choice(source)
    assert teaches_samples(settings, is_fallback=choice.is_fallback) is expected
    assert bool(samples_for(settings, choice)) is expected


def test_a_dataset_holds_the_samples_as_they_are_beside_the_curated_data_and_registers_only_the_latter(
    store: Store, data_dir: Path, chat_tokenizer  # noqa: ANN001
) -> None:
    conversation = store.create_conversation("bob", SYSTEM)
    question = store.add_message(conversation.id, "user", "Write to me at bob@example.org please")
    reply = store.add_message(conversation.id, "assistant", "Done.", parent_id=question.id)
    store.rate(reply.id, "bob", 1)
    store.approve([reply.id], "ann")
    samples = sample_conversations(SYSTEM)
    replies = sum(1 for c in load_samples() for m in c if m["role"] == "assistant")

    snapshot = build_snapshot(store, data_dir, BuildPolicy(eval_fraction=0.1, min_eval_examples=2), chat_tokenizer,
                              user="ann", extra=samples)  # fmt: skip

    counts = snapshot.manifest["counts"]
    assert counts["sources"] == {"approved_reply": 1, "approved_sample": replies}
    assert counts["rows"]["train"] + counts["rows"]["eval"] == replies + 1
    text = "".join((snapshot.path / name).read_text(encoding="utf-8") for name in ("train.jsonl", "eval.jsonl"))
    assert "no-reply@nimbushome.example" in text  # the company's address, not scrubbed as a customer's
    assert "bob@example.org" not in text  # the customer's still is
    assert counts["pii_replaced"] == {"EMAIL": 1}
    registered = [r[0] for r in store.db.execute("SELECT conversation_id FROM dataset_conversations WHERE dataset_id = ?", [snapshot.id])]
    assert registered == [conversation.id]  # forget finds only customers' data
    again = build_snapshot(store, data_dir, BuildPolicy(eval_fraction=0.1, min_eval_examples=2), chat_tokenizer,
                           user="ann", extra=sample_conversations(SYSTEM))  # fmt: skip
    assert again.id == snapshot.id  # the same samples and data: the same snapshot


def test_the_first_version_is_wanted_only_where_nothing_was_ever_trained(settings, store: Store) -> None:  # noqa: ANN001
    on = dataclasses.replace(settings, sample_training="on")
    assert FirstVersion(on).wanted(store, is_fallback=False)
    assert not FirstVersion(settings).wanted(store, is_fallback=False)  # auto, and not the fallback model
    assert FirstVersion(settings).wanted(store, is_fallback=True)
    assert not FirstVersion(dataclasses.replace(on, adapter="/pinned")).wanted(store, is_fallback=True)
    assert not FirstVersion(dataclasses.replace(on, server_url="http://gpu:8000/v1")).wanted(store, is_fallback=True)
    store.start_run("r1", user="ann", pid=1, base_model="m", config={"epochs": 2})
    store.update_run("r1", status="interrupted", error="the chat's machine went down")
    first = FirstVersion(on)
    assert first.wanted(store, is_fallback=True) and first.resume  # continued where it stopped
    store.update_run("r1", status="failed", error="no")
    assert not FirstVersion(on).wanted(store, is_fallback=True)  # tried once: `assistant retrain` is the way now


def test_the_first_versions_retrain_trains_the_model_this_chat_serves(settings, store: Store, tmp_path: Path) -> None:  # noqa: ANN001
    pinned = FirstVersion(dataclasses.replace(settings, model=str(tmp_path / "my-model"), sample_training="on"))
    fallback = FirstVersion(settings)
    assert pinned.wanted(store, is_fallback=False) and fallback.wanted(store, is_fallback=True)
    commands = []
    for first in (pinned, fallback):
        process = first.start()  # a real `assistant retrain`; stopped at once: only its command line matters here
        process.kill()
        process.wait()
        commands.append(process.args)
    assert pinned.finished == set() and pinned.ended() is not None and pinned.finished
    assert pinned_model_arg(commands[0]) == str(tmp_path / "my-model")
    assert pinned_model_arg(commands[1]) is None  # the fallback: no hub model for the retrain either (env)


def pinned_model_arg(args: list[str]) -> str | None:
    return args[args.index("--model") + 1] if "--model" in args else None


def test_bf16_autocast_only_where_the_cpu_has_bf16(tmp_path: Path) -> None:
    from assistant.train.loop import cpu_has_bf16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n", encoding="utf-8")
    assert cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("processor : 0\nflags\t\t: fpu avx2 avx512f avx512bw\n", encoding="utf-8")  # AVX-512, bf16 emulated
    assert not cpu_has_bf16(cpuinfo)
    assert not cpu_has_bf16(tmp_path / "missing")  # not Linux


def test_a_running_retrains_progress_comes_from_what_it_records(store: Store) -> None:
    assert run_progress(store) is None
    store.start_run("r1", user="ann", pid=1, base_model="m", config={"epochs": 2.0, "max_steps": 0})
    assert run_progress(store).text() == "preparing the dataset and the model"
    store.record_metrics("r1", [MetricPoint("train", 10, 0.5, 2.0, 1.0, 1e-4), MetricPoint("eval", 10, 0.5, 2.1, None, None)])
    progress = run_progress(store)
    assert (progress.step, progress.fraction) == (10, 0.25)
    assert progress.text().startswith("training, step 10 (25%), about ")
    store.record_metrics("r1", [MetricPoint("train", 40, 2.0, 1.0, 1.0, 1e-4)])
    assert run_progress(store).text() == "checking the new version against the current one"
    store.update_run("r1", status="published", version="v0001")
    assert run_progress(store) is None


def _log_steps(store: Store, clock, steps: range, *, seconds: int = 4, total: int = 100) -> None:  # noqa: ANN001
    from datetime import timedelta

    for step in steps:
        clock.now += timedelta(seconds=seconds - 1)  # the clock moves a second per reading
        store.record_metrics("r1", [MetricPoint("train", step, step / total, 2.0, 1.0, 1e-4)])


def test_the_time_left_is_the_pace_of_the_steps_so_far_not_of_the_start_up(store: Store, clock) -> None:  # noqa: ANN001
    from datetime import timedelta

    store.start_run("r1", user="ann", pid=1, base_model="m", config={"epochs": 1.0, "max_steps": 0})
    clock.now += timedelta(seconds=120)  # the dataset and the model loading
    _log_steps(store, clock, range(1, 11))
    progress = run_progress(store)
    assert (progress.step, progress.fraction, progress.seconds_per_step) == (10, 0.1, 4.0)
    assert progress.remaining_s == pytest.approx(90 * 4 - 1)  # less the second since step 10; not 9 x 161 s elapsed
    assert progress.text() == "training, step 10 (10%), about 6 min left"


def test_a_resumed_runs_time_left_ignores_the_downtime_and_the_steps_its_killed_process_left(store: Store, clock) -> None:  # noqa: ANN001
    from datetime import timedelta

    store.start_run("r1", user="ann", pid=1, base_model="m", config={"epochs": 1.0, "max_steps": 0})
    _log_steps(store, clock, range(1, 41))  # killed after step 40, checkpointed at 20
    clock.now += timedelta(hours=10)
    _log_steps(store, clock, range(21, 26))  # resumed from step 20
    progress = run_progress(store)
    assert (progress.step, progress.fraction, progress.seconds_per_step) == (25, 0.25, 4.0)
    assert progress.remaining_s == pytest.approx(75 * 4 - 1)


def test_max_steps_bounds_the_progress_when_it_ends_the_run_first(store: Store) -> None:
    store.start_run("r1", user="ann", pid=1, base_model="m", config={"epochs": 30.0, "max_steps": 20})
    store.record_metrics("r1", [MetricPoint("train", 5, 0.1, 2.0, 1.0, 1e-4)])
    assert run_progress(store).fraction == 0.25


def test_a_preference_stages_progress_counts_its_own_steps(store: Store, clock) -> None:  # noqa: ANN001
    from datetime import timedelta

    store.start_run("r1", user="ann", pid=1, base_model="m", config={"epochs": 1.0, "max_steps": 0, "preference_epochs": 2.0})
    _log_steps(store, clock, range(1, 101))  # the SFT stage, done
    for step in range(1, 6):  # the preference stage's steps start at 1, at 10 s a step
        clock.now += timedelta(seconds=9)
        store.record_metrics("r1", [MetricPoint("train", step, step / 50, 0.6, 1.0, 1e-5, "preference")])
    progress = run_progress(store)
    assert (progress.stage, progress.step, progress.fraction, progress.seconds_per_step) == ("preference", 5, 0.05, 10.0)
    assert progress.remaining_s == pytest.approx(95 * 10 - 1)
    assert progress.text() == "preference training, step 5 (5%), about 16 min left"

    # Without the stage's length in the run's config: its step, no share and no time left.
    store.update_run("r1", config={"epochs": 1.0, "max_steps": 0, "preference_epochs": 0.0})
    progress = run_progress(store)
    assert (progress.step, progress.fraction, progress.text()) == (5, None, "preference training, step 5")


def test_sample_ids_are_negative_increasing_and_each_reply_is_approved() -> None:
    conversations = sample_conversations(SYSTEM)
    ids = [c.id for c in conversations]
    assert ids == sorted(ids) and ids[-1] < 0
    message_ids = [m.id for c in conversations for m in c.messages]
    assert len(set(message_ids)) == len(message_ids)
    for c in conversations:
        assert not c.personal and c.system_prompt == SYSTEM
        assert {m.status for m in c.messages if m.role == "assistant"} == {"approved"}
        assert [m.parent_id for m in c.messages[1:]] == [m.id for m in c.messages[:-1]]
    assert json.dumps([m.content for m in conversations[0].messages]) == json.dumps([m["content"] for m in load_samples()[0]])


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (0, None),  # promoted: the swap notification says so
        (11, None),  # another chat's retrain was first: its progress shows
        (12, "did not beat the base model"),
        (10, "failed (exit 10)"),
    ],
)
def test_what_a_chat_says_when_the_retrain_it_started_ends(settings, code: int, said: str | None) -> None:  # noqa: ANN001
    import subprocess
    import sys

    first = FirstVersion(settings)
    assert first.ended() is None  # none started
    first.process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    first.process.wait()
    message = first.ended()
    assert (message is None) if said is None else (said in message)
    assert first.ended() is None  # said once


def test_the_first_version_is_a_short_run_unless_epochs_are_set(settings, store: Store, monkeypatch) -> None:  # noqa: ANN001
    """0.3 of a pass teaches the fallback model to use the curated answers beside a question within a
    first start's 5 minutes (docs/BENCHMARKS.md); epochs set by the user are theirs, and without
    references shown (or for another model) the first version is a whole run."""
    from assistant.demo import teach
    from assistant.train.config import FIRST_VERSION_EPOCHS

    environments = []

    class Started:  # records how the retrain would start; no process
        def __init__(self, args: list[str], **options: object) -> None:
            environments.append(options["env"])
            self.args, self.pid = args, 2**30  # no such process: renicing it fails quietly

    monkeypatch.setattr(teach.subprocess, "Popen", Started)
    monkeypatch.delenv("ASSISTANT_EPOCHS", raising=False)
    on = dataclasses.replace(settings, sample_training="on", epochs=0.0)
    cases = [(on, True), (dataclasses.replace(on, epochs=2.0), True), (dataclasses.replace(on, references="off"), True),
             (on, False)]  # fmt: skip
    for case, is_fallback in cases:
        first = FirstVersion(case)
        assert first.wanted(store, is_fallback=is_fallback)
        first.start()
    assert environments[0]["ASSISTANT_EPOCHS"] == str(FIRST_VERSION_EPOCHS)
    assert all("ASSISTANT_EPOCHS" not in env for env in environments[1:])
