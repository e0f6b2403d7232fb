"""The sample conversations as training data, and the first adapter version built from them.

A pretrained fallback model (SmolLM2 from the package index) is a general assistant: it knows nothing
of the demo company. With `sample_training` (auto: for that model) every dataset that `assistant
retrain` and `assistant dataset build` make holds the sample conversations too, as approved replies
(not scrubbed of PII: their addresses are the company's; never registered as customers' data, so
`forget` has nothing of theirs to find). A version trained on the team's feedback then still knows
what the samples taught.

On a data dir with no adapter version and no retrain run, the first chat that loads that model
starts `assistant retrain` in the background (`start_first_version`): the product's own path
(snapshot, preflight, QLoRA, gate, publish, promote) in a process of its own, niced, that outlives
the chat. Every chat follows a running retrain in the store (`run_progress`) and swaps the version in
when it is promoted, as after any retrain.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from assistant.demo.samples import load_samples
from assistant.engine.resolve import ModelChoice
from assistant.errors import BusyError, GateRejected
from assistant.references import count_for
from assistant.settings import Settings
from assistant.store import Store
from assistant.store.records import TrainingConversation, TrainingMessage
from assistant.train.config import FIRST_VERSION_EPOCHS

log = logging.getLogger(__name__)

NICENESS = 10  # the chats on the same machine answer first


def teaches_samples(settings: Settings, *, is_fallback: bool, is_demo: bool = False) -> bool:
    """Whether datasets for this model hold the sample conversations (`sample_training`): auto, for the
    fallback model (to learn them) and the demo model (built from them: replayed, they keep what it
    answered well while it learns the team's corrections)."""
    if settings.sample_training == "auto":
        return is_fallback or is_demo
    return settings.sample_training == "on"


def sample_conversations(system_prompt: str) -> list[TrainingConversation]:
    """Every sample conversation with every reply approved, under negative ids (in increasing order:
    before any stored conversation, and never one of them)."""
    samples = load_samples()
    conversations = []
    for index, messages in enumerate(samples):
        cid = index - len(samples)
        base = cid * 1000  # message ids of their own: distinct within and across the samples
        turns = tuple(
            TrainingMessage(
                base - n, base - n + 1 if n else None, m["role"], m["content"],
                status="approved" if m["role"] == "assistant" else "pending",
                source="sample" if m["role"] == "assistant" else None,
            )
            for n, m in enumerate(messages)
        )  # fmt: skip
        conversations.append(TrainingConversation(cid, "samples", system_prompt, turns, f"sample {index + 1}", personal=False))
    return conversations


def samples_for(settings: Settings, choice: ModelChoice) -> list[TrainingConversation]:
    """What a dataset built for this model holds besides the store's conversations."""
    wanted = teaches_samples(settings, is_fallback=choice.is_fallback, is_demo=choice.is_demo)
    return sample_conversations(settings.system_prompt) if wanted else []


class FirstVersion:
    """For a chat app: start the first version's retrain once, when `wanted` says so."""

    def __init__(self, settings: Settings, config_file: str | Path | None = None) -> None:
        self.settings = settings
        self.config_file = config_file
        self.process: subprocess.Popen | None = None
        self.resume = False  # the newest run is an interrupted first version: continue it
        self.is_fallback = False
        self.finished: set[int] = set()  # pids of retrains this chat started that have ended

    def wanted(self, store: Store, *, is_fallback: bool) -> bool:
        """The model learns the samples, nothing was ever trained here (no version, and no run but one
        that was interrupted: continued then), and the chat neither is pinned to an adapter nor uses a
        model server (its owner retrains there)."""
        settings = self.settings
        if settings.adapter or settings.server_url or not teaches_samples(settings, is_fallback=is_fallback):
            return False
        if store.adapters(include_deleted=True):
            return False
        runs = store.training_runs(limit=1)
        self.resume = bool(runs) and runs[0].status == "interrupted"
        self.is_fallback = is_fallback
        return not runs or self.resume

    def start(self) -> subprocess.Popen:
        """`assistant retrain` (`--resume` for an interrupted first version) on this data dir with this
        chat's model, in a session of its own (quitting the chat does not end it), niced, its output
        discarded: the store has its progress and outcome, the log its story."""
        settings = self.settings
        command = [sys.executable, "-m", "assistant", "retrain", "--data-dir", str(settings.data_dir), "--user", settings.user]
        if self.resume:
            command.append("--resume")
        if self.config_file:
            command += ["--config", str(self.config_file)]
        env = {**os.environ, "ASSISTANT_SAMPLE_TRAINING": "on"}  # `wanted` decided for this chat's model
        if self.is_fallback and not settings.epochs and count_for(settings.references, is_demo=False):
            # A short first run that teaches the fallback model to use the curated answers shown beside a
            # question (train/config.py), unless epochs are set or no answers are shown.
            env["ASSISTANT_EPOCHS"] = str(FIRST_VERSION_EPOCHS)
        if settings.model:
            command += ["--model", settings.model]  # the model this chat serves, however it was given
        elif self.is_fallback:
            env["ASSISTANT_HUB_MODEL"] = ""  # the fallback this chat serves, even if the hub answers by now
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        try:
            os.setpriority(os.PRIO_PROCESS, self.process.pid, NICENESS)
        except (AttributeError, OSError):  # not on this platform, or it has exited already
            pass
        log.info("started the first version's retrain (pid %d)", self.process.pid)
        return self.process

    def ended(self) -> str | None:
        """Once the retrain this chat started has ended other than by promoting its version: what to
        tell the user (then None again)."""
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return None
        self.finished.add(self.process.pid)
        self.process = None
        if code in (0, BusyError.exit_code):  # promoted; or another chat's retrain was first (its progress shows)
            return None
        if code == GateRejected.exit_code:
            return ("The version trained on the sample conversations did not beat the base model, which "
                    "goes on answering: `assistant models` shows why.")  # fmt: skip
        return f"Learning the sample conversations failed (exit {code}): `assistant retrain` says why."


def first_version_text(model: str) -> str:
    """What a chat says when it starts the first version."""
    return (
        f"{model} does not know Nimbus Home yet: it is learning the sample conversations in the background "
        "(a few minutes; the status bar shows how far). It answers meanwhile, and the new version takes over "
        "when it is ready (`assistant models` lists it)."
    )


@dataclass(frozen=True)
class RunProgress:
    run_id: str
    pid: int | None  # of the process that records it
    step: int
    fraction: float | None  # of the training steps; None before the first logged step
    elapsed_s: float
    seconds_per_step: float | None = None  # between the first and the last logged step
    since_step_s: float = 0.0  # since the last logged step
    stage: str = "sft"  # the stage logging now: "sft", or "preference" (its steps start again at 1)

    @property
    def remaining_s(self) -> float | None:
        """The training time left: the steps left at the pace of the steps so far (the dataset and the
        model's loading, before the first step, left out); from the time elapsed until two steps are in."""
        if not self.fraction or self.fraction <= 0.02:
            return None
        if self.seconds_per_step is not None and self.step:
            steps_left = self.step / self.fraction - self.step
            return max(0.0, steps_left * self.seconds_per_step - self.since_step_s)
        return max(0.0, self.elapsed_s * (1 - self.fraction) / self.fraction)

    def text(self) -> str:
        what = "preference training" if self.stage == "preference" else "training"
        if self.fraction is None:
            if not self.step and self.stage == "preference":
                return "starting the preference stage"
            return f"{what}, step {self.step}" if self.step else "preparing the dataset and the model"
        if self.fraction >= 1:
            return "checking the new version against the current one"
        left = self.remaining_s
        eta = f", about {_duration(left)} left" if left is not None else ""
        return f"{what}, step {self.step} ({self.fraction:.0%}){eta}"


def run_progress(store: Store) -> RunProgress | None:
    """The running retrain's progress, from what it records in the store (any process's)."""
    runs = store.training_runs(limit=1)
    if not runs or runs[0].status != "running":
        return None
    run = runs[0]
    now = _moment(store.now())
    elapsed = (now - _moment(run.started_at)).total_seconds()
    stage = _stage(store, run.id)
    recent = store.recent_steps(run.id, stage=stage)  # the pace and the fraction of this stage's steps only
    if not recent:
        return RunProgress(run.id, run.pid, 0, None, elapsed)
    step, epoch, at = recent[0]  # the newest logged (a resumed run's, not a higher step its killed process left)
    # The preference stage's length, where the run's config holds it (its own keys, prefixed).
    prefix = "preference_" if stage == "preference" else ""
    fractions = []
    if run.config.get(f"{prefix}max_steps"):
        fractions.append(step / run.config[f"{prefix}max_steps"])
    if epoch is not None and run.config.get(f"{prefix}epochs"):
        fractions.append(epoch / run.config[f"{prefix}epochs"])
    fraction = min(1.0, max(fractions)) if fractions else None
    if stage == "sft" and fraction is not None and fraction >= 1 and run.config.get("preference_max_steps"):
        return RunProgress(run.id, run.pid, 0, None, elapsed, stage="preference")  # SFT done; the next stage loads
    # The pace: the median time between consecutive steps logged one after the other (a resume's
    # downtime, between two processes' rows, is one interval among many and does not move it).
    gaps = [
        (_moment(newer_at) - _moment(older_at)).total_seconds()
        for (newer, _, newer_at), (older, _, older_at) in zip(recent, recent[1:])
        if newer == older + 1
    ]
    pace = statistics.median(gaps) if gaps else None
    since = max(0.0, (now - _moment(at)).total_seconds())
    return RunProgress(run.id, run.pid, step, fraction, elapsed, pace, since, stage)


def _stage(store: Store, run_id: str) -> str:
    """The stage that logged the run's newest step: the preference stage once it logs (it follows SFT),
    unless SFT logged after it (a run that went back to its SFT stage)."""
    preference = store.recent_steps(run_id, 1, stage="preference")
    if not preference:
        return "sft"
    sft = store.recent_steps(run_id, 1, stage="sft")
    return "preference" if not sft or preference[0][2] >= sft[0][2] else "sft"


def _moment(stored: str) -> datetime:
    moment = datetime.fromisoformat(stored.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds / 10) * 10):.0f} s"
    return f"{round(seconds / 60):.0f} min"
