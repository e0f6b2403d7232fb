"""The store's training side: retrain runs and their metrics, adapter versions and their status
(one active at a time, promote, the rollback chain, delete), the thumbs each version's replies got,
and the mark on a version whose dataset held data that was erased since."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from assistant.errors import InputError, NotFoundError, StoreError
from assistant.store import MetricPoint, RatingCounts, ReplyRecord, Store, ThumbsBucket
from assistant.store.migrations import migrations

MIGRATION_NAMES = [m.name for m in migrations._migrations]
TRAINING_TABLES = {"training_runs", "training_metrics", "adapters", "adapter_events"}


def _train(step: int, loss: float, epoch: float | None = None) -> MetricPoint:
    return MetricPoint("train", step, epoch, loss, 0.5, 1e-3)


def _eval(step: int, loss: float) -> MetricPoint:
    return MetricPoint("eval", step, None, loss, None, None)


def _register(store: Store, version: str, **kwargs) -> None:  # noqa: ANN003
    store.register_adapter(version, path=f"/data/adapters/{version}", actor="cora", **kwargs)


def _statuses(store: Store) -> dict[str, str]:
    return {a.version: a.status for a in store.adapters(include_deleted=True)}


def _active(store: Store) -> str | None:
    active = store.active_adapter()
    return active.version if active else None


def _reply(store: Store, adapter: str | None, question: str = "Is the hub waterproof?") -> int:
    conversation = store.create_conversation("ann", "Be helpful.")
    asked = store.add_message(conversation.id, "user", question)
    record = ReplyRecord(
        content="It is splash-proof.",
        model="tiny",
        adapter=adapter,
        params={"temperature": 0.0},
        ttft_ms=20.0,
        token_count=5,
        tokens_per_s=40.0,
        finish_reason="stop",
    )
    return store.add_message(conversation.id, "assistant", record.content, parent_id=asked.id, reply=record).id


# -- runs ------------------------------------------------------------------------------------


def test_start_and_update_a_run(store: Store) -> None:
    run = store.start_run("r1", user="cora", pid=4242, base_model="tiny", config={"lora_r": 8, "epochs": 3})

    assert (run.id, run.status, run.user, run.pid, run.base_model) == ("r1", "running", "cora", 4242, "tiny")
    assert run.config == {"lora_r": 8, "epochs": 3}
    assert run.finished_at is None and run.version is None and run.error is None and run.started_at

    run = store.update_run("r1", dataset_id="ds1", data_until="2026-11-02T09:30:05.000Z", config={"lora_r": 16})
    assert (run.dataset_id, run.data_until, run.config, run.status) == (
        "ds1", "2026-11-02T09:30:05.000Z", {"lora_r": 16}, "running"
    )
    assert run.finished_at is None

    failed = store.update_run("r1", status="failed", error="loss is nan")
    assert (failed.status, failed.error) == ("failed", "loss is nan")
    assert failed.finished_at is not None and failed.finished_at > failed.started_at
    assert store.training_run("r1") == failed

    resumed = store.update_run("r1", status="running")  # a resumed run is not finished
    assert resumed.finished_at is None
    published = store.update_run("r1", status="published", version="v0001")
    assert (published.status, published.version) == ("published", "v0001") and published.finished_at


def test_update_run_refuses_an_unknown_status_or_run(store: Store) -> None:
    store.start_run("r1", user="cora", pid=1, base_model="tiny", config={})

    with pytest.raises(InputError, match="unknown run status 'done'"):
        store.update_run("r1", status="done")
    with pytest.raises(NotFoundError, match="no training run r2"):
        store.update_run("r2", status="failed")
    with pytest.raises(NotFoundError, match="no training run r2"):
        store.training_run("r2")
    assert store.training_run("r1").status == "running"


def test_metrics_of_a_resumed_run_replace_the_steps_it_repeats(store: Store) -> None:
    store.start_run("r1", user="cora", pid=1, base_model="tiny", config={})
    store.record_metrics("r1", [_train(1, 2.0, 0.25), _train(2, 1.8), _eval(2, 1.9), _train(3, 1.6), _train(4, 1.5)])
    store.record_metrics("r1", [])  # nothing to write

    # Killed after step 4 but its last checkpoint was step 2: the resumed run logs steps 3 and 4 again.
    store.record_metrics("r1", [_train(3, 1.55), _train(4, 1.45), _eval(4, 1.7), _train(5, 1.4)])

    points = store.run_metrics("r1")
    assert [(p.split, p.step, p.loss) for p in points] == [
        ("train", 1, 2.0), ("train", 2, 1.8), ("train", 3, 1.55), ("train", 4, 1.45), ("train", 5, 1.4),
        ("eval", 2, 1.9), ("eval", 4, 1.7),
    ]
    assert points[0] == _train(1, 2.0, 0.25)
    assert store.run_metrics("r2") == []


def _preference(split: str, step: int, loss: float) -> MetricPoint:
    return MetricPoint(split, step, step / 4, loss, 0.5 if split == "train" else None, 5e-6, "preference")


def test_each_stage_keeps_its_own_steps(store: Store) -> None:
    store.start_run("r1", user="cora", pid=1, base_model="tiny", config={})
    assert _train(1, 2.0).stage == "sft"  # the default: what every caller before preference training wrote
    # The preference stage logs first here: the order of run_metrics does not come from the writes.
    store.record_metrics("r1", [_preference("train", 1, 0.69), _preference("eval", 2, 0.6), _preference("train", 2, 0.5)])
    store.record_metrics("r1", [_train(1, 2.0), _eval(2, 1.9), _train(2, 1.8)])

    points = store.run_metrics("r1")
    assert [(p.stage, p.split, p.step, p.loss) for p in points] == [
        ("sft", "train", 1, 2.0), ("sft", "train", 2, 1.8), ("sft", "eval", 2, 1.9),
        ("preference", "train", 1, 0.69), ("preference", "train", 2, 0.5), ("preference", "eval", 2, 0.6),
    ]
    assert points[3] == _preference("train", 1, 0.69)

    # The newest steps of the run (the SFT stage's, logged last here), or of one stage.
    assert [step for step, _, _ in store.recent_steps("r1")] == [2, 1, 2, 1]
    assert [(step, epoch) for step, epoch, _ in store.recent_steps("r1", stage="preference")] == [(2, 0.5), (1, 0.25)]
    assert [step for step, _, _ in store.recent_steps("r1", 1, stage="sft")] == [2]
    assert store.recent_steps("r1", stage="preference")[0][2] < store.recent_steps("r1", stage="sft")[0][2]

    with pytest.raises(InputError, match="unknown training stage 'orpo'"):
        store.record_metrics("r1", [MetricPoint("train", 3, None, 1.0, None, None, "orpo")])
    assert len(store.run_metrics("r1")) == 6


def test_a_resumed_preference_stage_rewrites_its_steps_and_leaves_the_sft_stage_alone(store: Store) -> None:
    store.start_run("r1", user="cora", pid=1, base_model="tiny", config={})
    store.record_metrics("r1", [_train(1, 2.0), _train(2, 1.8), _eval(2, 1.9)])
    store.record_metrics("r1", [_preference("train", 1, 0.69), _preference("train", 2, 0.6), _preference("train", 3, 0.55)])

    # Killed after preference step 3, its last checkpoint at step 1: the resumed stage logs 2 and 3 again.
    store.record_metrics("r1", [_preference("train", 2, 0.62), _preference("train", 3, 0.5), _preference("eval", 3, 0.58)])

    points = store.run_metrics("r1")
    assert [(p.stage, p.split, p.step, p.loss) for p in points] == [
        ("sft", "train", 1, 2.0), ("sft", "train", 2, 1.8), ("sft", "eval", 2, 1.9),
        ("preference", "train", 1, 0.69), ("preference", "train", 2, 0.62), ("preference", "train", 3, 0.5),
        ("preference", "eval", 3, 0.58),
    ]
    # The resumed process's steps are the newest, the SFT stage's step 2 is not taken for the preference one's.
    assert [step for step, _, _ in store.recent_steps("r1", stage="preference")] == [3, 2, 1]
    assert [step for step, _, _ in store.recent_steps("r1")][:2] == [3, 2]


def test_metrics_need_their_run(store: Store) -> None:
    with pytest.raises(StoreError):
        store.record_metrics("nope", [_train(1, 1.0)])


def test_stale_runs_are_marked_interrupted_and_the_newest_is_resumable(store: Store) -> None:
    assert store.resumable_run() is None
    store.start_run("old", user="cora", pid=1, base_model="tiny", config={})
    store.start_run("done", user="cora", pid=2, base_model="tiny", config={})
    store.update_run("done", status="published", version="v0001")
    store.start_run("new", user="cora", pid=3, base_model="tiny", config={})
    store.start_run("empty", user="cora", pid=4, base_model="tiny", config={})
    store.update_run("empty", status="nothing")

    assert store.resumable_run().id == "new"
    assert sorted(store.mark_stale_runs()) == ["new", "old"]

    runs = {r.id: r for r in store.training_runs()}
    assert {k: r.status for k, r in runs.items()} == {
        "old": "interrupted", "done": "published", "new": "interrupted", "empty": "nothing"
    }
    assert runs["old"].finished_at and runs["new"].finished_at
    assert [r.id for r in store.training_runs()] == ["empty", "new", "done", "old"]  # newest first
    assert [r.id for r in store.training_runs(limit=2)] == ["empty", "new"]
    assert store.mark_stale_runs() == []
    assert store.resumable_run().id == "new"  # interrupted runs can be resumed
    store.update_run("new", status="failed")
    assert store.resumable_run().id == "old"


# -- adapter versions ------------------------------------------------------------------------


def test_register_a_version(store: Store) -> None:
    store.start_run("r1", user="cora", pid=1, base_model="tiny", config={})
    record = store.register_adapter(
        "v0001",
        path="/data/adapters/v0001",
        actor="cora",
        run_id="r1",
        dataset_id="ds1",
        data_until="2026-11-02T09:00:00.000Z",
        base_model="tiny",
        metrics={"eval_loss": 1.5, "steps": 10},
        report={"verdict": "keep", "reason": "too close"},
        reason="too close",
    )

    assert (record.version, record.path, record.status, record.reason) == (
        "v0001", "/data/adapters/v0001", "candidate", "too close"
    )
    assert (record.run_id, record.dataset_id, record.data_until, record.base_model) == (
        "r1", "ds1", "2026-11-02T09:00:00.000Z", "tiny"
    )
    assert record.metrics == {"eval_loss": 1.5, "steps": 10}
    assert record.report == {"verdict": "keep", "reason": "too close"}
    assert record.activated_at is None and record.deleted_at is None and record.dataset_erased_at is None
    assert store.adapter("v0001") == record
    assert store.adapters() == [record]
    assert store.active_adapter() is None
    [event] = store.adapter_events("v0001")
    assert (event.actor, event.action, event.version, event.previous, event.reason) == (
        "cora", "publish", "v0001", None, "too close"
    )


def test_a_new_version_is_a_candidate_or_rejected(store: Store) -> None:
    _register(store, "v0001", status="rejected", reason="worse than the base model")
    assert store.adapter("v0001").status == "rejected"

    for status in ("active", "retired", "bogus"):
        with pytest.raises(InputError, match="candidate or rejected"):
            _register(store, "v0002", status=status)
    assert [a.version for a in store.adapters()] == ["v0001"]
    with pytest.raises(StoreError):  # a version name is never reused
        _register(store, "v0001")
    with pytest.raises(NotFoundError, match="no adapter version v0009"):
        store.adapter("v0009")


def test_promote_makes_one_active_and_retires_the_previous(store: Store) -> None:
    _register(store, "v0001")
    _register(store, "v0002")

    first = store.promote("v0001", actor="cora", reason="looks good")
    assert (first.status, first.reason) == ("active", "looks good") and first.activated_at

    second = store.promote("v0002", actor="dan")
    assert second.status == "active"
    retired = store.adapter("v0001")
    assert (retired.status, retired.reason) == ("retired", "replaced by v0002")
    assert _active(store) == "v0002"
    assert [a.version for a in store.adapters() if a.status == "active"] == ["v0002"]
    assert [(e.actor, e.action, e.version, e.previous) for e in store.adapter_events()] == [
        ("cora", "publish", "v0001", None),
        ("cora", "publish", "v0002", None),
        ("cora", "promote", "v0001", None),
        ("dan", "promote", "v0002", "v0001"),
    ]

    again = store.promote("v0002", actor="dan")  # promoting the active version changes nothing
    assert again == second
    assert len(store.adapter_events()) == 4


def test_at_most_one_version_is_active_in_the_schema(store: Store) -> None:
    _register(store, "v0001")
    _register(store, "v0002")
    store.promote("v0001", actor="cora")

    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("UPDATE adapters SET status = 'active' WHERE version = 'v0002'")
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("UPDATE adapters SET status = 'best' WHERE version = 'v0002'")


def test_set_adapter_status(store: Store) -> None:
    _register(store, "v0001")
    _register(store, "v0002")
    store.promote("v0001", actor="cora")

    rejected = store.set_adapter_status("v0002", "rejected", actor="cora", reason="bad tone")
    assert (rejected.status, rejected.reason) == ("rejected", "bad tone")
    with pytest.raises(InputError, match="promote"):
        store.set_adapter_status("v0002", "active", actor="cora")
    with pytest.raises(InputError, match="v0001 is active"):
        store.set_adapter_status("v0001", "retired", actor="cora")
    with pytest.raises(NotFoundError):
        store.set_adapter_status("v0009", "retired", actor="cora")
    assert _active(store) == "v0001"


def test_update_adapter_report(store: Store) -> None:
    _register(store, "v0001", report={"verdict": "keep"})
    assert store.update_adapter_report("v0001", {"verdict": "promote", "forced": "ok"}).report == {
        "verdict": "promote", "forced": "ok"
    }
    with pytest.raises(NotFoundError):
        store.update_adapter_report("v0009", {})


def _three_promoted(store: Store) -> None:
    for version in ("v0001", "v0002", "v0003"):
        _register(store, version)
        store.promote(version, actor="cora")


def test_rollback_walks_the_activations_back_to_the_base_model(store: Store) -> None:
    _three_promoted(store)
    assert _statuses(store) == {"v0001": "retired", "v0002": "retired", "v0003": "active"}

    assert store.rollback(actor="dan", reason="v3 is rude") == ("v0003", "v0002")
    assert _active(store) == "v0002"
    assert _statuses(store) == {"v0001": "retired", "v0002": "active", "v0003": "rejected"}
    assert store.adapter("v0003").reason == "v3 is rude"
    assert store.adapter("v0002").reason == "rollback from v0003"

    assert store.rollback(actor="dan") == ("v0002", "v0001")
    assert _statuses(store) == {"v0001": "active", "v0002": "rejected", "v0003": "rejected"}
    assert store.adapter("v0002").reason == "rolled back"

    assert store.rollback(actor="dan") == ("v0001", None)
    assert store.active_adapter() is None
    assert _statuses(store) == {"v0001": "rejected", "v0002": "rejected", "v0003": "rejected"}

    with pytest.raises(InputError, match="nothing to roll back"):
        store.rollback(actor="dan")
    rollbacks = [(e.version, e.previous) for e in store.adapter_events() if e.action == "rollback"]
    assert rollbacks == [("v0002", "v0001"), ("v0001", None), (None, None)]


def test_rollback_after_a_rollback_and_a_new_promotion(store: Store) -> None:
    _three_promoted(store)
    store.rollback(actor="dan")  # v0003 -> v0002
    _register(store, "v0004")
    store.promote("v0004", actor="cora")

    assert store.rollback(actor="dan") == ("v0004", "v0002")
    assert store.rollback(actor="dan") == ("v0002", "v0001")


def test_rollback_skips_deleted_versions(store: Store) -> None:
    _three_promoted(store)
    deleted = store.delete_adapter("v0002", actor="cora", reason="disk space")
    assert (deleted.status, deleted.deleted_at is not None) == ("retired", True)

    assert store.rollback(actor="dan") == ("v0003", "v0001")
    assert _statuses(store) == {"v0001": "active", "v0002": "retired", "v0003": "rejected"}
    assert store.rollback(actor="dan") == ("v0001", None)


def test_rollback_skips_rejected_versions_and_does_not_loop(store: Store) -> None:
    _register(store, "v0001")
    _register(store, "v0002")
    store.promote("v0001", actor="cora")
    store.promote("v0002", actor="cora")
    store.promote("v0001", actor="cora")  # back and forth: v0001's previous is v0002, v0002's is v0001

    assert store.rollback(actor="dan") == ("v0001", "v0002")
    assert store.rollback(actor="dan") == ("v0002", None)  # v0001 was rejected; the chain ends
    assert store.active_adapter() is None


def test_delete_refuses_the_active_version(store: Store) -> None:
    _register(store, "v0001")
    _register(store, "v0002", status="rejected")
    _register(store, "v0003")
    store.promote("v0001", actor="cora")

    with pytest.raises(InputError, match="v0001 is active"):
        store.delete_adapter("v0001", actor="cora")
    assert store.adapter("v0001").deleted_at is None

    candidate = store.delete_adapter("v0003", actor="cora")
    assert candidate.status == "retired" and candidate.deleted_at
    assert store.delete_adapter("v0002", actor="cora").status == "rejected"  # keeps why it is out
    assert [a.version for a in store.adapters()] == ["v0001"]
    assert [a.version for a in store.adapters(include_deleted=True)] == ["v0003", "v0002", "v0001"]
    with pytest.raises(NotFoundError, match="deleted already"):
        store.delete_adapter("v0003", actor="cora")
    with pytest.raises(NotFoundError, match="was deleted"):
        store.promote("v0003", actor="cora")
    with pytest.raises(NotFoundError):
        store.delete_adapter("v0009", actor="cora")
    assert _active(store) == "v0001"
    assert [e.action for e in store.adapter_events("v0003")] == ["publish", "delete"]


def test_adapter_ratings_count_replies_and_current_thumbs_per_version(store: Store) -> None:
    assert store.adapter_ratings() == {}
    a = _reply(store, "v0001")
    b = _reply(store, "v0001")
    _reply(store, "v0001")  # not rated
    c = _reply(store, "v0002")
    base = _reply(store, None)  # the base model's replies are no version's
    store.rate(a, "ann", 1)
    store.rate(a, "bob", 1)
    store.rate(b, "ann", 1)
    store.rate(b, "ann", -1)  # re-rated: only the current rating counts
    store.rate(c, "bob", -1)
    store.rate(base, "bob", 1)

    ratings = store.adapter_ratings()
    assert ratings == {"v0001": RatingCounts(3, 2, 1), "v0002": RatingCounts(1, 0, 1)}
    assert ratings["v0001"].up_rate == pytest.approx(2 / 3)
    assert ratings["v0002"].up_rate == 0.0
    assert RatingCounts(2, 0, 0).up_rate is None


def test_thumbs_over_time_counts_current_thumbs_per_version_on_the_day_each_reply_was_produced(
    store: Store, clock  # noqa: ANN001
) -> None:
    assert store.thumbs_over_time() == {}
    # 2026-11-02 (the clock's first day, UTC)
    a = _reply(store, "v0001")
    b = _reply(store, "v0001")
    late = _reply(store, "v0001")
    _reply(store, "v0001")  # never rated: no thumbs, and alone no day
    base = _reply(store, None)  # the base model's replies are no version's
    store.rate(a, "ann", 1)
    store.rate(a, "bob", 1)
    store.rate(b, "ann", 1)
    store.rate(b, "ann", -1)  # re-rated: the superseded thumbs up is not counted
    store.rate(base, "bob", 1)
    clock.now += timedelta(days=1)  # 2026-11-03
    c = _reply(store, "v0001")
    d = _reply(store, "v0002")
    store.rate(c, "ann", -1)
    store.rate(d, "bob", 1)
    e = _reply(store, "v0002")  # produced on 11-03, rated two days later: counts on 11-03
    clock.now += timedelta(days=2)  # 2026-11-05
    store.rate(late, "cy", 1)  # a reply from 11-02 rated today: counts on 11-02
    store.rate(e, "cy", -1)

    thumbs = store.thumbs_over_time()
    assert thumbs == {
        "v0001": [ThumbsBucket("2026-11-02", 3, 1), ThumbsBucket("2026-11-03", 0, 1)],
        "v0002": [ThumbsBucket("2026-11-03", 1, 1)],
    }
    # The totals agree with adapter_ratings' current thumbs.
    ratings = store.adapter_ratings()
    for version, days in thumbs.items():
        assert (sum(d.up for d in days), sum(d.down for d in days)) == (ratings[version].up, ratings[version].down)
    assert thumbs["v0001"][0].up_rate == pytest.approx(3 / 4) and thumbs["v0001"][1].up_rate == 0.0
    assert ThumbsBucket("2026-11-04", 0, 0).up_rate is None


def test_thumbs_over_time_of_the_versions_named(store: Store) -> None:
    for version in ("v0001", "v0002", "v0003"):
        store.rate(_reply(store, version), "ann", 1)

    assert list(store.thumbs_over_time(["v0003", "v0001"])) == ["v0001", "v0003"]
    assert list(store.thumbs_over_time(("v0002",))) == ["v0002"]
    assert store.thumbs_over_time([]) == {} and store.thumbs_over_time(["v0009"]) == {}
    assert list(store.thumbs_over_time()) == ["v0001", "v0002", "v0003"]


def test_thumbs_over_time_by_week_starts_each_week_on_monday(store: Store, clock) -> None:  # noqa: ANN001
    start = clock.now  # Monday 2026-11-02
    for offset, rating in ((0, 1), (6, -1), (7, 1), (13, 1), (14, -1)):  # Mon, Sun, Mon, Sun, Mon
        clock.now = start + timedelta(days=offset)
        store.rate(_reply(store, "v0001"), "ann", rating)

    assert store.thumbs_over_time(bucket="week") == {
        "v0001": [ThumbsBucket("2026-11-02", 1, 1), ThumbsBucket("2026-11-09", 2, 0), ThumbsBucket("2026-11-16", 0, 1)]
    }
    assert [d.day for d in store.thumbs_over_time()["v0001"]] == [
        "2026-11-02", "2026-11-08", "2026-11-09", "2026-11-15", "2026-11-16"
    ]
    with pytest.raises(InputError, match="unknown period 'month'"):
        store.thumbs_over_time(bucket="month")


def test_last_data_until_is_the_newest_versions_data(store: Store) -> None:
    assert store.last_data_until() is None
    _register(store, "v0001", data_until="2026-11-01T08:00:00.000Z")
    _register(store, "v0002", data_until="2026-11-02T08:00:00.000Z", status="rejected")
    _register(store, "v0003")  # no data_until: ignored
    assert store.last_data_until() == "2026-11-02T08:00:00.000Z"
    assert store.now() > "2026-11-02T09:30:00"  # the store's clock, in the same format


def test_a_version_trained_on_erased_data_is_marked(store: Store) -> None:
    kept = store.create_conversation("ann", "sys")
    erased = store.create_conversation("bob", "sys")
    store.add_message(erased.id, "user", "my address is 1 Main St")
    store.register_dataset("ds-old", "datasets/ds-old", {}, [kept.id, erased.id], "cora")
    store.register_dataset("ds-new", "datasets/ds-new", {}, [kept.id], "cora")
    _register(store, "v0001", dataset_id="ds-old")
    _register(store, "v0002", dataset_id="ds-new")
    _register(store, "v0003")  # no dataset recorded
    store.promote("v0001", actor="cora")
    assert all(a.dataset_erased_at is None for a in store.adapters())

    erasure = store.forget("cora", conversation_id=erased.id)

    assert erasure.datasets_marked == ("ds-old",)
    marked = store.adapter("v0001")
    assert marked.dataset_erased_at == store.dataset("ds-old").erased_at is not None
    assert store.active_adapter().dataset_erased_at == marked.dataset_erased_at
    assert store.adapter("v0002").dataset_erased_at is None
    assert store.adapter("v0003").dataset_erased_at is None
    assert {a.version: a.dataset_erased_at is not None for a in store.adapters()} == {
        "v0001": True, "v0002": False, "v0003": False
    }


# -- migration -------------------------------------------------------------------------------


def _database_before_training(path: Path) -> None:
    """A database of the release before retraining (m001 to m004), with a reply by a named adapter."""
    db = Database(path)
    migrations.apply(db, stop_before="m005_training_and_adapters")
    assert not TRAINING_TABLES & set(db.table_names())
    db.execute(
        "INSERT INTO conversations (id, title, user, created_at, updated_at, system_prompt, archived)"
        " VALUES (3, 'VPN drops', 'bob', '2025-06-01T08:00:00.000Z', '2025-06-01T08:01:00.000Z', 'sys', 0)"
    )
    db.execute(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, created_at, model, adapter)"
        " VALUES (21, 3, NULL, 'user', 'my vpn drops hourly', '2025-06-01T08:00:10.000Z', NULL, NULL),"
        " (22, 3, 21, 'assistant', 'Reinstall the client.', '2025-06-01T08:00:20.000Z', 'base', 'support-v1')"
    )
    db.execute(
        "INSERT INTO feedback (message_id, user, rating, reasons, comment, correction, created_at, updated_at, current)"
        " VALUES (22, 'bob', -1, '[]', '', '', '2025-06-01T08:00:30.000Z', '2025-06-01T08:00:30.000Z', 1)"
    )
    db.execute(
        "INSERT INTO datasets (id, path, created_at, created_by, counts, erased_at)"
        " VALUES ('ds1', 'datasets/ds1', '2025-06-02T08:00:00.000Z', 'cora', '{}', NULL)"
    )
    db.execute("INSERT INTO dataset_conversations (dataset_id, conversation_id) VALUES ('ds1', 3)")
    db.conn.commit()
    db.close()


def test_upgrade_from_the_curation_release_adds_the_training_tables(tmp_path: Path, clock) -> None:  # noqa: ANN001
    assert "m005_training_and_adapters" in MIGRATION_NAMES
    path = tmp_path / "assistant.db"
    _database_before_training(path)

    store = Store.open(path, clock=clock)
    try:
        assert store.applied_migrations() == MIGRATION_NAMES
        assert TRAINING_TABLES <= set(store.db.table_names())
        assert store.counts() == {"conversations": 1, "messages": 2, "feedback": 1}
        assert store.adapters() == [] and store.training_runs() == [] and store.resumable_run() is None
        assert store.last_data_until() is None
        assert store.adapter_ratings() == {"support-v1": RatingCounts(1, 0, 1)}  # replies from before count

        store.start_run("r1", user="cora", pid=1, base_model="tiny", config={})
        store.record_metrics("r1", [_train(1, 1.0)])
        _register(store, "v0001", run_id="r1", dataset_id="ds1")
        assert store.promote("v0001", actor="cora").status == "active"
        store.forget("cora", conversation_id=3)
        assert store.adapter("v0001").dataset_erased_at is not None
    finally:
        store.close()

    again = Store.open(path, clock=clock)  # and opens again without applying anything twice
    try:
        assert again.applied_migrations() == MIGRATION_NAMES
        assert _active(again) == "v0001"
    finally:
        again.close()


def test_upgrade_keeps_the_metrics_of_older_runs_as_their_sft_stage(tmp_path: Path, clock) -> None:  # noqa: ANN001
    """A database written before training stages (up to m008) with a run's metrics: they survive the
    rebuild of the table as the SFT stage's, and the same steps can then be logged for a preference stage."""
    assert "m009_training_metrics_by_stage" in MIGRATION_NAMES
    path = tmp_path / "assistant.db"
    db = Database(path)
    migrations.apply(db, stop_before="m009_training_metrics_by_stage")
    assert "stage" not in db["training_metrics"].columns_dict
    db.execute(
        "INSERT INTO training_runs (id, started_at, status, user, base_model, config)"
        " VALUES ('r1', '2026-01-01T00:00:00.000Z', 'published', 'cora', 'tiny', '{}')"
    )
    db.execute(
        "INSERT INTO training_metrics (run_id, split, step, epoch, loss, grad_norm, learning_rate, at) VALUES"
        " ('r1', 'train', 1, 0.5, 2.0, 0.4, 0.001, '2026-01-01T00:01:00.000Z'),"
        " ('r1', 'train', 2, 1.0, 1.5, 0.3, 0.0005, '2026-01-01T00:02:00.000Z'),"
        " ('r1', 'eval', 2, 1.0, 1.7, NULL, NULL, '2026-01-01T00:02:01.000Z')"
    )
    db.conn.commit()
    db.close()

    store = Store.open(path, clock=clock)
    try:
        assert store.applied_migrations() == MIGRATION_NAMES
        assert set(store.db.table_names()) >= TRAINING_TABLES and "training_metrics_m008" not in store.db.table_names()
        assert store.run_metrics("r1") == [
            MetricPoint("train", 1, 0.5, 2.0, 0.4, 0.001, "sft"),
            MetricPoint("train", 2, 1.0, 1.5, 0.3, 0.0005, "sft"),
            MetricPoint("eval", 2, 1.0, 1.7, None, None, "sft"),
        ]
        assert store.recent_steps("r1") == [(2, 1.0, "2026-01-01T00:02:00.000Z"), (1, 0.5, "2026-01-01T00:01:00.000Z")]
        assert store.recent_steps("r1", stage="sft") == store.recent_steps("r1")
        assert store.recent_steps("r1", stage="preference") == []

        # The new key: one step per stage, split and step; the stage is checked, its foreign key kept.
        store.record_metrics("r1", [_preference("train", 2, 0.6)])
        assert [(p.stage, p.step, p.loss) for p in store.run_metrics("r1") if p.split == "train"] == [
            ("sft", 1, 2.0), ("sft", 2, 1.5), ("preference", 2, 0.6)
        ]
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute(
                "INSERT INTO training_metrics (run_id, stage, split, step, at) VALUES ('r1', 'rlhf', 'train', 1, 't')"
            )
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute(
                "INSERT INTO training_metrics (run_id, stage, split, step, at) VALUES ('r2', 'sft', 'train', 1, 't')"
            )
        store.db.execute("INSERT INTO training_metrics (run_id, split, step, at) VALUES ('r1', 'train', 9, 't')")
        assert store.run_metrics("r1")[2] == MetricPoint("train", 9, None, None, None, None, "sft")  # the default stage
        store.db.execute("DELETE FROM training_runs WHERE id = 'r1'")  # its metrics go with it
        assert store.run_metrics("r1") == []
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()


# -- known gaps ------------------------------------------------------------------------------


def test_the_history_of_a_version_shows_it_was_rolled_back(store: Store) -> None:
    _register(store, "v0001")
    store.promote("v0001", actor="cora")
    store.rollback(actor="dan", reason="rude")  # back to the base model: the event is (None, None)

    assert [e.action for e in store.adapter_events("v0001")][-1] == "rolled back"
