"""`assistant forget` keeps its promise: after it no byte of the erased text, and not the erased user's
name, remains anywhere in the data dir, even while a chat in another process holds the database open;
the files that held it go (snapshots, staging directories, probe prompts in adapters, log lines), a
tombstone says what went and why, and nothing exports an erased snapshot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.adapters import registry
from assistant.store import ImportedMessage, Store
from tests.cli.helpers import REPO, open_store, run_subprocess

MARKER = "Xylophonist7731"  # only in the erased user's conversation
NAME = "quentinbarrow"  # the erased user
CORRECTION = "Marzipanvoucher"  # only in the erased user's correction of ann's reply
LONG = 20_000
CHAT = """
import sys
from assistant.store import Store
store = Store.open(sys.argv[1])
print(len(store.search(sys.argv[2])), flush=True)
sys.stdin.readline()  # holds the database open until the test has run forget
print(len(store.search(sys.argv[2])), flush=True)
kept = store.conversations(user="ann")[0]
store.add_message(kept.id, "user", "the chat goes on")
store.close()
"""


def _seed(store: Store) -> tuple[int, int]:
    """The erased user's conversation of LONG messages (the first reply rated and approved), and ann's,
    its reply corrected by the erased user and approved. Ann's is held out for evaluation (the top-up
    takes the one whose id hashes lowest): the correction is in eval, dpo_eval and kto_eval."""
    messages = [
        ImportedMessage("user" if i % 2 == 0 else "assistant", f"message {i}: the {MARKER} case of {NAME}")
        for i in range(LONG)
    ]
    [theirs] = store.import_conversations([("long", messages)], user=NAME, default_system_prompt="sys")
    [anns] = store.import_conversations(
        [("kept", [ImportedMessage("user", "How do I pay?"), ImportedMessage("assistant", "By card.")])],
        user="ann",
        default_system_prompt="sys",
    )
    first_reply = store.thread(theirs, store.thread(theirs)[1].id)[1]
    kept_reply = store.thread(anns)[1]
    store.rate(first_reply.id, NAME, 1)
    store.rate(kept_reply.id, NAME, -1, correction=f"By card or {CORRECTION}.")
    store.approve([first_reply.id, kept_reply.id], "cora")
    return theirs, anns


def _publish_adapter(store: Store, data_dir: Path, dataset_id: str, probe: str) -> None:
    """An adapter version trained on the snapshot, whose gate report kept a probe prompt taken from it."""
    source = data_dir.parent / "peft-out"
    source.mkdir()
    (source / registry.WEIGHTS).write_bytes(b"weights")
    (source / registry.CONFIG).write_text("{}", encoding="utf-8")
    report = {
        "verdict": "promote",
        "probes": [
            {"prompt": probe, "answers": {"candidate": f"about {MARKER}", "base": "?"}},
            {"prompt": "How do I pay?", "answers": {"candidate": "By card.", "base": "?"}},
        ],
    }
    path = registry.publish(source, data_dir, "v0001", {"dataset_snapshot": dataset_id, "eval_report": report})
    store.start_run("run-1", user=NAME, pid=1, base_model="tiny", config={})
    store.register_adapter("v0001", path=str(path), actor=NAME, dataset_id=dataset_id, report=report,
                           reason=f"trained by {NAME}")
    store.promote("v0001", actor=NAME, reason=f"promoted by {NAME}")


def _leftovers(data_dir: Path) -> None:
    """What a killed build and a killed publish leave behind, and a log line quoting the text."""
    staging = data_dir / "datasets" / ".staging-0123456789abcdef-x1y2"
    staging.mkdir(parents=True)
    (staging / "train.jsonl").write_text(json.dumps({"text": f"the {MARKER} case"}) + "\n", encoding="utf-8")
    publishing = data_dir / "adapters" / ".v0002.abc123"
    publishing.mkdir()
    (publishing / "meta.json").write_text(json.dumps({"probes": [f"the {MARKER} case"]}), encoding="utf-8")
    with open(data_dir / "logs" / "assistant.log", "a", encoding="utf-8") as log:
        log.write(
        "2026-11-02 09:30:00 1 INFO assistant: serving tiny\n"
        f"2026-11-02 09:31:00 1 ERROR assistant: could not answer 'message 0: the {MARKER} case'\n"
        f"2026-11-02 09:32:00 1 INFO assistant: {NAME} opened a chat\n"
        "2026-11-02 09:33:00 1 INFO assistant: the backend answers again\n"
        )


def _holding(data_dir: Path, *needles: str) -> list[str]:
    """Every file under the data dir (database, -wal, -shm, snapshots, adapters, logs) holding a needle,
    in any case: the search index stores words lowercased."""
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        content = path.read_bytes().lower()
        found += [f"{path.relative_to(data_dir)}: {n}" for n in needles if n.lower().encode() in content]
    return found


@pytest.fixture
def erased_world(data_dir: Path, tiny_model_dir: Path) -> dict:
    store = open_store(data_dir)
    theirs, anns = _seed(store)
    built = run_subprocess("dataset", "build", "--json", "--data-dir", data_dir, "--user", NAME,
                           "--model", tiny_model_dir, cwd=data_dir.parent)
    assert built.code == 0, built.err
    snapshot = json.loads(built.out)["snapshot_id"]
    _publish_adapter(store, data_dir, snapshot, f"message 0: the {MARKER} case of {NAME}")
    _leftovers(data_dir)
    store.close()
    return {"theirs": theirs, "anns": anns, "snapshot": snapshot}


def test_forget_leaves_no_byte_of_a_20000_message_conversation_while_a_chat_holds_the_database(
    data_dir: Path, erased_world: dict
) -> None:
    assert _holding(data_dir, MARKER, NAME)  # everywhere before
    snapshot = f"datasets/{erased_world['snapshot']}"
    assert {f"{snapshot}/{name}.jsonl: {CORRECTION}" for name in ("eval", "dpo_eval", "kto_eval")} <= set(
        _holding(data_dir, CORRECTION)
    )
    chat = subprocess.Popen(
        [sys.executable, "-c", CHAT, str(data_dir / "assistant.db"), MARKER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        assert chat.stdout.readline().strip() == "1"  # the chat found it, and holds the database open

        result = run_subprocess("forget", "--user", NAME, "--yes", "--data-dir", data_dir, cwd=data_dir.parent,
                                env={"ASSISTANT_USER": "cora"})

        assert result.code == 0, result.err
        assert result.out.splitlines()[0] == f"erased 1 conversation ({LONG} messages)"
        assert _holding(data_dir, MARKER, MARKER[-8:], NAME, CORRECTION) == []
        chat.stdin.write("\n")
        chat.stdin.flush()
        assert chat.stdout.readline().strip() == "0"
        assert chat.wait(timeout=60) == 0
    finally:
        if chat.poll() is None:
            chat.kill()
    store = open_store(data_dir)
    try:
        assert [c.id for c in store.conversations(include_archived=True)] == [erased_world["anns"]]
        [probe, kept] = store.adapter("v0001").report["probes"]
        assert probe["prompt"] == "(erased)" and kept["prompt"] == "How do I pay?"
        assert store.adapter("v0001").dataset_erased_at is not None
    finally:
        store.close()
    meta = registry.read_meta(data_dir / "adapters" / "v0001")
    assert [p["prompt"] for p in meta["eval_report"]["probes"]] == ["(erased)", "How do I pay?"]
    registry.check_files(data_dir / "adapters" / "v0001")  # still loadable: the weights' checksums hold
    log = (data_dir / "logs" / "assistant.log").read_text(encoding="utf-8").splitlines()
    assert log[-4:] == [
        "2026-11-02 09:30:00 1 INFO assistant: serving tiny",
        "2026-11-02 09:31:00 1 ERROR (line removed: it held erased data)",
        "2026-11-02 09:32:00 1 INFO (line removed: it held erased data)",
        "2026-11-02 09:33:00 1 INFO assistant: the backend answers again",
    ]
