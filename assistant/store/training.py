"""The store's training side: retrain runs and their per-step metrics, published adapter versions
with their status (candidate, active, rejected, retired) and every change of it, and the ratings
of the replies each version produced (in all, and per day or week).

A mixin of `Store` (see db.py): same connection, same short IMMEDIATE write transactions. The files
of a version live in adapters/<version>/ (assistant/adapters/registry.py); here is what is known of
them. At most one version is active (a partial unique index); running chats poll `active_adapter()`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from assistant.errors import ConflictError, InputError, NotFoundError
from assistant.store import rows as from_row
from assistant.store.records import (
    ADAPTER_STATUSES,
    AdapterEvent,
    AdapterRecord,
    GoldenEval,
    MetricPoint,
    RatingCounts,
    ThumbsBucket,
    TrainingRun,
)

RUN_STATUSES = ("running", "interrupted", "failed", "nothing", "published")
METRIC_STAGES = ("sft", "preference")
# The period of `thumbs_over_time`, as its first day (UTC) from a stored time (ISO 8601, UTC, "Z").
THUMBS_BUCKETS = {
    "day": "substr(m.created_at, 1, 10)",
    "week": "date(substr(m.created_at, 1, 10), '-6 days', 'weekday 1')",  # the Monday on or before
}
_ADAPTERS = """
    SELECT a.*, d.erased_at AS dataset_erased_at
    FROM adapters a LEFT JOIN datasets d ON d.id = a.dataset_id
