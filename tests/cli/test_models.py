"""`assistant models list|show|promote|rollback|delete`.

The versions are real small adapter directories (safetensors weights written with numpy, a JSON
config) published with `adapters.registry.publish` into the data dir and registered in the store,
as `assistant retrain` does; no model is loaded by these commands.
"""

from __future__ import annotations

import json
import re
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from assistant.adapters import registry
from assistant.store import MetricPoint, ReplyRecord, Store
from tests.cli.helpers import open_store
from tests.conftest import HOSTILE_QUESTION, HOSTILE_REPLY

NO_VERSIONS = "no adapter versions yet: `assistant retrain` makes the first"
BASE_ONLY = "no version is active: chats use the base model"
EVIL_REASON = "too \x1b[31mclose\x1b[0m\x07 to call"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """`models show` fits its text to the terminal: make that width the same everywhere."""
    monkeypatch.setenv("COLUMNS", "100")


@pytest.fixture
def models(cli, data_dir: Path):  # noqa: ANN001, ANN201
    def run(*args: str):  # noqa: ANN202
        return cli("models", *args, "--data-dir", data_dir, "--user", "cora")

    return run


@pytest.fixture
def publish(store: Store, data_dir: Path, tmp_path: Path):  # noqa: ANN201
    """Publish a small real adapter as VERSION into the data dir and register it."""

    def run(version: str, **kwargs: Any) -> Path:
        source = tmp_path / f"peft-{version}"
        source.mkdir()
        rng = np.random.default_rng(registry.version_number(version))
        save_file({"lora_A.weight": rng.standard_normal((2, 8), dtype=np.float32)}, str(source / registry.WEIGHTS))
        (source / registry.CONFIG).write_text(json.dumps({"peft_type": "LORA", "r": 2}), encoding="utf-8")
        path = registry.publish(source, data_dir, version, {"base_model": {"name": "tiny"}})
        store.register_adapter(version, path=str(path), actor="cora", base_model="tiny", **kwargs)
        return path

    return run


def _reply(store: Store, adapter: str) -> int:
    conversation = store.create_conversation("ann", "sys")
    asked = store.add_message(conversation.id, "user", "Is the hub waterproof?")
    record = ReplyRecord("Splash-proof.", "tiny", adapter, {}, 10.0, 3, 30.0, "stop")
    return store.add_message(conversation.id, "assistant", record.content, parent_id=asked.id, reply=record).id


def _active(data_dir: Path) -> str | None:
    store = open_store(data_dir)
    try:
        active = store.active_adapter()
        return active.version if active else None
    finally:
        store.close()


REPORT = {
    "verdict": "keep",
    "reason": EVIL_REASON,
    "scores": {
        "candidate": {"version": None, "eval_loss": 1.2345, "regression_loss": 2.5},
        "base": {"version": None, "eval_loss": 1.24, "regression_loss": 2.4},
    },
    "eval_examples": 4,
    "regression_examples": 0,
    "probes": [{"prompt": HOSTILE_QUESTION, "answers": {"candidate": HOSTILE_REPLY, "base": "I do not know."}}],
}


@pytest.fixture
def seeded(store: Store, publish) -> dict[str, Any]:  # noqa: ANN001
    """v0001 (trained on a conversation erased since, with a report and loss curves), v0002 active
    with a thumbs-up reply, v0003 rejected."""
    kept = store.create_conversation("bob", "sys")
    erased = store.create_conversation("bob", "sys")
    store.register_dataset("ds-old", "datasets/ds-old", {}, [kept.id, erased.id], "cora")
    store.start_run("run-1", user="cora", pid=1, base_model="tiny", config={})
    store.record_metrics(
        "run-1",
        [MetricPoint("train", s, s / 10, 2.0 - s / 10, 0.5, 1e-2) for s in range(1, 11)]
        + [MetricPoint("eval", s, s / 10, 2.1 - s / 10, None, None) for s in (5, 10)],
    )
    publish("v0001", run_id="run-1", dataset_id="ds-old", metrics={"eval_loss": 1.2345, "lowest_eval_loss": 1.2, "steps": 10, "train_loss": 1.0},
            report=REPORT, reason="less than the margin")
    publish("v0002", metrics={"eval_loss": 1.1})
    store.promote("v0002", actor="cora")
    publish("v0003", status="rejected", reason="worse")
    store.rate(_reply(store, "v0002"), "ann", 1)
    store.forget("cora", conversation_id=erased.id)
    return {"erased": erased.id}


