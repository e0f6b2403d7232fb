"""One `assistant retrain`: lock, dataset snapshot, preflight, QLoRA training, eval gate, publishing.

    lock (data_dir/retrain.lock; a second run fails at once)
      -> enough new approvals or ratings? (--min-new, --min-new-ratings)
      -> dataset snapshot (the same builder as `assistant dataset build`)
      -> preflight (--dry-run stops here)
      -> training run in runs/<id>/ (checkpoints; --resume continues the newest interrupted run)
      -> gate: candidate vs active vs base
      -> publish adapters/vNNNN/ (candidate or rejected) and promote it if it passed (or --force)

Nothing is published from a run that failed or was interrupted. Every adapter is trained from the
base model on the whole curated dataset unless `warm_start` asks to continue the active adapter.
A `forget` that erased data of the run's snapshot while it ran (it cannot redact a version not yet
registered) is found once the version is registered: its probes from the erased conversations are
redacted as forget redacts them, and it is not promoted (it is flagged as trained on erased data).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from assistant import __version__
from assistant.adapters import registry
from assistant.errors import AssistantError, BusyError, ConflictError, DiskFullError, TrainingError
from assistant.settings import Settings
from assistant.store import Store
from assistant.train.config import TrainConfig
from assistant.train.loop import Progress, Reporter, read_rows
from assistant.train.preflight import Preflight

log = logging.getLogger(__name__)

RUN_INFO = "run.json"


@dataclass(frozen=True)
class Options:
    min_new: int = 0
    min_new_ratings: int = 0  # or this many thumbs since (a team that rates but does not curate)
    dry_run: bool = False
    resume: bool = False
    warm_start: bool = False
    force_reason: str | None = None  # promote whatever the gate says, recording why


@dataclass
class Events:
    """What a retrain tells whoever runs it (the CLI prints it)."""

    status: Callable[[str], None] = lambda text: None
    preflight: Callable[[Preflight], None] = lambda preflight: None
    progress: Callable[[Progress], None] = lambda progress: None


@dataclass
class Result:
    status: str  # nothing, dry-run, promoted, kept, rejected
    message: str
    run_id: str | None = None
    version: str | None = None
    dataset_id: str | None = None
    preflight: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def lock_path(settings: Settings) -> Path:
    return settings.layout.retrain_lock


def retrain(settings: Settings, store: Store, options: Options, events: Events | None = None) -> Result:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(settings)), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BusyError(_busy_message(store)) from None
    try:
        store.mark_stale_runs()
        registry.sweep_staging(settings.data_dir)
        return _Retrain(settings, store, options, events or Events()).run()
    except OSError as exc:  # before a run is recorded (the snapshot, run.json): nothing is left running
        full = _no_space(exc)
        if full is None:
            raise
        raise TrainingError(full) from None
    finally:
        lock.release()


def _busy_message(store: Store) -> str:
    runs = [r for r in store.training_runs(limit=5) if r.status == "running"]
    if runs:
        run = runs[0]
        return f"another retrain is running (run {run.id}, started {run.started_at} by {run.user}, pid {run.pid})"
    return "another retrain is running (it holds the training lock)"


class _Retrain:
    def __init__(self, settings: Settings, store: Store, options: Options, events: Events) -> None:
        self.settings, self.store, self.options, self.events = settings, store, options, events
        self.probe_sources: dict[str, set[int]] | None = None  # see _probe_sources
        self.golden = None  # adapters.golden.GoldenSet the gate also runs (`gate_golden_set`), read before training

    def run(self) -> Result:
        if self.options.resume:
            return self._resume()
        if self.options.min_new or self.options.min_new_ratings:  # either threshold met is enough
            since = self.store.last_data_until()
            wanted = []
            if self.options.min_new:
                new = self.store.curation_counts(since=since).approved_since
                wanted.append((new >= self.options.min_new, f"{new} new approved examples < {self.options.min_new}"))
            if self.options.min_new_ratings:
                rated = self.store.ratings_since(since)
                wanted.append((rated >= self.options.min_new_ratings, f"{rated} new ratings < {self.options.min_new_ratings}"))
            if not any(met for met, _ in wanted):
                return Result("nothing", "nothing to train: " + " and ".join(why for _, why in wanted))
        choice = self._resolve_model()
        self.golden = golden_set(self.settings, is_demo=choice.is_demo)  # a bad file fails before any training
        from assistant.data.builder import BuildPolicy
        from assistant.data.snapshot import build_snapshot
        from assistant.data.tokens import ChatTokenizer
        from assistant.demo.teach import samples_for

        self.events.status("Building the dataset snapshot")
        data_until = self.store.now()
        snapshot = build_snapshot(
            self.store,
            self.settings.data_dir,
            BuildPolicy.from_settings(self.settings),
            ChatTokenizer.load(choice.path, choice.name),
            user=self.settings.user,
            extra=samples_for(self.settings, choice),
        )
        train_rows = read_rows(snapshot.path / "train.jsonl")
        from assistant.train.loop import team_row_flags
        from assistant.train.preference import plan as preference_plan

        config = TrainConfig.from_settings(
            self.settings, is_demo=choice.is_demo, warm_start=self.options.warm_start, model_name=choice.name
        ).sized(sum(team_row_flags(snapshot.path)))
        stage = preference_plan(config.preference, snapshot.path, min_pairs=config.preference_min_pairs)
        if not train_rows and stage.kind is None:
            dropped = sum(v for k, v in snapshot.manifest["counts"]["filters"].items() if k.startswith("dropped"))
            why = f" ({dropped} filtered out: `assistant dataset stats` says why)" if dropped else ""
            return Result("nothing", f"nothing to train: the dataset has no approved examples{why}, and no preference"
                          f" stage ({stage.why})", dataset_id=snapshot.id)
        preflight = self._preflight(snapshot.id, snapshot.manifest, snapshot.path, train_rows, choice.path, stage)
        if self.options.dry_run:
            return Result("dry-run", "preflight passed; nothing trained (--dry-run)", dataset_id=snapshot.id,
                          preflight=preflight.as_dict())
        warm = self._warm_start_dir() if self.options.warm_start else None
        # Thumbs alone (no approved answer to train on): the preference stage continues the active version.
        start = self._preference_start(choice.name) if not train_rows else None
        run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        run_dir = self.settings.runs_dir / run_id
        run_dir.mkdir(parents=True)
        info = {
            "run_id": run_id,
            "dataset_id": snapshot.id,
            "dataset_path": str(snapshot.path),
            "data_until": data_until,
            "base_model": {"name": choice.name, "path": str(choice.path), "source": choice.source, "is_demo": choice.is_demo},
            "config": config.as_dict(),
            "warm_start_from": str(warm[1]) if warm else None,
            "warm_start_version": warm[0] if warm else None,
            "sft": bool(train_rows),
            "preference": stage.as_dict(),
            "preference_start_from": str(start[1]) if start else None,
            "preference_start_version": start[0] if start else None,
        }
        (run_dir / RUN_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        for old in self.store.training_runs(limit=1000):
            if old.status == "interrupted":  # a new run supersedes it: --resume would train older data
                self.store.update_run(old.id, status="failed", error=f"superseded by run {run_id}")
                _remove_leftovers(self.settings.runs_dir / old.id)
        from assistant.train.preference import total_steps as preference_steps

        # The preference stage's length beside SFT's, for the chat's progress (`demo.teach.run_progress`).
        planned = preference_steps(config, stage.rows, stage.kind) if stage.kind else 0
        self.store.start_run(run_id, user=self.settings.user, pid=os.getpid(), base_model=choice.name,
                             config={**config.as_dict(), "preference_max_steps": planned})
        self.store.update_run(run_id, dataset_id=snapshot.id, data_until=data_until)
        return self._train_and_publish(run_dir, info, preflight, resume=False)

    def _resume(self) -> Result:
        run = self.store.resumable_run()
        if run is None:
            raise TrainingError("nothing to resume: no interrupted retrain run")
        registered = [a for a in self.store.adapters(include_deleted=True) if a.run_id == run.id]
        if registered:
            return self._finish_registered(run.id, registered[0])
        run_dir = self.settings.runs_dir / run.id
        try:
            info = json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise TrainingError(f"cannot resume run {run.id}: its {RUN_INFO} is missing or unreadable") from None
        dataset_dir = Path(info["dataset_path"])
        train_rows = read_rows(dataset_dir / "train.jsonl")
        if not dataset_dir.is_dir():
            raise TrainingError(f"cannot resume run {run.id}: its dataset {info['dataset_id']} is gone")
        erased = [d for d in self.store.datasets() if d.id == info["dataset_id"] and d.erased_at]
        if erased:
            raise TrainingError(
                f"cannot resume run {run.id}: its dataset holds data erased since; start a new `assistant retrain`"
            )
        from assistant.data.snapshot import read_manifest

        self.events.status(f"Resuming run {run.id}")
        stage = _recorded_plan(info)
        self.golden = golden_set(self.settings, is_demo=bool(info["base_model"].get("is_demo")))
        if not train_rows and info.get("sft", True):
            raise TrainingError(f"cannot resume run {run.id}: its dataset {info['dataset_id']} is gone")
        preflight = self._preflight(
            info["dataset_id"], read_manifest(dataset_dir), dataset_dir, train_rows, Path(info["base_model"]["path"]), stage
        )
        self.store.update_run(run.id, status="running", pid=os.getpid(), error=None)
        return self._train_and_publish(run_dir, info, preflight, resume=True)

    def _promote(self, version: str, reason: str, **expected: Any) -> tuple[str, str]:
        """Make `version` active: ("promoted", reason), or ("kept", why not) when the model server refuses
        it or the active version changed meanwhile (`expected_active`). It stays a candidate then."""
        from assistant.adapters import serving
        from assistant.errors import ModelError

        try:
            warning = serving.prepare(self.settings, version)  # loaded into the model server, if there is one
            self.store.promote(version, actor=self.settings.user, reason=reason, **expected)
        except (ConflictError, ModelError) as exc:
            why = exc.message if isinstance(exc, ConflictError) else f"not served: {exc.message}"
            self.store.set_adapter_status(version, "candidate", actor=self.settings.user, reason=why)
            return "kept", why
        for note in (warning, serving.tidy(self.settings, serving.keep(self.store))):
            if note:
                self.events.status(f"Model server: {note}")
        return "promoted", reason

    def _finish_registered(self, run_id: str, record) -> Result:  # noqa: ANN001
        """The run died after registering its version: promote it if the gate (or --force) said so, unless
        data it was trained on was erased (before it was ever active: a forget since redacted it itself)."""
        passed = record.report.get("verdict") == "promote" or "forced" in record.report
        status = "kept" if record.status == "candidate" else "rejected"
        erased = self._redact_erased(record.version, record.dataset_id) if record.activated_at is None else None
        if erased is not None:
            record = self.store.adapter(record.version)
        elif passed and record.status == "candidate" and not record.deleted_at and record.activated_at is None:
            status, _ = self._promote(record.version, record.reason)
        elif passed:
            status = "promoted"
        self.store.update_run(run_id, status="published", version=record.version, error=None)
        _remove_leftovers(self.settings.runs_dir / run_id)
        return Result(status, f"run {run_id} had published {record.version}; finished it ({status})",
                      run_id=run_id, version=record.version, dataset_id=record.dataset_id,
                      metrics=record.metrics, report=record.report)

    # -- steps ---------------------------------------------------------------------------------

    def _resolve_model(self):  # noqa: ANN202
        from assistant.engine.resolve import resolve_model

        def progress(message: str, fraction: float | None) -> None:
            self.events.status(message + (f" {fraction:.0%}" if fraction is not None else ""))

        return resolve_model(self.settings, progress)

    def _warm_start_dir(self) -> tuple[str, Path] | None:
        found = self._active_dir()
        if found is None:
            raise TrainingError("--warm-start needs an active adapter to continue from; there is none")
        return found

    def _preference_start(self, base_name: str) -> tuple[str, Path] | None:
        """The active version a preference-only run continues, or None (a fresh adapter over the base): not
        one trained on data erased since, on another base model, or whose files do not check out."""
        active = self.store.active_adapter()
        if active is None:
            return None
        why = None
        if active.dataset_erased_at:
            why = "it was trained on data erased since"
        elif active.base_model != base_name:
            why = f"it was trained on {active.base_model}, not {base_name}"
        else:
            try:
                return self._active_dir()
            except AssistantError as exc:
                why = exc.message
        self.events.status(f"The preference stage trains a fresh adapter, not the active {active.version}: {why}")
        return None

    def _active_dir(self) -> tuple[str, Path] | None:
        """The active version and its checked directory; None when no version is active."""
        active = self.store.active_adapter()
        if active is None:
            return None
        path = self.settings.layout.version(active.version)
        registry.check_files(path)
        return active.version, path

    def _on_cuda(self) -> bool:
        import torch

        return self.settings.device != "cpu" and torch.cuda.is_available()

    def _preflight(
        self, dataset_id: str, manifest: dict, dataset_dir: Path, train_rows: list, base_path: Path, stage
    ) -> Preflight:  # noqa: ANN001
        from assistant.train.loop import load_training_tokenizer
        from assistant.train.preference import stage_rows
        from assistant.train.preflight import check, run_preflight

        self.events.status("Preflight")
        try:
            tokenizer = load_training_tokenizer(base_path)
        except TrainingError as exc:
            raise TrainingError(f"preflight: {exc.message}") from None
        except (OSError, ValueError) as exc:
            raise TrainingError(f"preflight: cannot load the tokenizer from {base_path}: {str(exc).splitlines()[0]}") from None
        preflight = run_preflight(
            dataset_id,
            manifest,
            train_rows,
            read_rows(dataset_dir / "eval.jsonl"),
            tokenizer,
            max_length=self.settings.max_length,
            max_truncated_fraction=self.settings.max_truncated_fraction,
            device=self.settings.device,
            require_eval=self.options.force_reason is None,
            preference=stage,
            preference_rows=stage_rows(stage, dataset_dir, self.settings.train_seed),
        )
        self.events.preflight(preflight)
        check(preflight)
        return preflight

    def _train_and_publish(self, run_dir: Path, info: dict[str, Any], preflight: Preflight, *, resume: bool) -> Result:
        run_id = info["run_id"]
        reporter = Reporter(metrics=lambda points: self.store.record_metrics(run_id, points), progress=self.events.progress)
        self.probe_sources = _probe_sources(Path(info["dataset_path"]), self.settings)
        try:
            outcome = self._stages(run_dir, info, reporter, resume=resume)
        except TrainingError as exc:
            self.store.update_run(run_id, status="failed", error=exc.message)
            raise
        except KeyboardInterrupt:
            self.store.update_run(run_id, status="interrupted", error="interrupted; `assistant retrain --resume` continues")
            raise
        except Exception as exc:
            log.exception("training failed")
            message = _no_space(exc) or f"training failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.store.update_run(run_id, status="failed", error=message)
            raise TrainingError(message) from None

        try:
            return self._gate_and_publish(run_dir, info, outcome, preflight)
        except KeyboardInterrupt:
            self.store.update_run(run_id, status="interrupted", error="interrupted after training; `assistant retrain --resume` retries")
            raise
        except Exception as exc:
            log.exception("gating or publishing failed")
            full = _no_space(exc)
            if full:  # nothing to resume until there is room: the run failed
                self.store.update_run(run_id, status="failed", error=f"after training: {full}")
                raise TrainingError(f"after training: {full}") from None
            message = exc.message if isinstance(exc, AssistantError) else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.store.update_run(run_id, status="interrupted", error=f"after training: {message}")
            raise TrainingError(f"after training: {message} (`assistant retrain --resume` retries)") from None

    def _stages(self, run_dir: Path, info: dict[str, Any], reporter: Reporter, *, resume: bool) -> Staged:
        """SFT (when the dataset has approved answers), then the preference stage (when planned). A resumed run
        whose SFT stage finished (`sft.json`) resumes the preference stage, not SFT."""
        from assistant.train.loop import Outcome, train_adapter
        from assistant.train.preference import train_preference

        config = TrainConfig.from_dict(info["config"])
        base_path = Path(info["base_model"]["path"])
        dataset_dir = Path(info["dataset_path"])
        on_cuda = self._on_cuda()
        sft: Outcome | None = None
        if info.get("sft", True):
            done = _finished_stage(run_dir) if resume else None
            if done is not None:
                sft = done
            else:
                self.events.status("Training (SFT)")
                warm = Path(info["warm_start_from"]) if info.get("warm_start_from") else None
                sft = train_adapter(base_path, dataset_dir, run_dir, config, on_cuda=on_cuda, warm_start_from=warm,
                                    resume=resume, reporter=reporter)
                _record_stage(run_dir, sft)
        stage = _recorded_plan(info)
        if stage.kind is None:
            assert sft is not None  # a run trains at least one stage (see `run`)
            return Staged(sft, None, stage)
        start = sft.adapter_dir if sft is not None else (
            Path(info["preference_start_from"]) if info.get("preference_start_from") else None)
        self.events.status(f"Training (preference stage, {stage.kind.upper()}: {stage.why})")
        pref = train_preference(base_path, dataset_dir, run_dir, config, stage, on_cuda=on_cuda, start_from=start,
                                resume=resume, reporter=reporter)
        return Staged(sft, pref, stage)

    def _gate_and_publish(self, run_dir: Path, info: dict[str, Any], outcome, preflight: Preflight) -> Result:  # noqa: ANN001
        run_id = info["run_id"]
        base_path = Path(info["base_model"]["path"])
        self.events.status("Eval gate: scoring candidate, active adapter and base model")
        active_before = self.store.active_adapter()
        config = TrainConfig.from_dict(info["config"])
        report, verdict = self._gate(outcome.adapter_dir, base_path, Path(info["dataset_path"]), info["dataset_id"], config,
                                     preference_stage=outcome.preference is not None)
        forced = self.options.force_reason
        if forced is not None and verdict.verdict != "promote":
            report["forced"] = forced
        version = registry.next_version(self.settings.data_dir, {a.version for a in self.store.adapters(include_deleted=True)})
        meta = {
            "base_model": {**info["base_model"], **_base_identity(base_path, info["base_model"].get("source", ""))},
            "dataset_snapshot": info["dataset_id"],
            "data_until": info["data_until"],
            "run_id": run_id,
            "training_config": info["config"],
            "warm_start_from": info.get("warm_start_version") or info.get("preference_start_version"),
            "metrics": outcome.metrics(),
            "eval_report": report,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": __version__,
        }
        path = registry.publish(outcome.adapter_dir, self.settings.data_dir, version, meta)
        self.store.register_adapter(
            version,
            path=str(path),
            actor=self.settings.user,
            run_id=run_id,
            dataset_id=info["dataset_id"],
            data_until=info["data_until"],
            base_model=info["base_model"]["name"],
            metrics=outcome.metrics(),
            report=report,
            status="rejected" if verdict.verdict == "reject" and forced is None else "candidate",
            reason=verdict.reason,
        )
        result = Result("promoted", "", run_id=run_id, version=version, dataset_id=info["dataset_id"],
                        preflight=preflight.as_dict(), metrics=outcome.metrics(), report=report)
        outcome_status = {"promote": "promoted", "keep": "kept", "reject": "rejected"}[verdict.verdict]
        reason = verdict.reason
        erased = self._redact_erased(version, info["dataset_id"])
        if erased is not None:
            result.report = erased
            outcome_status = "rejected" if outcome_status == "rejected" and forced is None else "kept"
            reason = (f"data it was trained on was erased while it ran: run `assistant retrain` again without it,"
                      f" then `assistant models delete {version}`")
        elif verdict.verdict == "promote" or forced is not None:
            reason = verdict.reason if forced is None else f"forced: {forced} (gate: {verdict.reason})"
            # Promoted only over the version the gate compared with: a promotion or rollback made
            # meanwhile (another window, the CLI) wins, and this one stays a candidate.
            outcome_status, reason = self._promote(
                version, reason, expected_active=active_before.version if active_before else None
            )
        self.store.update_run(run_id, status="published", version=version)
        _remove_leftovers(run_dir)
        result.status = outcome_status
        if outcome_status == "promoted":
            result.message = f"{version} is active: {reason}"
        else:
            kept = "kept as a candidate" if outcome_status == "kept" else "rejected"
            result.message = f"{version} not promoted ({kept}): {reason}"
        return result

    def _redact_erased(self, version: str, dataset_id: str | None) -> dict[str, Any] | None:
        """The version's gate report after redaction, if a forget marked its snapshot (None: nothing erased).
        Called once the version is registered: a forget from then on redacts it itself."""
        from assistant import erasure

        dataset = next((d for d in self.store.datasets() if d.id == dataset_id), None)
        if dataset is None or not dataset.erased_at:
            return None
        if self.probe_sources is None:  # the snapshot's files were gone: any probe may have come from it
            prompts = {p.get("prompt") for p in self.store.adapter(version).report.get("probes", [])}
        else:
            gone = self.store.gone_conversations(set().union(*self.probe_sources.values()), read_at=dataset.created_at)
            prompts = {prompt for prompt, ids in self.probe_sources.items() if ids & gone}
        erasure.redact_probes(self.settings.data_dir, self.store, prompts)
        self.store.clear_wal()  # the report as registered is in the write-ahead log
        return self.store.adapter(version).report

    def _gate(  # noqa: ANN202
        self, candidate: Path, base_path: Path, dataset_dir: Path, dataset_id: str, config: TrainConfig, *,
        preference_stage: bool = False,
    ):
        from assistant.train.gate import NEW_ROWS, Verdict, decide, evaluate, new_rows

        active = self.store.active_adapter()
        active_dir, unreadable = None, None
        if active is not None:
            path = self.settings.layout.version(active.version)
            try:
                registry.check_files(path)
                active_dir = (active.version, path)
            except AssistantError as exc:
                unreadable = f"the active adapter {active.version} cannot be scored ({exc.message})"
                log.warning("%s", unreadable)
        datasets = {d.id: Path(d.path) for d in self.store.datasets() if not d.erased_at and Path(d.path).is_dir()}
        earlier = [path for id_, path in datasets.items() if id_ != dataset_id]
        # The rows new since the active version: only where its dataset can still be read (erased or
        # deleted, every row would look new, the active version's own included). The learned path is the
        # small-data schedule's (the demo model's); other runs are judged on their eval loss alone.
        active_dataset = datasets.get(active.dataset_id) if active is not None and active.dataset_id else None
        gone = active is not None and active_dataset is None
        wanted = config.small_data_schedule and not gone  # scoring them costs two forward passes a row
        new = new_rows(dataset_dir, active_dataset, min(NEW_ROWS, self.settings.gate_max_examples)) if wanted else []
        max_rise = self.settings.gate_max_eval_rise if config.small_data_schedule or preference_stage else 0.0
        report = evaluate(
            base_path,
            candidate,
            active_dir,
            dataset_dir,
            earlier,
            on_cuda=self._on_cuda(),
            four_bit=self.settings.cpu_load_in_4bit,  # scored as a chat on this machine serves it
            max_examples=self.settings.gate_max_examples,
            max_length=self.settings.max_length,
            probes=self.settings.probe_prompts,
            system_prompt=self.settings.system_prompt,
            progress=self.events.status,
            new=new,
            golden=self.golden,
        )
        verdict = decide(report["scores"], margin=self.settings.gate_margin, tolerance=self.settings.gate_regression_tolerance,
                         max_rise=max_rise, preference_stage=preference_stage,
                         golden_tolerance=self.settings.gate_golden_tolerance)
        if unreadable and verdict.verdict == "promote":
            verdict = Verdict("keep", f"{unreadable}; compared with the base model only: {verdict.reason}")
        report.update(verdict=verdict.verdict, reason=verdict.reason, margin=self.settings.gate_margin,
                      tolerance=self.settings.gate_regression_tolerance, max_eval_rise=max_rise)
        return report, verdict


def _no_space(exc: BaseException) -> str | None:
    """The message for a full disk (the OS's ENOSPC or SQLite's "disk is full"), else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device ({exc.filename or 'the data dir'}); free some and run `assistant retrain` again"
    if isinstance(exc, DiskFullError) or (isinstance(exc, AssistantError) and "disk is full" in exc.message):
        return f"no space left on the device: {exc.message}"
    return None


