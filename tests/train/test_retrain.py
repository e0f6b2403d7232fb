"""`assistant retrain` end to end on the tiny model: real TRL, peft and bitsandbytes (CPU 4-bit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from assistant.adapters import registry
from assistant.errors import TrainingError
from assistant.settings import load_settings
from assistant.store import Store
from assistant.train.retrain import Options, lock_path, retrain
from tests.cli.conftest import cli, isolated_env  # noqa: F401 - fixtures
from tests.conftest import load_backend
from tests.train.conftest import ANSWERS, PROBE, configure, curate

REPO = Path(__file__).resolve().parents[2]


def settings_of(data_dir: Path):  # noqa: ANN201
    return load_settings(data_dir=data_dir, environ={}).settings


def test_retrain_publishes_and_promotes_an_adapter_that_learned_the_curated_answers(trained_dir: Path, tiny_model_dir: Path) -> None:
    store = Store.open(trained_dir / "assistant.db")
    active = store.active_adapter()
    assert active is not None and active.version == "v0001"
    assert active.report["verdict"] == "promote"
    scores = active.report["scores"]
    assert scores["candidate"]["eval_loss"] < scores["base"]["eval_loss"] - 0.01
    assert {p["prompt"] for p in active.report["probes"]} == {PROBE, "Where is my parcel?"}

    directory = trained_dir / "adapters" / "v0001"
    assert sorted(p.name for p in directory.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "meta.json"]
    meta = registry.check_files(directory)
    assert meta["dataset_snapshot"] == active.dataset_id
    assert meta["base_model"]["sha256"] and meta["base_model"]["path"] == str(tiny_model_dir)
    assert meta["training_config"]["lora_r"] == 16 and meta["training_config"]["target_modules"] == ["all-linear"]
    assert meta["eval_report"]["verdict"] == "promote" and meta["metrics"]["steps"] == 180
    assert meta["code_version"] and meta["created_at"]

    run = store.training_run(active.run_id)
    assert sorted(p.name for p in (trained_dir / "runs" / run.id).iterdir()) == ["run.json"], "checkpoints are cleaned up"
    assert run.status == "published" and run.version == "v0001" and run.finished_at
    points = store.run_metrics(run.id)
    assert [p.step for p in points if p.split == "train"] == list(range(1, 181))
    assert len([p for p in points if p.split == "eval"]) == 10
    assert not list((trained_dir / "adapters").glob(".*")), "no staging directory left behind"

    # Served as the chat serves it (full-precision base, unmerged adapter), greedy: the curated answer.
    from assistant.engine.base import ChatMessage, GenerationParams

    backend = load_backend(tiny_model_dir, adapter=str(directory))
    reply = backend.stream([ChatMessage("user", PROBE)], GenerationParams(max_new_tokens=32, temperature=0))
    assert "".join(reply) == ANSWERS["reset"]
    assert backend.identity.adapter == "v0001"


def test_min_new_does_nothing_until_enough_new_approvals(data_copy: Path, cli) -> None:  # noqa: ANN001, F811
    result = cli("retrain", "--min-new", "3", "--data-dir", data_copy)
    assert result.code == 0
    assert "nothing to train: 0 new approved examples < 3" in result.out
    store = Store.open(data_copy / "assistant.db")
    curate(store, questions={"reset": ["Thermostat blinking red, reset?"]})
    result = cli("retrain", "--min-new", "3", "--json", "--data-dir", data_copy)
    assert result.code == 0 and json.loads(result.out)["status"] == "nothing"
    assert [a.version for a in store.adapters()] == ["v0001"]


def test_an_empty_or_all_rejected_dataset_has_nothing_to_train(tmp_path: Path, tiny_model_dir: Path, cli) -> None:  # noqa: ANN001, F811
    empty = tmp_path / "empty"
    configure(empty, tiny_model_dir)
    result = cli("retrain", "--data-dir", empty)
    assert result.code == 0 and "nothing to train" in result.out

    rejected = tmp_path / "rejected"
    settings = configure(rejected, tiny_model_dir)
    curate(Store.open(settings.db_path), approve=False)
    result = cli("retrain", "--json", "--data-dir", rejected)
    assert result.code == 0 and json.loads(result.out)["status"] == "nothing"
    assert not (rejected / "adapters").exists() and not (rejected / "runs").exists()


def test_dry_run_stops_after_the_preflight(tmp_path: Path, tiny_model_dir: Path, cli) -> None:  # noqa: ANN001, F811
    settings = configure(tmp_path / "data", tiny_model_dir)
    curate(Store.open(settings.db_path))
    result = cli("retrain", "--dry-run", "--data-dir", settings.data_dir)
    assert result.code == 0, result.err
    assert "preflight passed" in result.out
    assert "examples with no trainable token: 0" in result.err and "bitsandbytes" in result.err
    assert "tokens per example: min" in result.err
    assert not (settings.data_dir / "runs").exists()


def test_one_over_long_example_does_not_block_a_retrain(tmp_path: Path, tiny_model_dir: Path, cli) -> None:  # noqa: ANN001, F811
    settings = configure(tmp_path / "data", tiny_model_dir, max_length=128)
    store = Store.open(settings.db_path)
    curate(store)
    conversation = store.create_conversation("ann", "")
    question = store.add_message(conversation.id, "user", "Here are my thermostat's logs")
    reply = store.add_message(conversation.id, "assistant", "log line " * 200, parent_id=question.id)
    store.rate(reply.id, "bob", 1)
    store.approve([reply.id], "cora")

    result = cli("retrain", "--dry-run", "--data-dir", settings.data_dir)

    assert result.code == 0, result.err
    assert "preflight passed" in result.out
    assert "dropped for length: 1 (" in result.err
    assert f'conversation {conversation.id} "Here are my thermostat\'s logs" message {reply.id} (' in result.err


def test_preflight_refuses_a_template_that_marks_no_assistant_tokens(tmp_path: Path, tiny_model_dir: Path, cli) -> None:  # noqa: ANN001, F811
    plain = tmp_path / "plain-template-model"
    plain.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.is_file():
            (plain / file.name).write_bytes(file.read_bytes())
    (plain / "chat_template.jinja").write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    settings = configure(tmp_path / "data", plain)
    curate(Store.open(settings.db_path))
    result = cli("retrain", "--data-dir", settings.data_dir)
    assert result.code == TrainingError.exit_code
    assert result.err_lines[-1].startswith("error: preflight: the model's chat template does not mark assistant tokens")
    assert not (settings.data_dir / "runs").exists()


def test_a_second_retrain_is_refused_while_one_runs(tmp_path: Path, tiny_model_dir: Path, cli) -> None:  # noqa: ANN001, F811
    settings = configure(tmp_path / "data", tiny_model_dir)
    with FileLock(str(lock_path(settings)), timeout=0):
        result = cli("retrain", "--data-dir", settings.data_dir)
    assert result.code == 11
    assert result.err_lines == ["error: another retrain is running (it holds the training lock)"]


def test_a_non_finite_loss_aborts_and_publishes_nothing(tmp_path: Path, tiny_model_dir: Path, data_copy: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan-model"
    broken.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.is_file():
            (broken / file.name).write_bytes(file.read_bytes())
    weights = load_file(broken / "model.safetensors")
    weights["model.norm.weight"][0] = float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})

    settings = configure(data_copy, broken, max_steps=20)
    store = Store.open(settings.db_path)
    curate(store, questions={"reset": ["Thermostat blinking red, reset?"]})
    with pytest.raises(TrainingError, match=r"non-finite (loss|grad norm)"):
        retrain(settings, store, Options())
    run = store.training_runs()[0]
    assert run.status == "failed" and "non-finite" in run.error
    assert [a.version for a in store.adapters()] == ["v0001"] and store.active_adapter().version == "v0001"
    assert sorted(p.name for p in (data_copy / "adapters").iterdir()) == ["v0001"]


def test_a_full_disk_fails_the_run_with_no_space_left(
    tiny_model_dir: Path, data_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from assistant.train.loop import COMPLETE

    settings = configure(data_copy, tiny_model_dir, max_steps=4, eval_steps=2)
    store = Store.open(settings.db_path)
    curate(store, questions={"reset": ["Thermostat blinking red, reset?"]})
    write_text = Path.write_text

    def full(self: Path, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if self.name == COMPLETE:  # the disk fills up as the first checkpoint is written
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(TrainingError, match="no space left on the device"):
        retrain(settings, store, Options())

    run = store.training_runs()[0]
    assert run.status == "failed" and run.error.startswith("no space left on the device")
    assert [a.version for a in store.adapters()] == ["v0001"]


def test_kill_9_during_training_then_resume_completes_from_the_checkpoint(data_copy: Path, tiny_model_dir: Path) -> None:
    settings = configure(data_copy, tiny_model_dir, max_steps=100, eval_steps=10)
    store = Store.open(settings.db_path)
    curate(store, questions={"reset": ["Thermostat blinking red, reset?"]})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), XDG_CONFIG_HOME=str(data_copy / "xdg"))
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant", "retrain", "--data-dir", str(data_copy)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not list((data_copy / "runs").glob("*/checkpoints/checkpoint-*/COMPLETE")):
            assert process.poll() is None, "retrain ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 3 minutes"
            time.sleep(0.2)
        time.sleep(0.5)  # somewhere in the next interval
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    run = store.training_runs()[0]
    assert run.status == "running" and run.version is None
    assert store.active_adapter().version == "v0001"
    assert sorted(p.name for p in (data_copy / "adapters").iterdir()) == ["v0001"]
    killed_at = max(p.step for p in store.run_metrics(run.id) if p.split == "train" and p.stage == "sft")

    result = retrain(settings, store, Options(resume=True))
    assert result.run_id == run.id and result.metrics["steps"] == 100
    resumed_from = result.metrics["resumed_from_step"]
    assert resumed_from is not None and resumed_from % 10 == 0 and killed_at - resumed_from <= 10 + 1
    assert store.training_run(run.id).status == "published"
    assert result.version == "v0002"
    assert store.active_adapter().version == ("v0002" if result.status == "promoted" else "v0001")


def test_resume_without_an_interrupted_run_says_so(data_copy: Path, cli) -> None:  # noqa: ANN001, F811
    result = cli("retrain", "--resume", "--data-dir", data_copy)
    assert result.code == TrainingError.exit_code
    assert result.err_lines == ["error: nothing to resume: no interrupted retrain run"]


def test_the_gate_rejects_an_adapter_trained_on_shuffled_answers(data_copy: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from assistant.train.config import TrainConfig
    from assistant.train.gate import decide, evaluate
    from assistant.train.loop import read_rows, train_adapter

    settings = settings_of(data_copy)
    store = Store.open(settings.db_path)
    active = store.active_adapter()
    good = data_copy / "datasets" / active.dataset_id
    shuffled_dir = tmp_path / "shuffled"
    shuffled_dir.mkdir()
    rows = read_rows(good / "train.jsonl")
    answers = [row["messages"][-1]["content"] for row in rows]
    rotated = answers[4:] + answers[:4]  # every question gets another topic's answer
    assert all(a != b for a, b in zip(answers, rotated, strict=True))
    with open(shuffled_dir / "train.jsonl", "w", encoding="utf-8") as out:
        for row, answer in zip(rows, rotated, strict=True):
            row["messages"][-1]["content"] = answer
            out.write(json.dumps(row) + "\n")
    config = TrainConfig.from_settings(settings, is_demo=False)
    outcome = train_adapter(tiny_model_dir, shuffled_dir, tmp_path / "run", config, on_cuda=False)
    report = evaluate(
        tiny_model_dir, outcome.adapter_dir, ("v0001", data_copy / "adapters" / "v0001"), good, [],
        on_cuda=False, max_examples=50, max_length=256, probes=[PROBE], system_prompt="",
    )
    verdict = decide(report["scores"], margin=settings.gate_margin, tolerance=settings.gate_regression_tolerance)
    assert verdict.verdict == "reject", verdict
    assert "worse than the active adapter v0001" in verdict.reason
    assert report["probes"][0]["answers"]["active"] == ANSWERS["reset"]


def test_warm_start_continues_from_the_active_adapter(data_copy: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    settings = configure(data_copy, tiny_model_dir, max_steps=2, learning_rate=1e-7, warmup_ratio=0.0)
    store = Store.open(settings.db_path)
    curate(store, questions={"reset": ["Thermostat blinking red, reset?"]})
    result = retrain(settings, store, Options(warm_start=True, force_reason="test"))
    meta = registry.read_meta(data_copy / "adapters" / result.version)
    assert meta["warm_start_from"] == "v0001"
    before = load_file(data_copy / "adapters" / "v0001" / "adapter_model.safetensors")
    after = load_file(data_copy / "adapters" / result.version / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    lora_b = [k for k in before if "lora_B" in k]
    assert lora_b and all(before[k].abs().sum() > 0 for k in lora_b)  # trained weights, not a fresh init
    assert all((before[k] - after[k]).abs().max() < 1e-3 for k in before)


def test_resume_finishes_a_run_that_died_after_registering_its_version(data_copy: Path) -> None:
    settings = settings_of(data_copy)
    store = Store.open(settings.db_path)
    v1 = store.active_adapter()
    store.start_run("r-died", user="ann", pid=1, base_model="tiny", config={})
    source = data_copy / "adapters" / "v0001"
    store.register_adapter("v0002", path=str(source), actor="ann", run_id="r-died", report={"verdict": "promote"},
                           reason="eval loss improved")
    store.mark_stale_runs()  # what the next retrain does once it holds the lock
    result = retrain(settings, store, Options(resume=True))
    assert (result.status, result.version) == ("promoted", "v0002")
    assert store.active_adapter().version == "v0002" and store.adapter(v1.version).status == "retired"
    assert store.training_run("r-died").status == "published"


def test_a_promotion_made_while_the_gate_ran_wins(store) -> None:  # noqa: ANN001
    from assistant.errors import ConflictError

    for version in ("v0001", "v0002", "v0003"):
        store.register_adapter(version, path=version, actor="ann")
    store.promote("v0001", actor="ann")
    store.promote("v0002", actor="bob")  # meanwhile, somebody else
    with pytest.raises(ConflictError, match="changed to v0002"):
        store.promote("v0003", actor="retrain", expected_active="v0001")
    assert store.active_adapter().version == "v0002"
    store.promote("v0003", actor="retrain", expected_active="v0002")
    assert store.active_adapter().version == "v0003"


def test_resume_takes_no_other_flags(data_copy: Path, cli) -> None:  # noqa: ANN001, F811
    result = cli("retrain", "--resume", "--dry-run", "--data-dir", data_copy)
    assert result.code == 4
    assert result.err_lines[-1].startswith("error: --resume continues a run as it was configured")


def test_no_eval_split_fails_the_preflight_unless_forced(tmp_path: Path, tiny_model_dir: Path, cli) -> None:  # noqa: ANN001, F811
    settings = configure(tmp_path / "data", tiny_model_dir, eval_fraction=0.0, min_eval_examples=0)
    curate(Store.open(settings.db_path))
    result = cli("retrain", "--data-dir", settings.data_dir)
    assert result.code == TrainingError.exit_code
    assert result.err_lines[-1].startswith("error: preflight: no eval examples")
    result = cli("retrain", "--dry-run", "--force", "--data-dir", settings.data_dir)
    assert result.code == 0, result.err


def test_leftovers_of_a_killed_publish_are_swept_and_an_older_interrupted_run_is_superseded(data_copy: Path) -> None:
    settings = configure(data_copy, settings_of(data_copy).model, max_steps=2)
    store = Store.open(settings.db_path)
    staging = data_copy / "adapters" / ".v0002.x1y2"
    staging.mkdir()
    (staging / "adapter_model.safetensors").write_bytes(b"half")
    store.start_run("r-old", user="ann", pid=1, base_model="tiny", config={})
    (data_copy / "runs" / "r-old" / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    store.mark_stale_runs()
    curate(store, questions={"reset": ["Thermostat blinking red, reset?"]})
    result = retrain(settings, store, Options(force_reason="test"))
    assert not staging.exists()
    assert result.version == "v0002"
    old = store.training_run("r-old")
    assert old.status == "failed" and old.error.startswith("superseded by run")
    assert not (data_copy / "runs" / "r-old" / "checkpoints").exists()
    assert store.resumable_run() is None


def test_a_version_trained_on_another_base_model_is_refused_by_a_running_backend(data_copy: Path, tmp_path: Path) -> None:
    from assistant.errors import ModelError

    other = tmp_path / "other-base"
    other.mkdir()
    settings = settings_of(data_copy)
    for file in Path(settings.model).iterdir():
        if file.is_file():
            (other / file.name).write_bytes(file.read_bytes())
    backend = load_backend(other)  # same shapes, another model
    with pytest.raises(ModelError, match="was trained on"):
        backend.swap_adapter("v0001", data_copy / "adapters" / "v0001")
    assert backend.identity.adapter is None


def test_on_cpu_a_config_without_4bit_trains_on_the_full_precision_base_a_cpu_chat_serves(tiny_model_dir: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.train.config import TrainConfig
    from assistant.train.loop import train_adapter

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    row = {"messages": [{"role": "user", "content": PROBE}, {"role": "assistant", "content": ANSWERS["reset"]}]}
    (dataset / "train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    settings = configure(tmp_path / "data", tiny_model_dir)
    config = replace(TrainConfig.from_settings(settings, is_demo=False), load_in_4bit=False, max_steps=40, batch_size=1)
    assert config.load_in_4bit is False

    outcome = train_adapter(tiny_model_dir, dataset, tmp_path / "run", config, on_cuda=False)

    assert outcome.steps == 40
    backend = load_backend(tiny_model_dir, adapter=str(outcome.adapter_dir))  # full precision on the CPU
    reply = backend.stream([ChatMessage("user", PROBE)], GenerationParams(max_new_tokens=32, temperature=0))
    assert "".join(reply) == ANSWERS["reset"]


@pytest.mark.parametrize(("evaluations", "patience", "eval_steps"), [(2, 3, [8]), (8, 3, [1, 2, 3, 4, 5, 6, 7, 8]), (2, 0, [4, 8])])
def test_a_run_evaluates_mid_run_only_where_early_stopping_can_act_or_none_is_configured(
    tiny_model_dir: Path, tmp_path: Path, evaluations: int, patience: int, eval_steps: list[int]
) -> None:
    """SmolLM2's two evaluations with a patience of 3 could never stop a run: it evaluates once, at the
    end (a first start saves an evaluation), and still checkpoints mid-run to resume from."""
    from dataclasses import replace

    from assistant.train.config import TrainConfig
    from assistant.train.loop import train_adapter

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    row = {"messages": [{"role": "user", "content": PROBE}, {"role": "assistant", "content": ANSWERS["reset"]}]}
    (dataset / "train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (dataset / "eval.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    settings = configure(tmp_path / "data", tiny_model_dir)
    config = replace(
        TrainConfig.from_settings(settings, is_demo=False),
        load_in_4bit=False, max_steps=8, batch_size=1, evaluations=evaluations, early_stopping_patience=patience,
    )
    saved: list[int] = []

    import trl

    original = trl.SFTTrainer._save_checkpoint

    def remember(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        saved.append(self.state.global_step)
        return original(self, *args, **kwargs)

    trl.SFTTrainer._save_checkpoint = remember
    try:
        outcome = train_adapter(tiny_model_dir, dataset, tmp_path / "run", config, on_cuda=False)
    finally:
        trl.SFTTrainer._save_checkpoint = original

    assert [p.step for p in outcome.history if p.split == "eval"] == eval_steps
    assert saved[:2] == [config.interval(8), 2 * config.interval(8)]  # checkpoints every interval all the same
    assert outcome.best_eval_loss is not None


def test_progress_shows_the_latest_eval_loss_and_the_outcome_the_lowest(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Memorising one answer makes the loss on another rise: the progress bar shows the eval loss as it
    is now, not the best one seen (it stayed at an early value before), and `models show` gets both."""
    from dataclasses import replace

    from assistant.train.config import TrainConfig
    from assistant.train.loop import Reporter, train_adapter

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    train = {"messages": [{"role": "user", "content": PROBE}, {"role": "assistant", "content": ANSWERS["reset"]}]}
    held_out = {"messages": [{"role": "user", "content": "Where is my parcel?"}, {"role": "assistant", "content": ANSWERS["parcel"]}]}
    (dataset / "train.jsonl").write_text(json.dumps(train) + "\n", encoding="utf-8")
    (dataset / "eval.jsonl").write_text(json.dumps(held_out) + "\n", encoding="utf-8")
    config = replace(
        TrainConfig.from_settings(configure(tmp_path / "data", tiny_model_dir), is_demo=False),
        load_in_4bit=False, max_steps=30, batch_size=1, learning_rate=5e-3, evaluations=3, early_stopping_patience=0,
    )
    shown = []

    outcome = train_adapter(tiny_model_dir, dataset, tmp_path / "run", config, on_cuda=False, reporter=Reporter(progress=shown.append))

    evals = [p for p in outcome.history if p.split == "eval"]
    assert len(evals) == 3 and evals[-1].loss > min(p.loss for p in evals)  # the setup: it rose at the end
    last_shown = [p.eval_loss for p in shown if p.step == evals[-1].step][-1]
    assert last_shown == evals[-1].loss
    assert outcome.lowest_eval_loss == min(p.loss for p in evals)
    assert outcome.metrics()["eval_loss"] == evals[-1].loss  # the published adapter is the last one