# -- list ------------------------------------------------------------------------------------


def test_list_with_no_versions(models) -> None:  # noqa: ANN001
    result = models("list")
    assert (result.code, result.out, result.err) == (0, NO_VERSIONS + "\n", "")

    as_json = models("list", "--json")
    assert as_json.code == 0 and json.loads(as_json.out) == []


def test_list_marks_the_active_version_and_erased_data(models, seeded: dict) -> None:  # noqa: ANN001
    result = models("list")

    assert result.code == 0, result.err
    v3, v2, v1, hint = result.out.splitlines()  # newest first; a version is active, so no base-model line
    assert hint == (
        "v0001 was trained on data erased since: retrain without it (`assistant retrain`), "
        "then `assistant models delete v0001`"
    )
    assert v2.startswith("* v0002  active ")
    assert "eval loss 1.1000" in v2 and re.search(r"  1 repl(y|ies), 1 👍 0 👎, 100% up$", v2)
    assert v1.startswith("  v0001  candidate ")
    assert "eval loss 1.2345" in v1 and "no replies yet" in v1 and v1.endswith("[ERASED data]")
    assert v3.startswith("  v0003  rejected ") and "eval loss -" in v3 and "ERASED" not in v3
    assert "\x1b" not in result.out


def test_list_says_when_no_version_is_active(models, publish) -> None:  # noqa: ANN001
    publish("v0001")

    result = models("list")

    assert result.code == 0, result.err
    [line, last] = result.out.splitlines()
    assert line.startswith("  v0001  candidate ") and line.endswith("  no replies yet")
    assert last == BASE_ONLY


def test_list_json(models, seeded: dict) -> None:  # noqa: ANN001
    result = models("list", "--json")

    assert result.code == 0, result.err
    listed = {item["version"]: item for item in json.loads(result.out)}
    assert list(listed) == ["v0003", "v0002", "v0001"]
    assert {v: item["status"] for v, item in listed.items()} == {
        "v0003": "rejected", "v0002": "active", "v0001": "candidate"
    }
    assert (listed["v0002"]["replies"], listed["v0002"]["thumbs_up"], listed["v0002"]["thumbs_down"]) == (1, 1, 0)
    assert listed["v0001"]["dataset_erased"] is True and listed["v0002"]["dataset_erased"] is False
    assert listed["v0001"]["verdict"] == "keep" and listed["v0001"]["metrics"]["eval_loss"] == 1.2345
    assert listed["v0001"]["dataset_id"] == "ds-old" and listed["v0001"]["base_model"] == "tiny"


def _judge(store: Store, left: str | None, right: str | None, outcome: str) -> None:
    """Two replies to one question, by `left` and `right` (None: the base model), judged blind."""
    conversation = store.create_conversation("ann", "sys")
    asked = store.add_message(conversation.id, "user", "Is the hub waterproof?")
    ids = [
        store.add_message(conversation.id, "assistant", text, parent_id=asked.id,
                          reply=ReplyRecord(text, "tiny", version, {}, 10.0, 3, 30.0, "stop")).id
        for text, version in (("Splash-proof.", left), ("Yes.", right))
    ]
    store.judge(*ids, outcome, "bob")


@pytest.fixture
def judged(store: Store, seeded: dict) -> None:  # noqa: ANN001
    """v0002 (active) against v0001 in blind A/B: 3 wins, 1 loss, 1 tie (either side shown left); v0001
    against the base model: 1 tie."""
    for left, right, outcome in [("v0002", "v0001", "left"), ("v0001", "v0002", "right"), ("v0002", "v0001", "left"),
                                 ("v0002", "v0001", "right"), ("v0001", "v0002", "both_bad"), (None, "v0001", "tie")]:
        _judge(store, left, right, outcome)


AB_V2 = "  v0002 vs v0001: 3 wins, 1 losses, 1 ties: win rate 70% (95% CI 30%-93%, n=5)"
AB_V1 = "  v0001 vs base model: 0 wins, 0 losses, 1 ties: win rate 50% (95% CI 5%-95%, n=1)"