"""


class TrainingStore:
    """Mixed into Store; relies on its `db`, `_write()` and `_now()`."""

    def now(self) -> str:
        """The store's clock, as stored: what `data_until` is measured in."""
        return self._now()

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, run_id: str, *, user: str, pid: int, base_model: str, config: dict[str, Any]) -> TrainingRun:
        with self._write() as db:
            db["training_runs"].insert(
                {
                    "id": run_id,
                    "started_at": self._now(),
                    "status": "running",
                    "user": user,
                    "pid": pid,
                    "base_model": base_model,
                    "config": json.dumps(config, sort_keys=True),
                }
            )
        return self.training_run(run_id)

    def update_run(self, run_id: str, **values: Any) -> TrainingRun:
        """Set a run's fields; a final status also sets `finished_at`."""
        status = values.get("status")
        if status is not None and status not in RUN_STATUSES:
            raise InputError(f"unknown run status {status!r}")
        if "config" in values:
            values["config"] = json.dumps(values["config"], sort_keys=True)
        if status in {"interrupted", "failed", "nothing", "published"}:
            values.setdefault("finished_at", self._now())
        elif status == "running":
            values["finished_at"] = None
        with self._write() as db:
            if not db.execute("SELECT 1 FROM training_runs WHERE id = ?", [run_id]).fetchone():
                raise NotFoundError(f"no training run {run_id}")
            db["training_runs"].update(run_id, values)
        return self.training_run(run_id)

    def training_run(self, run_id: str) -> TrainingRun:
        rows = list(self.db.query("SELECT * FROM training_runs WHERE id = ?", [run_id]))
        if not rows:
            raise NotFoundError(f"no training run {run_id}")
        return from_row.training_run(rows[0])

    def mark_stale_runs(self) -> list[str]:
        """Runs still marked running once the training lock is ours were killed: mark them interrupted."""
        with self._write() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM training_runs WHERE status = 'running'")]
            for run_id in ids:
                db["training_runs"].update(run_id, {"status": "interrupted", "finished_at": self._now()})
        return ids

    def resumable_run(self) -> TrainingRun | None:
        rows = list(self.db.query(
            "SELECT * FROM training_runs WHERE status IN ('running', 'interrupted') ORDER BY started_at DESC, id DESC LIMIT 1"
        ))
        return from_row.training_run(rows[0]) if rows else None

    def training_runs(self, *, limit: int = 50) -> list[TrainingRun]:
        rows = self.db.query("SELECT * FROM training_runs ORDER BY started_at DESC, id DESC LIMIT ?", [limit])
        return [from_row.training_run(row) for row in rows]

    def record_metrics(self, run_id: str, points: Iterable[MetricPoint]) -> None:
        now = self._now()
        rows = [
            (run_id, p.stage, p.split, p.step, p.epoch, p.loss, p.grad_norm, p.learning_rate, now) for p in points
        ]
        if not rows:
            return
        unknown = sorted({row[1] for row in rows} - set(METRIC_STAGES))
        if unknown:
            raise InputError(f"unknown training stage {unknown[0]!r}")
        with self._write() as db:
            db.conn.executemany(
                "INSERT OR REPLACE INTO training_metrics"
                " (run_id, stage, split, step, epoch, loss, grad_norm, learning_rate, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def run_metrics(self, run_id: str) -> list[MetricPoint]:
        """A run's logged points: the SFT stage's, then the preference stage's; in each, train before eval,
        by step."""
        rows = self.db.query(
            "SELECT * FROM training_metrics WHERE run_id = ?"
            " ORDER BY stage = 'preference', split DESC, step",
            [run_id],
        )
        return [
            MetricPoint(r["split"], r["step"], r["epoch"], r["loss"], r["grad_norm"], r["learning_rate"], r["stage"])
            for r in rows
        ]

    def recent_steps(
        self, run_id: str, limit: int = 60, stage: str | None = None
    ) -> list[tuple[int, float | None, str]]:
        """A run's newest logged training steps by when they were logged, newest first: (step, epoch, at);
        `stage` ("sft", "preference"): that stage's only. After a resume the newest are the resumed
        process's, whatever higher steps the old one left."""
        sql = "SELECT step, epoch, at FROM training_metrics WHERE run_id = ? AND split = 'train'"
        args: list[Any] = [run_id]
        if stage is not None:
            sql, args = sql + " AND stage = ?", [*args, stage]
        rows = self.db.query(sql + " ORDER BY at DESC, step DESC LIMIT ?", [*args, limit])
        return [(r["step"], r["epoch"], r["at"]) for r in rows]

    # -- adapter versions ----------------------------------------------------------------------

    def register_adapter(
        self,
        version: str,
        *,
        path: str,
        actor: str,
        run_id: str | None = None,
        dataset_id: str | None = None,
        data_until: str | None = None,
        base_model: str = "",
        metrics: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
        status: str = "candidate",
        reason: str = "",
    ) -> AdapterRecord:
        if status not in {"candidate", "rejected"}:
            raise InputError("a new version is a candidate or rejected; promote it to make it active")
        now = self._now()
        with self._write() as db:
            db["adapters"].insert(
                {
                    "version": version,
                    "path": path,
                    "status": status,
                    "reason": reason,
                    "created_at": now,
                    "run_id": run_id,
                    "dataset_id": dataset_id,
                    "data_until": data_until,
                    "base_model": base_model,
                    "metrics": json.dumps(metrics or {}, sort_keys=True),
                    "report": json.dumps(report or {}, sort_keys=True),
                }
            )
            self._event(db, actor, "publish", version, None, reason)
        return self.adapter(version)

    def adapter(self, version: str) -> AdapterRecord:
        rows = list(self.db.query(_ADAPTERS + " WHERE a.version = ?", [version]))
        if not rows:
            raise NotFoundError(f"no adapter version {version}")
        return from_row.adapter(rows[0])

    def adapters(self, *, include_deleted: bool = False) -> list[AdapterRecord]:
        where = "" if include_deleted else " WHERE a.deleted_at IS NULL"
        return [from_row.adapter(row) for row in self.db.query(_ADAPTERS + where + " ORDER BY a.version DESC")]

    def active_adapter(self) -> AdapterRecord | None:
        """The version every chat should serve; None: the bare base model. Cheap: chats poll it."""
        rows = list(self.db.query(_ADAPTERS + " WHERE a.status = 'active'"))
        return from_row.adapter(rows[0]) if rows else None

    def last_data_until(self) -> str | None:
        """When the data of the newest published version was read: approvals after it are new."""
        row = self.db.execute("SELECT max(data_until) FROM adapters").fetchone()
        return row[0] if row else None

    def set_adapter_status(self, version: str, status: str, *, actor: str, reason: str = "") -> AdapterRecord:
        """Mark a version candidate, rejected or retired (activation goes through `promote`)."""
        if status not in ADAPTER_STATUSES or status == "active":
            raise InputError(f"cannot set status {status!r} directly; promote a version to make it active")
        with self._write() as db:
            current = self._adapter_row(db, version)
            if current["status"] == "active":
                raise InputError(f"{version} is active; promote another version or roll back first")
            db["adapters"].update(version, {"status": status, "reason": reason})
            self._event(db, actor, status, version, None, reason)
        return self.adapter(version)

    def update_adapter_report(self, version: str, report: dict[str, Any]) -> AdapterRecord:
        with self._write() as db:
            self._adapter_row(db, version)
            db["adapters"].update(version, {"report": json.dumps(report, sort_keys=True)})
        return self.adapter(version)

    def promote(self, version: str, *, actor: str, reason: str = "", expected_active: Any = ...) -> AdapterRecord:
        """Make `version` the active one; the version active before it is retired (rollback returns to it).

        `expected_active` (a version, or None for the base model): refuse with ConflictError unless that
        is what is active now, so a decision made against it is not applied over a later change.
        """
        with self._write() as db:
            row = self._adapter_row(db, version)
            if row["deleted_at"]:
                raise NotFoundError(f"adapter {version} was deleted")
            if row["status"] == "active":
                return self.adapter(version)
            previous = db.execute("SELECT version FROM adapters WHERE status = 'active'").fetchone()
            previous = previous[0] if previous else None
            if expected_active is not ... and previous != expected_active:
                raise ConflictError(
                    f"the active version changed to {previous or 'the base model'} while {version} was evaluated "
                    f"against {expected_active or 'the base model'}; promote it by hand if it is still wanted"
                )
            if previous:
                db["adapters"].update(previous, {"status": "retired", "reason": f"replaced by {version}"})
            db["adapters"].update(version, {"status": "active", "reason": reason, "activated_at": self._now()})
            self._event(db, actor, "promote", version, previous, reason)
        return self.adapter(version)

    def rollback(self, *, actor: str, reason: str = "") -> tuple[str, str | None]:
        """Deactivate the active version (marked rejected) and reactivate the one active before it
        that still exists; None: back to the bare base model. Returns (from, to)."""
        with self._write() as db:
            current = db.execute("SELECT version FROM adapters WHERE status = 'active'").fetchone()
            if current is None:
                raise InputError("no adapter is active: nothing to roll back")
            current = current[0]
            target = self._rollback_target(db, current)
            why = reason or "rolled back"
            db["adapters"].update(current, {"status": "rejected", "reason": why})
            self._event(db, actor, "rolled back", current, None, why)
            if target is not None:
                db["adapters"].update(
                    target, {"status": "active", "reason": f"rollback from {current}", "activated_at": self._now()}
                )
            # `previous` of an activation is where the next rollback goes: what preceded the target.
            self._event(db, actor, "rollback", target, self._before(db, target) if target else None, why)
        return current, target

    def rollback_target(self) -> str | None:
        """The version `rollback` would reactivate now (None: the base model, or nothing is active)."""
        current = self.db.execute("SELECT version FROM adapters WHERE status = 'active'").fetchone()
        return self._rollback_target(self.db, current[0]) if current else None

    def _rollback_target(self, db, current: str) -> str | None:  # noqa: ANN001
        """The latest version active before `current` that still exists and was not rejected."""
        target = self._before(db, current)
        seen = {current}
        while target is not None and target not in seen:
            seen.add(target)
            row = self._adapter_row(db, target)
            if not row["deleted_at"] and row["status"] != "rejected":
                return target
            target = self._before(db, target)
        return None

    def delete_adapter(self, version: str, *, actor: str, reason: str = "") -> AdapterRecord:
        with self._write() as db:
            row = self._adapter_row(db, version)
            if row["status"] == "active":
                raise InputError(f"{version} is active; promote another version or roll back first")
            if row["deleted_at"]:
                raise NotFoundError(f"adapter {version} was deleted already")
            db["adapters"].update(version, {"deleted_at": self._now(), "status": "retired" if row["status"] == "candidate" else row["status"]})
            self._event(db, actor, "delete", version, None, reason)
        return self.adapter(version)

    def adapter_events(self, version: str | None = None) -> list[AdapterEvent]:
        sql, args = "SELECT * FROM adapter_events", []
        if version is not None:
            sql, args = sql + " WHERE version = ? OR previous = ?", [version, version]
        return [AdapterEvent(**row) for row in self.db.query(sql + " ORDER BY id", args)]

    def adapter_ratings(self) -> dict[str, RatingCounts]:
        """Per version: replies produced, and thumbs up and down on them (current ratings)."""
        rows = self.db.query(
            """
            SELECT m.adapter AS version, count(DISTINCT m.id) AS replies,
                   coalesce(sum(f.rating = 1), 0) AS up, coalesce(sum(f.rating = -1), 0) AS down
            FROM messages m LEFT JOIN feedback f ON f.message_id = m.id AND f.current = 1
            WHERE m.role = 'assistant' AND m.adapter IS NOT NULL
            GROUP BY m.adapter
            """
        )
        return {r["version"]: RatingCounts(r["replies"], r["up"], r["down"]) for r in rows}

    def thumbs_over_time(
        self, versions: Iterable[str] | None = None, *, bucket: str = "day"
    ) -> dict[str, list[ThumbsBucket]]:
        """Per version (all, or those named), its current thumbs up and down per day or week (UTC), oldest
        first; only periods with a rating. A rating counts in the period its reply was produced, not when it
        was given: so each point says how good the version's answers were then, over its life. The base
        model's replies are no version's (as in `adapter_ratings`)."""
        if bucket not in THUMBS_BUCKETS:
            raise InputError(f"unknown period {bucket!r}; known: {', '.join(THUMBS_BUCKETS)}")
        where, args = "", []
        if versions is not None:
            where, args = "AND m.adapter IN (SELECT value FROM json_each(?))", [json.dumps(list(versions))]
        rows = self.db.query(
            f"""
            SELECT m.adapter AS version, {THUMBS_BUCKETS[bucket]} AS day,
                   sum(f.rating = 1) AS up, sum(f.rating = -1) AS down
            FROM messages m JOIN feedback f ON f.message_id = m.id AND f.current = 1
            WHERE m.role = 'assistant' AND m.adapter IS NOT NULL {where}
            GROUP BY version, day
            ORDER BY version, day
            """,
            args,
        )
        series: dict[str, list[ThumbsBucket]] = {}
        for r in rows:
            series.setdefault(r["version"], []).append(ThumbsBucket(r["day"], r["up"], r["down"]))
        return series

    # -- golden-set evals ------------------------------------------------------------------------

    def record_golden_evals(
        self,
        *,
        file: str,
        sha256: str,
        user: str,
        model: str,
        results: Sequence[tuple[str | None, list[dict[str, Any]], dict[str, Any]]],
    ) -> list[GoldenEval]:
        """Store one `assistant eval` run: (version or None for the base model, per-question scores, totals)
        per model answered, in one transaction, sharing one batch. A version must exist (NotFoundError)."""
        now = self._now()
        with self._write() as db:
            # Without AUTOINCREMENT the next row's id is the largest one plus one, under the write lock.
            batch = db.execute("SELECT coalesce(max(id), 0) + 1 FROM golden_evals").fetchone()[0]
            for version, scores, totals in results:
                if version is not None:
                    self._adapter_row(db, version)
                db.execute(
                    "INSERT INTO golden_evals (batch, version, model, file, sha256, at, user, scores, totals)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch, version, model, file, sha256, now, user,
                     json.dumps(scores, sort_keys=True), json.dumps(totals, sort_keys=True)],
                )
        rows = self.db.query("SELECT * FROM golden_evals WHERE batch = ? ORDER BY id", [batch])
        return [_golden_eval(row) for row in rows]

    def golden_evals(self, version: str | None) -> list[GoldenEval]:
        """The golden-set evals of a version (None: of the base model), newest first."""
        rows = self.db.query("SELECT * FROM golden_evals WHERE version IS ? ORDER BY id DESC", [version])
        return [_golden_eval(row) for row in rows]

    # -- helpers -------------------------------------------------------------------------------

    def _adapter_row(self, db, version: str) -> dict[str, Any]:  # noqa: ANN001
        rows = list(db.query("SELECT * FROM adapters WHERE version = ?", [version]))
        if not rows:
            raise NotFoundError(f"no adapter version {version}")
        return rows[0]

    @staticmethod
    def _before(db, version: str) -> str | None:  # noqa: ANN001
        """What was active before `version`'s latest activation."""
        row = db.execute(
            "SELECT previous FROM adapter_events WHERE version = ? AND action IN ('promote', 'rollback')"
            " ORDER BY id DESC LIMIT 1",
            [version],
        ).fetchone()
        return row[0] if row else None

    def _event(self, db, actor: str, action: str, version: str | None, previous: str | None, reason: str) -> None:  # noqa: ANN001
        db["adapter_events"].insert(
            {"at": self._now(), "actor": actor, "action": action, "version": version, "previous": previous, "reason": reason}
        )


def _golden_eval(row: dict[str, Any]) -> GoldenEval:
    """The record of a `golden_evals` row (read here only)."""
    return GoldenEval(**{**row, "scores": json.loads(row["scores"]), "totals": json.loads(row["totals"])})