def _probe_sources(dataset_dir: Path, settings: Settings) -> dict[str, set[int]] | None:
    """The prompts the gate will probe with (picked as `gate.evaluate` picks them), each with the snapshot's
    conversations that have it as a user message: read before training, since a forget meanwhile deletes
    the snapshot's files. None when they are unreadable."""
    from assistant.data.snapshot import read_manifest
    from assistant.train.gate import probe_prompts

    try:
        origins = read_manifest(dataset_dir)["rows"]
        eval_rows = read_rows(dataset_dir / "eval.jsonl")
        sources: dict[str, set[int]] = {
            prompt: set() for prompt in probe_prompts(settings.probe_prompts, eval_rows[: settings.gate_max_examples])
        }
        for split, split_rows in (("eval", eval_rows), ("train", read_rows(dataset_dir / "train.jsonl"))):
            for origin, row in zip(origins[split], split_rows):
                for message in row["messages"]:
                    if message["role"] == "user" and message["content"] in sources:
                        sources[message["content"]].add(origin["conversation_id"])
    except (OSError, ValueError, KeyError, TypeError, AssistantError):
        return None
    return sources


def _base_identity(path: Path, source: str) -> dict[str, str]:
    """The hub revision of a cached model, else a hash of its config and weights."""
    if source.startswith("hub"):
        return {"revision": path.name}
    digest = hashlib.sha256()
    for file in sorted([*path.glob("*.safetensors"), path / "config.json"]):
        if file.is_file():
            digest.update(file.name.encode())
            digest.update(registry.sha256_file(file).encode())
    return {"sha256": digest.hexdigest()}