def test_list_prints_a_line_per_version_pair_judged_blind(models, judged: None) -> None:  # noqa: ANN001
    result = models("list")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[-3:] == ["blind A/B (wins, losses, ties of the newer version):", AB_V2, AB_V1]
    assert lines[0].startswith("  v0003  rejected ")


def test_list_json_gives_each_version_its_pairs(models, judged: None) -> None:  # noqa: ANN001
    listed = {item["version"]: item for item in json.loads(models("list", "--json").out)}

    assert "ab" not in listed["v0003"]  # never judged: as before
    [pair] = listed["v0002"]["ab"]
    assert pair == {"candidate": "v0002", "baseline": "v0001", "wins": 3, "losses": 1, "ties": 1, "judgements": 5,
                    "win_rate": pytest.approx(0.7), "ci95": [pytest.approx(0.2988, abs=1e-3), pytest.approx(0.9274, abs=1e-3)]}
    assert [(p["candidate"], p["baseline"]) for p in listed["v0001"]["ab"]] == [("v0002", "v0001"), ("v0001", None)]


def test_show_lists_the_versions_pairs(models, judged: None) -> None:  # noqa: ANN001
    lines = models("show", "v0001").out.splitlines()
    at = lines.index("Blind A/B (wins, losses, ties of the newer version)")
    assert lines[at + 1:at + 3] == [AB_V2, AB_V1]

    shown = json.loads(models("show", "v0002", "--json").out)
    assert [(p["candidate"], p["baseline"], p["wins"]) for p in shown["ab"]] == [("v0002", "v0001", 3)]
    assert "Blind A/B" not in models("show", "v0003").out
    assert "ab" not in json.loads(models("show", "v0003", "--json").out)


# -- show ------------------------------------------------------------------------------------


def test_show_prints_the_verdict_probe_answers_and_the_loss_plot(models, seeded: dict) -> None:  # noqa: ANN001
    result = models("show", "v1")

    assert result.code == 0, result.err
    out = result.out
    lines = out.splitlines()
    assert lines[0] == "v0001  candidate - less than the margin"
    assert "dataset ds-old (ERASED data since: retrain to drop it)" in lines
    # The published adapter's eval loss, and the run's lowest when an earlier evaluation was lower.
    assert "training run run-1: 10 steps, train loss 1.0000, eval loss 1.2345 (lowest during the run 1.2000)" in lines
    assert "replies: no replies yet" in lines
    gate = lines.index("Eval gate")
    assert lines[gate + 1] == "verdict: keep - too close to call"
    assert lines[gate + 2].startswith("  candidate") and "eval loss 1.2345  regression loss 2.5000" in lines[gate + 2]
    assert lines[gate + 3].startswith("  base") and "eval loss 1.2400" in lines[gate + 3]

    probes = lines.index("Probe answers (greedy)")
    assert lines[probes + 1] == f"  Q: {HOSTILE_QUESTION}"
    answer = lines[probes + 2]
    assert answer.startswith("    candidate: Fine RED ") and "link" in answer and "boom" in answer
    assert lines[probes + 3] == "         base: I do not know."

    loss = lines.index("Loss")
    plot = "\n".join(lines[loss + 1:])
    assert len(lines) - loss > 8 and "step" in plot and "train loss" in plot and "eval loss" in plot
    for control in ("\x1b", "\x07", "\x9b", "\x9d"):
        assert control not in out


def test_show_of_the_active_version_counts_its_thumbs(models, seeded: dict) -> None:  # noqa: ANN001
    result = models("show", "2")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("v0002  active")
    assert ", active since " in lines[1]
    replies = next(i for i, line in enumerate(lines) if re.fullmatch(r"replies: 1 repl(y|ies), 1 👍 0 👎, 100% up", line))
    assert lines[replies + 1] == "thumbs-up rate: 1 of 1 up on 2026-11-02 (one day so far)"  # too little to plot
    assert lines[lines.index("Eval gate") + 1] == "not evaluated"
    assert "Loss" not in lines and "Probe answers (greedy)" not in lines  # no run, no report


