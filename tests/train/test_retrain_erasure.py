"""A `forget` that runs while a retrain trains or gates: the version the retrain publishes afterwards keeps no
probe prompt taken from the erased conversations (meta.json, the store's gate report, what the retrain
returns), no byte of it stays in the data dir, and the version is flagged as trained on erased data and not
promoted, even with --force. Real tiny QLoRA retrain; the forget is the real one, from a second Store."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import erasure
from assistant.adapters import registry
from assistant.data.snapshot import read_manifest
from assistant.store import Store
from assistant.train import gate
from assistant.train.loop import read_rows
from assistant.train.retrain import Options, retrain
from tests.train.conftest import configure, curate


def _holding(data_dir: Path, needle: str) -> list[str]:
    return [
        str(p.relative_to(data_dir)) for p in sorted(data_dir.rglob("*"))
        if p.is_file() and needle.lower().encode() in p.read_bytes().lower()
    ]


@pytest.fixture
def forget_during_gate(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The gate scores as usual; then, before the retrain publishes, someone forgets the conversation that
    gave the first probe prompt (the first eval row), as `assistant forget` does it in another process."""
    real = gate.evaluate
    erased: dict = {}

    def evaluate_then_forget(base_path, candidate, active, dataset_dir, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        report = real(base_path, candidate, active, dataset_dir, *args, **kwargs)
        [origin, *_] = read_manifest(dataset_dir)["rows"]["eval"]
        prompt = [m["content"] for m in read_rows(dataset_dir / "eval.jsonl")[0]["messages"] if m["role"] == "user"][-1]
        assert prompt in [p["prompt"] for p in report["probes"]]
        settings = erased["settings"]
        other = Store.open(settings.db_path)
        try:
            outcome = erasure.forget(settings, other, "cora", conversation_id=origin["conversation_id"])
        finally:
            other.close()
        erased.update(prompt=prompt, outcome=outcome)
        return report

    monkeypatch.setattr(gate, "evaluate", evaluate_then_forget)
    return erased


def test_a_forget_during_the_gate_leaves_no_erased_probe_in_the_version_the_retrain_publishes(
    tmp_path: Path, tiny_model_dir: Path, forget_during_gate: dict
) -> None:
    settings = configure(tmp_path / "data", tiny_model_dir, max_steps=2, probe_prompts=[])
    forget_during_gate["settings"] = settings
    store = Store.open(settings.db_path)
    curate(store)

    result = retrain(settings, store, Options(force_reason="wanted today"))

    prompt = forget_during_gate["prompt"]
    assert forget_during_gate["outcome"].erasure.datasets_marked == (result.dataset_id,)
    record = store.adapter(result.version)
    meta = registry.read_meta(settings.data_dir / "adapters" / result.version)
    for report in (record.report, meta["eval_report"], result.report):
        prompts = [p["prompt"] for p in report["probes"]]
        assert prompts[0] == erasure.REDACTED and prompt not in prompts
        assert len(prompts) > 1 and erasure.REDACTED not in prompts[1:], "probes of other conversations stay"
    assert set(record.report["probes"][0]["answers"].values()) == {erasure.REDACTED}
    registry.check_files(settings.data_dir / "adapters" / result.version)
    # Flagged, and never served as if it were clean: not promoted, even though --force asked for it.
    assert record.dataset_erased_at is not None
    assert (result.status, record.status, store.active_adapter()) == ("kept", "candidate", None)
    assert "erased" in result.message and "assistant retrain" in result.message
    store.close()
    assert _holding(settings.data_dir, prompt) == []


def test_resuming_a_run_that_died_after_registering_a_version_a_forget_overlapped_does_not_promote_it(
    tmp_path: Path,
) -> None:
    settings = configure(tmp_path / "data", tmp_path / "model")  # finishing a registered version loads no model
    store = Store.open(settings.db_path)
    erased = store.create_conversation("bob", "")
    store.add_message(erased.id, "user", "Is the Quokka9 warranty transferable?")
    store.register_dataset("ds-1", str(settings.data_dir / "datasets" / "ds-1"), {}, [erased.id], "ann")
    store.start_run("r-died", user="ann", pid=1, base_model="tiny", config={})
    report = {"verdict": "promote", "probes": [{"prompt": "Is the Quokka9 warranty transferable?", "answers": {"candidate": "yes"}}]}
    # The forget ran after the gate and before the version was registered; then the run died.
    erasure.forget(settings, store, "cora", conversation_id=erased.id)
    store.register_adapter("v0001", path=str(settings.data_dir / "adapters" / "v0001"), actor="ann", run_id="r-died",
                           dataset_id="ds-1", report=report, reason="eval loss improved")
    store.mark_stale_runs()

    result = retrain(settings, store, Options(resume=True))

    assert (result.status, store.adapter("v0001").status, store.active_adapter()) == ("kept", "candidate", None)
    assert [p["prompt"] for p in store.adapter("v0001").report["probes"]] == [erasure.REDACTED]
    assert result.report == store.adapter("v0001").report
    store.close()
    assert _holding(settings.data_dir, "Quokka9") == []