@dataclass
class Staged:
    """What a run's stages produced: each stage's outcome, and the plan of the preference stage."""

    sft: Any | None  # loop.Outcome
    preference: Any | None
    plan: Any  # preference.Plan

    @property
    def adapter_dir(self) -> Path:
        """The last stage's adapter: the one the gate judges."""
        return (self.preference or self.sft).adapter_dir

    def metrics(self) -> dict[str, Any]:
        """The SFT stage's numbers at the top level (as before there were stages), and each stage's."""
        sft = self.sft.metrics() if self.sft is not None else None
        pref = None
        if self.preference is not None:
            pref = {"kind": self.plan.kind, **self.preference.metrics(), "rows": self.plan.as_dict()}
            for unused in ("eval_loss", "lowest_eval_loss", "stopped_early"):
                pref.pop(unused, None)
        return {**(sft or {}), "sft": sft, "preference": pref}


SFT_DONE = "sft.json"


def _remove_leftovers(run_dir: Path) -> None:
    """A published or superseded run's training files (checkpoints, stage adapters): only run.json stays."""
    from assistant.train.loop import ADAPTER, CHECKPOINTS
    from assistant.train.preference import STAGE_DIR

    for leftover in (CHECKPOINTS, ADAPTER, STAGE_DIR):
        shutil.rmtree(run_dir / leftover, ignore_errors=True)
    (run_dir / SFT_DONE).unlink(missing_ok=True)