def test_show_json(models, seeded: dict) -> None:  # noqa: ANN001
    result = models("show", "v0001", "--json")

    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert shown["version"] == "v0001" and shown["dataset_erased"] is True
    assert shown["report"]["probes"][0]["answers"]["candidate"] == HOSTILE_REPLY  # JSON keeps the text exactly
    assert "\x1b" not in result.out  # escaped in the JSON text
    assert [(p["split"], p["step"]) for p in shown["loss"]][:2] == [("train", 1), ("train", 2)]
    assert len(shown["loss"]) == 12 and shown["loss"][-1] == {
        "split": "eval", "step": 10, "epoch": 1.0, "loss": pytest.approx(1.1), "grad_norm": None, "learning_rate": None,
        "stage": "sft",  # every point says its training stage
    }
    assert shown["thumbs_by_day"] == []  # no rated reply
    assert json.loads(models("show", "v0002", "--json").out)["thumbs_by_day"] == [{"day": "2026-11-02", "up": 1, "down": 0}]


def test_show_plots_the_thumbs_up_rate_per_day_beside_the_active_versions(
    models, store: Store, clock, seeded: dict  # noqa: ANN001
) -> None:
    # v0002 (active) has one thumbs up on 11-02; v0001 served on 11-02, 11-03 and 11-05 (not on 11-04).
    for rating in (1, -1):
        store.rate(_reply(store, "v0001"), "ann", rating)
    clock.now += timedelta(days=1)
    for rater in ("ann", "bob"):
        store.rate(_reply(store, "v0001"), rater, 1)
    store.rate(_reply(store, "v0002"), "ann", -1)
    clock.now += timedelta(days=2)
    store.rate(_reply(store, "v0001"), "ann", -1)
    _reply(store, "v0001")  # not rated

    result = models("show", "v0001")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    title = lines.index("Thumbs-up rate per day (UTC), 3 days rated")
    end = lines.index("Loss") - 2  # the line under the plot; a blank line before the loss plot
    assert lines[end - 1] == "    ⢕⢕ v0001   •• v0002 (active)"
    assert lines[end] == "v0001: 50% up on 2026-11-02 (1 of 2), 0% on 2026-11-05 (0 of 1)"
    assert lines[end - 3].split() == ["11-02", "11-03", "11-04", "11-05"]
    assert any("100%┤" in line for line in lines[title:end])
    assert "thumbs-up rate:" not in result.out

    shown = json.loads(models("show", "v0001", "--json").out)
    assert shown["thumbs_by_day"] == [
        {"day": "2026-11-02", "up": 1, "down": 1},
        {"day": "2026-11-03", "up": 2, "down": 0},
        {"day": "2026-11-05", "up": 0, "down": 1},
    ]
    assert (shown["thumbs_up"], shown["thumbs_down"]) == (3, 2)

    # The active version's own detail: its two days, no second line.
    lines = models("show", "v0002").out.splitlines()
    assert "Thumbs-up rate per day (UTC), 2 days rated" in lines
    assert "    ⢕⢕ v0002" in lines and "v0002: 100% up on 2026-11-02 (1 of 1), 0% on 2026-11-03 (0 of 1)" in lines


PREFERENCE_REPORT = {
    "verdict": "promote",
    "reason": "pair accuracy 66.7% (margin +0.2500) against the base model's 33.3%",
    "scores": {
        "candidate": {"version": None, "eval_loss": 1.3, "regression_loss": None, "preference": {
            "pairs": 3, "pair_accuracy": 2 / 3, "pair_margin": 0.25, "desirable": 2, "undesirable": 1,
            "desirable_logp": -0.75, "undesirable_logp": -3.0}},
        "base": {"version": None, "eval_loss": 1.28, "regression_loss": None, "preference": {
            "pairs": 3, "pair_accuracy": 1 / 3, "pair_margin": -0.125, "desirable": 2, "undesirable": 1,
            "desirable_logp": -1.0, "undesirable_logp": -2.0}},
    },
    "preference_rows": "held out",
    "preference_examples": {"pairs": 3, "kto": 3},
}
PREFERENCE_METRICS = {
    "eval_loss": 1.3, "steps": 6, "train_loss": 1.6,
    "sft": {"eval_loss": 1.3, "steps": 6, "train_loss": 1.6},
    "preference": {"kind": "dpo", "steps": 20, "total_steps": 20, "train_loss": 0.3125,
                   "rows": {"kind": "dpo", "pairs": 12, "desirable": 0, "undesirable": 0, "stand_ins": 0}},
}


