"""A forget that runs while a dataset build reads never leaves an unmarked snapshot holding erased data:
the build notices when it registers, deletes what it wrote and builds again."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.data.builder import BuildPolicy
from assistant.data.snapshot import FILES, build_snapshot
from assistant.errors import ConflictError
from assistant.store import Store
from tests.data.conftest import approved

MARKER = "Zebrafish"


def _forgetting_after_each_read(store: Store, other: Store, conversation_ids: list[int]) -> None:
    """The next reads of the build: each, once it finished reading, another process forgets one conversation."""
    read = store.training_conversations

    def reading_then_forgetting():  # noqa: ANN202
        yield from read()
        if conversation_ids:
            other.forget("cora", conversation_id=conversation_ids.pop(0))

    store.training_conversations = reading_then_forgetting  # type: ignore[method-assign]


@pytest.fixture
def other(store: Store) -> Store:
    second = Store.open(store.path)
    yield second
    second.close()


def test_a_build_that_a_forget_overlapped_builds_again_without_the_erased_data(
    store: Store, other: Store, data_dir: Path, chat_tokenizer  # noqa: ANN001
) -> None:
    kept = approved(store, "When is my bill due?", "On the 1st of each month.")
    erased = approved(store, f"Do {MARKER} cameras work offline?", f"{MARKER} cameras record to the SD card.")
    _forgetting_after_each_read(store, other, [erased])

    snapshot = build_snapshot(store, data_dir, BuildPolicy(eval_fraction=0.0), chat_tokenizer, user="cora")

    assert snapshot.record.erased_at is None
    assert MARKER not in "".join((snapshot.path / name).read_text(encoding="utf-8") for name in FILES)
    assert snapshot.manifest["counts"]["rows"]["train"] == 1
    assert [d.id for d in store.datasets()] == [snapshot.id]  # the first build was never registered
    assert [p.name for p in (data_dir / "datasets").iterdir()] == [snapshot.id]  # nor left on disk
    assert store.conversations(include_archived=True)[0].id == kept


def test_a_build_overlapped_by_forgets_every_time_fails_and_leaves_nothing(
    store: Store, other: Store, data_dir: Path, chat_tokenizer  # noqa: ANN001
) -> None:
    ids = [approved(store, f"question {i} about {MARKER}", f"answer {i}") for i in range(4)]
    _forgetting_after_each_read(store, other, ids[:3])

    with pytest.raises(ConflictError):
        build_snapshot(store, data_dir, BuildPolicy(eval_fraction=0.0), chat_tokenizer, user="cora")

    assert store.datasets() == []
    assert list((data_dir / "datasets").iterdir()) == []
