"""A chat on a data dir where nothing was ever trained, with a model that does not know the samples:
it starts `assistant retrain` on them in the background, shows its progress, and swaps the promoted
version in, while it stays usable. The real retrain, in a process of its own, on the tiny model."""

from __future__ import annotations

from pathlib import Path

from assistant.demo.teach import FirstVersion
from assistant.store import Store
from assistant.tui.app import AssistantApp
from assistant.tui.widgets.status import StatusBar
from tests.conftest import load_backend
from tests.train.conftest import configure
from tests.tui.helpers import notifications, send, wait_for, wait_loaded, wait_reply_done


async def test_the_first_chat_teaches_the_model_the_samples_in_the_background_and_swaps_the_version_in(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    # Enough steps that the held-out samples get better on every CPU (30 left it at the base model's loss, within noise).
    settings = configure(data_dir, tiny_model_dir, sample_training="on", max_steps=120, gate_margin=0.0)
    store = Store.open(settings.db_path)
    backend = load_backend(tiny_model_dir)
    first = FirstVersion(settings)
    app = AssistantApp(settings, store, lambda progress: backend, first)
    seen: list[str] = []
    process = None
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_loaded(pilot)
            process = first.process
            assert process is not None  # started once the model answered
            assert any("learning the sample conversations" in n for n in notifications(app))
            status = app.chat.query_one(StatusBar)

            def swapped() -> bool:
                if status.retrain:
                    seen.append(status.retrain)
                return backend.identity.adapter == "v0001"

            await send(pilot, "hello")  # usable meanwhile: the base model answers
            await wait_reply_done(pilot, timeout=60)
            await wait_for(pilot, swapped, timeout=400, what="the first version to be trained and swapped in")
            await wait_for(pilot, lambda: status.retrain is None, timeout=10, what="the progress to go")
            assert process.wait(timeout=30) == 0
            assert not notifications(app, "warning")
    finally:
        if process is not None and process.poll() is None:
            process.kill()
    assert seen, "the status bar never showed the retrain's progress"
    record = store.adapter("v0001")
    assert record.status == "active"
    manifest = (data_dir / "datasets" / record.dataset_id / "manifest.json").read_text(encoding="utf-8")
    assert '"approved_sample"' in manifest
    assert not FirstVersion(settings).wanted(store, is_fallback=True)  # the next chat starts nothing
    store.close()


async def test_a_first_version_killed_mid_run_is_said_once_and_its_progress_goes(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The row stays `running` after a kill (until the next retrain marks it): the chat that started the
    process knows it has ended and shows no progress for it."""
    import subprocess
    import sys

    settings = configure(tmp_path / "data", tiny_model_dir)  # sample_training auto: nothing started here
    store = Store.open(settings.db_path)
    first = FirstVersion(settings)
    app = AssistantApp(settings, store, lambda progress: load_backend(tiny_model_dir), first)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        assert first.process is None
        first.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands in for the retrain
        store.start_run("r1", user="ann", pid=first.process.pid, base_model="tiny", config={"epochs": 1.0})
        status = app.chat.query_one(StatusBar)
        await wait_for(pilot, lambda: status.retrain is not None, timeout=10, what="the progress")
        first.process.kill()
        await wait_for(pilot, lambda: status.retrain is None, timeout=10, what="the progress to go")
        # The notification is a message the app handles after the poll that cleared the progress.
        await wait_for(pilot, lambda: [n for n in notifications(app, "warning") if "failed (exit -9)" in n], timeout=5, what="the failure said")
        await pilot.pause(2.5)  # another poll: said once
        assert len([n for n in notifications(app, "warning") if "failed" in n]) == 1
        assert store.training_run("r1").status == "running"  # as recorded; the next retrain marks it interrupted
    store.close()