@pytest.fixture
def with_preference(store: Store, publish) -> None:  # noqa: ANN001
    """v0001: a run with an SFT stage (6 steps) and a DPO stage (20 steps), gated on held-out preference rows."""
    store.start_run("run-p", user="cora", pid=1, base_model="tiny", config={})
    store.record_metrics(
        "run-p",
        [MetricPoint("train", s, s / 6, 2.0 - s / 10, 0.5, 1e-3) for s in range(1, 7)]
        + [MetricPoint("eval", 6, 1.0, 1.3, None, None)]
        + [MetricPoint("train", s, s / 20, 0.7 - s / 50, 0.5, 1e-5, "preference") for s in range(1, 21)]
        + [MetricPoint("eval", s, s / 20, 0.6 - s / 100, None, None, "preference") for s in (10, 20)],
    )
    publish("v0001", run_id="run-p", metrics=PREFERENCE_METRICS, report=PREFERENCE_REPORT)


def test_show_of_a_version_with_a_preference_stage(models, with_preference: None) -> None:  # noqa: ANN001
    result = models("show", "v0001")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "training run run-p: 6 steps, train loss 1.6000, eval loss 1.3000" in lines
    assert "preference stage DPO: 20 steps, train loss 0.3125 (12 pairs)" in lines
    gate = lines.index("Eval gate")
    assert lines[gate + 2].startswith("  candidate")
    assert lines[gate + 3:gate + 9] == [
        "    preference  pair accuracy 66.7% of 3 pairs, margin +0.2500",
        "    preference  KTO log-prob desirable -0.7500 (2 rows), undesirable -3.0000 (1 row), gap +2.2500",
        "  base                   eval loss 1.2800  regression loss -",
        "    preference  pair accuracy 33.3% of 3 pairs, margin -0.1250",
        "    preference  KTO log-prob desirable -1.0000 (2 rows), undesirable -2.0000 (1 row), gap +1.0000",
        "  preference rows scored: held out (3 pairs, 3 KTO rows)",
    ]
    assert "Loss" not in lines
    sft, preference = lines.index("SFT loss"), lines.index("Preference loss (DPO)")
    assert gate < sft < preference
    for plot in ("\n".join(lines[sft + 1:preference]), "\n".join(lines[preference + 1:])):
        assert "train loss" in plot and "eval loss" in plot and "step" in plot

    shown = json.loads(models("show", "v0001", "--json").out)
    assert shown["metrics"]["preference"]["kind"] == "dpo" and shown["report"]["preference_rows"] == "held out"
    assert shown["report"]["scores"]["candidate"]["preference"]["pair_margin"] == 0.25
    assert [(p["stage"], p["split"], p["step"]) for p in shown["loss"]][5:8] == [
        ("sft", "train", 6), ("sft", "eval", 6), ("preference", "train", 1)
    ]
    assert len(shown["loss"]) == 29 and shown["loss"][-1]["stage"] == "preference"
    [listed] = json.loads(models("list", "--json").out)
    assert listed["metrics"] == PREFERENCE_METRICS and listed["verdict"] == "promote"


# -- promote ---------------------------------------------------------------------------------


def test_promote_makes_a_version_active(models, seeded: dict, data_dir: Path) -> None:  # noqa: ANN001
    result = models("promote", "v0001", "--reason", "\x1b]0;evil\x07better on billing")

    assert (result.code, result.out, result.err) == (0, "v0001 is active\n", "")
    assert _active(data_dir) == "v0001"
    listed = models("list").out.splitlines()
    assert listed[2].startswith("* v0001  active ")
    assert listed[1].startswith("  v0002  retired ")
    shown = models("show", "v0001").out.splitlines()
    assert shown[0] == "v0001  active - better on billing"


def test_promote_refuses_a_version_whose_files_fail_their_checksums(
    models, seeded: dict, data_dir: Path  # noqa: ANN001
) -> None:
    weights = data_dir / "adapters" / "v0001" / registry.WEIGHTS
    weights.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))

    result = models("promote", "v0001")

    assert result.code == 5
    assert result.out == ""
    assert result.err_lines == [
        f"error: adapter v0001: {registry.WEIGHTS} does not match its checksum; refusing to load it"
    ]
    assert _active(data_dir) == "v0002"


