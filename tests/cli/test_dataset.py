"""`assistant dataset build|list|stats|export` and `assistant forget`.

Each `dataset build` resolves the model given with `--model` (the session's tiny model) and loads its
tokenizer: a fraction of a second once transformers is imported, so every test builds its own data dir.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.store import Store
from tests.cli.helpers import open_store

SYSTEM = "You are the Nimbus Home support assistant."
ERASED = "Zebrafish"  # a word only in the conversation the forget tests erase
BOBS = "Quokka"  # a word only in bob's conversation
FILES = ("train.jsonl", "eval.jsonl", "dpo.jsonl", "kto.jsonl", "dpo_eval.jsonl", "kto_eval.jsonl", "manifest.json")
NOT_A_CURATOR = "error: ann is not a curator (curators: zoe; an admin adds names to `curators` in config.toml)"


def _turn(store: Store, user: str, question: str, answer: str) -> tuple[int, int]:
    conversation = store.create_conversation(user, SYSTEM)
    q = store.add_message(conversation.id, "user", question)
    a = store.add_message(conversation.id, "assistant", answer, parent_id=q.id)
    return conversation.id, a.id


def _seed(store: Store) -> dict[str, int]:
    """Four approved replies in four conversations (one of them bob's), one with a rater's correction.

    The split hashes conversation ids: with the defaults, conversations 2 and 4 are held out for
    evaluation, so the corrected reply (conversation 3) gives the training side DPO and KTO rows, and
    the thumbs-up of 2 and 4 give the held-out side KTO rows (kto_eval.jsonl).
    """
    ids: dict[str, int] = {}
    ids["billing"], a = _turn(store, "ann", "When is my bill due?", "On the 1st of each month.")
    store.rate(a, "bob", 1)
    ids["bob"], b = _turn(store, "bob", f"How do I reset the {BOBS} hub?", f"Hold the {BOBS} button for 10 seconds.")
    store.rate(b, "bob", 1)
    ids["card"], card = _turn(store, "ann", "Can I pay by card?", "No.")
    store.rate(card, "bob", -1, reasons=["wrong facts"], correction="Yes: Visa, Mastercard and Amex.")
    ids["erase"], e = _turn(
        store, "ann", f"Do {ERASED} cameras work offline?", f"{ERASED} cameras record to the SD card."
    )
    store.rate(e, "dan", 1)
    store.approve([a, card, b, e], "cora")
    return ids


@pytest.fixture
def conversations(store: Store) -> dict[str, int]:
    return _seed(store)


@pytest.fixture
def build(cli, data_dir: Path, tiny_model_dir: Path):  # noqa: ANN001, ANN201
    def run(*args: str):  # noqa: ANN202
        return cli("dataset", "build", *args, "--data-dir", data_dir, "--user", "cora", "--model", str(tiny_model_dir))

    return run


@pytest.fixture
def built(build, conversations: dict[str, int]) -> dict:  # noqa: ANN001
    """The seeded log built once: the build's JSON summary."""
    result = build("--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _snapshot_text(path: Path) -> str:
    return "".join((path / name).read_text(encoding="utf-8") for name in FILES)


# -- build -----------------------------------------------------------------------------------


def test_build_writes_the_snapshot_files(build, data_dir: Path, conversations: dict[str, int]) -> None:  # noqa: ANN001
    result = build()

    assert result.code == 0, result.err
    first, where, sources, filtered, pii = result.out.splitlines()
    assert first.startswith("built dataset ")
    snapshot_id = first.removeprefix("built dataset ").split(":")[0]
    path = data_dir / "datasets" / snapshot_id
    assert where.strip() == str(path)
    assert sorted(p.name for p in path.iterdir()) == sorted(FILES)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["snapshot_id"] == snapshot_id
    rows = manifest["counts"]["rows"]
    assert first == (
        f"built dataset {snapshot_id}: {rows['train']} train, {rows['eval']} eval, "
        f"{rows['dpo']} DPO, {rows['kto']} KTO rows; held out for evaluation: 0 DPO, 2 KTO"
    )
    assert rows["train"] + rows["eval"] == 4  # one row per approved reply
    assert rows["eval"] > 0 and rows["dpo"] == 1 and rows["kto"] > 0  # the correction against the reply
    assert (rows["dpo_eval"], rows["kto_eval"]) == (0, 2)  # the held-out replies' thumbs-up
    assert manifest["counts"]["filters"]["preference_held_out"] == 2
    for split in ("train", "eval", "dpo", "kto", "dpo_eval", "kto_eval"):
        lines = (path / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == rows[split]
        assert all(isinstance(json.loads(line), dict) for line in lines)
    assert sources == "  sources: approved_correction 1, approved_reply 3"
    assert filtered.startswith("  filtered: ") and "held out" not in filtered  # in the files, not filtered
    assert pii == "  PII replaced: none found"
    assert "Yes: Visa, Mastercard and Amex." in _snapshot_text(path)


def test_rebuilding_the_same_state_is_unchanged(build, data_dir: Path, built: dict) -> None:  # noqa: ANN001
    again = build()

    assert again.code == 0, again.err
    assert again.out.splitlines()[0].startswith(f"unchanged dataset {built['snapshot_id']}: ")
    assert [p.name for p in (data_dir / "datasets").iterdir()] == [built["snapshot_id"]]


def test_build_json(build, built: dict, data_dir: Path) -> None:  # noqa: ANN001
    assert {"snapshot_id", "rows", "sources", "filters", "pii_replaced"} <= set(built)
    assert built["path"] == str(data_dir / "datasets" / built["snapshot_id"])
    assert built["reused"] is False
    assert built["rows"]["train"] + built["rows"]["eval"] == 4
    assert built["sources"] == {"approved_correction": 1, "approved_reply": 3}
    assert built["pii_replaced"] == {}

    again = build("--json")
    assert again.code == 0 and again.err == ""  # no spinner, no notice: stdout is for machines
    assert json.loads(again.out) | {"reused": False} == built
    assert json.loads(again.out)["reused"] is True


def test_build_fails_when_examples_are_too_long_naming_them(
    build, store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    first, a = _turn(store, "ann", "Tell me everything about the thermostat.", "The thermostat " * 40)
    second, b = _turn(store, "ann", "And the \x1b[31mcamera\x1b[0m?", "The camera " * 60)
    store.rate(a, "bob", 1)
    store.rate(b, "bob", 1)
    store.approve([a, b], "cora")
    monkeypatch.setenv("ASSISTANT_MAX_LENGTH", "16")

    result = build()

    assert result.code == 8
    assert result.out == ""
    [line] = result.err_lines
    assert line.startswith("error: 2 of 2 examples (100.0%) are longer than max_length=16 tokens")
    assert f'conversation {second} "And the camera?" message {b} (' in line  # the longest first, terminal-safe
    assert line.index(f"conversation {second} ") < line.index(f"conversation {first} ")
    assert "\x1b" not in result.err
    assert open_store(data_dir).datasets() == []
    assert not (data_dir / "datasets").exists() or not any((data_dir / "datasets").iterdir())


def test_one_over_long_example_is_dropped_and_named(
    build, store: Store, conversations: dict[str, int], data_dir: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    cid, answer = _turn(store, "ann", "Paste of the hub's logs", "log line " * 200)
    store.rate(answer, "bob", 1)
    store.approve([answer], "cora")
    monkeypatch.setenv("ASSISTANT_MAX_LENGTH", "256")  # 1 of 5 over-long: above the 5% allowed, yet only one

    result = build()

    assert result.code == 0, result.err
    assert f'  dropped as longer than max_length 256: conversation {cid} "Paste of the hub\'s logs" message {answer} (' in result.out
    manifest = json.loads(next((data_dir / "datasets").glob("*/manifest.json")).read_text())
    assert [d["message_id"] for d in manifest["dropped_too_long"]] == [answer]
    assert build("--json").code == 0


def test_build_with_a_model_that_is_not_there(
    cli, data_dir: Path, conversations: dict[str, int], tmp_path: Path  # noqa: ANN001
) -> None:
    result = cli("dataset", "build", "--data-dir", data_dir, "--user", "cora", "--model", tmp_path / "no-such-model")

    assert result.code == 5
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("error: ")


# -- list, stats -----------------------------------------------------------------------------


def test_list_shows_the_snapshot(cli, data_dir: Path, built: dict) -> None:  # noqa: ANN001
    result = cli("dataset", "list", "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    [line] = result.out.splitlines()
    fields = line.split()
    assert fields[0] == built["snapshot_id"]
    assert f"{built['rows']['train']} train" in " ".join(fields) and f"{built['rows']['eval']} eval" in " ".join(fields)
    assert "ERASED" not in line


def test_list_with_no_snapshot(cli, data_dir: Path) -> None:
    result = cli("dataset", "list", "--data-dir", data_dir, "--user", "cora")
    assert (result.code, result.out) == (0, "")
    assert result.err_lines == ["no dataset snapshots yet (assistant dataset build)"]


def test_stats_shows_counts_and_a_histogram(cli, data_dir: Path, built: dict) -> None:  # noqa: ANN001
    result = cli("dataset", "stats", "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    out = result.out
    lines = out.splitlines()
    assert lines[0].startswith(f"dataset {built['snapshot_id']}  (") and "ERASED" not in lines[0]
    rows = built["rows"]
    assert lines[1].startswith(f"  rows: {rows['train']} train (")
    assert lines[1].endswith(f"{rows['dpo']} DPO, {rows['kto']} KTO; held out for evaluation: {rows['dpo_eval']} DPO, "
                             f"{rows['kto_eval']} KTO")
    assert "  sources: approved_correction 1, approved_reply 3" in lines
    assert any(line.startswith("  train tokens: min ") and "(max_length 2048)" in line for line in lines)
    assert "tokens per training example" in out
    assert "█" in out  # the bars of the length histogram
    assert "\x1b" not in out  # plain text, no colour codes


def test_stats_json(cli, data_dir: Path, built: dict) -> None:  # noqa: ANN001
    result = cli("dataset", "stats", "--json", "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    stats = json.loads(result.out)
    assert set(stats) == {"snapshot_id", "counts", "tokens"}
    assert stats["snapshot_id"] == built["snapshot_id"]
    assert stats["counts"]["rows"] == built["rows"]
    train = stats["tokens"]["train"]
    assert train["count"] == built["rows"]["train"] and 0 < train["min"] <= train["max"] <= 2048


def test_stats_by_id_prefix_and_unknown(cli, data_dir: Path, built: dict) -> None:  # noqa: ANN001
    prefix = cli("dataset", "stats", built["snapshot_id"][:6], "--data-dir", data_dir, "--user", "cora")
    unknown = cli("dataset", "stats", "ffffffffffffffff0", "--data-dir", data_dir, "--user", "cora")

    assert prefix.code == 0 and prefix.out.startswith(f"dataset {built['snapshot_id']}")
    assert unknown.code == 7
    assert unknown.err_lines == ["error: no dataset snapshot ffffffffffffffff0 (run `assistant dataset build`)"]


def test_stats_with_no_snapshot(cli, data_dir: Path) -> None:
    result = cli("dataset", "stats", "--data-dir", data_dir, "--user", "cora")

    assert result.code == 7
    assert result.out == ""
    assert result.err_lines == ["error: no dataset snapshot yet (run `assistant dataset build`)"]


# -- export ----------------------------------------------------------------------------------


def _read_export(fmt: str, out: Path) -> dict[str, list]:
    if fmt == "hf":
        import datasets

        loaded = datasets.load_from_disk(str(out))
        return {split: loaded[split].to_list() for split in loaded}
    if fmt == "openai":
        return {
            p.stem: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
            for p in sorted(out.glob("*.jsonl"))
        }
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))}


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "alpaca", "hf"])
def test_export_writes_files_that_read_back(
    cli, data_dir: Path, built: dict, tmp_path: Path, fmt: str  # noqa: ANN001
) -> None:
    out = tmp_path / f"export-{fmt}"

    result = cli("dataset", "export", "--format", fmt, out, "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    assert result.out.startswith(f"exported dataset {built['snapshot_id']} as {fmt} to {out}: ")
    splits = _read_export(fmt, out)
    rows = built["rows"]
    assert len(splits["train"]) == rows["train"]
    assert len(splits.get("eval", [])) == rows["eval"]
    text = json.dumps(splits, ensure_ascii=False)
    assert "Yes: Visa, Mastercard and Amex." in text or rows["train"] + rows["eval"] == 0
    first = splits["train"][0]
    key = {"openai": "messages", "sharegpt": "conversations", "alpaca": "output", "hf": "messages"}[fmt]
    assert key in first
    if fmt in ("openai", "hf"):
        assert first["messages"][-1]["role"] == "assistant" and first["messages"][-1]["weight"] == 1
        assert len(splits.get("dpo", [])) == rows["dpo"]
    if fmt == "hf":
        assert len(splits.get("kto", [])) == rows["kto"]
        assert len(splits.get("kto_eval", [])) == rows["kto_eval"] > 0


def test_export_refuses_a_non_empty_directory(cli, data_dir: Path, built: dict, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")

    result = cli("dataset", "export", "--format", "openai", out, "--data-dir", data_dir, "--user", "cora")

    assert result.code == 4
    assert result.err_lines == [f"error: {out} already exists and is not empty; choose a new directory"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_export_into_an_empty_directory(cli, data_dir: Path, built: dict, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "empty"
    out.mkdir()

    result = cli("dataset", "export", "--format", "sharegpt", out, "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "train.json"]


def test_export_with_no_snapshot(cli, data_dir: Path, tmp_path: Path) -> None:
    result = cli("dataset", "export", "--format", "openai", tmp_path / "out", "--data-dir", data_dir, "--user", "cora")
    assert result.code == 7
    assert not (tmp_path / "out").exists()


# -- forget ----------------------------------------------------------------------------------


@pytest.fixture
def acting(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Who runs `forget`: set through ASSISTANT_USER, because forget's own --user names whose data goes."""

    def set_user(name: str) -> None:
        monkeypatch.setenv("ASSISTANT_USER", name)

    set_user("cora")
    return set_user


def _all_conversations(cli, data_dir: Path) -> list[int]:  # noqa: ANN001
    result = cli("history", "list", "--all-users", "--archived", "--json", "--data-dir", data_dir, "--user", "cora")
    assert result.code == 0, result.err
    return sorted(json.loads(line)["id"] for line in result.out.splitlines())


def test_forget_a_conversation_marks_the_snapshot_and_the_next_build_leaves_it_out(
    cli, build, data_dir: Path, built: dict, conversations: dict[str, int], acting  # noqa: ANN001
) -> None:
    old = data_dir / "datasets" / built["snapshot_id"]
    assert ERASED in _snapshot_text(old)
    assert ERASED in (old / "kto_eval.jsonl").read_text(encoding="utf-8")  # held out: its thumbs-up is there

    result = cli("forget", "--conversation", str(conversations["erase"]), "--yes", "--data-dir", data_dir)

    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "erased 1 conversation (2 messages)"
    assert built["snapshot_id"] in result.out and "ERASED" in result.out
    assert conversations["erase"] not in _all_conversations(cli, data_dir)
    assert sorted(_all_conversations(cli, data_dir)) == sorted(
        cid for name, cid in conversations.items() if name != "erase"
    )

    assert not old.exists()  # the files that held it are gone; the record stays as a tombstone
    assert not [p for p in data_dir.rglob("*.jsonl") if ERASED in p.read_text(encoding="utf-8")]
    listed = cli("dataset", "list", "--data-dir", data_dir, "--user", "cora")
    [line] = listed.out.splitlines()
    assert line.startswith(built["snapshot_id"])
    assert line.endswith(f"ERASED {line.split()[1]}: held conversation {conversations['erase']}, erased by cora; files deleted")
    for command in (["stats"], ["stats", built["snapshot_id"]], ["export", "--format", "openai", str(data_dir.parent / "out")],
                    ["export", "--format", "openai", "--snapshot", built["snapshot_id"], str(data_dir.parent / "out")]):
        refused = cli("dataset", *command, "--data-dir", data_dir, "--user", "cora")
        assert refused.code == 7, command
        assert refused.err_lines[0] in (
            "error: every dataset snapshot held data erased since (run `assistant dataset build`)",
            f"error: dataset snapshot {built['snapshot_id']} was erased on {line.split()[1]} (held conversation "
            f"{conversations['erase']}, erased by cora); its files were deleted (run `assistant dataset build` for a "
            "snapshot without the erased data)",
        ), command
    assert not (data_dir.parent / "out").exists()

    rebuilt = build("--json")
    assert rebuilt.code == 0, rebuilt.err
    new = json.loads(rebuilt.out)
    assert new["snapshot_id"] != built["snapshot_id"] and new["reused"] is False
    assert ERASED not in _snapshot_text(data_dir / "datasets" / new["snapshot_id"])
    assert new["rows"]["train"] + new["rows"]["eval"] == 3
    listed = cli("dataset", "list", "--data-dir", data_dir, "--user", "cora")
    marks = {line.split()[0]: "ERASED" in line for line in listed.out.splitlines()}
    assert marks == {built["snapshot_id"]: True, new["snapshot_id"]: False}
    exported = cli("dataset", "export", "--format", "openai", str(data_dir.parent / "out"), "--data-dir", data_dir,
                   "--user", "cora")
    assert exported.code == 0 and f"exported dataset {new['snapshot_id']}" in exported.out  # the newest not erased


def test_forget_a_user(
    cli, build, data_dir: Path, built: dict, conversations: dict[str, int], acting  # noqa: ANN001
) -> None:
    result = cli("forget", "--user", "bob", "--yes", "--data-dir", data_dir)

    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "erased 1 conversation (2 messages)"
    assert conversations["bob"] not in _all_conversations(cli, data_dir)
    store = open_store(data_dir)
    assert store.conversations(user="bob", include_archived=True) == []
    assert all("bob" not in (f.user for f in store.feedback_for(m.id)) for c in store.conversations()
               for m in store.thread(c.id))  # bob's ratings of ann's replies go too
    store.close()
    assert built["snapshot_id"] in result.out  # the snapshot held bob's conversation: marked
    rebuilt = build("--json")
    text = _snapshot_text(data_dir / "datasets" / json.loads(rebuilt.out)["snapshot_id"])
    assert BOBS not in text
    assert "Yes: Visa, Mastercard and Amex." not in text  # the correction bob wrote on ann's reply went too


def test_forget_a_user_marks_the_snapshots_holding_their_corrections(
    cli, build, store: Store, data_dir: Path, acting  # noqa: ANN001
) -> None:
    _, answer = _turn(store, "ann", "Can I pay by card?", "No.")
    store.rate(answer, "dan", -1, correction="Yes: any card with the Nimbus logo.")
    store.approve([answer], "cora")
    built = json.loads(build("--json").out)
    assert "Nimbus logo" in _snapshot_text(data_dir / "datasets" / built["snapshot_id"])

    result = cli("forget", "--user", "dan", "--yes", "--data-dir", data_dir)

    assert result.code == 0, result.err
    listed = cli("dataset", "list", "--data-dir", data_dir, "--user", "cora")
    [line] = listed.out.splitlines()
    assert line.startswith(built["snapshot_id"]) and line.endswith("held a user's data, erased by cora; files deleted")


def test_forget_without_yes_and_no_terminal_erases_nothing(
    cli, data_dir: Path, conversations: dict[str, int], acting  # noqa: ANN001
) -> None:
    before = _all_conversations(cli, data_dir)

    result = cli("forget", "--conversation", str(conversations["erase"]), "--data-dir", data_dir)

    assert result.code == 4
    assert result.err_lines == ["error: forget asks for confirmation; pass --yes to run it without a terminal"]
    assert _all_conversations(cli, data_dir) == before


@pytest.mark.parametrize(
    "args", [["--yes"], ["--conversation", "1", "--user", "bob", "--yes"]], ids=["neither", "both"]
)
def test_forget_needs_one_of_conversation_or_user(
    cli, data_dir: Path, conversations: dict[str, int], acting, args: list[str]  # noqa: ANN001
) -> None:
    before = _all_conversations(cli, data_dir)

    result = cli("forget", *args, "--data-dir", data_dir)

    assert result.code == 2
    assert "give --conversation ID or --user NAME" in result.err
    assert _all_conversations(cli, data_dir) == before


def test_forget_an_unknown_conversation(
    cli, data_dir: Path, conversations: dict[str, int], acting  # noqa: ANN001
) -> None:
    result = cli("forget", "--conversation", "999", "--yes", "--data-dir", data_dir)

    assert result.code == 7
    assert result.err_lines == ["error: no conversation with id 999"]


def test_forget_is_for_curators(
    cli, data_dir: Path, conversations: dict[str, int], acting, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setenv("ASSISTANT_CURATORS", "zoe")
    (data_dir / "config.toml").write_text("allow_user_override = true\n", encoding="utf-8")  # who acts: ASSISTANT_USER
    acting("ann")
    before = _all_conversations(cli, data_dir)

    by_id = cli("forget", "--conversation", str(conversations["erase"]), "--yes", "--data-dir", data_dir)
    by_user = cli("forget", "--user", "bob", "--yes", "--data-dir", data_dir)

    for result in (by_id, by_user):
        assert result.code == 9
        assert result.err_lines == [NOT_A_CURATOR]
    assert _all_conversations(cli, data_dir) == before
    acting("zoe")
    assert cli("forget", "--conversation", str(conversations["erase"]), "--yes", "--data-dir", data_dir).code == 0


def test_build_warns_of_answers_that_teach_placeholders_and_pii_allow_keeps_the_company_address(
    build, cli, store: Store, data_dir: Path, tiny_model_dir: Path
) -> None:
    """A correction naming the company's own sender address: scrubbed, the model would learn to write
    "<EMAIL_1>"; `dataset build` and `doctor` say so, and `pii_allow` keeps the address."""
    _, a = _turn(store, "ann", "Where does the reset link come from?", "No idea.")
    store.rate(a, "bob", -1, correction="From no-reply@nimbushome.example; it works for 60 minutes.")
    _, b = _turn(store, "ann", "Can you mail me a copy?", "Done: sent to ana@gmail.com.")
    store.rate(b, "bob", 1)
    store.approve([a, b], "cora")

    result = build()
    assert result.code == 0, result.err
    warning = [line for line in result.out.splitlines() if line.startswith("  warning: ")]
    assert warning == [
        "  warning: 2 training answers hold PII placeholders (<EMAIL_1>, <PHONE_1>, ...), which the model would "
        "learn to write: list your organisation's own addresses, domains and numbers in pii_allow, or correct "
        "those answers (`assistant review`)"
    ]
    doctor = cli("doctor", "--data-dir", data_dir, "--model", str(tiny_model_dir))
    assert "training answers with PII placeholders" in doctor.out
    assert "pii_allow" in doctor.out.split("\nAdvice\n")[1]

    (data_dir / "config.toml").write_text('pii_allow = ["nimbushome.example"]\n', encoding="utf-8")
    result = build()
    assert result.code == 0, result.err
    assert "  PII left as written (pii_allow): EMAIL 1" in result.out.splitlines()
    assert "  warning: 1 training answer holds PII placeholders" in result.out  # the customer's address
    snapshot = result.out.splitlines()[0].removeprefix("built dataset ").split(":")[0]
    train = (data_dir / "datasets" / snapshot / "train.jsonl").read_text(encoding="utf-8") + (
        data_dir / "datasets" / snapshot / "eval.jsonl"
    ).read_text(encoding="utf-8")
    assert "From no-reply@nimbushome.example; it works for 60 minutes." in train
    assert "ana@gmail.com" not in train