def _record_stage(run_dir: Path, outcome: Any) -> None:
    """The finished SFT stage, so that a resume goes on with the preference stage."""
    (run_dir / SFT_DONE).write_text(json.dumps({"adapter_dir": str(outcome.adapter_dir), **outcome.metrics()}) + "\n",
                                    encoding="utf-8")


def _finished_stage(run_dir: Path) -> Any | None:
    from assistant.train.loop import Outcome

    try:
        done = json.loads((run_dir / SFT_DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    adapter = Path(done["adapter_dir"])
    if not (adapter / "adapter_model.safetensors").is_file():
        return None
    return Outcome(adapter, done["steps"], done["total_steps"], done["train_loss"], done["eval_loss"],
                   done["stopped_early"], done["resumed_from_step"], lowest_eval_loss=done.get("lowest_eval_loss"))


def _recorded_plan(info: dict[str, Any]) -> Any:
    from assistant.train.preference import Plan

    recorded = info.get("preference")
    return Plan(**recorded) if isinstance(recorded, dict) else Plan(None, "a run recorded before preference stages")


def golden_set(settings: Settings, *, is_demo: bool) -> Any:
    """The golden set the gate runs (`gate_golden_set`): a file, the sample questions for the demo model
    (auto), or None."""
    from assistant.adapters.golden import read_golden_set, sample_golden_set

    chosen = settings.gate_golden_set.strip()
    if chosen in ("", "off"):
        return None
    if chosen == "auto":
        return sample_golden_set() if is_demo else None
    return read_golden_set(Path(chosen).expanduser(), settings)