def test_promote_refuses_a_version_whose_files_are_gone(models, seeded: dict, data_dir: Path) -> None:  # noqa: ANN001
    registry.remove(data_dir / "adapters" / "v0003")

    result = models("promote", "v0003", "--force")  # v0003 was rejected: --force gets past the gate's verdict

    assert result.code == 5
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("error: adapter directory not found")
    assert _active(data_dir) == "v0002"


# -- rollback --------------------------------------------------------------------------------


def test_rollback_back_to_the_base_model(models, seeded: dict, data_dir: Path) -> None:  # noqa: ANN001
    assert models("promote", "v0001").code == 0

    first = models("rollback")
    assert (first.code, first.out) == (0, "rolled back v0001: v0002 is active\n")
    assert _active(data_dir) == "v0002"

    second = models("rollback", "--reason", "both are bad")
    assert (second.code, second.out) == (0, "rolled back v0002: chats use the base model\n")
    assert _active(data_dir) is None
    assert models("list").out.splitlines()[-1] == BASE_ONLY

    third = models("rollback")
    assert third.code == 4
    assert third.err_lines == ["error: no adapter is active: nothing to roll back"]


# -- delete ----------------------------------------------------------------------------------


def test_delete_refuses_the_active_version(models, seeded: dict, data_dir: Path) -> None:  # noqa: ANN001
    result = models("delete", "v0002")

    assert result.code == 4
    assert result.err_lines == ["error: v0002 is active; promote another version or roll back first"]
    assert (data_dir / "adapters" / "v0002").is_dir()
    assert _active(data_dir) == "v0002"


def test_delete_removes_the_files_of_another_version(models, seeded: dict, data_dir: Path) -> None:  # noqa: ANN001
    result = models("delete", "1")

    assert (result.code, result.out) == (0, "deleted v0001\n")
    assert sorted(p.name for p in (data_dir / "adapters").iterdir()) == ["v0002", "v0003"]
    assert [line.split()[0] for line in models("list").out.splitlines()] == ["v0003", "*"]
    everything = models("list", "--all").out.splitlines()
    assert everything[-1].startswith("  v0001  retired ") and everything[-1].endswith("[ERASED data, deleted]")
    assert json.loads(models("list", "--json", "--all").out)[-1]["version"] == "v0001"
    assert "deleted " in models("show", "v0001").out  # the record and its history stay

    again = models("delete", "v0001")
    assert again.code == 7 and again.err_lines == ["error: adapter v0001 was deleted already"]
    promote = models("promote", "v0001")  # its files are gone (5); the record says deleted (7)
    assert promote.code in (5, 7) and len(promote.err_lines) == 1
    assert _active(data_dir) == "v0002"


# -- unknown versions ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("show",), ("promote",), ("delete",), ("show", "--json")])
def test_an_unknown_version(models, seeded: dict, command: tuple[str, ...]) -> None:  # noqa: ANN001
    result = models(*command, "v9")

    assert result.code == 7
    assert result.out == ""
    assert result.err_lines == ["error: no adapter version v0009"]


@pytest.mark.parametrize("command", ["show", "promote", "delete"])
def test_a_name_that_is_not_a_version(models, seeded: dict, command: str) -> None:  # noqa: ANN001
    result = models(command, "latest")

    assert result.code == 7
    assert result.err_lines == ["error: 'latest' is not an adapter version (expected v0001, v0002, ...)"]


# -- what a promotion checks, and what delete touches ---------------------------------------


def test_promote_of_a_rejected_version_asks_for_force(models, seeded: dict, data_dir: Path) -> None:  # noqa: ANN001
    refused = models("promote", "v0003")

    assert refused.code == 12
    assert refused.err_lines == [
        "error: v0003 was rejected by the eval gate (worse); it was not promoted (promote it anyway with --force)"
    ]
    assert _active(data_dir) == "v0002"

    forced = models("promote", "v0003", "--force")

    assert forced.code == 0, forced.err
    assert forced.err_lines == ["warning: v0003 was REJECTED by the eval gate (worse); promoted (--force)"]
    assert _active(data_dir) == "v0003"


def _republish(publish, version: str, weights: dict, r: int = 2) -> None:  # noqa: ANN001
    """A version whose published files match their checksums but hold `weights`."""
    path = publish(version)
    for file in path.iterdir():
        file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    save_file(weights, str(path / registry.WEIGHTS))
    (path / registry.CONFIG).write_text(json.dumps({"peft_type": "LORA", "r": r}), encoding="utf-8")
    meta = json.loads((path / registry.META).read_text(encoding="utf-8"))
    meta["files"] = registry.checksums(path)
    (path / registry.META).write_text(json.dumps(meta), encoding="utf-8")


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"x.lora_A.weight": np.array([[1.0, np.nan]] * 2, dtype=np.float32)}, "holds NaN or infinite values"),
        ({"x.lora_A.weight": np.array([[1.0, np.inf]] * 2, dtype=np.float16)}, "holds NaN or infinite values"),
        ({"x.lora_A.weight": np.ones((3, 8), dtype=np.float32)}, "has rank 3; adapter_config.json says 2"),
        ({"x.weight": np.ones((2, 8), dtype=np.float32)}, "holds no LoRA weights"),
    ],
    ids=["nan", "inf in fp16", "rank", "no lora"],
)
def test_promote_checks_the_weights_as_a_chat_does(
    models, publish, store: Store, data_dir: Path, weights: dict, expected: str  # noqa: ANN001
) -> None:
    _republish(publish, "v0001", weights)

    result = models("promote", "v0001")

    assert result.code == 5
    [line] = result.err_lines
    assert line.startswith("error: adapter v0001") and expected in line
    assert _active(data_dir) is None


def test_promote_refuses_a_damaged_safetensors_header(models, publish, data_dir: Path) -> None:  # noqa: ANN001
    path = publish("v0001")
    weights = path / registry.WEIGHTS
    weights.chmod(stat.S_IRUSR | stat.S_IWUSR)
    weights.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    meta = json.loads((path / registry.META).read_text(encoding="utf-8"))
    meta["files"] = registry.checksums(path)
    (path / registry.META).chmod(stat.S_IRUSR | stat.S_IWUSR)
    (path / registry.META).write_text(json.dumps(meta), encoding="utf-8")

    result = models("promote", "v0001")

    assert result.code == 5
    assert result.err_lines == [f"error: adapter v0001: {registry.WEIGHTS} is not a safetensors file (no header)"]


@pytest.mark.parametrize("command", ["promote", "delete"])
def test_a_version_that_is_a_symbolic_link_is_refused(
    models, publish, store: Store, data_dir: Path, tmp_path: Path, command: str  # noqa: ANN001
) -> None:
    path = publish("v0001")
    outside = tmp_path / "outside"
    path.rename(outside)  # read-only files, outside the data dir
    path.symlink_to(outside, target_is_directory=True)
    modes = {p.name: p.stat().st_mode for p in outside.iterdir()}

    result = models(command, "v0001")

    assert result.code == 5
    assert result.err_lines == [f"error: adapter v0001 is a symbolic link ({path}); refusing to use it"]
    assert {p.name: p.stat().st_mode for p in outside.iterdir()} == modes
    assert _active(data_dir) is None and store.adapter("v0001").deleted_at is None


def test_delete_never_touches_a_file_a_link_points_to(models, publish, data_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    path = publish("v0001")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me", encoding="utf-8")
    precious.chmod(stat.S_IRUSR)
    path.chmod(stat.S_IRWXU)
    (path / "notes.txt").symlink_to(precious)

    promoted = models("promote", "v0001")
    deleted = models("delete", "v0001")

    assert promoted.code == 5
    assert promoted.err_lines == ["error: adapter v0001: notes.txt is a symbolic link; only plain files are loaded"]
    assert deleted.code == 0, deleted.err
    assert not path.exists()
    assert precious.read_text(encoding="utf-8") == "keep me"
    assert stat.S_IMODE(precious.stat().st_mode) == stat.S_IRUSR


def test_only_curators_promote_and_roll_back(
    cli, seeded: dict, data_dir: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setenv("ASSISTANT_CURATORS", "zoe")
    (data_dir / "config.toml").write_text("allow_user_override = true\n", encoding="utf-8")

    promoted = cli("models", "promote", "v0001", "--data-dir", data_dir, "--user", "ann")
    rolled = cli("models", "rollback", "--data-dir", data_dir, "--user", "ann")

    for result in (promoted, rolled):
        assert result.code == 9
        assert result.err_lines[0].startswith("error: ann is not a curator")
    assert _active(data_dir) == "v0002"
    assert cli("models", "promote", "v0001", "--data-dir", data_dir, "--user", "zoe").code == 0
